"""Fine-tune YOLOX-nano (COCO, Apache-2.0) into an 81-class graph that also knows `excavator`.

The 80 COCO outputs are protected by construction rather than by hope: the whole COCO graph is
frozen and the new knowledge lives in a small side branch per stride. The branch reads the
head's last class and box features (cached once with onnxruntime, so training is cheap on a
CPU) and predicts one "earth-moving machine here" score `e`. The exported graph then reports

    objectness' = max(objectness, e)      class[80] = e / objectness'

so the excavator score (objectness' x class[80]) is exactly `e`, and COCO scores change only
where the branch is confident about a machine. The branch also predicts a box correction `d`
(grid units) and the graph reports `box' = box + e * d`: excavator boxes are refined, COCO boxes
move only where a machine is seen.

Positives are assigned per machine box like YOLOX's SimOTA, simplified: cells whose centre lies
in the box and near its centre, ranked by the IoU of the frozen model's own box there, top
dynamic-k kept; other in-box cells with a good box are ignored, all remaining cells are
negatives. Each development image is seen as it is and mirrored. Data:
../shared/datasets/construction_machinery, class 8 (machinery), development split only: the
images not listed in the harness's validation split, benchmarks/labels/splits/
construction_machinery.txt (gridwatch/evaluation/splits.py).

Needs the `train` extra (torch, onnx). Usage, from the repository root:

    nice -n 10 .venv/bin/python scripts/train_excavator.py \
        --data ../shared/datasets/construction_machinery \
        --base ../shared/models/yolox_nano_coco_416.onnx \
        --out models/weights/yolox_nano_excavator_416.onnx \
        --validation benchmarks/labels/splits/construction_machinery.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

SIZE = 416
STRIDES = (8, 16, 32)
MACHINE_CLASS = 8
HIDDEN = 32
SCALES = (1.0,)
BOX_LOSS_WEIGHT = 2.0
SEED = 20260


def validation_names(split_file: Path) -> set[str]:
    return {line.strip() for line in split_file.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


@dataclass(frozen=True)
class HeadTaps:
    """Tensor names in the YOLOX graph at one stride."""

    cls_feature: str
    reg_feature: str
    reg_output: str
    obj_sigmoid: str
    cls_sigmoid: str
    concat_node: str


def head_taps(model: onnx.ModelProto) -> list[HeadTaps]:
    """Find, per stride, the features feeding cls_preds/reg_preds and the 85-channel concat."""
    producers = {out: node for node in model.graph.node for out in node.output}
    taps = []
    for node in model.graph.node:
        if node.op_type != "Concat" or len(node.input) != 3:
            continue
        reg, obj_sig, cls_sig = node.input
        reg_conv = producers.get(reg)
        if reg_conv is None or "reg_preds" not in reg_conv.input[1]:
            continue
        cls_conv = producers[producers[cls_sig].input[0]]
        taps.append(HeadTaps(cls_conv.input[0], reg_conv.input[0], reg, obj_sig, cls_sig,
                             node.name))
    if len(taps) != len(STRIDES):
        raise SystemExit(f"expected {len(STRIDES)} YOLOX head levels, found {len(taps)}")
    return taps


def feature_session(base: Path, taps: list[HeadTaps]) -> ort.InferenceSession:
    model = onnx.load(str(base))
    for tap in taps:
        for name in (tap.cls_feature, tap.reg_feature, tap.reg_output):
            model.graph.output.append(helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def grid_centres() -> tuple[np.ndarray, np.ndarray]:
    """Per output row: the cell's grid offset and its stride, in the graph's row order."""
    offsets, strides = [], []
    for stride in STRIDES:
        n = SIZE // stride
        ys, xs = np.mgrid[0:n, 0:n]
        offsets.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full(n * n, stride))
    return np.concatenate(offsets).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_boxes(raw: np.ndarray, offsets: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """x1, y1, x2, y2 in input pixels of every row of the raw YOLOX output."""
    xy = (raw[:, :2] + offsets) * strides[:, None]
    wh = np.exp(np.clip(raw[:, 2:4], -10, 10)) * strides[:, None]
    return np.concatenate([xy - wh / 2, xy + wh / 2], 1)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def machine_boxes(label_file: Path, flip: bool, scale: float) -> np.ndarray:
    rows = [line.split() for line in label_file.read_text().splitlines() if line.strip()]
    boxes = np.array([[float(v) for v in r[1:5]] for r in rows if int(r[0]) == MACHINE_CLASS],
                     dtype=np.float32).reshape(-1, 4) * SIZE * scale
    if flip:
        boxes[:, 0] = SIZE * scale - boxes[:, 0]
    cx, cy, w, h = boxes.T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def assign(pred: np.ndarray, gts: np.ndarray, offsets: np.ndarray,
           strides: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target (1 positive, 0 negative), weight (0 = ignored) and, on positives, the raw box
    encoding of their machine (grid offset and log size, as the YOLOX head regresses it)."""
    target = np.zeros(len(pred), np.float32)
    weight = np.ones(len(pred), np.float32)
    box_target = np.zeros((len(pred), 4), np.float32)
    if len(gts) == 0:
        return target, weight, box_target
    centres = (offsets + 0.5) * strides[:, None]
    ious = pairwise_iou(pred, gts)
    for g, box in enumerate(gts):
        inside = ((centres[:, 0] > box[0]) & (centres[:, 0] < box[2])
                  & (centres[:, 1] > box[1]) & (centres[:, 1] < box[3]))
        gc = (box[:2] + box[2:]) / 2
        near = np.all(np.abs(centres - gc) < 2.5 * strides[:, None], axis=1)
        candidates = np.flatnonzero(inside & near)
        if len(candidates) == 0:
            candidates = np.flatnonzero(inside) if inside.any() else np.array(
                [int(np.argmin(np.linalg.norm(centres - gc, axis=1)))])
        scores = ious[candidates, g]
        k = max(1, int(np.sort(scores)[::-1][:10].sum()))
        best = candidates[np.argsort(scores)[::-1][:k]]
        weight[np.flatnonzero(inside & (ious[:, g] > 0.5))] = 0.0
        target[best] = 1.0
        weight[best] = 1.0
        size = np.maximum(box[2:] - box[:2], 1.0)
        box_target[best, :2] = gc / strides[best, None] - offsets[best]
        box_target[best, 2:] = np.log(size / strides[best, None])
    return target, weight, box_target


Sample = tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_samples(data: Path, validation: set[str], session: ort.InferenceSession,
                 taps: list[HeadTaps]) -> list[Sample]:
    """Per view of every development image: cached branch inputs (per stride), the frozen raw
    boxes, targets, weights and box targets."""
    offsets, strides = grid_centres()
    names = [o.name for o in session.get_outputs()]
    samples = []
    for image_path in sorted((data / "images").iterdir()):
        if image_path.name in validation:
            continue
        original = cv2.imread(str(image_path))
        for scale, flip in ((scale, flip) for scale in SCALES for flip in (False, True)):
            side = round(SIZE * scale)
            canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
            canvas[:side, :side] = cv2.resize(original, (side, side),
                                              interpolation=cv2.INTER_LINEAR)
            if flip:
                canvas[:side, :side] = canvas[:side, :side][:, ::-1]
            blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
            outputs = dict(zip(names, session.run(None, {"images": blob}), strict=True))
            raw = outputs["output"][0]
            feats = [np.concatenate([outputs[t.cls_feature], outputs[t.reg_feature]], 1)[0]
                     .astype(np.float16) for t in taps]
            gts = machine_boxes(data / "labels" / f"{image_path.stem}.txt", flip, scale)
            target, weight, box_target = assign(decode_boxes(raw, offsets, strides), gts,
                                                offsets, strides)
            samples.append((feats, raw[:, :4].copy(), target, weight, box_target))
    return samples


class MachineBranch(nn.Module):
    """One small convolutional head per stride over [class features, box features]: a machine
    score logit and a box correction."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, HIDDEN, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(HIDDEN, 5, 1))
            for _ in STRIDES
        )
        for level in self.levels:
            nn.init.zeros_(level[2].weight[1:])  # start from the COCO boxes
            nn.init.zeros_(level[2].bias)
            nn.init.constant_(level[2].bias[0], -4.6)  # prior 0.01: most cells hold no machine

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """(batch, rows, 5): score logit, then dx, dy, dw, dh in the graph's row order."""
        return torch.cat([level(f).flatten(2) for level, f in zip(self.levels, feats,
                                                                    strict=True)], 2
                         ).transpose(1, 2)


def train(samples: list[Sample], epochs: int, batch: int) -> MachineBranch:
    torch.manual_seed(SEED)
    random.seed(SEED)
    branch = MachineBranch(samples[0][0][0].shape[0])
    optimiser = torch.optim.AdamW(branch.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = epochs * ((len(samples) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 2e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    order = list(range(len(samples)))
    for epoch in range(epochs):
        random.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch):
            chosen = [samples[i] for i in order[start:start + batch]]
            feats = [torch.from_numpy(np.stack([s[0][k] for s in chosen])).float()
                     for k in range(len(STRIDES))]
            raw = torch.from_numpy(np.stack([s[1] for s in chosen]))
            target = torch.from_numpy(np.stack([s[2] for s in chosen]))
            weight = torch.from_numpy(np.stack([s[3] for s in chosen]))
            box_target = torch.from_numpy(np.stack([s[4] for s in chosen]))
            out = branch(feats)
            logits = out[..., 0]
            # As exported: the correction is gated by the machine score.
            boxes = raw + torch.sigmoid(logits).detach()[..., None] * out[..., 1:]
            positives = target.sum().clamp(min=1.0)
            box_loss = ((boxes - box_target).abs().sum(-1) * target).sum() / positives
            loss = (loss_fn(logits, target) * weight).sum() / positives
            loss = loss + BOX_LOSS_WEIGHT * box_loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chosen)
        print(json.dumps({"epoch": epoch + 1, "loss": round(total / len(samples), 4)}),
              flush=True)
    return branch


def graft(base: Path, taps: list[HeadTaps], branch: MachineBranch, out: Path) -> None:
    """Write the 81-class graph: the COCO graph untouched plus the branch and the new channel."""
    model = onnx.load(str(base))
    graph = model.graph
    branch_nodes: dict[str, list[onnx.NodeProto]] = {}
    inits = []
    eps = numpy_helper.from_array(np.array(1e-9, np.float32), "machine_eps")
    inits.append(eps)
    concat_outputs = {}
    for k, (tap, level) in enumerate(zip(taps, branch.levels, strict=True)):
        p = f"machine{k}_"
        for j, conv in ((0, level[0]), (1, level[2])):
            inits.append(numpy_helper.from_array(conv.weight.detach().numpy(), f"{p}w{j}"))
            inits.append(numpy_helper.from_array(conv.bias.detach().numpy(), f"{p}b{j}"))
        branch_nodes[tap.concat_node] = [
            helper.make_node("Concat", [tap.cls_feature, tap.reg_feature], [f"{p}in"], axis=1),
            helper.make_node("Conv", [f"{p}in", f"{p}w0", f"{p}b0"], [f"{p}h"],
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"{p}h"], [f"{p}r"]),
            helper.make_node("Conv", [f"{p}r", f"{p}w1", f"{p}b1"], [f"{p}out"],
                             kernel_shape=[1, 1]),
            helper.make_node("Split", [f"{p}out"], [f"{p}logit", f"{p}delta"], axis=1,
                             split=[1, 4]),
            helper.make_node("Sigmoid", [f"{p}logit"], [f"{p}score"]),
            helper.make_node("Mul", [f"{p}score", f"{p}delta"], [f"{p}gated"]),
            helper.make_node("Add", [tap.reg_output, f"{p}gated"], [f"{p}reg"]),
            helper.make_node("Max", [tap.obj_sigmoid, f"{p}score"], [f"{p}obj"]),
            helper.make_node("Max", [f"{p}obj", "machine_eps"], [f"{p}obj_safe"]),
            helper.make_node("Div", [f"{p}score", f"{p}obj_safe"], [f"{p}cls"]),
        ]
        concat_outputs[tap.concat_node] = (f"{p}reg", f"{p}obj", f"{p}cls")
    for node in graph.node:
        if node.name in concat_outputs:
            new_reg, new_obj, new_cls = concat_outputs[node.name]
            node.input[0] = new_reg
            node.input[1] = new_obj
            node.input.append(new_cls)
    reshape_shapes = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for init in graph.initializer:
        if init.name in reshape_shapes:
            shape = numpy_helper.to_array(init).copy()
            shape[shape == 85] = 86
            init.CopyFrom(numpy_helper.from_array(shape, init.name))
    for node in graph.node:  # shape constants may also be Constant nodes
        if node.op_type == "Constant" and node.output[0] in reshape_shapes:
            shape = numpy_helper.to_array(node.attribute[0].t).copy()
            shape[shape == 85] = 86
            node.attribute[0].t.CopyFrom(numpy_helper.from_array(shape))
    for concat_name, nodes in branch_nodes.items():  # each level's branch before its concat
        at = next(i for i, n in enumerate(graph.node) if n.name == concat_name)
        for offset, node in enumerate(nodes):
            graph.node.insert(at + offset, node)
    graph.initializer.extend(inits)
    out_dim = graph.output[0].type.tensor_type.shape.dim[2]
    out_dim.dim_value = 86
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--validation", type=Path, required=True,
                        help="the validation split's file names, never trained on")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.monotonic()
    taps = head_taps(onnx.load(str(args.base)))
    validation = validation_names(args.validation)
    samples = load_samples(args.data, validation, feature_session(args.base, taps), taps)
    cached = time.monotonic()
    branch = train(samples, args.epochs, args.batch)
    graft(args.base, taps, branch.eval(), args.out)
    data = args.out.read_bytes()
    print(json.dumps({
        "out": str(args.out), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "train_views": len(samples), "validation_images": len(validation),
        "feature_s": round(cached - started, 1),
        "train_s": round(time.monotonic() - cached, 1),
    }))


if __name__ == "__main__":
    main()

"""Labels of clips (benchmarks/labels/*.yaml) and the scoring of `gridwatch analyze` output
against them: per analysed frame (is the class reported where the labels say it is in view),
per incident (each labelled condition interval opens one, in time) and hand counts.

The label format is described in benchmarks/labels/README.md: `present` and `ignore` spans
and `edge_ignore_s` in media seconds, `events` (condition intervals), `counts` (hand-counted
frames). A label file that is not that shape is refused with its file and key named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gridwatch.evaluation.datasets import DatasetError
from gridwatch.evaluation.mot import precision_recall

ONSET_TARGET_S = 3.0
COUNT_TARGET = 0.15
#: Keys a clip label file may hold, with the type each must have.
LABEL_KEYS: dict[str, type] = {"source": str, "class": str, "present": list, "ignore": list,
                               "edge_ignore_s": float, "events": list, "counts": list}


def read_clip_labels(path: Path) -> dict[str, Any]:
    """One clip's labels as a mapping, checked against the format."""
    try:
        labels = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DatasetError(f"{path}: {err}") from err
    if not isinstance(labels, dict):
        raise DatasetError(f"{path}: expected a mapping of label keys")
    for key, value in labels.items():
        if key not in LABEL_KEYS:
            raise DatasetError(f"{path}: unknown key {key!r} (known: {', '.join(LABEL_KEYS)})")
        wanted = LABEL_KEYS[key]
        ok = isinstance(value, (int, float)) if wanted is float else isinstance(value, wanted)
        if not ok:
            raise DatasetError(f"{path}: {key} must be a {wanted.__name__}")
    for i, event in enumerate(labels.get("events", [])):
        if not isinstance(event, dict) or not {"start", "end"} <= set(event):
            raise DatasetError(f"{path}: events[{i}] needs start and end")
    for i, count in enumerate(labels.get("counts", [])):
        if not isinstance(count, dict) or not {"frame", "t", "count"} <= set(count):
            raise DatasetError(f"{path}: counts[{i}] needs frame, t and count")
    return labels


def _in(t: float, spans: list[list[float]], margin: float = 0.0) -> bool:
    return any(a - margin <= t <= b + margin for a, b in spans)


def score_presence(lines: list[dict], labels: dict, cls: str) -> dict[str, Any]:
    """Frame level: the class reported on analysed frames where it is in view, not elsewhere."""
    present = labels.get("present", [])
    ignore = labels.get("ignore", [])
    edge = float(labels.get("edge_ignore_s", 0.0))
    hits = fps = targets = 0
    scored = 0
    for x in lines:
        if x["type"] != "frame":
            continue
        t = x["t"]
        if _in(t, ignore) or any(abs(t - e) <= edge for span in present for e in span):
            continue
        scored += 1
        seen = any(d["cls"] == cls for d in x["detections"])
        truth = _in(t, present)
        targets += truth
        hits += seen and truth
        fps += seen and not truth
    return {"level": "frame", "frames_scored": scored, **precision_recall(hits, fps, targets)}


def expected_incidents(labels: dict, rule: dict[str, Any], cooldown_s: float
                       ) -> list[list[float]]:
    """Labelled condition intervals as the service turns them into incidents: an interval
    shorter than the rule's `min_dwell_s` opens none, and the IncidentManager folds an episode
    that starts less than `cooldown_s` after the previous one ended into that incident."""
    dwell = float(rule.get("min_dwell_s", 5.0))
    end_after = float(rule.get("end_after_s", 10.0))
    merged: list[list[float]] = []
    for e in sorted(labels.get("events", []), key=lambda e: e["start"]):
        if e["end"] - e["start"] < dwell:
            continue
        if merged and (e["start"] + dwell) - (merged[-1][1] + end_after) < cooldown_s:
            merged[-1][1] = e["end"]
        else:
            merged.append([e["start"], e["end"]])
    return merged


def score_events(lines: list[dict], labels: dict, rule: dict[str, Any],
                 cooldown_s: float) -> dict[str, Any]:
    """Each expected incident should open once, within 3 s of its condition having held for
    `min_dwell_s`. An incident outside every labelled interval is false (it flags a stretch
    where nothing happens); a second incident inside an already matched interval is a split."""
    dwell = float(rule.get("min_dwell_s", 5.0))
    end_after = float(rule.get("end_after_s", 10.0))
    incidents = sorted((x for x in lines if x["type"] == "incident"), key=lambda x: x["start"])
    expected = expected_incidents(labels, rule, cooldown_s)
    matched: dict[int, int] = {}
    delays: list[float] = []
    missed: list[list[float]] = []
    false: list[list[float]] = []
    splits: list[list[float]] = []
    for k, (start, end) in enumerate(expected):
        found = next((i for i, inc in enumerate(incidents)
                      if i not in matched and start <= inc["start"] <= end + end_after), None)
        if found is None:
            missed.append([start, end])
            continue
        matched[found] = k
        delays.append(round(incidents[found]["start"] - (start + dwell), 3))
    for i, inc in enumerate(incidents):
        if i in matched:
            continue
        inside = any(a <= inc["start"] <= b + end_after for a, b in expected)
        (splits if inside else false).append([inc["start"], inc["end"]])
    return {
        "labelled_conditions": len(labels.get("events", [])),
        "expected": len(expected), "incidents": len(incidents),
        "precision": round(len(matched) / (len(matched) + len(false)), 3)
        if matched or false else None,
        "recall": round(len(matched) / len(expected), 3) if expected else None,
        "onset_delay_s": delays,
        "onset_within_3s": all(d <= ONSET_TARGET_S for d in delays) and not missed,
        "missed": missed, "false_incidents": false, "split_incidents": splits,
    }


def score_counts(lines: list[dict], labels: dict, cls: str) -> dict[str, Any]:
    """People reported on each hand-counted frame (or the analysed frame nearest to it, within
    0.25 s, when the schedule skipped it)."""
    frames = [x for x in lines if x["type"] == "frame"]
    by_index = {x["frame"]: x for x in frames}
    rows: list[dict[str, Any]] = []
    for c in labels.get("counts", []):
        x = by_index.get(c["frame"]) or min(frames, key=lambda x: abs(x["t"] - c["t"]),
                                             default=None)
        if x is None or abs(x["t"] - c["t"]) > 0.25:
            rows.append({"frame": c["frame"], "hand": c["count"], "detected": None})
            continue
        n = sum(1 for d in x["detections"] if d["cls"] == cls)
        error = (n - c["count"]) / c["count"]
        rows.append({"frame": c["frame"], "analysed_frame": x["frame"], "hand": c["count"],
                     "partial": c.get("partial", 0),
                     "detected": n, "error": round(error, 3),
                     "within_15pct": abs(error) <= COUNT_TARGET})
    return {"frames": rows,
            "all_within_15pct": bool(rows) and all(r.get("within_15pct") for r in rows)}

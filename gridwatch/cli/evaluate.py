"""`gridwatch evaluate`: the service's pipeline scored on labelled image sets, one JSON object.

The model and, with `--camera`, the zones (tiles, overlap, rules) come from a configuration
file like `analyze` takes, so a change to either is measured as a deployment would run it.
docs/accuracy.md describes the sets, the class mapping, the split and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gridwatch.evaluation.runner import EvaluationRequest, evaluate
from gridwatch.evaluation.sets import SHARED_SETS
from gridwatch.evaluation.splits import SPLITS
from gridwatch.settings import ConfigError, load_config

DEFAULT_DATA_DIR = Path(os.environ.get("GRIDWATCH_DATASETS_DIR", "../shared/datasets"))
DEFAULT_SPLIT_DIR = Path("benchmarks/labels/splits")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score the pipeline on labelled image sets (JSON)")
    p.add_argument("--config", type=Path, help="model and cameras (default: bundled)")
    p.add_argument("--camera", help="use this configured camera's zones instead of a "
                   "whole-image zone with default options")
    p.add_argument("--sets", default=",".join(SHARED_SETS),
                   help=f"comma-separated, of: {', '.join(SHARED_SETS)}")
    p.add_argument("--splits", default="dev,val", help="comma-separated, of: dev, val, all")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder holding the sets (default: $GRIDWATCH_DATASETS_DIR or "
                   "../shared/datasets)")
    p.add_argument("--split-dir", type=Path, default=DEFAULT_SPLIT_DIR,
                   help="folder of <set>.txt validation lists")
    p.add_argument("--limit", type=int, help="at most this many images per split (smoke runs)")
    p.add_argument("--no-ap", action="store_true",
                   help="skip the low-threshold ranking pass behind AP50 (about half the time)")
    p.add_argument("--no-baselines", action="store_true",
                   help="only the configured pipeline, no raw-model or main-default baselines")
    p.add_argument("--out", default="-", help="output file, or - for stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    names = [s for s in args.sets.split(",") if s]
    unknown = [s for s in names if s not in SHARED_SETS]
    if unknown:
        raise ConfigError("--sets", [f"unknown set {s!r}; known: {', '.join(SHARED_SETS)}"
                                     for s in unknown])
    splits = [s for s in args.splits.split(",") if s]
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ConfigError("--splits", [f"unknown split {s!r}; use dev, val or all" for s in bad])
    camera = None
    if args.camera:
        camera = next((c for c in config.cameras if c.id == args.camera), None)
        if camera is None:
            raise ConfigError(str(args.config or "bundled configuration"),
                              [f"--camera: no camera {args.camera!r} in cameras"])
    request = EvaluationRequest(
        sets=[SHARED_SETS[s] for s in names], data_dir=args.data_dir,
        split_dir=args.split_dir, splits=splits, model=config.model, camera=camera,
        limit=args.limit, average_precision=not args.no_ap, baselines=not args.no_baselines,
    )
    result = evaluate(request, progress=lambda m: print(m, file=sys.stderr))
    text = json.dumps(result, indent=1)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text + "\n")
    return 0

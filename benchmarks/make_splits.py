"""Write the fixed validation split of each shared labelled set to benchmarks/labels/splits/.

The rule is `gridwatch.evaluation.splits.validation_names` (SHA-1 order, stratified, whole
cameras for shore_boats); tests/evaluation checks the committed files against it.

Usage: .venv/bin/python benchmarks/make_splits.py [--data-dir ../shared/datasets]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gridwatch.evaluation.runner import read_set
from gridwatch.evaluation.sets import SHARED_SETS
from gridwatch.evaluation.splits import validation_names, write_split

REPO = Path(__file__).resolve().parent.parent
SPLITS = Path(__file__).resolve().parent / "labels" / "splits"
DATASETS = Path(os.environ.get("GRIDWATCH_DATASETS_DIR", REPO.parent / "shared" / "datasets"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATASETS)
    args = parser.parse_args()
    for spec in SHARED_SETS.values():
        images = read_set(spec, args.data_dir)
        names = validation_names(images, spec)
        write_split(SPLITS / f"{spec.name}.txt", names)
        print(f"{spec.name}: {len(names)} of {len(images)} images in validation")


if __name__ == "__main__":
    main()

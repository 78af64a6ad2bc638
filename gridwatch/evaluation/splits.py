"""The fixed development/validation split of a labelled set.

The rule is deterministic, so the committed split files can be checked against it: images
(or, for sets from a few fixed cameras, whole cameras) are ordered by the SHA-1 of their
name and taken into validation, stratum by stratum, until each stratum's validation share
reaches `fraction`. The strata are "holds a hard object" (a small watercraft, a machine) and
the rest, so validation is never left without the cases the targets are about. Tuning uses
the development part only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from gridwatch.evaluation.datasets import BoxedImage, CountedImage
from gridwatch.evaluation.sets import SetSpec

VALIDATION_FRACTION = 0.35
SPLITS = ("dev", "val", "all")


class SplitError(ValueError):
    """A split file that is missing or does not fit its set."""


def group_of(name: str, spec: SetSpec) -> str:
    """The unit that goes to one side: the camera prefix (`f1q161no_1080_...` -> `f1q161no`)
    for sets from a few fixed cameras, else the image itself."""
    return name.split("_", 1)[0] if spec.group_by_prefix else name


def is_hard(image: BoxedImage | CountedImage, spec: SetSpec) -> bool:
    if spec.stratify_category is None or not isinstance(image, BoxedImage):
        return False
    widths = image.boxes[:, 2] - image.boxes[:, 0]
    return any(c == spec.stratify_category and w < spec.stratify_max_width_px
               for c, w in zip(image.categories, widths, strict=True))


def _rank(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()


def validation_names(images: Sequence[BoxedImage | CountedImage], spec: SetSpec,
                     fraction: float = VALIDATION_FRACTION) -> list[str]:
    """The image names the rule puts in validation, sorted."""
    groups: dict[str, list[BoxedImage | CountedImage]] = {}
    for image in images:
        groups.setdefault(group_of(image.name, spec), []).append(image)
    strata: dict[bool, list[str]] = {True: [], False: []}
    for key, members in groups.items():
        strata[any(is_hard(m, spec) for m in members)].append(key)
    chosen: list[str] = []
    for keys in strata.values():
        total = sum(len(groups[k]) for k in keys)
        taken = 0
        for key in sorted(keys, key=_rank):
            if taken >= fraction * total:
                break
            chosen.extend(m.name for m in groups[key])
            taken += len(groups[key])
    return sorted(chosen)


def write_split(path: Path, names: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n}\n" for n in sorted(names)))


def read_split(path: Path) -> set[str]:
    """Validation image names, one a line (blank lines and `#` comments skipped)."""
    if not path.exists():
        raise SplitError(f"{path}: no split file (write it with benchmarks/make_splits.py)")
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def select(images: Sequence[BoxedImage | CountedImage], validation: set[str], split: str
           ) -> list[BoxedImage | CountedImage]:
    """The images of `split` ('dev', 'val' or 'all'); a validation name the set lacks is an
    error, so a split file for another version of the set is not silently used."""
    if split not in SPLITS:
        raise SplitError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    names = {i.name for i in images}
    unknown = sorted(validation - names)
    if unknown:
        raise SplitError(f"split names {len(unknown)} image(s) the set lacks, e.g. {unknown[0]}")
    if split == "all":
        return list(images)
    return [i for i in images if (i.name in validation) == (split == "val")]

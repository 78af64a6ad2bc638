"""The committed validation split is the rule's output, stable, disjoint and stratified."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.evaluation.runner import read_set
from gridwatch.evaluation.sets import SHARED_SETS, SHORE_BOATS
from gridwatch.evaluation.splits import (
    SplitError,
    group_of,
    is_hard,
    read_split,
    select,
    validation_names,
)


@pytest.mark.parametrize("name", sorted(SHARED_SETS))
def test_committed_split_is_the_rule_output(name: str, datasets_dir: Path,
                                            split_dir: Path) -> None:
    spec = SHARED_SETS[name]
    images = read_set(spec, datasets_dir)
    validation = read_split(split_dir / f"{name}.txt")
    assert sorted(validation) == validation_names(images, spec)
    dev, val = select(images, validation, "dev"), select(images, validation, "val")
    assert not {i.name for i in dev} & {i.name for i in val}
    assert len(dev) + len(val) == len(images)
    assert 0.3 <= len(val) / len(images) <= 0.42


def test_shore_cameras_stay_on_one_side_and_validation_has_far_boats(
        datasets_dir: Path, split_dir: Path) -> None:
    images = read_set(SHORE_BOATS, datasets_dir)
    validation = read_split(split_dir / "shore_boats.txt")
    val_cams = {group_of(n, SHORE_BOATS) for n in validation}
    dev_cams = {group_of(i.name, SHORE_BOATS) for i in images if i.name not in validation}
    assert not val_cams & dev_cams
    assert sum(is_hard(i, SHORE_BOATS) for i in select(images, validation, "val")) >= 20


def test_split_naming_images_the_set_lacks_is_refused(datasets_dir: Path) -> None:
    images = read_set(SHARED_SETS["crowd_heads"], datasets_dir)
    with pytest.raises(SplitError, match="lacks"):
        select(images, {"IMG_999.jpg"}, "val")

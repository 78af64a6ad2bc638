"""The shared labelled sets and how their class ids map to the pipeline's class names.

A set's labels name *categories* (watercraft, machine, ...); each category is matched by one
or more of the detector's class names, because COCO calls an excavator nothing better than a
truck and a fine-tuned model may call it `excavator`. Scoring runs per category: a predicted
class that belongs to two categories (a `truck` is a machine on a construction site and a
vehicle too) is scored in each of them separately. docs/accuracy.md lists the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LAND_VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})
MACHINES = frozenset({"excavator", "loader", "dump_truck", "truck"})

#: Watercraft narrower than this are labelled but are not the mission's target.
WATERCRAFT_MIN_WIDTH_PX = 16.0


@dataclass(frozen=True, slots=True)
class WidthSubset:
    """A category scored again on its objects at least `min_width_px` wide; narrower ones
    are ignored both ways (missing them is no miss, finding them is no false positive)."""

    name: str
    category: str
    min_width_px: float


@dataclass(frozen=True, slots=True)
class Target:
    """What issue 11 asks of a category on the validation split: recall and precision at the
    operating threshold, or (count sets) a mean absolute count error."""

    category: str
    min_recall: float | None = None
    min_precision: float | None = None
    max_count_error: float | None = None


@dataclass(frozen=True, slots=True)
class SetSpec:
    """How to read and score one labelled set."""

    name: str
    kind: Literal["boxes", "counts"]
    #: Label id -> category (None: labelled but not scored, e.g. helmets).
    class_map: dict[int, str | None] = field(default_factory=dict)
    #: Category -> the pipeline class names that count as it.
    categories: dict[str, frozenset[str]] = field(default_factory=dict)
    width_subsets: tuple[WidthSubset, ...] = ()
    #: Images sharing a group (a camera) go to the same side of the split.
    group_by_prefix: bool = False
    #: Category whose smallest objects make an image "hard"; validation gets its share of them.
    stratify_category: str | None = None
    stratify_max_width_px: float = 32.0
    targets: tuple[Target, ...] = ()

    @property
    def pipeline_classes(self) -> list[str]:
        """Every pipeline class some category of the set counts, sorted."""
        return sorted({c for names in self.categories.values() for c in names})


SHORE_BOATS = SetSpec(
    "shore_boats", "boxes",
    class_map={0: "person", 1: "land_vehicle", 2: "watercraft"},
    categories={"person": frozenset({"person"}), "land_vehicle": LAND_VEHICLES,
                "watercraft": frozenset({"boat"})},
    width_subsets=(WidthSubset("watercraft_16px", "watercraft", WATERCRAFT_MIN_WIDTH_PX),),
    group_by_prefix=True, stratify_category="watercraft",
    targets=(Target("watercraft_16px", min_recall=0.70, min_precision=0.85),),
)

CONSTRUCTION_MACHINERY = SetSpec(
    "construction_machinery", "boxes",
    class_map={0: None, 1: None, 2: None, 3: None, 4: None, 5: "person", 6: None, 7: None,
               8: "machine", 9: "vehicle"},
    categories={"person": frozenset({"person"}), "machine": MACHINES,
                "vehicle": LAND_VEHICLES},
    stratify_category="machine", stratify_max_width_px=1e9,
    targets=(Target("machine", min_recall=0.85, min_precision=0.85),),
)

CROWD_HEADS = SetSpec("crowd_heads", "counts", categories={"person": frozenset({"person"})},
                      targets=(Target("person", max_count_error=0.15),))

SHARED_SETS = {s.name: s for s in (SHORE_BOATS, CONSTRUCTION_MACHINERY, CROWD_HEADS)}

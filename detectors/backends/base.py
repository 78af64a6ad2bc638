"""What every detector backend offers, so the pipeline never depends on a runtime."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from gridwatch.detectors.detection import Detection


class ModelMismatchError(ValueError):
    """The weights file does not fit its spec (input size, head shape, class count)."""


class UnknownBackendError(LookupError):
    def __init__(self, backend: str, available: list[str]) -> None:
        self.backend = backend
        self.available = available
        super().__init__(
            f"unknown detector backend {backend!r}: available are {', '.join(available)}"
        )


@runtime_checkable
class Detector(Protocol):
    """A loaded model. Boxes are always in pixels of the image passed in.

    `conf=None` uses the threshold the detector was created with; `classes` keeps only those
    class ids (scores are computed among them, so a boat is not lost to a higher 'surfboard').
    """

    names: list[str]
    input_size: tuple[int, int]  # (width, height) of the model input

    def detect(
        self, image_bgr: np.ndarray, conf: float | None = None, classes: set[int] | None = None
    ) -> list[Detection]: ...

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        conf: float | None = None,
        classes: set[int] | None = None,
    ) -> list[list[Detection]]: ...


def class_ids(names: Sequence[str], wanted: Iterable[str]) -> set[int]:
    """Class ids for class names from a config (e.g. {"person", "boat"}), rejecting typos."""
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(wanted) - index.keys())
    if unknown:
        raise ValueError(
            f"unknown class name(s) {', '.join(unknown)}; the model knows {', '.join(names)}"
        )
    return {index[name] for name in wanted}

"""The model manifest: which detector weights exist, where they come from and how to feed them.

Backends read input size, colour order, value range, letterbox placement and class names from
here rather than hard-coding them, so adding a model is a manifest entry, not a code change.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    HttpUrl,
    PositiveInt,
    ValidationError,
    model_validator,
)

from gridwatch.models.errors import ManifestError, UnknownModelError
from gridwatch.settings.base import FrozenSettings

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("manifest.yaml")

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
OnnxFileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.onnx$")]
# The runtimes a manifest entry may choose; `gridwatch.detectors.backends.factory.BACKENDS` builds
# them.
BackendName = Literal["onnxruntime", "openvino", "ultralytics"]
DEFAULT_BACKEND: BackendName = "onnxruntime"


# Heads a backend can decode: raw YOLO grids (decoded and de-duplicated by NMS here), or the
# finished box list of a DETR-style graph (DEIMv2: labels, boxes, scores; no NMS).
OutputFormat = Literal["yolox", "yolov8", "deimv2"]
# How a frame is fitted into the input: letterboxed (aspect kept, padded; placement of the
# image on the canvas) or stretched to the whole input, as the model was trained.
Resize = Literal["top_left", "centre", "stretch"]
#: Output formats whose graphs were trained on stretched images, and only on those.
STRETCHED_FORMATS = frozenset({"deimv2"})


class ModelSpec(FrozenSettings):
    """How to run one graph: everything a backend needs to letterbox, normalise and decode."""

    name: str
    file: str
    input_size: tuple[PositiveInt, PositiveInt] = Field(description="(width, height)")
    output_format: OutputFormat
    input_colour: Literal["bgr", "rgb"]
    input_range: Literal["0-255", "0-1"]
    letterbox: Resize
    pad_value: int = Field(default=114, ge=0, le=255)
    names: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _resize_fits_head(self) -> ModelSpec:
        """A DETR graph fed a letterboxed image (or a YOLO graph a stretched one) runs, and
        returns boxes that are quietly off: refuse the combination when the entry is read."""
        stretched = self.output_format in STRETCHED_FORMATS
        if stretched != (self.letterbox == "stretch"):
            wanted = "stretch" if stretched else "top_left or centre"
            raise ValueError(
                f"letterbox: {self.output_format} graphs take letterbox {wanted}, "
                f"got {self.letterbox!r}"
            )
        return self


class ManifestEntry(ModelSpec):
    """A spec plus where its weights come from and the checksum that makes them trustworthy.

    Weights come from `url`, are made from another entry's verified weights
    (`derived_from`, see `gridwatch.models.weights.dynamic_copy`), or ship with the package in
    `gridwatch/models/weights/` (`bundled`, for weights this project trained): either way
    `sha256` pins the result."""

    file: OnnxFileName
    url: HttpUrl | None = None
    derived_from: str | None = Field(
        None, description="Entry whose graph is copied with a dynamic batch and input size"
    )
    bundled: bool = Field(
        False, description="The file ships in the package's models/weights/ folder"
    )
    sha256: Sha256
    bytes: PositiveInt
    licence: str = Field(min_length=1)
    backend: BackendName = Field(
        DEFAULT_BACKEND,
        description="The runtime used when the caller names none (measured fastest here)",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> ManifestEntry:
        origins = (self.url is not None) + (self.derived_from is not None) + self.bundled
        if origins != 1:
            raise ValueError("give one of url (downloaded), derived_from (made locally) or "
                             "bundled: true (shipped in models/weights/)")
        return self


class Manifest(FrozenSettings):
    """All known models. In YAML each entry names a shared class list under `classes`."""

    class_lists: dict[str, tuple[str, ...]]
    models: dict[str, ManifestEntry]

    @model_validator(mode="before")
    @classmethod
    def _resolve_class_lists(cls, data: Any) -> Any:
        """Expand each entry's `classes` reference so specs carry their names directly."""
        if not isinstance(data, dict):
            return data
        lists = data.get("class_lists") or {}
        models = data.get("models")
        if not isinstance(models, dict):
            return data
        resolved = {}
        for key, entry in models.items():
            if isinstance(entry, dict) and "classes" in entry:
                entry = dict(entry)
                ref = entry.pop("classes")
                if ref not in lists:
                    raise ValueError(
                        f"models.{key}.classes: unknown class list {ref!r} "
                        f"(class_lists has {', '.join(lists) or 'nothing'})"
                    )
                entry["names"] = lists[ref]
            if isinstance(entry, dict):
                entry.setdefault("name", key)
            resolved[key] = entry
        return {**data, "models": resolved}

    @model_validator(mode="after")
    def _keys_match_names(self) -> Manifest:
        for key, entry in self.models.items():
            if entry.name != key:
                raise ValueError(f"models.{key}.name is {entry.name!r}, expected {key!r}")
            origin = self.models.get(entry.derived_from or "")
            if entry.derived_from is not None and (origin is None or origin.url is None):
                raise ValueError(
                    f"models.{key}.derived_from: {entry.derived_from!r} is not a downloaded "
                    f"model of this manifest"
                )
        return self

    def get(self, name: str) -> ManifestEntry:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(name, sorted(self.models)) from None

    def by_file(self, file_name: str) -> ManifestEntry | None:
        """The entry whose weights file is called `file_name`, to check a file given by path."""
        return next((e for e in self.models.values() if e.file == file_name), None)


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest; the packaged one is parsed once per process."""
    if path is None:
        return _packaged_manifest()
    return _read_manifest(Path(path))


def get_model_spec(name: str, manifest: Manifest | None = None) -> ManifestEntry:
    return (manifest or load_manifest()).get(name)


@cache
def _packaged_manifest() -> Manifest:
    return _read_manifest(MANIFEST_PATH)


def _read_manifest(path: Path) -> Manifest:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"model manifest {path} is not valid YAML: {exc}") from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"invalid model manifest {path}: {exc}") from exc
    log.debug("loaded model manifest %s: %s", path, ", ".join(manifest.models))
    return manifest

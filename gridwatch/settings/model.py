"""The `model:` section: which detector model runs, from where, on which backend."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gridwatch.settings.base import StrictSettings


class ModelSettings(StrictSettings):
    name: str = Field(default="yolox_nano_coco_416", description="An entry of models/manifest.yaml")
    path: Path | None = Field(default=None,
                              description="A local weights file instead of the manifest's")
    dir: Path | None = Field(default=None, description="Folder searched first for weights")
    backend: str | None = Field(default=None, description="onnxruntime, openvino or "
                                "ultralytics; default: the manifest's choice for the model")
    threads: int = Field(default=1, ge=1, le=64)
    conf: float = Field(default=0.5, gt=0, lt=1,
                        description="Score to report a new object (tracked ones are kept "
                                    "down to the detection core's keep_conf)")

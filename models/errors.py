"""Errors raised while finding a model, so callers (CLI, service start-up) can tell the operator
exactly what to fix instead of showing a traceback."""

from __future__ import annotations

from pathlib import Path


class UnknownModelError(LookupError):
    """The name is neither a manifest entry nor a path to an .onnx file."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        super().__init__(
            f"unknown model {name!r}: the manifest has {', '.join(available)}; "
            "or give a path to an .onnx file"
        )


class ChecksumMismatchError(ValueError):
    """A weights file exists but is not the file the manifest pins (corrupt, truncated, other)."""

    def __init__(self, source: Path | str, expected: str, actual: str) -> None:
        self.source = source
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checksum mismatch for {source}: expected sha256 {expected}, got {actual}"
        )


class ManifestError(ValueError):
    """The manifest file cannot be read or does not validate; the message names the field."""


class WeightsMissingError(FileNotFoundError):
    """No verified copy exists anywhere and none could be downloaded."""


class ExportError(RuntimeError):
    """A graph could not be made dynamic or exported; the message says which and why."""

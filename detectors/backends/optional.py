"""Importing the runtimes that are optional extras, with an error that says how to get them.

OpenVINO and Ultralytics are not core dependencies (Ultralytics is AGPL-3.0 and pulls PyTorch),
so their backends import them only when one is asked for; a missing package must read as an
install instruction, not as a bare ModuleNotFoundError from deep inside a backend.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class BackendUnavailableError(ImportError):
    """A backend was asked for but its runtime is not installed."""

    def __init__(self, backend: str, package: str, extra: str, reason: str) -> None:
        self.backend = backend
        super().__init__(
            f"detector backend {backend!r} needs the {package!r} package, which cannot be "
            f"imported ({reason}); install it with: pip install 'gridwatch[{extra}]'"
        )


def require(module: str, *, backend: str, extra: str) -> ModuleType:
    """Import `module` for `backend`, or raise `BackendUnavailableError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(backend, module.split(".")[0], extra, str(exc)) from exc

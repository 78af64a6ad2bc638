"""Shared fixtures: where the real footage and weights live (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared(env: str, sub: str) -> Path:
    override = os.environ.get(env)
    return Path(override) if override else REPO.parent / "shared" / sub


@pytest.fixture(scope="session")
def footage_dir() -> Path:
    path = _shared("GRIDWATCH_FOOTAGE_DIR", "footage")
    if not path.is_dir():
        pytest.fail(f"shared footage not found at {path} (set GRIDWATCH_FOOTAGE_DIR)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = _shared("GRIDWATCH_SHARED_MODELS", "models")
    if not path.is_dir():
        pytest.fail(f"shared models not found at {path} (set GRIDWATCH_SHARED_MODELS)")
    return path

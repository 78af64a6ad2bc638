"""Where the shared labelled sets live (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    override = os.environ.get("GRIDWATCH_DATASETS_DIR")
    path = Path(override) if override else REPO.parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.fail(f"shared datasets not found at {path} (set GRIDWATCH_DATASETS_DIR)")
    return path


@pytest.fixture(scope="session")
def split_dir() -> Path:
    return REPO / "benchmarks" / "labels" / "splits"

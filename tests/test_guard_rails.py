"""The checks CI keeps: ruff, the type checker and the layer contracts of pyproject.toml.

They run through scripts/guard_rails.py, which lays the source out as it is installed
(the stage folders are subpackages of `gridwatch`) so that mypy and import-linter see the
same modules as the interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("check", ["ruff", "mypy", "imports"])
def test_guard_rail_passes(check: str) -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "guard_rails.py"), check],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

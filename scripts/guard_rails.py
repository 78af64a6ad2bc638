"""Static checks of the installed layout: ruff, the type checker and the layer contracts.

The stage folders (`ingest/`, `detectors/`, ...) install as subpackages of `gridwatch`
through setuptools' package-dir mapping. Import hooks make that work at run time, but mypy
and import-linter read the file system, so they are run over a copy of the source laid out
as it is installed. Paths in their reports are mapped back to the repository.

    python scripts/guard_rails.py            # all three
    python scripts/guard_rails.py mypy       # one of ruff, mypy, imports
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def package_dirs() -> dict[str, str]:
    """Installed package name -> folder in the repository (pyproject's package-dir)."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return dict(data["tool"]["setuptools"]["package-dir"])


def lay_out(target: Path) -> dict[str, str]:
    """Copy the source into `target` as installed; return copied path prefix -> repo prefix."""
    back: dict[str, str] = {}
    for package, folder in sorted(package_dirs().items()):
        dest = target.joinpath(*package.split("."))
        shutil.copytree(REPO / folder, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "*.pyc"))
        back[str(dest.relative_to(target))] = folder
    return back


def _map_back(text: str, target: Path, back: dict[str, str]) -> str:
    text = text.replace(str(target) + os.sep, "")
    for copied in sorted(back, key=len, reverse=True):
        text = text.replace(copied + "/", back[copied] + "/")
    return text


def run(check: str, target: Path, back: dict[str, str]) -> int:
    env = {**os.environ, "PYTHONPATH": str(target)}
    if check == "ruff":
        cmd = [str(BIN / "ruff"), "check", "."]
        cwd = REPO
    elif check == "mypy":
        cmd = [str(BIN / "mypy"), "--config-file", str(REPO / "pyproject.toml"),
               "--cache-dir", str(REPO / ".mypy_cache"), "-p", "gridwatch"]
        cwd = target
    else:
        cmd = [str(BIN / "lint-imports"), "--config", str(REPO / "pyproject.toml"),
               "--no-cache"]
        cwd = target
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    print(f"== {check}: exit {result.returncode}")
    print(_map_back(result.stdout + result.stderr, target, back).strip())
    return result.returncode


def main(argv: list[str]) -> int:
    checks = argv or ["ruff", "mypy", "imports"]
    with tempfile.TemporaryDirectory(prefix="gridwatch-layout-") as tmp:
        target = Path(tmp)
        back = lay_out(target)
        failed = [c for c in checks if run(c, target, back) != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The `storage:` section: where incidents and their evidence are kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gridwatch.settings.base import StrictSettings


class StorageSettings(StrictSettings):
    url: str = Field(default="sqlite:///var/gridwatch.db",
                     description="SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://...")
    evidence_dir: Path = Path("var/evidence")

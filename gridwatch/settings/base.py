"""The one base of every configuration model: unknown keys are errors, not silently ignored.

A misspelt key (`min_dwel_s`) would otherwise leave the default in force without a word, so
every model of the YAML file, the model manifest and the demo data files forbids extras.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictSettings(BaseModel):
    """A configuration model that rejects keys it does not define."""

    model_config = ConfigDict(extra="forbid")


class FrozenSettings(StrictSettings):
    """Settings handed to threads that must not see them change (streams, clips)."""

    model_config = ConfigDict(frozen=True)

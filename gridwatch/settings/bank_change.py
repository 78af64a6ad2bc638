"""Settings of the bank change detector: how often the ground is looked at and what counts as
a lasting change (see `gridwatch.detectors.bank_change`)."""

from __future__ import annotations

from pydantic import Field

from gridwatch.settings.base import StrictSettings


class BankChangeSettings(StrictSettings):
    """How often the ground is looked at and what counts as a lasting change."""

    every_s: float = Field(default=30.0, gt=0, description="Seconds between observations.")
    history: int = Field(
        default=9, ge=1, le=64,
        description="The background is the median of this many last observations.",
    )
    persist: int = Field(
        default=6, ge=1, description="Observations in a row a cell must stay changed.",
    )
    min_changed_share: float = Field(
        default=0.05, gt=0, le=1, description="Share of the zone's cells that must change.",
    )
    lighting_share: float = Field(
        default=0.6, gt=0, le=1,
        description="An observation changing more than this share of cells is lighting.",
    )
    ncc_threshold: float = Field(default=0.5, ge=-1, lt=1)
    texture_ratio: float = Field(default=2.5, gt=1)
    cell_px: int = Field(default=12, ge=4, le=64)
    work_px: int = Field(default=240, ge=48, le=1024)

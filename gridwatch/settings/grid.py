"""The `grid:` section: the grid-management hierarchy city > township > community > cell."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from gridwatch.settings.base import StrictSettings

Level = Literal["cell", "community", "township", "city"]
# Bottom-up: escalation climbs this list, reports group by one of its entries.
LEVELS: tuple[Level, ...] = ("cell", "community", "township", "city")
# The scope that sees everything, whatever the configured city's id is.
WHOLE_CITY = "city"
NODE_ID = r"^[A-Za-z0-9_.-]+$"


class _NodeSettings(StrictSettings):
    id: str = Field(min_length=1, max_length=64, pattern=NODE_ID)
    name: str | None = None


class CellSettings(_NodeSettings):
    """A grid cell: the cameras in it name it in their `grid_cell`."""


class CommunitySettings(_NodeSettings):
    cells: list[CellSettings] = Field(min_length=1)


class TownshipSettings(_NodeSettings):
    communities: list[CommunitySettings] = Field(min_length=1)


class CitySettings(_NodeSettings):
    townships: list[TownshipSettings] = Field(min_length=1)

    def walk(self) -> Iterable[tuple[_NodeSettings, Level]]:
        """Every node below the city, each with its level, parents before children."""
        for t in self.townships:
            yield t, "township"
            for c in t.communities:
                yield c, "community"
                for cell in c.cells:
                    yield cell, "cell"

    @model_validator(mode="after")
    def _unique_ids(self) -> CitySettings:
        """Node ids are scopes and escalation targets, so one id must mean one node."""
        seen: dict[str, str] = {self.id: "city"}
        for node, level in self.walk():
            if node.id == WHOLE_CITY:
                raise ValueError(f"{level} id {WHOLE_CITY!r} is reserved for the whole city")
            if node.id in seen:
                raise ValueError(
                    f"grid node id {node.id!r} is used twice ({seen[node.id]} and {level})"
                )
            seen[node.id] = level
        return self


class GridSettings(StrictSettings):
    """The `grid:` section; without `city`, every camera cell hangs directly off the city."""

    timezone: str = Field(default="UTC",
                          description="IANA zone of the city: report days start at its midnight")
    city: CitySettings | None = None

    @model_validator(mode="after")
    def _known_timezone(self) -> GridSettings:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)"
            ) from None
        return self

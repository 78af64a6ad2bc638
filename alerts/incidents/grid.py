"""The grid-management hierarchy: city > township > community/village > grid cell.

Incidents are stored with their camera's cell only; everything above the cell (who may see
an incident, where an overdue one escalates, which row of a report counts it) is derived
here from the configured tree, so a reorganised grid applies to old incidents as well.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from gridwatch.settings.grid import LEVELS, WHOLE_CITY, GridSettings, Level

__all__ = ["LEVELS", "WHOLE_CITY", "Grid", "GridNode", "Level", "UnknownGridNode"]

log = logging.getLogger(__name__)

class UnknownGridNode(ValueError):
    def __init__(self, node_id: str, known: Iterable[str]) -> None:
        listed = ", ".join(sorted(known))
        super().__init__(f"unknown grid node {node_id!r} (known: {listed})")
        self.node_id = node_id


@dataclass(frozen=True, slots=True)
class GridNode:
    id: str
    name: str
    level: Level
    parent: str | None
    children: tuple[str, ...]

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "level": self.level, "parent": self.parent}


class Grid:
    """The configured tree with the questions the API, escalation and reports ask of it."""

    def __init__(self, nodes: Mapping[str, GridNode], root: str,
                 cameras: Mapping[str, Iterable[str]] | None = None,
                 timezone: str = "UTC") -> None:
        self.timezone = ZoneInfo(timezone)
        self._nodes = dict(nodes)
        self.root = self._nodes[root]
        self._cells_under: dict[str, frozenset[str]] = {}
        self._cameras = {cell: tuple(ids) for cell, ids in (cameras or {}).items()}
        for node in self._nodes.values():
            self._cells_under[node.id] = frozenset(self._collect_cells(node.id))

    @classmethod
    def from_settings(cls, spec: GridSettings,
                  cameras: Mapping[str, str | None] | None = None) -> Grid:
        """Build the tree; `cameras` maps camera id to its cell (None: outside the grid).

        Without a configured city, the cells the cameras name hang directly off a city
        called `city`, so scoping to the whole city and escalation to it still work.
        """
        city = spec.city
        by_cell: dict[str, list[str]] = {}
        for camera, cell in (cameras or {}).items():
            if cell is not None:
                by_cell.setdefault(cell, []).append(camera)
        nodes: dict[str, GridNode] = {}
        if city is None:
            cells = sorted(by_cell)
            nodes[WHOLE_CITY] = GridNode(WHOLE_CITY, "City", "city", None, tuple(cells))
            for cell in cells:
                nodes[cell] = GridNode(cell, cell, "cell", WHOLE_CITY, ())
            return cls(nodes, WHOLE_CITY, by_cell, spec.timezone)
        nodes[city.id] = GridNode(city.id, city.name or city.id, "city", None,
                                  tuple(t.id for t in city.townships))
        for t in city.townships:
            nodes[t.id] = GridNode(t.id, t.name or t.id, "township", city.id,
                                   tuple(c.id for c in t.communities))
            for c in t.communities:
                nodes[c.id] = GridNode(c.id, c.name or c.id, "community", t.id,
                                       tuple(cell.id for cell in c.cells))
                for leaf in c.cells:
                    nodes[leaf.id] = GridNode(leaf.id, leaf.name or leaf.id, "cell", c.id, ())
        return cls(nodes, city.id, by_cell, spec.timezone)

    def _collect_cells(self, node_id: str) -> list[str]:
        node = self._nodes[node_id]
        if node.level == "cell":
            return [node.id]
        return [cell for child in node.children for cell in self._collect_cells(child)]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes or node_id == WHOLE_CITY

    @property
    def cells(self) -> frozenset[str]:
        return self._cells_under[self.root.id]

    def node(self, node_id: str) -> GridNode:
        if node_id == WHOLE_CITY:
            return self.root
        try:
            return self._nodes[node_id]
        except KeyError:
            raise UnknownGridNode(node_id, [WHOLE_CITY, *self._nodes]) from None

    def is_whole_city(self, node_id: str) -> bool:
        return node_id in (WHOLE_CITY, self.root.id)

    def cells_under(self, node_id: str) -> frozenset[str]:
        return self._cells_under[self.node(node_id).id]

    def visible_cells(self, scope: str) -> frozenset[str] | None:
        """The cells a scope sees; None means everything, cells outside the tree included."""
        if self.is_whole_city(scope):
            return None
        if scope not in self._nodes:
            log.warning("scope %r is not in the grid any more: it sees nothing", scope)
            return frozenset()
        return self._cells_under[scope]

    def contains(self, ancestor: str, node_id: str) -> bool:
        """Whether `node_id` is `ancestor` or below it (the whole city contains all)."""
        if self.is_whole_city(ancestor):
            return True
        current: str | None = self.node(node_id).id
        while current is not None:
            if current == ancestor:
                return True
            current = self._nodes[current].parent
        return False

    def nodes_at(self, level: Level) -> list[GridNode]:
        return [n for n in self._nodes.values() if n.level == level]

    def chain(self, cell: str | None) -> list[GridNode]:
        """The cell and its ancestors up to the city; an unknown cell is under the city only."""
        if cell is None or cell not in self._nodes:
            return [self.root]
        out, current = [], self._nodes[cell]
        while True:
            out.append(current)
            if current.parent is None:
                return out
            current = self._nodes[current.parent]

    def escalation_target(self, cell: str | None, level: int) -> GridNode:
        """The node `level` steps above the cell, stopping at the city."""
        chain = self.chain(cell)
        return chain[min(level, len(chain) - 1)]

    def cameras_in(self, cell: str) -> tuple[str, ...]:
        return self._cameras.get(cell, ())

    def to_api(self, scope: str = WHOLE_CITY) -> dict[str, Any]:
        """The tree under `scope` (the whole tree for the whole city), cameras in the cells."""
        return self._subtree(self.node(scope).id)

    def _subtree(self, node_id: str) -> dict[str, Any]:
        node = self._nodes[node_id]
        out = node.to_api()
        if node.level == "cell":
            out["cameras"] = list(self.cameras_in(node.id))
        else:
            out["children"] = [self._subtree(child) for child in node.children]
        return out

"""The grid hierarchy in the configuration: validation with field paths, and the lookups
scoping, escalation and reports rely on."""

from __future__ import annotations

import copy

import pytest

from gridwatch.alerts.incidents.grid import Grid, UnknownGridNode
from gridwatch.settings import ConfigError, load_config, parse_config
from gridwatch.settings.grid import GridSettings
from tests.support.grid_data import GRID_CONFIG, config_data


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_bundled_configuration_places_every_camera_in_a_cell_of_two_townships():
    config = load_config(None)
    grid = Grid.from_settings(config.grid, {c.id: c.grid_cell for c in config.cameras})

    assert [n.id for n in grid.nodes_at("township")] == ["twp-east-bank", "twp-old-town"]
    assert all(c.grid_cell in grid.cells for c in config.cameras)
    assert grid.cameras_in("cell-river-01") == ("river-boat", "road-cart")
    assert str(grid.timezone) == "Asia/Shanghai"


def test_camera_in_an_unknown_cell_is_reported_with_its_field_path():
    data = config_data()
    data["cameras"][1]["grid_cell"] = "cell-9"

    assert problems(data) == [
        "cameras[1].grid_cell: unknown grid cell 'cell-9' (known: cell-a1, cell-a2, cell-b1)"
    ]


def test_hierarchy_mistakes_are_reported_with_their_paths():
    duplicate = copy.deepcopy(GRID_CONFIG)
    duplicate["city"]["townships"][1]["communities"][0]["cells"][0]["id"] = "cell-a1"
    empty = copy.deepcopy(GRID_CONFIG)
    empty["city"]["townships"][0]["communities"][0]["cells"] = []
    reserved = copy.deepcopy(GRID_CONFIG)
    reserved["city"]["townships"][0]["id"] = "city"

    assert problems({"grid": duplicate}) == [
        "grid.city: grid node id 'cell-a1' is used twice (cell and cell)"]
    assert problems({"grid": empty})[0].startswith(
        "grid.city.townships[0].communities[0].cells: List should have at least 1 item")
    assert problems({"grid": reserved}) == [
        "grid.city: township id 'city' is reserved for the whole city"]
    assert problems({"grid": {"timezone": "Mars/Olympus"}}) == [
        "grid: timezone: 'Mars/Olympus' is not an IANA time zone (e.g. Asia/Shanghai)"]


def test_scopes_see_the_cells_below_them_and_the_city_sees_everything():
    grid = Grid.from_settings(GridSettings.model_validate(GRID_CONFIG))

    assert grid.visible_cells("twp-a") == {"cell-a1", "cell-a2"}
    assert grid.visible_cells("com-b1") == {"cell-b1"}
    assert grid.visible_cells("cell-a2") == {"cell-a2"}
    assert grid.visible_cells("city") is None and grid.visible_cells("metro") is None
    assert grid.visible_cells("twp-gone") == frozenset()
    assert grid.contains("twp-a", "cell-a2") and not grid.contains("twp-a", "cell-b1")
    assert grid.contains("city", "twp-b") and not grid.contains("cell-a1", "twp-a")
    with pytest.raises(UnknownGridNode, match="unknown grid node 'nowhere'"):
        grid.cells_under("nowhere")


def test_escalation_climbs_one_level_at_a_time_and_stops_at_the_city():
    grid = Grid.from_settings(GridSettings.model_validate(GRID_CONFIG))

    assert [grid.escalation_target("cell-a2", n).id for n in range(5)] == [
        "cell-a2", "com-a1", "twp-a", "metro", "metro"]
    assert grid.escalation_target(None, 1).id == "metro"
    assert grid.escalation_target("cell-unknown", 1).id == "metro"


def test_without_a_hierarchy_camera_cells_hang_off_the_city():
    config = parse_config({"cameras": [
        {"id": "c1", "url": "rtsp://h/1", "grid_cell": "north"},
        {"id": "c2", "url": "rtsp://h/2", "grid_cell": "south"},
        {"id": "c3", "url": "rtsp://h/3"},
    ]})
    grid = Grid.from_settings(config.grid, {c.id: c.grid_cell for c in config.cameras})

    assert grid.root.id == "city" and grid.cells == {"north", "south"}
    assert grid.escalation_target("north", 1).id == "city"
    assert grid.to_api()["children"] == [
        {"id": "north", "name": "north", "level": "cell", "parent": "city", "cameras": ["c1"]},
        {"id": "south", "name": "south", "level": "cell", "parent": "city", "cameras": ["c2"]},
    ]

"""The test grid: a city with two townships, and cameras in its cells and outside it."""

from __future__ import annotations

from typing import Any

PASSWORD = "river-bank-2025"
CAMERAS = {"cam-a1": "cell-a1", "cam-a2": "cell-a2", "cam-b1": "cell-b1", "cam-x": None}
GRID_CONFIG: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "city": {
        "id": "metro", "name": "Metro City",
        "townships": [
            {"id": "twp-a", "name": "Township A", "communities": [
                {"id": "com-a1", "name": "Community A1", "cells": [
                    {"id": "cell-a1", "name": "A1 riverside"}, {"id": "cell-a2"}]},
            ]},
            {"id": "twp-b", "name": "Township B", "communities": [
                {"id": "com-b1", "cells": [{"id": "cell-b1"}]},
            ]},
        ],
    },
}


def config_data(**extra: Any) -> dict[str, Any]:
    cameras = [{"id": cam, "url": f"rtsp://127.0.0.1:8554/{cam}", "grid_cell": cell}
               for cam, cell in CAMERAS.items()]
    return {"cameras": cameras, "grid": GRID_CONFIG, **extra}

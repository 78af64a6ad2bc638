"""Loading the YAML configuration file into `GridwatchSettings`.

Errors are reported with the field path of the YAML (`cameras[2].zones[0].polygon: needs at
least 3 points`) and never echo a stream password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gridwatch.common.redact import redact
from gridwatch.settings.root import GridwatchSettings
from gridwatch.settings.rules import RULE_TAGS

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PACKAGE_DIR / "default_config.yaml"
# Tags of discriminated unions, which pydantic puts in error locations: left out of the
# field path shown to the user (`sinks[0].url`, not `sinks[0].webhook.url`).
UNION_TAGS = frozenset({"webhook", "mqtt", "redis_streams"}) | RULE_TAGS


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problems(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors(include_url=False, include_input=False):
        loc = tuple(p for p in e["loc"] if p not in UNION_TAGS)
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{_path(loc)}: {redact(msg)}")
    return lines


def parse_config(data: Any, source: str = "<config>") -> GridwatchSettings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping of settings"])
    try:
        config = GridwatchSettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, _problems(err)) from None
    problems = _grid_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _grid_problems(config: GridwatchSettings) -> list[str]:
    """Cameras naming a cell the configured hierarchy lacks (none without a hierarchy)."""
    city = config.grid.city
    if city is None:
        return []
    cells = sorted(node.id for node, level in city.walk() if level == "cell")
    return [
        f"cameras[{i}].grid_cell: unknown grid cell {cam.grid_cell!r} "
        f"(known: {', '.join(cells)})"
        for i, cam in enumerate(config.cameras)
        if cam.grid_cell is not None and cam.grid_cell not in cells
    ]


def load_config(path: Path | str | None) -> GridwatchSettings:
    """Load and validate a YAML file; None loads the bundled default configuration."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(str(file), [f"cannot read file: {err.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise ConfigError(str(file), [f"{where}: {getattr(err, 'problem', None) or err}"]) from None
    return parse_config(data, str(file))

"""The one YAML configuration file, validated with pydantic.

Each stage owns the schema of its own settings (zones and rules in `detectors`, stream
options in `ingest`); this module only composes them and adds what is wiring: storage,
model choice, API, the grid. Errors are reported with the field path of the YAML
(`cameras[2].zones[0].polygon: needs at least 3 points`) and never echo a stream password.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridwatch.alerts.delivery.sinks.specs import DeliverySpec, SinkSpec
from gridwatch.alerts.incidents.escalation import DeadlinesSpec
from gridwatch.alerts.incidents.grid import GridSpec
from gridwatch.common.redact import redact
from gridwatch.detectors.rules import RULE_TAGS
from gridwatch.detectors.zones import ZoneSpec
from gridwatch.ingest.options import StreamOptions
from gridwatch.worker.clips import ClipSettings

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PACKAGE_DIR / "default_config.yaml"
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "file", "http", "https"})
# Tags of discriminated unions, which pydantic puts in error locations: left out of the
# field path shown to the user (`sinks[0].url`, not `sinks[0].webhook.url`).
UNION_TAGS = frozenset({"webhook", "mqtt", "redis_streams"}) | RULE_TAGS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageConfig(Strict):
    url: str = Field(default="sqlite:///var/gridwatch.db",
                     description="SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://...")
    evidence_dir: Path = Path("var/evidence")


class ModelConfig(Strict):
    name: str = Field(default="yolox_nano_coco_416", description="An entry of models/manifest.yaml")
    path: Path | None = Field(default=None,
                              description="A local weights file instead of the manifest's")
    dir: Path | None = Field(default=None, description="Folder searched first for weights")
    backend: str | None = Field(default=None, description="onnxruntime, openvino or "
                                "ultralytics; default: the manifest's choice for the model")
    threads: int = Field(default=1, ge=1, le=64)
    conf: float = Field(default=0.5, gt=0, lt=1,
                        description="Score to report a new object (tracked ones are kept "
                                    "down to the detection core's keep_conf)")


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    metrics_token: str | None = Field(
        default=None, min_length=16,
        description="When set, GET /metrics needs `Authorization: Bearer <token>`; "
                    "otherwise it is open like /api/health (it shows no credentials)")


AnalysisMode = Literal["adaptive", "watch", "active"]


class AnalysisConfig(Strict):
    """How cameras are analysed: *watch* decodes keyframes only and runs the cheap stages on
    them, *active* decodes every frame and analyses `fps` of them, *adaptive* switches to
    active when a zone shows activity or an event is open and back after `quiet_s`."""

    fps: float = Field(default=5.0, gt=0, le=60,
                       description="Analysed frames per second in active mode")
    mode: AnalysisMode = "adaptive"
    quiet_s: float = Field(default=10.0, gt=0, le=3600,
                           description="Adaptive: back to watch after this long without "
                                       "activity or an open event")


class CameraAnalysisConfig(Strict):
    """One camera's departures from the `analysis` defaults."""

    mode: AnalysisMode | None = None
    fps: float | None = Field(default=None, gt=0, le=60)
    quiet_s: float | None = Field(default=None, gt=0, le=3600)


class WorkersConfig(Strict):
    """Camera worker processes: each owns a share of the cameras (a decoder thread per
    camera, one analysis thread); the main process keeps the store, the API and delivery."""

    count: int | Literal["auto"] = Field(
        default="auto", description="auto: one per CPU core available (at most one per "
                                    "camera); 0 runs the cameras in the main process")
    heartbeat_timeout_s: float = Field(
        default=15.0, gt=0, le=600,
        description="A worker silent (or whose analysis is stuck) this long is restarted")
    restart_backoff_initial_s: float = Field(default=0.5, ge=0, le=60)
    restart_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    preview_interval_s: float = Field(
        default=1.0, gt=0, le=60,
        description="Camera wall picture at most this often while someone looks at it")
    preview_idle_interval_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="Camera wall picture this often while nobody looks at it, so that a "
                    "wall opened later shows a picture at once (its age in X-Frame-Wall)")
    preview_demand_s: float = Field(
        default=15.0, ge=2, le=3600,
        description="A request for a camera's picture keeps its previews at "
                    "preview_interval_s this long; longer than the console's refresh")

    @field_validator("count", mode="before")
    @classmethod
    def _auto_or_count(cls, v: object) -> object:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 64):
            return v
        raise ValueError("must be 'auto' or a number of worker processes from 0 to 64")

    @model_validator(mode="after")
    def _preview_rates(self) -> WorkersConfig:
        if self.preview_idle_interval_s < self.preview_interval_s:
            raise ValueError("preview_idle_interval_s: must be at least preview_interval_s")
        # A viewer asks again when a new picture came, so the demand must outlast the gap.
        if self.preview_demand_s < 2 * self.preview_interval_s:
            raise ValueError("preview_demand_s: must be at least twice preview_interval_s")
        return self


class AuthConfig(Strict):
    """Console logins and the first administrator (its password comes from the
    environment, GRIDWATCH_ADMIN_PASSWORD, or is generated and logged once)."""

    admin_username: str = Field(default="admin", min_length=1, max_length=64)
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30,
                                 description="A console session ends this long after login")
    cookie_secure: bool = Field(default=False,
                                description="Send the session cookie over HTTPS only")
    login_max_failures: int = Field(default=5, ge=1,
                                    description="Failed logins per username and address ...")
    login_window_s: float = Field(default=60.0, gt=0, description="... within this window")


class CameraConfig(Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = None
    url: str = Field(min_length=1,
                     description="rtsp://, a video file, an image folder or demo:CLIP")
    analysis_url: str | None = Field(default=None, description="Sub-stream used for analysis")
    grid_cell: str | None = None
    enabled: bool = True
    stream: StreamOptions = Field(default_factory=StreamOptions)
    zones: list[ZoneSpec] = Field(default_factory=list)
    analysis: CameraAnalysisConfig = Field(default_factory=CameraAnalysisConfig)

    @field_validator("url", "analysis_url")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = v.split("://", 1)[0].lower() if "://" in v else None
        if scheme is not None and scheme not in STREAM_SCHEMES:
            raise ValueError(f"unsupported stream scheme in {redact(v)!r} (use rtsp://, a file "
                             "path, an image folder or demo:CLIP)")
        return v

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> CameraConfig:
        seen: set[str] = set()
        for z in self.zones:
            if z.id in seen:
                raise ValueError(f"zone id {z.id!r} is used twice")
            seen.add(z.id)
        return self


class Config(Strict):
    cameras: list[CameraConfig] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    clips: ClipSettings = Field(default_factory=ClipSettings,
                                description="Evidence clips cut from each camera's packets")
    api: ApiConfig = Field(default_factory=ApiConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    incident_cooldown_s: float = Field(default=60.0, ge=0)
    grid: GridSpec = Field(default_factory=GridSpec)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    deadlines: DeadlinesSpec = Field(default_factory=DeadlinesSpec)
    sinks: list[SinkSpec] = Field(default_factory=list,
                                  description="Outside systems incidents are delivered to")
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> Config:
        seen: set[str] = set()
        for c in self.cameras:
            if c.id in seen:
                raise ValueError(f"camera id {c.id!r} is used twice")
            seen.add(c.id)
        return self

    @model_validator(mode="after")
    def _unique_sink_names(self) -> Config:
        seen: set[str] = set()
        for i, sink in enumerate(self.sinks):
            if sink.name in seen:
                raise ValueError(f"sinks[{i}].name: {sink.name!r} is used twice")
            seen.add(sink.name)
        return self


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


def parse_config(data: Any, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping of settings"])
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, _problems(err)) from None
    problems = _grid_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _grid_problems(config: Config) -> list[str]:
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


def load_config(path: Path | str | None) -> Config:
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

"""The JSON bodies the API answers with, so `/openapi.json` describes every one of them.

The routes build their answers from the stores' `to_api()` dicts; these models only check
and document them. Times stay the ISO strings those dicts hold (pydantic would write UTC as
`Z`, which is not what clients have always received), and `extra="forbid"` makes a key the
model does not declare an error instead of something the document silently omits.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gridwatch.ingest.state import CameraHealth

__all__ = ["CameraHealth"]


class ResponseBody(BaseModel):
    """The base of every answer the API sends: strict like the settings, but not a setting.

    `StrictSettings` is the base of what an operator writes and the web layer must not borrow
    configuration types for its wire format; an answer also needs `populate_by_name` so fields
    whose JSON key is a Python keyword (`from`) can be filled by their attribute name.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorBody(ResponseBody):
    detail: str = Field(description="Why the request was refused")


def errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each refusal's status code with its reason and body."""
    return {code: {"model": ErrorBody, "description": text} for code, text in described.items()}


class Health(ResponseBody):
    status: str
    version: str
    cameras: dict[str, int] = Field(description="How many cameras are in each state")


class GridNodeBody(ResponseBody):
    id: str
    name: str
    level: str
    parent: str | None


class GridTree(GridNodeBody):
    """A grid node; a cell lists its cameras, any other node its children."""

    cameras: list[str] | None = None
    children: list[GridTree] | None = None


class UserBody(ResponseBody):
    username: str
    role: str
    scope: str
    cells: list[str] | None = Field(description="The grid cells the user sees; null: all")
    can_act: bool
    via: str = Field(description="`session` or `token`")
    csrf_token: str | None


class Me(UserBody):
    scope_node: GridNodeBody | None


class TransitionBody(ResponseBody):
    from_: str = Field(alias="from")
    to: str
    actor: str
    note: str | None
    at: str


class IncidentBody(ResponseBody):
    type: str
    id: str
    kind: str
    camera: str
    zone: str
    start: float = Field(description="Media seconds on the analysed stream's clock")
    end: float | None
    severity: str
    objects: dict[str, int]
    zone_name: str | None
    grid_cell: str | None
    status: str
    start_wall: str
    end_wall: str | None
    snapshot: str | None
    clip: str | None
    evidence_score: float | None
    version: int
    transitions: int
    created_at: str
    updated_at: str
    ack_due_at: str | None
    resolve_due_at: str | None
    overdue: bool
    overdue_ack: bool
    overdue_resolve: bool
    escalation_level: int
    escalated_to: str | None


class EscalationBody(BaseModel):
    """When the escalation job raised the incident, with the details it recorded."""

    model_config = ConfigDict(extra="allow")

    at: str


class IncidentDetail(IncidentBody):
    history: list[TransitionBody]
    escalations: list[EscalationBody]


class IncidentPage(ResponseBody):
    items: list[IncidentBody]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class IncidentCounts(ResponseBody):
    by_status: dict[str, int]
    total: int


class ReportRow(ResponseBody):
    node: str
    name: str
    level: str
    parent: str | None
    opened: int
    completed: int
    completion_rate: float | None
    false_alarms: int
    false_alarm_rate: float | None
    acknowledged: int
    ack_median_s: float | None
    ack_p90_s: float | None
    resolve_median_s: float | None
    resolve_p90_s: float | None


class ReportBody(ResponseBody):
    period: str
    date: str
    start: str
    end: str
    timezone: str
    level: str
    rows: list[ReportRow]
    scope: str


class AccountBody(ResponseBody):
    username: str
    role: str
    scope: str
    disabled: bool
    created_at: str
    updated_at: str


class TokenBody(ResponseBody):
    id: int
    username: str
    name: str
    prefix: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class CreatedToken(TokenBody):
    token: str = Field(description="The secret; shown in this answer only")


class AuditEntryBody(ResponseBody):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    ip: str | None
    details: dict[str, Any]


class AuditPage(ResponseBody):
    items: list[AuditEntryBody]
    next_before_id: int | None = Field(description="Pass as `before_id` for the next page")


class OutboxSummary(ResponseBody):
    pending: int
    delivered: int
    dead: int
    dispatcher: bool = Field(description="Whether this node runs a dispatcher")


class SinkStateBody(ResponseBody):
    sink: str
    attempts: int
    delivered_at: str | None
    dead: bool
    last_error: str | None


class DeadLetterBody(ResponseBody):
    id: int
    incident_id: str
    grid_cell: str | None
    topic: str
    idempotency_key: str
    attempts: int
    created_at: str
    last_attempt_at: str | None
    last_error: str | None
    dead: bool
    sinks: list[SinkStateBody]


class ConsoleMeta(ResponseBody):
    statuses: list[str]
    transitions: dict[str, list[str]] = Field(description="The statuses allowed from each")
    severities: list[str]
    kinds: list[str]
    live_sessions: int
    max_live_sessions: int


class LiveAnswer(ResponseBody):
    """The WebRTC answer, and whether the camera's H.264 is passed through and why not."""

    sdp: str
    type: str
    session: str
    camera: str
    mode: str
    codec: str | None
    reason: str | None
    source: dict[str, Any] = Field(description="What the camera's stream is")

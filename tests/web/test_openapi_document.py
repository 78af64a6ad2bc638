"""/openapi.json describes every route's answer, and the answers are what it describes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from gridwatch.web.api import schemas
from tests.support.incidents import event

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)

BINARY_TYPES = {"image/jpeg", "video/mp4", "text/event-stream", "text/plain", "text/html",
                "text/csv", "multipart/x-mixed-replace"}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if schema.get("type") == "array":
        return _resolve(document, schema["items"])
    return schema


def test_every_json_route_declares_a_body_with_properties(env: Env) -> None:
    document = env.token_client("root", "admin", "city").get("/openapi.json").json()
    missing = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            answers = {code: r for code, r in operation["responses"].items()
                       if code.startswith("2") and r.get("content")}
            if not answers and "204" in operation["responses"]:
                continue
            for code, answer in answers.items():
                for media_type, content in answer["content"].items():
                    if media_type.split(";")[0] in BINARY_TYPES:
                        continue
                    schema = _resolve(document, content.get("schema", {}))
                    if not schema.get("properties"):
                        missing.append(f"{method.upper()} {path} {code} {media_type}")
            if not answers:
                missing.append(f"{method.upper()} {path}: no 2xx body")
    assert missing == []


def test_every_route_of_the_app_is_in_the_document(env: Env) -> None:
    document = env.token_client("root", "admin", "city").get("/openapi.json").json()
    served = {route.path for route in env.app.routes  # type: ignore[attr-defined]
              if getattr(route, "include_in_schema", False)}
    assert served - set(document["paths"]) == set()


def test_refusals_are_declared_with_the_error_body(env: Env) -> None:
    document = env.token_client("root", "admin", "city").get("/openapi.json").json()
    transition = document["paths"]["/api/incidents/{incident_id}/transitions"]["post"]
    for code in ("403", "404", "409"):
        schema = transition["responses"][code]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorBody")


def _valid(model: type[BaseModel] | Any, body: Any) -> None:
    """Validate against the declared model; `extra="forbid"` fails any undeclared key."""
    if isinstance(body, list):
        for item in body:
            model.model_validate(item)
    else:
        model.model_validate(body)


def test_answers_of_the_main_routes_match_their_models(env: Env) -> None:
    made = env.manager.handle(event("start", 1.0, camera="cam-a1", objects={"person": 1}))
    assert made is not None
    incident_id = made.id
    env.user("boss", "admin", "city")
    client = env.session_client("boss")
    answers: list[tuple[type[BaseModel], Any]] = []

    def get(path: str, model: type[BaseModel]) -> None:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        answers.append((model, answer.json()))

    get("/api/health", schemas.Health)
    get("/api/me", schemas.Me)
    get("/api/grid", schemas.GridTree)
    get("/api/cameras", schemas.CameraHealth)
    get("/api/incidents", schemas.IncidentPage)
    get("/api/incidents/counts", schemas.IncidentCounts)
    moved = client.post(f"/api/incidents/{incident_id}/transitions",
                        json={"to": "acknowledged", "note": "on it"})
    assert moved.status_code == 200, moved.text
    answers.append((schemas.IncidentBody, moved.json()))
    get(f"/api/incidents/{incident_id}", schemas.IncidentDetail)
    get("/api/reports", schemas.ReportBody)
    get("/api/users", schemas.AccountBody)
    get("/api/tokens", schemas.TokenBody)
    get("/api/audit", schemas.AuditPage)
    get("/api/outbox", schemas.OutboxSummary)
    get("/api/outbox/dead", schemas.DeadLetterBody)
    created = client.post("/api/tokens", json={"username": "boss", "name": "gis-sync"})
    assert created.status_code == 201, created.text
    answers.append((schemas.CreatedToken, created.json()))

    for model, body in answers:
        _valid(model, body)
    detail = answers[7][1]
    assert [(t["from"], t["to"], t["note"]) for t in detail["history"]] == [
        ("new", "acknowledged", "on it")]
    audited = client.get("/api/audit", params={"action": "incident.transition"}).json()
    assert audited["items"][0]["details"]["to"] == "acknowledged"


def test_a_refusal_answers_with_the_error_body(env: Env) -> None:
    client = env.token_client("viewer", "viewer", "city")
    answer = client.get("/api/incidents/nope")
    assert answer.status_code == 404
    schemas.ErrorBody.model_validate(answer.json())

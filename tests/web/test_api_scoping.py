"""Grid scoping in the HTTP API: a township's operator never sees another township's
incidents, in any route; roles decide who may act; every action is audited."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from gridwatch.accounts.tables import AuditRow, UserRow
from gridwatch.alerts.store.tables import OutboxRow
from tests.support.incidents import event, mot_frame, mot_people

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)


@pytest.fixture
def incidents(env: Env, footage_dir) -> dict[str, str]:
    """One incident per camera, with a real snapshot; returns camera -> incident id."""
    frame_number = 1
    ids = {}
    for camera in ("cam-a1", "cam-a2", "cam-b1", "cam-x"):
        frame = mot_frame(footage_dir, frame_number, camera=camera)
        made = env.manager.handle(event(
            "start", 1.0, camera=camera, objects={"person": 3}, frame=frame,
            detections=mot_people(footage_dir, frame_number), score=0.9,
        ))
        ids[camera] = made.id
    return ids


def listed(client, **params) -> set[str]:
    answer = client.get("/api/incidents", params=params)
    assert answer.status_code == 200, answer.text
    return {i["id"] for i in answer.json()["items"]}


def test_township_operator_never_sees_another_townships_incidents(env: Env, incidents):
    op_a = env.token_client("op-a", "operator", "twp-a")
    b_id = incidents["cam-b1"]
    mine = {incidents["cam-a1"], incidents["cam-a2"]}

    assert listed(op_a) == mine
    assert listed(op_a, grid_cell="cell-b1") == set()
    assert listed(op_a, grid_node="twp-b") == set()
    assert listed(op_a, camera="cam-b1") == set()
    missing = op_a.get("/api/incidents/0000000000000000000000000000dead")
    for path in (f"/api/incidents/{b_id}", f"/api/incidents/{b_id}/snapshot"):
        answer = op_a.get(path)
        assert answer.status_code == 404
        assert answer.json()["detail"] == (
            f"incident {b_id!r} does not exist"
        ), "an out-of-scope id must look exactly like a missing one"
    assert missing.status_code == 404
    act = op_a.post(f"/api/incidents/{b_id}/transitions", json={"to": "acknowledged"})
    assert act.status_code == 404
    assert env.store.get_incident(b_id).status == "new"
    counts = op_a.get("/api/incidents/counts").json()
    assert counts["total"] == 2 and counts["by_status"]["new"] == 2
    assert {c["id"] for c in op_a.get("/api/cameras").json()} == {"cam-a1", "cam-a2"}
    assert op_a.get("/api/cameras/cam-b1").status_code == 404
    tree = op_a.get("/api/grid").json()
    assert tree["id"] == "twp-a" and "twp-b" not in str(tree)
    day = env.store.get_incident(b_id).start_wall.astimezone(env.service.grid.timezone).date()
    report = op_a.get("/api/reports", params={"period": "day", "date": day,
                                               "level": "township"}).json()
    assert [(r["node"], r["opened"]) for r in report["rows"]] == [("twp-a", 2)]
    city = op_a.get("/api/reports", params={"date": day, "level": "city"}).json()
    assert [(r["node"], r["opened"]) for r in city["rows"]] == [("metro", 2)]


def test_other_township_and_whole_city_see_their_own_share(env: Env, incidents):
    op_b = env.token_client("op-b", "operator", "twp-b")
    cell_a2 = env.token_client("op-cell", "viewer", "cell-a2")
    chief = env.token_client("chief", "viewer", "city")

    assert listed(op_b) == {incidents["cam-b1"]}
    assert listed(cell_a2) == {incidents["cam-a2"]}
    # The whole city also sees the camera outside every cell.
    assert listed(chief) == set(incidents.values())
    assert chief.get("/api/incidents/counts").json()["total"] == 4


def test_snapshot_in_scope_is_served_as_jpeg(env: Env, incidents):
    op_a = env.token_client("op-a", "operator", "twp-a")
    answer = op_a.get(f"/api/incidents/{incidents['cam-a1']}/snapshot")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.content[:2] == b"\xff\xd8"


def test_viewer_cannot_act_and_operator_acts_as_themselves(env: Env, incidents):
    viewer = env.token_client("viewer-a", "viewer", "twp-a")
    op_a = env.token_client("op-a", "operator", "twp-a")
    target = incidents["cam-a1"]

    refused = viewer.post(f"/api/incidents/{target}/transitions", json={"to": "acknowledged"})
    assert refused.status_code == 403
    assert "operator" in refused.json()["detail"]

    done = op_a.post(f"/api/incidents/{target}/transitions",
                     json={"to": "acknowledged", "note": "patrol informed", "actor": "mallory"})
    assert done.status_code == 200, done.text
    stored = env.store.get_incident(target)
    assert [(t.to_status, t.actor, t.note) for t in stored.history] == [
        ("acknowledged", "op-a", "patrol informed"),
    ]
    detail = op_a.get(f"/api/incidents/{target}").json()
    assert detail["status"] == "acknowledged" and detail["history"][0]["actor"] == "op-a"
    with env.store.reading() as session:
        entry = session.scalars(select(AuditRow).where(
            AuditRow.action == "incident.transition")).one()
        message = session.scalars(select(OutboxRow).where(
            OutboxRow.topic == "incident.status")).one()
    assert (entry.actor, entry.target, entry.ip) == ("op-a", target, "testclient")
    assert entry.details["from"] == "new" and entry.details["to"] == "acknowledged"
    assert entry.details["grid_cell"] == "cell-a1"
    assert message.payload["transition"]["actor"] == "op-a"


def test_invalid_transition_is_409_with_the_lifecycles_message(env: Env, incidents):
    op_a = env.token_client("op-a", "operator", "twp-a")
    target = incidents["cam-a1"]

    answer = op_a.post(f"/api/incidents/{target}/transitions", json={"to": "closed"})

    assert answer.status_code == 409
    assert answer.json()["detail"] == (
        f"incident {target}: cannot go from new to closed "
        "(allowed from new: acknowledged, dispatched, false_alarm)"
    )
    with env.store.reading() as session:
        assert session.scalars(select(AuditRow).where(
            AuditRow.action == "incident.transition")).all() == []


def test_stale_version_is_409_and_bad_status_is_422_naming_the_field(env: Env, incidents):
    op_a = env.token_client("op-a", "operator", "twp-a")
    target = incidents["cam-a1"]

    stale = op_a.post(f"/api/incidents/{target}/transitions",
                      json={"to": "acknowledged", "expected_version": 99})
    unknown = op_a.post(f"/api/incidents/{target}/transitions", json={"to": "done"})
    missing = op_a.post(f"/api/incidents/{target}/transitions", json={"note": "x"})
    bad_limit = op_a.get("/api/incidents", params={"limit": 0})

    assert stale.status_code == 409 and "version" in stale.json()["detail"]
    assert unknown.status_code == 422
    assert unknown.json()["detail"].startswith("to_status: 'done' is not a status")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "to"]
    assert bad_limit.status_code == 422 and bad_limit.json()["detail"][0]["loc"] == [
        "query", "limit"]


def test_every_route_but_health_needs_credentials(env: Env, incidents):
    from fastapi.testclient import TestClient

    anonymous = TestClient(env.app)
    target = incidents["cam-a1"]
    paths = ["/api/me", "/api/grid", "/api/cameras", "/api/cameras/cam-a1", "/api/incidents",
             "/api/incidents/counts", f"/api/incidents/{target}",
             f"/api/incidents/{target}/snapshot", "/api/reports", "/api/users", "/api/tokens",
             "/api/audit"]
    for path in paths:
        answer = anonymous.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"].startswith("Bearer")
    bogus = anonymous.get("/api/incidents", headers={"Authorization": "Bearer gw_nope"})
    assert bogus.status_code == 401
    posted = anonymous.post(f"/api/incidents/{target}/transitions", json={"to": "acknowledged"})
    assert posted.status_code == 401
    health = anonymous.get("/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and "incidents" not in health.json()


def test_openapi_documents_both_security_schemes(env: Env):
    from fastapi.testclient import TestClient

    spec = TestClient(env.app).get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "apiKey", "in": "cookie", "name": "gridwatch_session",
        "description": schemes["session"]["description"],
    }
    assert schemes["token"]["type"] == "http" and schemes["token"]["scheme"] == "bearer"
    listing = spec["paths"]["/api/incidents"]["get"]
    assert {"session": []} in listing["security"] and {"token": []} in listing["security"]
    assert "security" not in spec["paths"]["/api/health"]["get"]


def test_overdue_filter_and_report_csv_follow_the_scope(env: Env, incidents):
    op_a = env.token_client("op-a", "operator", "twp-a")
    chief = env.token_client("chief", "viewer", "city")
    day = env.store.get_incident(incidents["cam-a1"]).start_wall.date()

    assert listed(op_a, overdue=False) == {incidents["cam-a1"], incidents["cam-a2"]}
    assert listed(op_a, overdue=True) == set()
    text = chief.get("/api/reports", params={"date": day, "level": "cell",
                                              "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert {r["node"]: int(r["opened"]) for r in rows} == {
        "cell-a1": 1, "cell-a2": 1, "cell-b1": 1}


def test_user_whose_scope_left_the_grid_sees_nothing(env: Env, incidents):
    stale = env.token_client("op-old", "operator", "twp-a")
    with env.store.writing() as session:
        session.execute(update(UserRow).where(UserRow.username == "op-old")
                        .values(scope="twp-merged-away"))
    day = env.store.get_incident(incidents["cam-a1"]).start_wall.date()

    assert listed(stale) == set()
    assert stale.get(f"/api/incidents/{incidents['cam-a1']}").status_code == 404
    assert stale.get("/api/cameras").json() == []
    assert stale.get("/api/grid").status_code == 404
    assert stale.get("/api/reports", params={"date": day, "level": "city"}).json()["rows"] == []

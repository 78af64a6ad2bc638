"""Deadlines and escalation: an incident left unacknowledged is escalated one level up the
grid, flagged overdue, announced and audited once, whatever restarts or nodes run the job."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import select, text

from gridwatch.accounts import audit
from gridwatch.accounts.tables import AuditRow
from gridwatch.alerts.incidents.escalation import Escalator
from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.store.incident_store import MIGRATIONS_DIR, make_engine, open_store
from gridwatch.alerts.store.tables import OutboxRow
from gridwatch.settings.deadlines import DeadlinesSettings
from gridwatch.settings.grid import GridSettings
from tests.support.grid_data import GRID_CONFIG
from tests.support.incidents import BASE_WALL, event

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)

DEADLINES = DeadlinesSettings.model_validate({
    "default": {"acknowledge_s": 300, "resolve_s": 3600},
    "kinds": {"illegal_fishing": {"acknowledge_s": 120}},
})


def escalator(env: Env, store=None) -> Escalator:
    return Escalator(store or env.store, env.service.grid, DEADLINES,
                     record_action=audit.record, clock=env.clock)


def start_incident(env: Env, camera: str = "cam-a1", kind: str = "crowd"):
    made = env.manager.handle(event("start", 1.0, camera=camera, kind=kind,
                                    objects={"person": 12}))
    env.clock.now = made.start_wall
    return made


def escalation_messages(env: Env) -> list[OutboxRow]:
    with env.store.reading() as session:
        return list(session.scalars(select(OutboxRow).where(
            OutboxRow.topic == "incident.escalated").order_by(OutboxRow.id)))


def escalation_audit(env: Env) -> list[AuditRow]:
    with env.store.reading() as session:
        return list(session.scalars(select(AuditRow).where(
            AuditRow.action == "incident.escalated").order_by(AuditRow.id)))


def test_unacknowledged_incident_is_escalated_to_its_community_and_shows_overdue(env: Env):
    incident = start_incident(env)
    job = escalator(env)
    chief = env.token_client("chief", "viewer", "com-a1")

    env.clock.advance(seconds=299)
    assert job.run_once() == []
    stamped = env.store.get_incident(incident.id)
    assert stamped.ack_due_at == incident.start_wall + timedelta(seconds=300)
    assert stamped.resolve_due_at == incident.start_wall + timedelta(seconds=3600)
    assert not stamped.overdue

    env.clock.advance(seconds=2)
    [done] = job.run_once()

    assert (done.step, done.level, done.escalated_to) == ("acknowledge", 1, "com-a1")
    listed = chief.get("/api/incidents", params={"overdue": "true"}).json()["items"]
    assert [i["id"] for i in listed] == [incident.id]
    shown = listed[0]
    assert shown["overdue"] is shown["overdue_ack"] is True
    assert shown["overdue_resolve"] is False
    assert (shown["escalation_level"], shown["escalated_to"]) == (1, "com-a1")
    assert shown["status"] == "new" and shown["version"] == incident.version + 1
    detail = chief.get(f"/api/incidents/{incident.id}").json()
    assert [(e["step"], e["escalated_to"], e["escalated_to_level"])
            for e in detail["escalations"]] == [("acknowledge", "com-a1", "community")]
    [message] = escalation_messages(env)
    assert message.idempotency_key == f"{incident.id}:v{incident.version + 1}"
    assert message.payload["escalation"]["escalated_to"] == "com-a1"
    assert message.payload["incident"]["overdue_ack"] is True
    [entry] = escalation_audit(env)
    assert (entry.actor, entry.target, entry.at) == (
        "system:escalation", incident.id, env.clock.now)


def test_missed_resolution_escalates_one_more_level(env: Env):
    incident = start_incident(env, camera="cam-b1")
    job = escalator(env)
    env.clock.advance(seconds=301)
    job.run_once()
    operator = env.token_client("op-b", "operator", "twp-b")
    assert operator.post(f"/api/incidents/{incident.id}/transitions",
                         json={"to": "acknowledged"}).status_code == 200

    env.clock.advance(seconds=3600)
    [done] = job.run_once()

    assert (done.step, done.level, done.escalated_to) == ("resolve", 2, "twp-b")
    stored = env.store.get_incident(incident.id)
    assert stored.overdue_ack and stored.overdue_resolve and stored.escalated_to == "twp-b"
    env.clock.advance(days=1)
    assert job.run_once() == [], "every step escalates once"
    assert len(escalation_messages(env)) == 2


def test_acknowledged_in_time_is_never_escalated_and_kind_deadlines_apply(env: Env):
    handled = start_incident(env, camera="cam-a1")
    fishing = env.manager.handle(event("start", 2.0, camera="cam-a2", kind="illegal_fishing",
                                       zone="water"))
    job = escalator(env)
    job.run_once()
    env.store.transition(handled.id, "acknowledged", "op-a")
    env.store.transition(handled.id, "resolved", "op-a")

    env.clock.advance(seconds=130)
    escalated = job.run_once()

    assert [(e.incident_id, e.step) for e in escalated] == [(fishing.id, "acknowledge")]
    assert fishing.start_wall + timedelta(seconds=120) == escalated[0].due_at
    env.clock.advance(days=2)
    later = job.run_once()
    assert [(e.incident_id, e.step) for e in later] == [(fishing.id, "resolve")]
    assert not env.store.get_incident(handled.id).overdue


def test_restarted_store_continues_the_schedule_without_escalating_twice(env: Env,
                                                                         database_url):
    incident = start_incident(env)
    escalator(env).run_once()
    env.clock.advance(seconds=400)
    assert len(escalator(env).run_once()) == 1

    restarted = open_store(database_url)
    try:
        again = escalator(env, restarted)
        assert again.run_once() == []
        env.clock.advance(seconds=3600)
        [done] = again.run_once()
        assert (done.incident_id, done.step, done.escalated_to) == (
            incident.id, "resolve", "twp-a")
    finally:
        restarted.close()
    assert [m.payload["escalation"]["step"] for m in escalation_messages(env)] == [
        "acknowledge", "resolve"]


def test_two_nodes_running_the_job_together_escalate_each_step_once(env: Env, database_url):
    incidents = [start_incident(env, camera=cam) for cam in ("cam-a1", "cam-a2", "cam-b1")]
    escalator(env).run_once()
    env.clock.advance(seconds=301)
    nodes = [open_store(database_url) for _ in range(2)]
    barrier = threading.Barrier(len(nodes))
    results: list[object] = []

    def run(store) -> None:
        barrier.wait()
        try:
            results.extend(escalator(env, store).run_once())
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for n in nodes:
            n.close()

    assert sorted(r.incident_id for r in results) == sorted(i.id for i in incidents), results
    assert len(escalation_messages(env)) == 3 and len(escalation_audit(env)) == 3


def test_reopened_incident_gets_its_resolution_deadline_back(env: Env):
    incident = start_incident(env)
    job = escalator(env)
    job.run_once()
    env.store.transition(incident.id, "acknowledged", "op-a")
    env.store.transition(incident.id, "false_alarm", "op-a")
    env.clock.advance(seconds=60)
    assert job.run_once() == []

    env.store.transition(incident.id, "acknowledged", "op-b", "it was a real net")
    env.clock.advance(seconds=3600)
    [done] = job.run_once()

    assert (done.step, done.escalated_to) == ("resolve", "com-a1")


def test_incident_outside_the_grid_escalates_to_the_city(env: Env):
    incident = start_incident(env, camera="cam-x")
    job = escalator(env)
    job.run_once()
    env.clock.advance(seconds=301)

    [done] = job.run_once()

    assert (done.incident_id, done.escalated_to) == (incident.id, "metro")


def test_incidents_already_judged_when_first_seen_get_no_deadlines(env: Env):
    """Incidents already resolved when the job first sees them get no deadlines at all."""
    old = env.manager.handle(event("start", 1.0, camera="cam-a1", wall=BASE_WALL - 86400))
    env.store.transition(old.id, "false_alarm", "op-a")
    env.clock.now = old.start_wall + timedelta(days=30)

    assert escalator(env).run_once() == []
    assert env.store.get_incident(old.id).ack_due_at is None


def test_incident_stored_before_the_deadlines_revision_is_migrated_and_escalated(database_url):
    """A database at revision 0001 with an open incident and its history keeps both through
    the upgrade, and the incident gets deadlines and escalates like a new one."""
    engine = make_engine(database_url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    start = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        values = {"at": start, "id": "0" * 32}
        connection.execute(text(
            "INSERT INTO incidents (id, kind, camera, grid_cell, zone, severity, status,"
            " start_wall, start_t, last_seen_wall, last_seen_t, objects, dedup_key,"
            " created_at, updated_at, version) VALUES (:id, 'crowd', 'cam-b1', 'cell-b1',"
            " 'square', 'medium', 'acknowledged', :at, 0, :at, 0, '{}', 'k', :at, :at, 2)"
        ), values)
        connection.execute(text(
            "INSERT INTO incident_transitions (incident_id, from_status, to_status, actor, at)"
            " VALUES (:id, 'new', 'acknowledged', 'op-b', :at)"
        ), values)
    engine.dispose()

    store = open_store(database_url)
    try:
        grid = Grid.from_settings(GridSettings.model_validate(GRID_CONFIG))
        job = Escalator(store, grid, DEADLINES, record_action=audit.record,
                        clock=lambda: start + timedelta(hours=2))
        [done] = job.run_once()
        stored = store.get_incident("0" * 32)
    finally:
        store.close()

    assert (done.step, done.level, done.escalated_to) == ("resolve", 1, "com-b1")
    assert [(t.from_status, t.to_status, t.actor) for t in stored.history] == [
        ("new", "acknowledged", "op-b")]
    assert stored.overdue_resolve and not stored.overdue_ack

"""Operator statuses: the allowed moves, their audit trail and concurrent operators."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.lifecycle import ALLOWED, InvalidTransition, Status
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import ConcurrentUpdate, IncidentNotFound
from gridwatch.alerts.store.tables import IncidentRow, OutboxRow
from tests.support.incidents import event

pytest_plugins = ("tests.support.db",)


@pytest.fixture
def incident(store, tmp_path):
    manager = IncidentManager(store, EvidenceWriter(tmp_path))
    return manager.handle(event("start", 1.0, objects={"person": 2}))


def test_transition_table_covers_every_status_and_closed_is_final():
    assert set(ALLOWED) == set(Status)
    assert all(targets <= set(Status) and s not in targets for s, targets in ALLOWED.items())
    assert ALLOWED[Status.CLOSED] == frozenset()


def test_valid_path_is_recorded_with_actor_note_and_time(store, incident):
    before = datetime.now(UTC)
    steps = [
        ("acknowledged", "op-ana", "checking camera"),
        ("dispatched", "op-ana", "patrol boat 3 sent"),
        ("resolved", "op-ben", "nets removed"),
        ("closed", "supervisor", None),
    ]
    for to, actor, note in steps:
        store.transition(incident.id, to, actor, note)

    stored = store.get_incident(incident.id)
    assert stored.status is Status.CLOSED
    assert stored.transitions == 4
    assert [(t.from_status, t.to_status, t.actor, t.note) for t in stored.history] == [
        ("new", "acknowledged", "op-ana", "checking camera"),
        ("acknowledged", "dispatched", "op-ana", "patrol boat 3 sent"),
        ("dispatched", "resolved", "op-ben", "nets removed"),
        ("resolved", "closed", "supervisor", None),
    ]
    times = [t.at for t in stored.history]
    assert times == sorted(times) and before <= times[0] <= datetime.now(UTC)
    assert all(t.tzinfo is UTC for t in times)
    assert stored.version == incident.version + 4


def test_transition_is_announced_through_the_outbox(store, incident):
    store.transition(incident.id, "acknowledged", "op-ana", "on it")

    with store.reading() as session:
        message = session.scalars(
            select(OutboxRow).where(OutboxRow.topic == "incident.status")
        ).one()
    assert message.payload["transition"]["to"] == "acknowledged"
    assert message.payload["transition"]["actor"] == "op-ana"
    assert message.payload["incident"]["status"] == "acknowledged"
    assert message.idempotency_key == f"{incident.id}:v{incident.version + 1}"


def test_invalid_transition_is_refused_naming_both_ends_and_the_allowed(store, incident):
    with pytest.raises(InvalidTransition) as caught:
        store.transition(incident.id, "resolved", "op-ana")

    message = str(caught.value)
    assert "from new to resolved" in message
    assert "acknowledged, dispatched, false_alarm" in message
    assert store.get_incident(incident.id).status is Status.NEW


def test_nothing_leaves_closed(store, incident):
    store.transition(incident.id, "false_alarm", "op", "reflections on water")
    store.transition(incident.id, "closed", "op")

    with pytest.raises(InvalidTransition, match="none, it is final"):
        store.transition(incident.id, "acknowledged", "op")


def test_false_alarm_can_be_reopened(store, incident):
    store.transition(incident.id, "false_alarm", "op-ana")
    reopened = store.transition(incident.id, "acknowledged", "op-ben", "it was a real net")

    assert reopened.status is Status.ACKNOWLEDGED


def test_bad_requests_name_the_problem(store, incident):
    with pytest.raises(IncidentNotFound, match="'missing' does not exist"):
        store.transition("missing", "acknowledged", "op")
    with pytest.raises(ValueError, match="to_status: 'done' is not a status"):
        store.transition(incident.id, "done", "op")
    with pytest.raises(ValueError, match="actor"):
        store.transition(incident.id, "acknowledged", "  ")


def test_change_based_on_an_outdated_read_is_refused(store, incident):
    seen = store.get_incident(incident.id)
    store.transition(incident.id, "acknowledged", "op-ana", expected_version=seen.version)

    with pytest.raises(ConcurrentUpdate, match="changed since it was read"):
        store.transition(incident.id, "false_alarm", "op-ben", expected_version=seen.version)
    assert store.get_incident(incident.id).status is Status.ACKNOWLEDGED


def test_write_from_a_stale_row_is_detected(store, incident):
    """Row versions catch a writer that read before another one committed."""
    with store.reading() as session:
        stale = session.get(IncidentRow, incident.id)
    store.transition(incident.id, "acknowledged", "op-ana")

    with pytest.raises(ConcurrentUpdate), store.writing() as session:
        row = session.merge(stale, load=False)
        row.status = "dispatched"
        row.version += 1
    assert store.get_incident(incident.id).status is Status.ACKNOWLEDGED


def test_two_operators_racing_only_one_wins(store, incident):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def act(actor: str) -> None:
        barrier.wait()
        try:
            store.transition(incident.id, "acknowledged", actor)
            outcomes.append("ok")
        except InvalidTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=act, args=(a,)) for a in ("op-ana", "op-ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(outcomes) == ["ok", "refused"]
    assert store.get_incident(incident.id).transitions == 1

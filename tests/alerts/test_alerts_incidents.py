"""Events to incidents: one incident per condition, deduplicated, with its best snapshot."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import open_store
from gridwatch.alerts.store.tables import OutboxRow
from tests.support.incidents import event, mot_frame, mot_people

pytest_plugins = ("tests.support.db",)


@pytest.fixture
def manager(store, tmp_path) -> IncidentManager:
    return IncidentManager(store, EvidenceWriter(tmp_path / "evidence"), cooldown_s=60)


def _topics(manager, incident_id: str) -> list[str]:
    with manager.store.reading() as session:
        return list(session.scalars(
            select(OutboxRow.topic).where(OutboxRow.incident_id == incident_id)
            .order_by(OutboxRow.id)
        ))


def test_start_update_end_is_one_incident_with_max_objects_and_best_snapshot(
    manager, footage_dir,
):
    frames = {n: mot_frame(footage_dir, n) for n in (1, 2, 3)}
    people = {n: mot_people(footage_dir, n) for n in (1, 2, 3)}
    seq = [
        event("start", 1.0, objects={"person": 4}, frame=frames[1], detections=people[1][:4],
              score=2.0),
        event("update", 11.0, objects={"person": 6, "bicycle": 1}, severity="high",
              frame=frames[2], detections=people[2], score=5.0),
        event("update", 21.0, objects={"person": 2}, frame=frames[3],
              detections=people[3][:2], score=1.5),
        event("end", 35.0),
    ]
    results = [manager.handle(e) for e in seq]

    assert results[2] is None, "an update with nothing new must not be announced"
    assert len({r.id for r in results if r is not None}) == 1
    incident = manager.store.get_incident(results[0].id)
    assert (incident.start, incident.end) == (1.0, 35.0)
    assert dict(incident.objects) == {"person": 6, "bicycle": 1}
    assert incident.severity == "high"
    assert incident.status == "new"
    assert incident.evidence_score == 5.0
    assert len(manager.store.list_incidents().items) == 1
    # The stored snapshot is the frame of the best update (frame 2), not the last one.
    stored = cv2.imread(str(manager.evidence.path_of(incident.snapshot)))
    best, last = frames[2].bgr(), frames[3].bgr()
    assert _mean_diff(stored, best) < _mean_diff(stored, last)
    assert _topics(manager, incident.id) == ["incident.opened", "incident.updated",
                                             "incident.ended"]


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_update_repeating_the_stored_state_announces_nothing(manager):
    opened = manager.handle(event("start", 1.0, objects={"person": 3}))

    assert manager.handle(event("update", 11.0, objects={"person": 2})) is None

    stored = manager.store.get_incident(opened.id)
    assert stored.version == opened.version
    assert _topics(manager, opened.id) == ["incident.opened"]


def test_retrigger_within_cooldown_reopens_the_same_incident(manager):
    first = manager.handle(event("start", 10.0, objects={"person": 1}))
    manager.handle(event("end", 30.0))

    again = manager.handle(event("start", 30.0 + 59.0, objects={"person": 3}))

    assert again.id == first.id
    assert again.end is None and again.start == 10.0
    assert dict(again.objects) == {"person": 3}
    assert _topics(manager, first.id) == ["incident.opened", "incident.ended",
                                          "incident.reopened"]


def test_retrigger_after_cooldown_opens_a_new_incident(manager):
    first = manager.handle(event("start", 10.0))
    manager.handle(event("end", 30.0))

    second = manager.handle(event("start", 30.0 + 61.0))

    assert second.id != first.id
    assert manager.store.get_incident(first.id).end == 30.0
    assert [i.id for i in manager.store.list_incidents().items] == [second.id, first.id]


def test_stream_restart_does_not_merge_by_media_time_alone(manager):
    """Media time starts again at zero after a reconnect; wall time shows the real gap."""
    first = manager.handle(event("start", 10.0))
    manager.handle(event("end", 20.0))

    after_restart = manager.handle(event("start", 25.0, wall=first.start_wall.timestamp() + 3600))

    assert after_restart.id != first.id


def test_incident_left_open_by_a_dead_process_is_closed_where_last_seen(manager):
    stale = manager.handle(event("start", 10.0))
    manager.handle(event("update", 20.0, objects={"person": 1}))

    fresh = manager.handle(event("start", 500.0))

    assert fresh.id != stale.id
    assert manager.store.get_incident(stale.id).end == 20.0
    assert manager.store.get_incident(fresh.id).end is None


def test_different_camera_zone_or_kind_never_merge(manager):
    base = {"camera": "cam-a", "zone": "river", "kind": "fishing"}
    variants = [base, {**base, "camera": "cam-b"}, {**base, "zone": "bank"},
                {**base, "kind": "sand_digging"}]

    ids = [manager.handle(event("start", 1.0, **v)).id for v in variants]

    assert len(set(ids)) == 4
    assert manager.handle(event("update", 2.0, objects={"person": 2}, **base)).id == ids[0]


def test_end_without_an_open_incident_is_ignored(manager):
    assert manager.handle(event("end", 5.0)) is None
    assert manager.store.list_incidents().items == ()


def test_operator_closed_incident_is_not_reopened(manager):
    first = manager.handle(event("start", 1.0))
    for status in ("false_alarm", "closed"):
        manager.store.transition(first.id, status, "op")

    again = manager.handle(event("update", 11.0, objects={"person": 1}))

    assert again.id != first.id
    assert manager.store.get_incident(first.id).end == 1.0


def test_subscribers_hear_incidents_only_after_commit(manager, database_url):
    other_node = open_store(database_url)
    heard = []

    def check(incident) -> None:
        heard.append((incident.id, other_node.get_incident(incident.id).version))

    unsubscribe = manager.subscribe(check)
    try:
        opened = manager.handle(event("start", 1.0))
        updated = manager.handle(event("update", 11.0, objects={"car": 1}))
        unsubscribe()
        manager.handle(event("end", 20.0))
    finally:
        other_node.close()

    assert heard == [(opened.id, 1), (updated.id, 2)]


def test_a_failing_subscriber_does_not_stop_the_others(manager):
    heard = []

    def broken(_incident) -> None:
        raise RuntimeError("sink down")

    manager.subscribe(broken)
    manager.subscribe(heard.append)

    incident = manager.handle(event("start", 1.0))

    assert heard == [incident]


def test_json_line_has_the_analyze_format(manager):
    manager.handle(event("start", 12.3456, camera="cam-a", zone="river", kind="fishing",
                         severity="high", objects={"person": 2, "boat": 1}))
    ended = manager.handle(event("end", 40.0, camera="cam-a", zone="river", kind="fishing"))

    assert ended.to_json() == {
        "type": "incident", "id": ended.id, "kind": "fishing", "camera": "cam-a",
        "zone": "river", "start": 12.346, "end": 40.0, "severity": "high",
        "objects": {"person": 2, "boat": 1},
    }


def test_grid_cell_comes_from_the_camera(store, tmp_path):
    manager = IncidentManager(store, EvidenceWriter(tmp_path), grid_cell_of={"cam-a": "N7"}.get)

    assert manager.handle(event("start", 1.0, camera="cam-a")).grid_cell == "N7"
    assert manager.handle(event("start", 1.0, camera="cam-x")).grid_cell is None


def test_bad_events_are_refused_naming_the_field(manager):
    with pytest.raises(ValueError, match="severity 'urgent' is not one of low, medium"):
        manager.handle(event("start", 1.0, severity="urgent"))
    with pytest.raises(ValueError, match="phase 'begin'"):
        manager.handle(event("begin", 1.0))
    with pytest.raises(ValueError, match=r"objects\['person'\] must be a count"):
        manager.handle(event("start", 1.0, objects={"person": -1}))
    assert manager.store.list_incidents().items == ()


def test_two_nodes_opening_the_same_incident_at_once_make_one(database_url, tmp_path):
    nodes = [open_store(database_url) for _ in range(2)]
    managers = [IncidentManager(n, EvidenceWriter(tmp_path)) for n in nodes]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run(manager: IncidentManager, objects: dict[str, int]) -> None:
        barrier.wait()
        try:
            results.append(manager.handle(event("start", 1.0, objects=objects)).id)
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    seen = ({"person": 2}, {"boat": 1})
    threads = [threading.Thread(target=run, args=(m, o)) for m, o in zip(managers, seen,
                                                                         strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert len(results) == 2 and len(set(results)) == 1, results
        listed = nodes[0].list_incidents().items
        assert len(listed) == 1 and dict(listed[0].objects) == {"person": 2, "boat": 1}
    finally:
        for n in nodes:
            n.close()

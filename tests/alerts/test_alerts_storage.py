"""The incident database on SQLite and PostgreSQL: schema, outbox atomicity, queries."""

from __future__ import annotations

import importlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, select

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import (
    MIGRATIONS_DIR,
    IncidentNotFound,
    make_engine,
    open_store,
)
from gridwatch.alerts.store.tables import Base, IncidentRow, OutboxRow, TransitionRow
from tests.support.incidents import BASE_WALL, event, mot_frame, mot_people

pytest_plugins = ("tests.support.db",)

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
# The tables of the whole database, as the migration environment sees them.
TABLE_MODULES = Config(str(MIGRATIONS_DIR / "alembic.ini")).get_main_option("table_modules")
for _module in (TABLE_MODULES or "").split():
    importlib.import_module(_module)


class Boom(RuntimeError):
    pass


@pytest.fixture
def manager(store, tmp_path) -> IncidentManager:
    cells = {"cam-a": "cell-1", "cam-b": "cell-2"}
    return IncidentManager(store, EvidenceWriter(tmp_path / "evidence"), cooldown_s=60,
                           grid_cell_of=cells.get)


def _revision_and_drift(store) -> tuple[str | None, list]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        return context.get_current_revision(), compare_metadata(context, Base.metadata)


def test_fresh_database_is_migrated_to_the_schema_of_the_models(store):
    revision, drift = _revision_and_drift(store)

    assert revision == HEAD
    assert drift == []
    tables = set(inspect(store.engine).get_table_names())
    assert {"incidents", "incident_transitions", "outbox", "alembic_version"} <= tables
    assert {"users", "sessions", "api_tokens", "audit_log"} <= set(Base.metadata.tables)


def test_opening_a_migrated_database_again_changes_nothing(database_url, manager):
    created = manager.handle(event("start", 1.0, objects={"person": 2}))
    manager.store.close()

    again = open_store(database_url)
    try:
        revision, drift = _revision_and_drift(again)
        assert (revision, drift) == (HEAD, [])
        assert again.get_incident(created.id).objects == {"person": 2}
    finally:
        again.close()


def test_nodes_starting_together_all_reach_head(database_url):
    barrier = threading.Barrier(3)
    results: list[object] = []

    def start() -> None:
        barrier.wait()
        try:
            node = open_store(database_url)
            results.append(_revision_and_drift(node))
            node.close()
        except Exception as exc:  # reported below, with the others' results
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert results == [(HEAD, [])] * 3


def test_incident_and_its_outbox_message_are_committed_together(manager):
    incident = manager.handle(event("start", 1.0, camera="cam-a", objects={"person": 3}))

    with manager.store.reading() as session:
        rows = session.scalars(select(OutboxRow)).all()
    assert [(r.incident_id, r.topic) for r in rows] == [(incident.id, "incident.opened")]
    message = rows[0]
    assert message.idempotency_key == f"{incident.id}:v1"
    assert message.payload["incident"]["objects"] == {"person": 3}
    assert message.payload["incident"]["grid_cell"] == "cell-1"
    assert message.delivered_at is None and not message.dead and message.attempts == 0


def test_failure_between_incident_and_outbox_leaves_neither(manager, footage_dir):
    frame = mot_frame(footage_dir, 1)

    def fail(*_args) -> None:
        raise Boom("outbox write failed")

    sa_event.listen(OutboxRow, "before_insert", fail)
    try:
        with pytest.raises(Boom):
            manager.handle(event("start", 1.0, frame=frame, score=2.0,
                                 detections=mot_people(footage_dir, 1)))
    finally:
        sa_event.remove(OutboxRow, "before_insert", fail)

    with manager.store.reading() as session:
        assert session.scalar(select(func.count(IncidentRow.id))) == 0
        assert session.scalar(select(func.count(OutboxRow.id))) == 0
    assert not list(manager.evidence.dir.rglob("*.jpg")), "snapshot of a lost incident kept"


def test_failure_during_transition_keeps_status_and_history(manager):
    incident = manager.handle(event("start", 1.0))

    def fail(*_args) -> None:
        raise Boom("outbox write failed")

    sa_event.listen(OutboxRow, "before_insert", fail)
    try:
        with pytest.raises(Boom):
            manager.store.transition(incident.id, "acknowledged", "op-ana")
    finally:
        sa_event.remove(OutboxRow, "before_insert", fail)

    stored = manager.store.get_incident(incident.id)
    assert (stored.status, stored.history, stored.version) == ("new", (), 1)
    with manager.store.reading() as session:
        assert session.scalar(select(func.count(TransitionRow.id))) == 0


def _seed(manager) -> dict[str, str]:
    """Five incidents, one minute apart, on two cameras in two cells and one without."""
    specs = [
        ("a1", "cam-a", "river", "fishing"),
        ("a2", "cam-a", "bank", "sand_digging"),
        ("b1", "cam-b", "river", "fishing"),
        ("c1", "cam-c", "square", "crowd"),
        ("a3", "cam-a", "river", "crowd"),
    ]
    ids = {}
    for n, (name, camera, zone, kind) in enumerate(specs):
        t = 60.0 * n
        created = manager.handle(event("start", t, camera=camera, zone=zone, kind=kind))
        ids[name] = created.id
    return ids


def test_listing_filters_and_pages_newest_first(manager):
    ids = _seed(manager)
    store = manager.store
    store.transition(ids["a2"], "acknowledged", "op")
    store.transition(ids["b1"], "false_alarm", "op")

    def names(page) -> list[str]:
        by_id = {v: k for k, v in ids.items()}
        return [by_id[i.id] for i in page.items]

    assert names(store.list_incidents()) == ["a3", "c1", "b1", "a2", "a1"]
    assert names(store.list_incidents(camera="cam-a")) == ["a3", "a2", "a1"]
    assert names(store.list_incidents(kind="fishing")) == ["b1", "a1"]
    assert names(store.list_incidents(zone="river", camera="cam-a")) == ["a3", "a1"]
    assert names(store.list_incidents(status="new")) == ["a3", "c1", "a1"]
    assert names(store.list_incidents(status=["acknowledged", "false_alarm"])) == ["b1", "a2"]
    assert names(store.list_incidents(grid_cells={"cell-2"})) == ["b1"]
    assert names(store.list_incidents(grid_cells={"cell-1", "cell-2"})) == [
        "a3", "b1", "a2", "a1"]
    assert names(store.list_incidents(grid_cells=set())) == []
    start = datetime.fromtimestamp(BASE_WALL, UTC)
    window = store.list_incidents(since=start + timedelta(seconds=60),
                                  until=start + timedelta(seconds=180))
    assert names(window) == ["b1", "a2"]

    first = store.list_incidents(limit=2)
    second = store.list_incidents(limit=2, cursor=first.next_cursor)
    last = store.list_incidents(limit=2, cursor=second.next_cursor)
    assert [names(first), names(second), names(last)] == [["a3", "c1"], ["b1", "a2"], ["a1"]]
    assert last.next_cursor is None
    assert names(store.list_incidents(limit=2, offset=2)) == ["b1", "a2"]
    listed = {i.id: i for i in store.list_incidents().items}
    assert listed[ids["a2"]].transitions == 1 and listed[ids["a1"]].transitions == 0


def test_listing_refuses_bad_filters_by_name(store):
    with pytest.raises(ValueError, match="status: 'open' is not a status"):
        store.list_incidents(status="open")
    with pytest.raises(ValueError, match=r"since: .* no timezone"):
        store.list_incidents(since=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="limit: 0"):
        store.list_incidents(limit=0)
    with pytest.raises(ValueError, match="cursor"):
        store.list_incidents(cursor="not-a-cursor")


def test_counts_by_status_cover_every_status_and_respect_scope(manager):
    ids = _seed(manager)
    manager.store.transition(ids["b1"], "dispatched", "op")

    assert manager.store.counts_by_status() == {
        "new": 4, "acknowledged": 0, "dispatched": 1, "resolved": 0, "false_alarm": 0,
        "closed": 0,
    }
    assert manager.store.counts_by_status(grid_cells={"cell-1"})["new"] == 3
    assert manager.store.counts_by_status(grid_cells={"cell-2"})["dispatched"] == 1


def test_times_come_back_aware_utc(manager):
    created = manager.handle(event("start", 5.0))
    stored = manager.store.get_incident(created.id)

    assert stored.start_wall == datetime.fromtimestamp(BASE_WALL + 5.0, UTC)
    assert stored.start_wall.tzinfo is UTC and stored.created_at.tzinfo is UTC


def test_unknown_incident_is_not_found(store):
    with pytest.raises(IncidentNotFound, match="'nope' does not exist"):
        store.get_incident("nope")


def test_unsupported_database_urls_are_refused_without_the_password():
    with pytest.raises(ValueError, match="only sqlite and postgresql") as caught:
        make_engine("mysql://root:s3cret@127.0.0.1/db")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError, match="use postgresql\\+psycopg") as caught:
        make_engine("postgresql+psycopg2://u:s3cret@127.0.0.1/db")
    assert "s3cret" not in str(caught.value)

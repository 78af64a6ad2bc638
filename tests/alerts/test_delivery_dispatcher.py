"""The outbox dispatcher against a real HTTP receiver, on SQLite and PostgreSQL.

Incidents are made the real way (events through the IncidentManager, committed with their
outbox rows); the receiver is a real HTTP server answering with scripted statuses.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from gridwatch.alerts.delivery.dispatcher import OutboxDispatcher
from gridwatch.alerts.delivery.sinks.webhook import WebhookSink
from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import IncidentStore, open_store
from gridwatch.alerts.store.outbox_queue import (
    NotDeadLetter,
    OutboxMessageNotFound,
    SinkResult,
    claim,
    counts,
    list_dead_letters,
    purge_delivered,
    record,
    retry_dead_letter,
)
from gridwatch.alerts.store.tables import OutboxDeliveryRow, OutboxRow, utcnow
from gridwatch.alerts.store.views import Incident
from gridwatch.settings.delivery import DeliverySettings
from gridwatch.settings.sinks import WebhookSinkSettings
from tests.support.incidents import event
from tests.support.receivers import WebhookReceiver, wait_until

pytest_plugins = ("tests.support.db",)

SECRET_ENV = "GRIDWATCH_TEST_WEBHOOK_SECRET"
FAST = DeliverySettings(poll_s=0.05, backoff_initial_s=0.1, backoff_max_s=0.4,
                    backoff_jitter_s=0.0, max_attempts=5)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    value = secrets.token_urlsafe(24)
    monkeypatch.setenv(SECRET_ENV, value)
    return value.encode()


@pytest.fixture
def receivers(secret: bytes) -> Iterator[list[WebhookReceiver]]:
    made: list[WebhookReceiver] = []
    yield made
    for receiver in made:
        receiver.close()


@pytest.fixture
def receiver(secret: bytes, receivers: list[WebhookReceiver]) -> WebhookReceiver:
    made = WebhookReceiver(secret)
    receivers.append(made)
    return made


@pytest.fixture
def manager(store: IncidentStore, tmp_path) -> IncidentManager:
    return IncidentManager(store, EvidenceWriter(tmp_path / "evidence"), cooldown_s=0)


@pytest.fixture
def dispatchers() -> Iterator[list[OutboxDispatcher]]:
    running: list[OutboxDispatcher] = []
    yield running
    for dispatcher in running:
        dispatcher.stop(timeout_s=10)


def webhook(receiver: WebhookReceiver, name: str = "hook", timeout_s: float = 2.0) -> WebhookSink:
    return WebhookSink(WebhookSinkSettings(type="webhook", name=name, url=receiver.url,
                                       secret_env=SECRET_ENV, timeout_s=timeout_s))


def start(dispatchers: list[OutboxDispatcher], store: IncidentStore, sinks: list,
          spec: DeliverySettings = FAST) -> OutboxDispatcher:
    dispatcher = OutboxDispatcher(store, sinks, spec)
    dispatchers.append(dispatcher)
    dispatcher.start()
    return dispatcher


def open_incident(manager: IncidentManager, zone: str = "walkway", t: float = 1.0) -> Incident:
    incident = manager.handle(event("start", t, zone=zone, objects={"person": 2}))
    assert incident is not None
    return incident


def outbox_row(store: IncidentStore, key: str) -> OutboxRow:
    with store.reading() as session:
        return session.scalars(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()


def test_committed_incident_reaches_webhook_signed_with_its_idempotency_key(
    store, manager, receiver, dispatchers,
):
    start(dispatchers, store, [webhook(receiver)])
    incident = open_incident(manager)
    key = f"{incident.id}:v1"
    wait_until(lambda: key in receiver.accepted_keys(), 5, "the webhook delivery")

    (request,) = receiver.requests
    assert request.signature_ok
    body = request.json()
    assert body["idempotency_key"] == key
    assert body["topic"] == "incident.opened"
    assert body["incident"]["id"] == incident.id
    assert body["incident"]["objects"] == {"person": 2}
    assert request.headers["x-gridwatch-topic"] == "incident.opened"
    wait_until(lambda: outbox_row(store, key).delivered_at is not None, 5, "the delivery mark")
    assert counts(store) == {"pending": 0, "delivered": 1, "dead": 0}


def test_status_change_is_delivered_with_the_transition(store, manager, receiver, dispatchers):
    start(dispatchers, store, [webhook(receiver)])
    incident = open_incident(manager)
    store.transition(incident.id, "acknowledged", "operator-7", note="on my way")
    key = f"{incident.id}:v2"
    wait_until(lambda: key in receiver.accepted_keys(), 5, "the status delivery")
    body = next(r.json() for r in receiver.accepted() if r.key == key)
    assert body["topic"] == "incident.status"
    assert body["transition"]["to"] == "acknowledged"
    assert body["transition"]["actor"] == "operator-7"
    assert body["incident"]["status"] == "acknowledged"


def test_receiver_failing_first_times_gets_message_after_growing_backoff(
    store, manager, receiver, dispatchers,
):
    receiver.script = [503, 500, 502]
    start(dispatchers, store, [webhook(receiver)])
    incident = open_incident(manager)
    key = f"{incident.id}:v1"
    wait_until(lambda: key in receiver.accepted_keys(), 10, "delivery after three failures")

    statuses = [r.status for r in receiver.requests]
    assert statuses == [503, 500, 502, 200]
    times = [r.at for r in receiver.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # initial 0.1 s doubling, no jitter: no retry may come before its backoff.
    for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= backoff - 0.01, (gaps, "retried before its backoff")
    wait_until(lambda: outbox_row(store, key).delivered_at is not None, 5, "the delivery mark")
    row = outbox_row(store, key)
    assert row.attempts == 3
    assert row.last_error is None


def test_client_error_goes_to_dead_letters_and_retry_delivers_it(
    store, manager, receiver, dispatchers,
):
    receiver.status = 400
    dispatcher = start(dispatchers, store, [webhook(receiver)])
    incident = open_incident(manager)
    key = f"{incident.id}:v1"
    wait_until(lambda: list_dead_letters(store), 5, "the dead letter")

    (letter,) = list_dead_letters(store)
    assert letter.idempotency_key == key
    assert letter.incident_id == incident.id
    assert "HTTP 400" in letter.last_error and "bad request!" in letter.last_error
    (state,) = letter.sinks
    assert state.sink == "hook" and state.dead and state.attempts == 1
    assert len(receiver.requests) == 1, "a refused message must not be retried by itself"
    assert letter.to_api()["sinks"][0]["dead"] is True
    receiver.status = 200
    dispatcher.wake()
    back = retry_dead_letter(store, letter.id)
    assert not back.dead and back.attempts == 0
    wait_until(lambda: key in receiver.accepted_keys(), 5, "delivery of the retried letter")
    wait_until(lambda: outbox_row(store, key).delivered_at is not None, 5, "the delivery mark")
    assert list_dead_letters(store) == []
    with pytest.raises(NotDeadLetter, match="delivered, not dead"):
        retry_dead_letter(store, letter.id)


def test_unknown_or_out_of_scope_dead_letter_is_not_found(store, manager, receiver, dispatchers):
    receiver.status = 410
    start(dispatchers, store, [webhook(receiver)])
    open_incident(manager)
    wait_until(lambda: list_dead_letters(store), 5, "the dead letter")
    (letter,) = list_dead_letters(store)
    assert letter.grid_cell is None
    assert list_dead_letters(store, grid_cells={"cell-a"}) == []
    with pytest.raises(OutboxMessageNotFound):
        retry_dead_letter(store, letter.id, grid_cells={"cell-a"})
    with pytest.raises(OutboxMessageNotFound):
        retry_dead_letter(store, letter.id + 999)


def test_rate_limited_answer_is_retried_after_its_retry_after(
    store, manager, receiver, dispatchers,
):
    receiver.script = [429]
    receiver.headers = {"Retry-After": "1"}
    # The hint is honoured up to backoff_max_s, so the cap must be above it here.
    start(dispatchers, store, [webhook(receiver)], FAST.model_copy(update={"backoff_max_s": 5}))
    incident = open_incident(manager)
    key = f"{incident.id}:v1"
    wait_until(lambda: key in receiver.accepted_keys(), 5, "delivery after the 429")
    first, second = receiver.requests
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95, "Retry-After: 1 was not honoured"


def test_sink_that_acknowledged_is_not_sent_again_while_another_retries(
    store, manager, secret, receivers, dispatchers,
):
    good, flaky = WebhookReceiver(secret), WebhookReceiver(secret, script=[503, 503])
    receivers += [good, flaky]
    start(dispatchers, store, [webhook(good, "good"), webhook(flaky, "flaky")])
    incident = open_incident(manager)
    key = f"{incident.id}:v1"
    wait_until(lambda: key in flaky.accepted_keys(), 5, "the flaky receiver's delivery")
    wait_until(lambda: outbox_row(store, key).delivered_at is not None, 5, "the delivery mark")
    assert [r.status for r in flaky.requests] == [503, 503, 200]
    assert [r.key for r in good.requests] == [key], "the good sink got the message again"
    with store.reading() as session:
        states = {s.sink: s for s in session.scalars(select(OutboxDeliveryRow))}
    assert states["good"].attempts == 1 and states["flaky"].attempts == 3


def test_slow_sink_does_not_hold_up_the_others_and_gets_everything_once(
    store, manager, secret, receivers, dispatchers,
):
    slow, fast = WebhookReceiver(secret, delay_s=0.3), WebhookReceiver(secret)
    receivers += [slow, fast]
    start(dispatchers, store, [webhook(slow, "slow"), webhook(fast, "fast")],
          FAST.model_copy(update={"batch_time_s": 0.2}))
    committed = time.time()
    keys = {f"{open_incident(manager, zone=f'z{i}').id}:v1" for i in range(8)}
    wait_until(lambda: keys <= fast.accepted_keys(), 5, "the fast receiver's deliveries")
    fast_done = time.time() - committed
    wait_until(lambda: keys <= slow.accepted_keys(), 10, "the slow receiver's deliveries")
    slow_done = time.time() - committed
    assert fast_done < 1.5 < slow_done  # 8 x 0.3 s at the slow one
    assert sorted(r.key for r in slow.requests) == sorted(keys)
    assert sorted(r.key for r in fast.requests) == sorted(keys)
    wait_until(lambda: counts(store)["delivered"] == 8, 5, "every message marked delivered")
    assert all(outbox_row(store, key).attempts == 0 for key in keys)


def test_message_is_dead_after_max_attempts(store, manager, receiver, dispatchers):
    receiver.status = 500
    start(dispatchers, store, [webhook(receiver)],
          FAST.model_copy(update={"max_attempts": 3}))
    incident = open_incident(manager)
    wait_until(lambda: list_dead_letters(store), 10, "the dead letter")
    (letter,) = list_dead_letters(store)
    assert letter.attempts == 3
    assert len(receiver.requests) == 3
    assert "HTTP 500" in letter.last_error
    assert letter.sinks[0].dead
    assert letter.incident_id == incident.id


def test_unreachable_receiver_is_retried_not_dropped(store, manager, receiver, dispatchers):
    url = receiver.url
    receiver.close()  # nothing listens on that port any more
    sink = WebhookSink(WebhookSinkSettings(type="webhook", name="gone", url=url,
                                       secret_env=SECRET_ENV, timeout_s=1))
    dispatcher = OutboxDispatcher(store, [sink], FAST)
    dispatchers.append(dispatcher)
    incident = open_incident(manager)
    claimed, recorded = dispatcher.run_once()
    assert (claimed, recorded.retrying) == (1, 1)
    row = outbox_row(store, f"{incident.id}:v1")
    assert row.delivered_at is None and not row.dead and row.attempts == 1
    assert "ConnectError" in row.last_error


def test_commit_wakes_dispatcher_without_waiting_for_the_poll(
    store, manager, receiver, dispatchers,
):
    start(dispatchers, store, [webhook(receiver)], FAST.model_copy(update={"poll_s": 30}))
    time.sleep(0.3)  # the dispatcher is now idle in a 30 s wait
    committed = time.time()
    incident = open_incident(manager)
    key = f"{incident.id}:v1"
    wait_until(lambda: key in receiver.accepted_keys(), 2, "a delivery woken by the commit")
    assert receiver.accepted()[0].at - committed < 1.0


def test_two_dispatchers_share_the_queue_without_sending_twice(
    database_url, manager, receiver, dispatchers,
):
    stores = [open_store(database_url) for _ in range(2)]
    try:
        for node, node_store in zip(("node-a", "node-b"), stores, strict=True):
            start(dispatchers, node_store, [webhook(receiver)],
                  FAST.model_copy(update={"node": node, "batch_size": 5}))
        keys = {f"{open_incident(manager, zone=f'z{i}').id}:v1" for i in range(40)}
        wait_until(lambda: keys <= receiver.accepted_keys(), 15, "40 deliveries")
        for dispatcher in dispatchers:
            dispatcher.stop(timeout_s=10)
        sent = [r.key for r in receiver.requests]
        assert len(sent) == len(set(sent)) == 40
    finally:
        dispatchers.clear()
        for node_store in stores:
            node_store.close()


def test_messages_of_a_crashed_node_are_sent_once_its_lease_expires(
    store, manager, receiver, dispatchers,
):
    incident = open_incident(manager)
    crashed = claim(store, node="crashed", limit=10, lease_s=0.8)
    claimed_at = time.time()
    assert len(crashed.items) == 1
    start(dispatchers, store, [webhook(receiver)], FAST.model_copy(update={"node": "other"}))
    key = f"{incident.id}:v1"
    wait_until(lambda: key in receiver.accepted_keys(), 5, "delivery after the lease")
    assert receiver.requests[0].at - claimed_at >= 0.75, "sent while another node's lease held"


def test_restarted_node_frees_its_own_leases_at_once(store, manager, receiver, dispatchers):
    incident = open_incident(manager)
    assert len(claim(store, node="node-1", limit=10, lease_s=600).items) == 1
    start(dispatchers, store, [webhook(receiver)], FAST.model_copy(update={"node": "node-1"}))
    wait_until(lambda: f"{incident.id}:v1" in receiver.accepted_keys(), 5,
               "delivery of what the previous run of node-1 had claimed")


def test_results_recorded_after_losing_the_lease_keep_per_sink_facts_only(store, manager):
    incident = open_incident(manager)
    first = claim(store, node="slow", limit=10, lease_s=0.05)
    time.sleep(0.1)
    second = claim(store, node="fast", limit=10, lease_s=60)
    (item,) = second.items
    outbox_id = item.message.outbox_id
    delivered = {outbox_id: {"hook": SinkResult("delivered")}}

    late = record(store, first, delivered, sinks=["hook"], max_attempts=5,
                  delay_s=lambda n, _hint: 1.0)
    assert late.lease_lost == 1
    row = outbox_row(store, f"{incident.id}:v1")
    assert row.claimed_by == "fast" and row.delivered_at is None

    on_time = record(store, second, delivered, sinks=["hook"], max_attempts=5,
                     delay_s=lambda n, _hint: 1.0)
    assert on_time.delivered == 1
    assert outbox_row(store, f"{incident.id}:v1").delivered_at is not None


def test_purge_deletes_old_delivered_messages_and_keeps_dead_ones(
    store, manager, receiver, dispatchers,
):
    receiver.script = [200, 400]
    dispatcher = OutboxDispatcher(store, [webhook(receiver)], FAST)
    dispatchers.append(dispatcher)
    open_incident(manager, zone="a")
    dispatcher.run_once()
    open_incident(manager, zone="b")
    dispatcher.run_once()
    assert counts(store) == {"pending": 0, "delivered": 1, "dead": 1}
    assert purge_delivered(store, older_than=utcnow() - timedelta(hours=1)) == 0
    assert purge_delivered(store, older_than=utcnow()) == 1
    assert counts(store) == {"pending": 0, "delivered": 0, "dead": 1}

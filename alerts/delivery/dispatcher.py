"""The outbox dispatcher: takes committed messages out of the outbox and into every sink.

Delivery is at-least-once: a message leaves the queue only after every sink acknowledged it
and that fact is committed, so a crash anywhere sends it again after restart (receivers
drop the repeat by its idempotency key). The dispatcher is a thread per node. It wakes at
once when this node commits an incident change (the store's subscriber hook) and otherwise
polls, which is how it finds what a previous run or another node left pending.

The sinks of a batch are served in parallel, each in its own thread, and each sink's
acknowledgements are kept, so a retry goes only to the sinks that failed. A batch lasts at
most `batch_time_s` (plus one send in flight): what a slow sink did not reach by then is
left due, without counting an attempt, and the next batch continues it while the other
sinks go on with new messages. After one retryable failure a sink is not tried again for
the rest of the batch, so a receiver that is down costs one timeout per batch, not one per
message.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from prometheus_client import Counter, Histogram

from gridwatch.alerts.delivery.sinks.base import PermanentError, RetryableError, Sink
from gridwatch.alerts.store.incident_store import IncidentStore
from gridwatch.alerts.store.outbox_queue import (
    Batch,
    Claimed,
    Recorded,
    SinkResult,
    claim,
    next_due,
    purge_delivered,
    record,
    release_leases,
)
from gridwatch.alerts.store.tables import utcnow
from gridwatch.common.backoff import ExponentialBackoff
from gridwatch.settings.delivery import DeliverySettings

log = logging.getLogger(__name__)

SENDS = Counter("gridwatch_outbox_sends_total",
                "Outbox messages handed to a sink, by outcome", ["sink", "outcome"])
LATENCY = Histogram(
    "gridwatch_outbox_delivery_seconds",
    "Time from the commit of an incident change to a sink's acknowledgement", ["sink"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
PURGE_EVERY_S = 3600.0
MAX_ERROR_PAUSE_S = 30.0


class OutboxDispatcher:
    """Delivers the outbox of `store` to `sinks` in a background thread.

    `start()` frees the leases this node held in a previous run and starts the thread;
    `stop()` finishes the batch in flight and closes the sinks. `run_once()` does one round
    (claim, send, record) in the caller's thread, for tests and tools.
    """

    def __init__(self, store: IncidentStore, sinks: Sequence[Sink],
                 spec: DeliverySettings | None = None) -> None:
        if not sinks:
            raise ValueError("sinks: the dispatcher needs at least one sink")
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sinks: names must be unique, got {names}")
        self.store = store
        self.sinks = tuple(sinks)
        self.spec = spec or DeliverySettings()
        self.node = self.spec.node or socket.gethostname()
        # Between a message's rounds, growing with its stored attempt count; a receiver's
        # Retry-After is honoured when longer, up to the cap.
        self.backoff = ExponentialBackoff(self.spec.backoff_initial_s, self.spec.backoff_max_s,
                                          self.spec.backoff_jitter_s)
        self._pool = ThreadPoolExecutor(max_workers=len(self.sinks),
                                        thread_name_prefix="outbox-sink")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._last_purge: float | None = None

    def start(self) -> None:
        released = release_leases(self.store, self.node)
        if released:
            log.info("outbox: %d message(s) claimed by a previous run of node %s are due again",
                     released, self.node)
        self._unsubscribe = self.store.subscribe(lambda _incident: self._wake.set())
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)
        self._thread.start()
        log.info("outbox dispatcher started on node %s: %s", self.node,
                 ", ".join(repr(s) for s in self.sinks))

    def wake(self) -> None:
        """Look for due messages now (e.g. after a dead letter was put back)."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("outbox dispatcher still busy after %.0f s; its leases will "
                            "expire", timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing %r failed", sink)

    def run_once(self) -> tuple[int, Recorded]:
        """Claim one batch, send it, record the results; returns (claimed, outcomes)."""
        batch = claim(self.store, node=self.node, limit=self.spec.batch_size,
                      lease_s=self.spec.lease_s)
        if not batch.items:
            return 0, Recorded()
        results = self._deliver(batch)
        recorded = record(
            self.store, batch, results, sinks=[s.name for s in self.sinks],
            max_attempts=self.spec.max_attempts, delay_s=self.backoff.delay,
        )
        log.debug("outbox batch of %d: %s", len(batch.items), recorded)
        return len(batch.items), recorded

    def _run(self) -> None:
        failures = 0
        # From twice the poll interval, so a database that stays down is not hammered.
        error_pause = ExponentialBackoff(2 * self.spec.poll_s, MAX_ERROR_PAUSE_S, jitter_s=0.0)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                claimed, _ = self.run_once()
                self._purge_if_due()
                idle_s = 0.0 if claimed else self._idle_wait()
            except Exception:
                # The database is down or unreachable: back off so the log is not flooded;
                # nothing is lost, the messages wait in the outbox.
                failures += 1
                pause = error_pause.delay(failures)
                log.exception("outbox dispatch failed; trying again in %.1f s", pause)
                self._stopping.wait(pause)
                continue
            failures = 0
            if idle_s:
                self._wake.wait(idle_s)

    def _idle_wait(self) -> float:
        """Until the next retry is due, at most `poll_s`.

        A message already due but not claimable is leased by another node: wait a full poll
        rather than spin on it.
        """
        due = next_due(self.store)
        if due is None:
            return self.spec.poll_s
        seconds = (due - utcnow()).total_seconds()
        return self.spec.poll_s if seconds <= 0 else min(seconds, self.spec.poll_s)

    def _purge_if_due(self) -> None:
        days = self.spec.keep_delivered_days
        if days is None or (
            self._last_purge is not None and time.monotonic() - self._last_purge < PURGE_EVERY_S
        ):
            return
        self._last_purge = time.monotonic()
        purged = purge_delivered(self.store, utcnow() - timedelta(days=days))
        if purged:
            log.info("outbox: deleted %d message(s) delivered over %g day(s) ago", purged, days)

    def _deliver(self, batch: Batch) -> dict[int, dict[str, SinkResult]]:
        # What a sink has not reached by then stays due for the next batch, so a slow sink
        # costs the others at most this much (plus one send in flight), and a batch always
        # ends well inside its lease.
        deadline = time.monotonic() + self.spec.batch_time_s
        futures = {
            sink.name: self._pool.submit(
                self._send_all, sink, [i for i in batch.items if sink.name not in i.settled],
                deadline,
            )
            for sink in self.sinks
        }
        results: dict[int, dict[str, SinkResult]] = {i.message.outbox_id: {} for i in batch.items}
        for name, future in futures.items():
            for outbox_id, result in future.result().items():
                results[outbox_id][name] = result
        return results

    def _send_all(self, sink: Sink, items: list[Claimed], deadline: float,
                  ) -> dict[int, SinkResult]:
        results: dict[int, SinkResult] = {}
        failure: str | None = None
        for item in items:
            message = item.message
            if failure is not None:
                results[message.outbox_id] = SinkResult(
                    "retry", f"not tried, the sink failed earlier in the batch: {failure}",
                    tried=False,
                )
                continue
            if time.monotonic() > deadline:
                break
            try:
                sink.send(message)
            except RetryableError as exc:
                failure = str(exc)
                results[message.outbox_id] = SinkResult("retry", failure, exc.retry_after_s)
                SENDS.labels(sink.name, "retry").inc()
                log.warning("%r: %s not delivered, will retry: %s", sink, message.key, exc)
            except PermanentError as exc:
                results[message.outbox_id] = SinkResult("refused", str(exc))
                SENDS.labels(sink.name, "refused").inc()
                log.error("%r refused %s: %s", sink, message.key, exc)
            except Exception as exc:
                # A bug in a sink must not stop delivery to the others: count it as a
                # retryable failure and keep the traceback in the log.
                failure = f"{type(exc).__name__}: {exc}"
                results[message.outbox_id] = SinkResult("retry", failure)
                SENDS.labels(sink.name, "error").inc()
                log.exception("%r failed on %s", sink, message.key)
            else:
                results[message.outbox_id] = SinkResult("delivered")
                SENDS.labels(sink.name, "delivered").inc()
                LATENCY.labels(sink.name).observe(
                    max(0.0, (utcnow() - message.created_at).total_seconds())
                )
        return results

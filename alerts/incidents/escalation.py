"""Deadlines of incidents and their escalation up the grid when they are missed.

The schedule lives in the database, not in memory: each incident gets its due times stamped
once (`ack_due_at`, `resolve_due_at`) and a `next_check_at`, so a restarted node, or another
node sharing PostgreSQL, picks up exactly where the last run stopped. Every escalation is a
conditional UPDATE on the flag it sets: whichever node runs the step first wins, the other
updates no row, and the step's audit entry and outbox message are written only by the winner
in the same transaction. The audit log sits above this layer, with authentication: the
composition root hands its writer in as `record_action`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.incidents.lifecycle import Status
from gridwatch.alerts.store.deadline_store import DeadlineStore, RecordAction, Step
from gridwatch.alerts.store.incident_store import IncidentStore
from gridwatch.alerts.store.tables import utcnow
from gridwatch.settings.deadlines import DeadlinesSettings

log = logging.getLogger(__name__)

STEPS: tuple[Step, ...] = ("acknowledge", "resolve")
# Statuses in which each deadline still runs: acknowledging is leaving `new`, resolving is
# reaching resolved or false_alarm (closed only follows those).
WAITING: dict[Step, frozenset[str]] = {
    "acknowledge": frozenset({Status.NEW.value}),
    "resolve": frozenset({Status.NEW.value, Status.ACKNOWLEDGED.value,
                          Status.DISPATCHED.value}),
}
SYSTEM_ACTOR = "system:escalation"
BATCH = 200


@dataclass(frozen=True, slots=True)
class Escalation:
    incident_id: str
    step: Step
    level: int
    escalated_to: str
    due_at: datetime


class Escalator:
    """One pass stamps new incidents' deadlines and escalates those whose deadline passed.

    Each escalation is written to the audit log through `record_action`, in its transaction.
    `clock` returns the current aware UTC time; tests pass their own to move time.
    """

    def __init__(self, store: IncidentStore, grid: Grid, deadlines: DeadlinesSettings, *,
                 record_action: RecordAction, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.deadline_store = DeadlineStore(store, record_action)
        self.grid = grid
        self.deadlines = deadlines
        self.clock = clock

    def run_once(self) -> list[Escalation]:
        """Stamp, then escalate everything due; returns the escalations this call made."""
        now = self.clock()
        self._stamp()
        done: list[Escalation] = []
        while True:
            due = self.deadline_store.due_for_check(now, BATCH)
            for incident_id in due:
                done.extend(self._check(incident_id, now))
            if len(due) < BATCH:
                return done

    def _stamp(self) -> None:
        """Give incidents that have none their due times, from their start and their kind."""
        while True:
            rows = self.deadline_store.unstamped(WAITING["resolve"], BATCH)
            for incident_id, kind, start in rows:
                deadline = self.deadlines.for_kind(kind)
                self.deadline_store.stamp(incident_id,
                                          start + timedelta(seconds=deadline.acknowledge_s),
                                          start + timedelta(seconds=deadline.resolve_s))
            if len(rows) < BATCH:
                return

    def _check(self, incident_id: str, now: datetime) -> list[Escalation]:
        """Escalate each missed step of one incident, then set when to look again."""
        done: list[Escalation] = []
        for step in STEPS:
            escalation = self._escalate(incident_id, step, now)
            if escalation is not None:
                done.append(escalation)
        self.deadline_store.reschedule(incident_id, WAITING)
        return done

    def _escalate(self, incident_id: str, step: Step, now: datetime) -> Escalation | None:
        won = self.deadline_store.escalate(incident_id, step, now, waiting=WAITING[step],
                                           target_of=self.grid.escalation_target,
                                           actor=SYSTEM_ACTOR)
        if won is None:
            return None
        log.warning("incident %s missed its %s deadline (%s): escalated to %s %s",
                    incident_id, step, won.due_at.isoformat(), won.target.level, won.target.id)
        self.store.announce(won.incident)
        return Escalation(incident_id, step, won.level, won.target.id, won.due_at)


class EscalationJob:
    """Runs `Escalator.run_once` every `interval_s` on a daemon thread until stopped."""

    def __init__(self, escalator: Escalator, interval_s: float) -> None:
        self.escalator = escalator
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="escalation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.escalator.run_once()
            except Exception:
                log.exception("escalation pass failed; retrying in %.0f s", self.interval_s)
            self._stopping.wait(self.interval_s)

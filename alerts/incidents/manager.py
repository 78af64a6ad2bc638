"""From rule events to incidents: one incident per condition, never one per frame.

Events arrive as start/update/end per (camera, zone, kind). The manager folds them into one
stored incident per key, reopens it when the condition comes back within the cooldown (so a
person stepping out of view for a moment does not page anyone twice), keeps the best
snapshot, records the clip once a recorder has written it, and commits before anyone hears
about it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random

from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.lifecycle import Status
from gridwatch.alerts.store.incident_store import ConcurrentUpdate, IncidentStore, incident_view
from gridwatch.alerts.store.incident_writes import (
    WRITE_CONFLICTS,
    FindRow,
    locked_incident,
    locked_latest,
    locked_started_by,
    save,
)
from gridwatch.alerts.store.outbox import Topic, enqueue
from gridwatch.alerts.store.tables import IncidentRow, new_incident_id, utcnow
from gridwatch.alerts.store.views import Incident
from gridwatch.common.severity import SEVERITIES, SEVERITY_RANK
from gridwatch.detectors.events import Event, dedup_key

log = logging.getLogger(__name__)

PHASES = ("start", "update", "end")
# A worker's clip names the time of the event that started it, which is the incident's start
# as stored; the slack only absorbs rounding by the database.
CLIP_MATCH_SLACK = timedelta(seconds=1)


@dataclass(slots=True)
class _Change:
    row: IncidentRow
    topic: Topic


class IncidentManager:
    """Turns events into committed incidents and announces them after commit.

    `grid_cell_of(camera)` places a camera in the grid (None: outside every cell); the cell
    is fixed when the incident opens.
    """

    def __init__(
        self,
        store: IncidentStore,
        evidence: EvidenceWriter,
        cooldown_s: float = 60.0,
        grid_cell_of: Callable[[str], str | None] | None = None,
    ) -> None:
        if not cooldown_s >= 0:
            raise ValueError(f"cooldown_s: {cooldown_s} must be 0 or more")
        self.store = store
        self.evidence = evidence
        self.cooldown_s = cooldown_s
        self._grid_cell_of = grid_cell_of or (lambda _camera: None)

    def subscribe(self, callback: Callable[[Incident], None]) -> Callable[[], None]:
        """Hear every committed incident change (also operator transitions on this store)."""
        return self.store.subscribe(callback)

    def handle(self, event: Event) -> Incident | None:
        """Fold one event into its incident, commit, announce; returns the incident.

        Returns None when nothing anyone can see changed: an update repeating what is stored,
        or an end with no open incident (already ended, or started before a restart with a
        fresh database).
        """
        _check(event)
        # Two nodes opening the same key at once: the loser retries and updates the winner's.
        retrying = Retrying(
            retry=retry_if_exception_type(WRITE_CONFLICTS),
            stop=stop_after_attempt(3), wait=wait_random(0, 0.05), reraise=True,
        )
        for attempt in retrying:
            with attempt:
                changes = self._apply(event)
        for incident in changes:
            self.store.announce(incident)
        return changes[-1] if changes else None

    def attach_clip(self, incident_id: str, relative: str) -> Incident | None:
        """Record `relative` (a clip already in the evidence dir) as the incident's clip,
        stored as `YYYY/MM/DD/<id>.mp4` next to its snapshot.

        Returns the changed incident, announced like any change (and the incident unchanged
        when it already has this clip); None when the incident is gone or already has another
        clip (the new file is then removed, as nothing refers to it).
        """
        return self._attach(relative, locked_incident(incident_id), f"incident {incident_id}")

    def attach_clip_for(self, key: str, wall: float, relative: str) -> Incident | None:
        """`attach_clip` for a recorder that knows the incident only by its dedup key (a
        camera worker): the incident of `key` that had started by Unix time `wall`."""
        started_by = datetime.fromtimestamp(wall, UTC) + CLIP_MATCH_SLACK
        return self._attach(relative, locked_started_by(key, started_by),
                            f"the incident of {key} at {wall:.3f}")

    def _attach(self, relative: str, find: FindRow,
                what: str) -> Incident | None:
        path = self.evidence.path_of(relative)
        if not path.is_file():
            raise ValueError(f"clip {relative!r} of {what} is not in the evidence directory")
        retrying = Retrying(
            retry=retry_if_exception_type(ConcurrentUpdate),
            stop=stop_after_attempt(3), wait=wait_random(0, 0.05), reraise=True,
        )
        for attempt in retrying:
            with attempt:
                found = self._store_clip(find, relative)
        if found is not None:
            view, changed = found
            if changed:
                log.info("incident %s: clip %s", view.id, view.clip)
                self.store.announce(view)
                return view
            if view.clip == relative:
                return view  # told twice
        log.warning("clip %s not recorded: %s is gone or has another clip", relative, what)
        path.unlink(missing_ok=True)
        return None

    def _store_clip(self, find: FindRow,
                    relative: str) -> tuple[Incident, bool] | None:
        """Record the clip on the incident `find` returns, if it has none yet.

        A clip named by a worker (which did not know the incident id) is renamed to
        `<id>.mp4` next to the snapshot in the same transaction, and renamed back if that
        does not commit, so files are found by incident id whoever recorded them. Returns
        the incident and whether the clip was recorded now (not when it already had one), or
        None when there is no such incident.
        """
        source = self.evidence.path_of(relative)
        moved: Path | None = None
        try:
            with self.store.writing() as session:
                row = find(session)
                if row is None:
                    return None
                if row.clip is not None:
                    return incident_view(session, row), False
                stored = EvidenceWriter.clip_path(row.id, row.start_wall)
                if stored != relative:
                    moved = self.evidence.path_of(stored)
                    moved.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source, moved)
                row.clip = stored
                _touch(row)
                save(session, row)
                view = incident_view(session, row)
                enqueue(session, view, "incident.updated")
            return view, True
        except BaseException:
            if moved is not None:
                os.replace(moved, source)
            raise

    def _apply(self, event: Event) -> list[Incident]:
        new_files: list[Path] = []
        try:
            with self.store.writing() as session:
                key = dedup_key(event.camera, event.zone, event.kind)
                latest = locked_latest(key)(session)
                if event.phase == "end":
                    changes = self._end(latest, event)
                else:
                    changes = self._open_or_merge(latest, event, key, new_files)
                # In order: an incident ended here must be written before its successor
                # opens, or the open-incident unique index would hold two.
                for change in changes:
                    save(session, change.row)
                views = []
                for change in changes:
                    view = incident_view(session, change.row)
                    enqueue(session, view, change.topic)
                    views.append(view)
            return views
        except BaseException:
            # The incident was not stored: its snapshot must not linger unreferenced.
            for path in new_files:
                path.unlink(missing_ok=True)
            raise

    def _end(self, row: IncidentRow | None, event: Event) -> list[_Change]:
        if row is None or row.end_wall is not None:
            log.debug("end of %s without an open incident", dedup_key(
                event.camera, event.zone, event.kind))
            return []
        row.last_seen_t, row.last_seen_wall = event.t, _wall(event)
        row.end_t, row.end_wall = event.t, _wall(event)
        _touch(row)
        return [_Change(row, "incident.ended")]

    def _open_or_merge(
        self, latest: IncidentRow | None, event: Event, key: str, new_files: list[Path],
    ) -> list[_Change]:
        changes: list[_Change] = []
        if (
            latest is not None
            and Status(latest.status) is not Status.CLOSED
            and self._gap(latest, event) < self.cooldown_s
        ):
            return self._merge(latest, event)
        if latest is not None and latest.end_wall is None:
            # Open but closed by an operator, or left open by a process that died: end it
            # where its condition was last seen, then start afresh.
            latest.end_t, latest.end_wall = latest.last_seen_t, latest.last_seen_wall
            _touch(latest)
            changes.append(_Change(latest, "incident.ended"))
        row = self._create(event, key, new_files)
        changes.append(_Change(row, "incident.opened"))
        return changes

    @staticmethod
    def _gap(row: IncidentRow, event: Event) -> float:
        """Seconds between the incident's last sight (or end) and this event.

        Both clocks must agree the event is close: media time alone would merge across a
        stream restart (it starts again from zero), wall time alone across a file analysed
        faster than real time. A file analysed slower than real time may therefore split.
        """
        if row.end_wall is not None and row.end_t is not None:
            last_t, last_wall = row.end_t, row.end_wall
        else:
            last_t, last_wall = row.last_seen_t, row.last_seen_wall
        return max(event.t - last_t, event.wall - last_wall.timestamp())

    def _create(self, event: Event, key: str, new_files: list[Path]) -> IncidentRow:
        now = utcnow()
        wall = _wall(event)
        row = IncidentRow(
            id=new_incident_id(), kind=event.kind, camera=event.camera,
            grid_cell=self._grid_cell_of(event.camera), zone=event.zone,
            zone_name=_zone_name(event), severity=event.severity, status=Status.NEW.value,
            start_wall=wall, end_wall=None, start_t=event.t, end_t=None,
            last_seen_wall=wall, last_seen_t=event.t, objects=dict(event.objects),
            snapshot=None, clip=None, evidence_score=None, dedup_key=key,
            created_at=now, updated_at=now, version=1,
        )
        if self._snapshot(row, event) and row.snapshot is not None:
            new_files.append(self.evidence.path_of(row.snapshot))
        log.info("incident %s opened: %s in %s/%s", row.id, event.kind, event.camera, event.zone)
        return row

    def _merge(self, row: IncidentRow, event: Event) -> list[_Change]:
        row.last_seen_t, row.last_seen_wall = event.t, _wall(event)
        changed = False
        topic: Topic = "incident.updated"
        if row.end_wall is not None:
            row.end_t, row.end_wall = None, None
            topic, changed = "incident.reopened", True
            log.info("incident %s reopened by %s", row.id, event.phase)
        objects = dict(row.objects)
        for cls, count in event.objects.items():
            if count > objects.get(cls, 0):
                objects[cls] = count
        if objects != row.objects:
            row.objects, changed = objects, True
        if SEVERITY_RANK[event.severity] > SEVERITY_RANK.get(row.severity, -1):
            row.severity, changed = event.severity, True
        zone_name = _zone_name(event)
        if zone_name is not None and zone_name != row.zone_name:
            row.zone_name, changed = zone_name, True
        if self._snapshot(row, event):
            changed = True
        if not changed:
            return []
        _touch(row)
        return [_Change(row, topic)]

    def _snapshot(self, row: IncidentRow, event: Event) -> bool:
        """Store the event's frame as the snapshot when it is the incident's best so far.

        A failed snapshot is logged and the incident kept: losing an alert because a disk
        was full or a frame unreadable would be worse than an alert without a picture.
        """
        if event.frame is None:
            return False
        if row.snapshot is not None and event.score <= (row.evidence_score or 0.0):
            return False
        try:
            row.snapshot = self.evidence.write_snapshot(row.id, row.start_wall, event)
        except (OSError, ValueError) as exc:
            log.error("incident %s: snapshot not written: %s", row.id, exc)
            return False
        row.evidence_score = event.score
        return True


def _touch(row: IncidentRow) -> None:
    row.updated_at = utcnow()
    row.version += 1


def _wall(event: Event) -> datetime:
    return datetime.fromtimestamp(event.wall, UTC)


def _zone_name(event: Event) -> str | None:
    name = event.details.get("zone_name")
    return None if name is None else str(name)


def _check(event: Event) -> None:
    """Refuse an event that would store nonsense, naming the field at fault."""
    where = f"event {event.kind!r} of camera {event.camera!r}"
    for field in ("kind", "camera", "zone"):
        value = getattr(event, field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: {field} must be a non-empty string, got {value!r}")
    if event.phase not in PHASES:
        raise ValueError(f"{where}: phase {event.phase!r} is not one of {', '.join(PHASES)}")
    if event.severity not in SEVERITY_RANK:
        raise ValueError(
            f"{where}: severity {event.severity!r} is not one of {', '.join(SEVERITIES)}"
        )
    for field in ("t", "wall", "score"):
        value = getattr(event, field)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where}: {field} must be a finite number, got {value!r}")
    for cls, count in event.objects.items():
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"{where}: objects[{cls!r}] must be a count, got {count!r}")

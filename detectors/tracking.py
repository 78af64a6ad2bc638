"""Tracking: one identity per object across analysed frames, with what zone rules ask of it.

ByteTrack (roboflow `trackers`, Apache-2.0) does the association. It is fed media timestamps,
so its Kalman step and its lost-track budget follow the real time between analysed frames:
watch mode (a keyframe every 1-2 s) and active mode (~5 fps) feed the same tracker, and tracks
survive a switch between them. ByteTrack keeps boxes and ids only; this module adds what rules
need: the class by majority vote, zone membership with entry time (dwell per zone),
stationarity, and speed in pixels per second and, where the zone is calibrated, metres per
second.

Two things ByteTrack would get wrong at our rates are handled here:
- its lost-track budget is in seconds; a budget shorter than the gap between analysed frames
  would drop every track (and never confirm a new one), so the budget follows the observed gap;
- a person fishing sits still for an hour while a small detector misses them for a while;
  ByteTrack then forgets the track and the dwell would restart. A lost track that was
  stationary is therefore given back its identity when a detection reappears where it stood.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import BIoU, ByteTrackTracker

from gridwatch.detectors.calibration import GroundMap, ground_map
from gridwatch.detectors.detection import Box, Detection, box_iou, foot_point
from gridwatch.detectors.membership import ZoneMembership
from gridwatch.detectors.zones import Zone

log = logging.getLogger(__name__)

#: History keeps one sample per this many seconds (the newest always): enough for speed and
#: stationarity, and every-frame analysis of a 25 fps file costs no more than 10 fps.
HISTORY_STEP_S = 0.1


@dataclass(slots=True)
class ZoneVisit:
    """A track's stay in one zone: when it entered and when it was last seen inside."""

    entered: float
    last_inside: float
    inside: bool = True

    @property
    def dwell(self) -> float:
        return self.last_inside - self.entered


@dataclass(slots=True)
class TrackerSettings:
    """Tuning of the tracker; the defaults were checked on the PETS 2001 walkers, the hall crowd
    and the indoor clip at 5 fps and at keyframe-like 1-2 s gaps (see tests/test_tracking_*).

    `frame_rate` is the nominal analysis rate (Kalman units); `lost_after_s` the least time a
    track survives unseen (raised to `lost_after_gaps` times the recent gap between frames);
    `track_score` the detection score that may start a track; `stitch_within_s` how long a
    lost stationary track can be given back its identity.
    """

    frame_rate: float = 5.0
    lost_after_s: float = 3.0
    lost_after_gaps: float = 2.5
    track_score: float = 0.4
    match_iou: float = 0.1
    buffer_base: float = 0.1
    buffer_per_s: float = 0.6
    buffer_max: float = 1.5
    stationary_window_s: float = 6.0
    stationary_tolerance: float = 0.5
    speed_window_s: float = 2.0
    zone_exit_grace_s: float = 2.0
    stitch_within_s: float = 120.0
    stitch_iou: float = 0.3


@dataclass(slots=True)
class Track:
    """One tracked object.

    `detection` is its detection in the latest analysed frame (None while it is not seen).
    `size` is the larger box side in pixels: speeds and stationarity are measured against it,
    so they mean the same for a near and a far object. Motion (`stationary`, speeds) is
    worked out when first asked after each sighting, so tracks no rule looks at cost nothing.
    """

    id: int
    cls: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    settings: TrackerSettings = field(repr=False)
    detection: Detection | None = None
    hits: int = 0
    zones: dict[str, ZoneVisit] = field(default_factory=dict)
    votes: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float),
                                           repr=False)
    history: deque = field(default_factory=deque, repr=False)
    _motion_t: float | None = field(default=None, repr=False)
    _stationary: bool | None = field(default=None, repr=False)
    _velocity: tuple[float, float] | None = field(default=None, repr=False)
    _speed_mps: float | None = field(default=None, repr=False)

    @property
    def size(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(x2 - x1, y2 - y1, 1.0)

    @property
    def foot(self) -> tuple[float, float]:
        return foot_point(self.box)

    @property
    def stationary(self) -> bool | None:
        """The foot point stayed within `stationary_tolerance` sizes over the last
        `stationary_window_s`; None while the track is younger than that window."""
        self._update_motion()
        return self._stationary

    @property
    def velocity_px_s(self) -> tuple[float, float] | None:
        self._update_motion()
        return self._velocity

    @property
    def speed_px_s(self) -> float | None:
        self._update_motion()
        return None if self._velocity is None else math.hypot(*self._velocity)

    @property
    def speed_mps(self) -> float | None:
        """Ground speed where the zone holding the foot point is calibrated."""
        self._update_motion()
        return self._speed_mps

    @property
    def speed_sizes_s(self) -> float | None:
        """Speed in object sizes per second: comparable near and far from the camera."""
        speed = self.speed_px_s
        return None if speed is None else speed / self.size

    @property
    def age(self) -> float:
        return self.last_seen - self.first_seen

    def inside(self, zone_id: str) -> bool:
        visit = self.zones.get(zone_id)
        return visit is not None and visit.inside

    def dwell(self, zone_id: str) -> float:
        """Seconds since the track entered the zone (0 when it is not in it)."""
        visit = self.zones.get(zone_id)
        return visit.dwell if visit is not None else 0.0

    def to_json(self) -> dict:
        return {
            "id": self.id, "cls": self.cls, "first_seen": round(self.first_seen, 3),
            "last_seen": round(self.last_seen, 3), "stationary": self.stationary,
            "speed_px_s": _round(self.speed_px_s), "speed_mps": _round(self.speed_mps),
            "dwell_s": {z: round(v.dwell, 2) for z, v in self.zones.items()},
        }

    def _update_motion(self) -> None:
        """Speed from the last `speed_window_s` (at least the last two samples) and
        stationarity over the last `stationary_window_s`; history rows are
        (t, foot x, foot y, size, ground x, ground y)."""
        t = self.last_seen
        if self._motion_t == t or not self.history:
            return
        self._motion_t = t
        s = self.settings
        rows = np.asarray(self.history, dtype=np.float64)
        times = rows[:, 0]
        self._velocity = self._speed_mps = None
        if len(rows) >= 2:
            first = min(int(np.searchsorted(times, t - s.speed_window_s)), len(rows) - 2)
            recent = rows[first:]
            if recent[-1, 0] > recent[0, 0]:
                self._velocity = _slope(recent[:, 0], recent[:, 1:3])
                grounded = recent[~np.isnan(recent[:, 4])]
                if len(grounded) >= 2 and grounded[-1, 0] > grounded[0, 0]:
                    self._speed_mps = math.hypot(*_slope(grounded[:, 0], grounded[:, 4:6]))
        # Stationarity needs a sample at or before the window start: a track younger than the
        # window has not shown that it stays.
        anchor = int(np.searchsorted(times, t - s.stationary_window_s + 1e-6, side="right")) - 1
        if anchor < 0:
            self._stationary = None
            return
        window = rows[anchor:]
        feet = window[:, 1:3]
        spread = float(np.sqrt(((feet - np.median(feet, axis=0)) ** 2).sum(axis=1)).max())
        self._stationary = spread <= s.stationary_tolerance * float(np.median(window[:, 3]))


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


class ObjectTracker:
    """The tracker of one camera. Call `update` once per analysed frame, in media-time order."""

    def __init__(
        self, zones: Sequence[Zone] = (), settings: TrackerSettings | None = None,
    ) -> None:
        self.settings = settings or TrackerSettings()
        self._zones: list[Zone] = []
        self._maps: dict[str, GroundMap] = {}
        self._tracks: dict[int, Track] = {}
        self._lost: dict[int, Track] = {}
        self._alias: dict[int, int] = {}
        self._gaps: deque[float] = deque(maxlen=15)
        self._last_t: float | None = None
        self._next_id = 1
        self.set_zones(zones)

    def _new_bytetrack(self) -> None:
        s = self.settings
        self._biou = BIoU(buffer_ratio=s.buffer_base)
        self._bt = ByteTrackTracker(
            lost_track_buffer=max(1, round(s.lost_after_s * 30)),
            frame_rate=s.frame_rate,
            track_activation_threshold=s.track_score,
            high_conf_det_threshold=s.track_score,
            minimum_iou_threshold=s.match_iou,
            iou=self._biou,
        )

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """Zones whose membership tracks record, bound to the frame size of the detections.

        Tracks are forgotten: a new frame size means boxes in other pixels.
        """
        self.reset()
        self._zones = list(zones)
        self._maps = {
            z.id: ground_map(z.spec.calibration, z.width, z.height)
            for z in self._zones if z.spec.calibration is not None
        }

    def reset(self) -> None:
        """Forget every track (a new stream, or media time going back)."""
        self._new_bytetrack()
        self._tracks.clear()
        self._lost.clear()
        self._alias.clear()
        self._gaps.clear()
        self._last_t = None

    @property
    def tracks(self) -> list[Track]:
        """Tracks ByteTrack still keeps (seen now or lost for less than its budget)."""
        return list(self._tracks.values())

    def in_zone(self, zone_id: str) -> list[Track]:
        """Tracks seen in the latest frame whose foot point is inside the zone."""
        return [
            tr for tr in self._tracks.values()
            if tr.last_seen == self._last_t and tr.inside(zone_id)
        ]

    def update(self, detections: list[Detection], t: float,
               membership: ZoneMembership | None = None) -> list[Track]:
        """Associate this frame's detections, fill their `track`, return the tracks seen.

        Detections ByteTrack does not (yet) follow keep `track=None`: a new object is confirmed
        on its second sighting, and then dated from its first. `membership` is the frame's
        zone membership when the caller has already worked it out for its rules.
        """
        if membership is None:
            membership = ZoneMembership.of(self._zones, detections)
        t = self._clock(t)
        previous_t = self._last_t
        if previous_t is not None:
            self._gaps.append(t - previous_t)
            self._bt.maximum_time_without_update = max(
                self.settings.lost_after_s,
                self.settings.lost_after_gaps * float(np.median(self._gaps)),
            )
            self._biou.buffer_ratio = min(
                self.settings.buffer_max,
                self.settings.buffer_base + self.settings.buffer_per_s * (t - previous_t),
            )
        self._last_t = t
        for det in detections:
            det.track = None
        tracked = self._bt.update(_to_supervision(detections), timestamp=t)
        seen: list[Track] = []
        pairs = (zip(tracked.data["index"], tracked.tracker_id, strict=True)
                 if len(tracked) and tracked.tracker_id is not None else ())
        for index, bt_id in pairs:
            if bt_id < 0:
                continue
            det = detections[int(index)]
            track = self._track_for(int(bt_id), det, t, previous_t)
            self._observe(track, det, t, membership.zones_of(int(index)))
            det.track = track.id
            seen.append(track)
        self._retire(t)
        return seen

    def _clock(self, t: float) -> float:
        """Media time that never repeats or goes back: ByteTrack skips such updates.

        A small step back is decoder timestamp jitter (B-frames, bad PTS); a large one is a new
        stream or a looped file, where the old tracks mean nothing any more.
        """
        last = self._last_t
        if last is None or t > last:
            return t
        if t < last - 1.0:
            log.info("media time went back from %.2f to %.2f s: tracks reset", last, t)
            self.reset()
            return t
        return last + 1e-3

    def _track_for(self, bt_id: int, det: Detection, t: float, previous_t: float | None) -> Track:
        track_id = self._alias.get(bt_id)
        if track_id is not None:
            return self._tracks[track_id]
        track = self._stitch(det)
        if track is None:
            first = previous_t if previous_t is not None else t
            track = Track(self._next_id, det.cls, det.box, det.score, first, first,
                          self.settings)
            self._next_id += 1
        else:
            log.debug("track %d resumed where it stood", track.id)
        self._alias[bt_id] = track.id
        self._tracks[track.id] = track
        return track

    def _stitch(self, det: Detection) -> Track | None:
        """A lost stationary track this detection stands on, if any."""
        best, best_iou = None, self.settings.stitch_iou
        for track in self._lost.values():
            iou = box_iou(track.box, det.box)
            if iou >= best_iou:
                best, best_iou = track, iou
        if best is not None:
            del self._lost[best.id]
        return best

    def _observe(self, track: Track, det: Detection, t: float, inside_zones: set[str]) -> None:
        s = self.settings
        track.box = det.box
        track.score = det.score
        track.detection = det
        track.last_seen = t
        track.hits += 1
        track.votes[det.cls] += det.score
        track.cls = max(track.votes, key=track.votes.__getitem__)
        foot = track.foot
        ground = None
        for zone in self._zones:
            inside = zone.id in inside_zones
            visit = track.zones.get(zone.id)
            if inside:
                if visit is None:
                    # The first sighting dates the entry (a track is confirmed one frame late).
                    entered = track.first_seen if track.hits == 1 else t
                    track.zones[zone.id] = ZoneVisit(entered, t)
                else:
                    visit.last_inside, visit.inside = t, True
                gmap = self._maps.get(zone.id)
                if ground is None and gmap is not None:
                    gx, gy = gmap.to_ground(np.array([foot]))[0]
                    ground = (float(gx), float(gy))
            elif visit is not None:
                visit.inside = False
                if t - visit.last_inside > s.zone_exit_grace_s:
                    del track.zones[zone.id]
        sample = (t, foot[0], foot[1], track.size, *(ground or (math.nan, math.nan)))
        history = track.history
        if len(history) >= 2 and t - history[-2][0] < HISTORY_STEP_S:
            history[-1] = sample
        else:
            history.append(sample)
        keep_from = t - 2.0 * max(s.stationary_window_s, s.speed_window_s)
        while len(history) > 2 and history[1][0] <= keep_from:
            history.popleft()

    def _retire(self, t: float) -> None:
        """Drop tracks ByteTrack dropped; keep stationary ones for a while to resume them."""
        alive = {tr.tracker_id for tr in self._bt.tracks if tr.tracker_id >= 0}
        for bt_id in [b for b in self._alias if b not in alive]:
            track = self._tracks.pop(self._alias.pop(bt_id))
            track.detection = None
            if track.stationary:
                self._lost[track.id] = track
        for track_id in [i for i, tr in self._lost.items()
                         if t - tr.last_seen > self.settings.stitch_within_s]:
            del self._lost[track_id]
        for track in self._tracks.values():
            if track.last_seen != t:
                track.detection = None


def _to_supervision(detections: list[Detection]) -> sv.Detections:
    if not detections:
        empty = sv.Detections.empty()
        empty.data["index"] = np.zeros(0, dtype=int)
        return empty
    return sv.Detections(
        xyxy=np.array([d.box for d in detections], dtype=np.float32),
        confidence=np.array([d.score for d in detections], dtype=np.float32),
        class_id=np.array([d.cls_id for d in detections], dtype=int),
        data={"index": np.arange(len(detections))},
    )


def _slope(ts: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares rate of change of two columns: steadier than first-to-last on jittery
    boxes."""
    dt = ts - ts.mean()
    denom = float(dt @ dt)
    if denom <= 0:
        return 0.0, 0.0
    vx, vy = dt @ (values - values.mean(axis=0)) / denom
    return float(vx), float(vy)

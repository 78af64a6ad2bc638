"""Rule episodes: one start, throttled updates with the best evidence, one end; hysteresis,
cooldown, per-track dwell, escalation, time windows; the same timing at 5 fps and at 1-2 s
keyframe gaps.

Detections are scripted here (a box per object and second, as a detector would report it)
and go through the real tracker, because these tests are about timing: the footage tests
(test_presets_footage.py) check the same rules on what the detector really sees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from pydantic import TypeAdapter

from gridwatch.detectors.detection import Detection
from gridwatch.detectors.events import Event
from gridwatch.detectors.rules import ZoneObservation, build_rule
from gridwatch.detectors.tracking import ObjectTracker
from gridwatch.detectors.zones import Zone
from gridwatch.ingest.frame import Frame
from gridwatch.settings.rules import RuleSettings
from gridwatch.settings.zones import ZoneSettings

W, H = 640, 360
BASE_WALL = 1_778_846_400.0  # 2026-05-15 12:00:00 UTC
IMAGE = np.zeros((H, W, 3), dtype=np.uint8)
BOAT = (300.0, 200.0, 380.0, 240.0)
Script = Callable[[float], list[tuple[str, float, tuple[float, float, float, float]]]]


def spec(**fields) -> RuleSettings:
    return TypeAdapter(RuleSettings).validate_python(fields)


def active_times(start: float, stop: float) -> list[float]:
    return [round(float(t), 3) for t in np.arange(start, stop, 0.2)]


def watch_times(start: float, stop: float) -> list[float]:
    times, t, gaps = [], start, (1.0, 2.0, 1.5)
    while t < stop:
        times.append(round(t, 3))
        t += gaps[len(times) % 3]
    return times


def play(rule_fields: dict, script: Script, times: list[float], area_m2: float | None = None,
         ) -> list[Event]:
    zone = Zone(ZoneSettings(id="z", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], area_m2=area_m2),
                W, H)
    tracker = ObjectTracker([zone])
    rule = build_rule(spec(**rule_fields))
    events = []
    for i, t in enumerate(times):
        dets = [Detection(cls, 0, score, box) for cls, score, box in script(t)]
        tracker.update(dets, t)
        frame = Frame.from_bgr("cam", i, t, BASE_WALL + t, IMAGE)
        obs = ZoneObservation("cam", "z", t, BASE_WALL + t, dets, frame, {"zone_name": "z"},
                              tracker.in_zone("z"), zone)
        event = rule.observe(obs)
        if event is not None:
            events.append(event)
    end = rule.finish(times[-1], BASE_WALL + times[-1], "cam", "z")
    return events + ([end] if end else [])


def phases(events: list[Event]) -> Counter:
    return Counter(e.phase for e in events)


def boat_between(start: float, stop: float, gaps: tuple[tuple[float, float], ...] = ()) -> Script:
    def script(t: float):
        if start <= t < stop and not any(a <= t < b for a, b in gaps):
            return [("boat", 0.6 + 0.2 * np.sin(t), BOAT)]
        return []
    return script


BOATS = {"type": "presence", "kind": "boat_in_zone", "classes": ["boat"], "min_dwell_s": 2,
         "end_after_s": 4, "update_every_s": 10}


def test_a_sixty_second_condition_is_one_start_few_updates_one_end() -> None:
    def script(t: float):
        if not 5 <= t < 65:
            return []
        # The count flickers between 1 and 2 boats and the scores wobble every frame.
        second = [("boat", 0.5, (100.0, 200.0, 180.0, 240.0))] if int(t * 5) % 3 else []
        return [("boat", 0.6 + 0.2 * np.sin(3 * t), BOAT), *second]
    events = play(BOATS, script, active_times(0, 80))
    count = phases(events)
    assert count["start"] == 1 and count["end"] == 1
    assert count["update"] <= 60 / BOATS["update_every_s"]
    start, end = events[0], events[-1]
    assert 6.5 <= start.t <= 7.5, "2 s dwell after the boat appears at 5 s"
    assert end.t == 68.8, "4 s after the boat was last seen (64.8 s)"
    assert end.frame is None and start.frame is not None
    assert max(e.objects.get("boat", 0) for e in events) == 2


def test_a_short_dropout_does_not_end_the_event() -> None:
    one_frame = boat_between(5, 60, gaps=((30.0, 30.2),))
    events = play(BOATS, one_frame, active_times(0, 70))
    assert phases(events)["start"] == 1 and phases(events)["end"] == 1
    three_seconds = boat_between(5, 60, gaps=((30.0, 33.0),))
    assert phases(play(BOATS, three_seconds, active_times(0, 70)))["start"] == 1
    six_seconds = boat_between(5, 60, gaps=((30.0, 36.0),))
    assert phases(play(BOATS, six_seconds, active_times(0, 70)))["start"] == 2


def test_cooldown_holds_back_a_new_start() -> None:
    def script(t: float):
        if t < 20:
            return [("boat", 0.7, BOAT)]
        if 30 <= t < 60:  # another boat, elsewhere
            return [("boat", 0.7, (40.0, 100.0, 120.0, 140.0))]
        return []
    without = play(BOATS, script, active_times(0, 70))
    assert [e.phase for e in without if e.phase != "update"] == ["start", "end", "start", "end"]
    assert 32.0 <= [e for e in without if e.phase == "start"][1].t <= 32.5
    held = play({**BOATS, "cooldown_s": 20}, script, active_times(0, 70))
    starts = [e for e in held if e.phase == "start"]
    first_end = next(e for e in held if e.phase == "end")
    assert len(starts) == 2
    assert first_end.t + 20 <= starts[1].t <= first_end.t + 20.5
    long = play({**BOATS, "cooldown_s": 60}, script, active_times(0, 70))
    assert phases(long)["start"] == 1


def test_a_stationary_object_missed_for_a_while_keeps_its_dwell() -> None:
    """A person fishing is not detected for 15 s: ByteTrack forgets the track, but it resumes
    where the object stood, with its dwell, so the event goes on rather than restarting."""
    fields = {**BOATS, "min_dwell_s": 20, "end_after_s": 20}
    events = play(fields, boat_between(0, 80, gaps=((30.0, 45.0),)), active_times(0, 100))
    assert [e.phase for e in events if e.phase != "update"] == ["start", "end"]
    assert events[-1].details["duration_s"] >= 55


def test_start_hysteresis_waits_for_the_condition_to_hold() -> None:
    fields = {**BOATS, "min_dwell_s": 0, "start_after_s": 5}
    events = play(fields, boat_between(10, 30), active_times(0, 40))
    assert 15.0 <= events[0].t <= 15.5
    assert not play(fields, boat_between(10, 14), active_times(0, 40))


def test_dwell_is_per_track_not_zone_occupancy() -> None:
    """Boats passing one after another never make one boat's 5 s dwell."""
    def relay(t: float):
        k = int(t // 4)  # a new boat every 4 s, each in another place
        x = 40.0 + 140.0 * (k % 4)
        return [("boat", 0.7, (x, 100.0 + 50 * (k % 2), x + 60, 140.0 + 50 * (k % 2)))]
    fields = {**BOATS, "min_dwell_s": 5}
    assert not play(fields, relay, active_times(0, 40))
    assert phases(play(fields, boat_between(0, 40), active_times(0, 40)))["start"] == 1


def test_updates_carry_the_best_evidence_since_the_last_event() -> None:
    def script(t: float):
        if 0 <= t < 40:
            score = 0.95 if abs(t - 13.0) < 0.01 else 0.5 + 0.01 * (t % 3)
            return [("boat", score, BOAT)]
        return []
    events = play({**BOATS, "update_every_s": 10}, script, active_times(0, 50))
    updates = [e for e in events if e.phase == "update"]
    assert updates[0].details["evidence_t"] < 12.0
    after = next(e for e in updates if e.t >= 13.0)
    assert after.score == 0.95
    assert after.frame is not None and after.frame.t == 13.0
    assert after.details["evidence_t"] == 13.0


def test_escalation_is_sent_at_once_and_only_once() -> None:
    crowd = {"type": "crowd", "end_after_s": 3, "update_every_s": 30,
             "gathering": {"min_count": 3, "min_duration_s": 2},
             "density": {"min_per_m2": 0.5, "min_duration_s": 2, "severity": "critical"}}

    def people(t: float):
        n = 3 if t < 20 else (6 if int(t * 5) % 3 else 4)  # density flickers from 20 s
        return [("person", 0.8, (60.0 * i, 100.0, 60.0 * i + 30, 200.0)) for i in range(n)]
    events = play(crowd, people, active_times(0, 40), area_m2=10)
    start = events[0]
    assert start.phase == "start" and start.severity == "medium"
    assert 2.0 <= start.t <= 2.5
    escalations = [e for e in events if e.phase == "update" and e.severity == "critical"]
    assert len(escalations) == 1
    assert 22.0 <= escalations[0].t <= 22.5
    assert set(escalations[0].details["conditions"]) == {"gathering", "density"}
    assert phases(events)["update"] <= 2


def test_the_event_ends_when_its_time_window_closes() -> None:
    window = {**BOATS, "windows": [{"hours": "12:00-12:01", "timezone": "UTC"}]}
    events = play(window, boat_between(0, 100), active_times(0, 100))
    assert [e.phase for e in events if e.phase != "update"] == ["start", "end"]
    assert 60.0 <= events[-1].t <= 60.3
    assert events[-1].details["reason"] == "outside the rule's time windows"
    night = {**BOATS, "windows": [{"hours": "22:00-06:00", "timezone": "UTC"}]}
    assert not play(night, boat_between(0, 100), active_times(0, 100))


def test_watch_mode_and_active_mode_give_the_same_timing() -> None:
    fields = {**BOATS, "min_dwell_s": 20, "end_after_s": 5}
    script = boat_between(10, 70)
    fast = play(fields, script, active_times(0, 90))
    slow = play(fields, script, watch_times(0, 90))
    for events in (fast, slow):
        assert [e.phase for e in events if e.phase != "update"] == ["start", "end"]
    assert abs(fast[0].t - slow[0].t) <= 2.0
    assert abs(fast[-1].t - slow[-1].t) <= 2.0
    assert 30.0 <= fast[0].t <= 30.5


def test_a_short_episode_still_hands_over_its_best_frame() -> None:
    """Shorter than update_every_s: the best frame seen after the start goes out as a last
    update just before the end; if the stream ends first, it rides on the end event."""
    def script(t: float):
        if 0 <= t < 8:
            return [("boat", 0.9 if abs(t - 5.0) < 0.01 else 0.6, BOAT)]
        return []
    events = play(BOATS, script, active_times(0, 20))
    assert [e.phase for e in events] == ["start", "update", "end"]
    start, last, end = events
    assert start.score == 0.6
    assert last.score == 0.9 and last.frame is not None and last.frame.t == 5.0
    assert end.t - last.t == pytest.approx(0.2), "the end follows one frame later"
    cut = play(BOATS, script, active_times(0, 7))
    assert [e.phase for e in cut] == ["start", "end"]
    assert cut[-1].details["reason"] == "stream ended"
    assert cut[-1].score == 0.9 and cut[-1].frame is not None and cut[-1].frame.t == 5.0

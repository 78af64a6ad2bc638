"""Bank change on real footage: the PETS 2001 grass and road with real walkers crossing,
seen once per observation (every 30 s in service). A patch of another real ground texture
(the industrial road of the CCTV clip) pasted into part of the zone stands for dug or dumped
ground; it must be reported once it has lasted. Lighting, weather and sensor noise change
the whole picture and must not be reported, however strong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import TypeAdapter

from gridwatch.detectors.bank_change import BankChangeDetector
from gridwatch.detectors.detection import Detection
from gridwatch.detectors.rules import ZoneObservation, build_rule
from gridwatch.detectors.zones import Zone
from gridwatch.ingest.frame import Frame
from gridwatch.settings.bank_change import BankChangeSettings
from gridwatch.settings.rules import RuleSettings
from gridwatch.settings.zones import ZoneSettings
from tests.support.tracked_footage import PETS, PETS_FPS, folder_frames, video_frames, yolox

W, H = 320, 240
BANK = [(0.0, 160 / H), (1.0, 160 / H), (1.0, 1.0), (0.0, 1.0)]  # grass, kerb and road
PATCH = (20, 190, 100, 230)  # x1, y1, x2, y2: an eighth of the zone, on the grass
CHANGE_AT = 10
OBSERVATIONS = 40


@pytest.fixture(scope="module")
def scenes(footage_dir: Path, models_dir: Path) -> list[tuple[np.ndarray, list[Detection]]]:
    """One PETS frame per observation (every 7th, so walkers are somewhere else each time),
    with the people the detector finds on it."""
    detector = yolox(models_dir)
    frames = [img for _, img in folder_frames(footage_dir / PETS, PETS_FPS)]
    picks = [frames[(k * 7) % len(frames)] for k in range(OBSERVATIONS)]
    return [(img, detector.detect(img)) for img in picks]


@pytest.fixture(scope="module")
def road(footage_dir: Path) -> np.ndarray:
    _, first = next(video_frames(footage_dir / "cctv_road_cart_320x240_3fps.mp4"))
    return first


def _noise(g: np.ndarray, sigma: float) -> np.ndarray:
    return np.random.default_rng(int(g.sum()) % 1000).normal(0, sigma, g.shape)


LIGHTING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "brighter": lambda g: g * 0.8 + 50,
    "darker": lambda g: g * 0.35 + 5,
    "gamma 0.5": lambda g: 255 * (g / 255) ** 0.5,
    "gamma 2": lambda g: 255 * (g / 255) ** 2.0,
    "haze": lambda g: (g - 128) * 0.5 + 150,
    "sensor noise": lambda g: g + _noise(g, 8),
    "night": lambda g: g * 0.08 + 3 + _noise(g, 6),
}


def gray(image: np.ndarray, light: Callable | None = None, patch: np.ndarray | None = None,
         ) -> np.ndarray:
    out = image.copy()
    if patch is not None:
        x1, y1, x2, y2 = PATCH
        out[y1:y2, x1:x2] = cv2.resize(patch, (x2 - x1, y2 - y1))
    g = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if light is not None:
        g = light(g)
    return np.clip(g, 0, 255).astype(np.uint8)


def watch(scenes, light=None, patch=None, settings=None) -> list:
    polygon = np.array([(x * W, y * H) for x, y in BANK])
    detector = BankChangeDetector(polygon, W, H, settings)
    reports = []
    for k, (image, dets) in enumerate(scenes):
        after = k >= CHANGE_AT
        g = gray(image, light if after else None, patch if after else None)
        reports.append(detector.observe(g, [d.box for d in dets]))
    return reports


def test_real_walkers_crossing_are_not_a_ground_change(scenes) -> None:
    reports = watch(scenes)
    assert max(r.changed_share for r in reports) < BankChangeSettings().min_changed_share


def test_a_lasting_ground_change_is_reported_after_it_persists(scenes, road) -> None:
    patch = road[150:230, 40:200]  # concrete and markings of another real ground
    s = BankChangeSettings()
    reports = watch(scenes, patch=patch)
    first = next(k for k, r in enumerate(reports) if r.changed_share >= s.min_changed_share)
    assert CHANGE_AT + s.persist <= first <= CHANGE_AT + s.history // 2 + s.persist + 1
    report = reports[first]
    assert not report.lighting
    x1, y1, x2, y2 = report.box
    px1, py1, px2, py2 = PATCH
    assert x1 <= px1 + 12 and y1 <= py1 + 12 and x2 >= px2 - 12 and y2 >= py2 - 12
    assert (x2 - x1) * (y2 - y1) <= 2.5 * (px2 - px1) * (py2 - py1), "the box is the patch"


@pytest.mark.parametrize("light", list(LIGHTING))
def test_lighting_weather_and_noise_are_not_reported(scenes, light: str) -> None:
    reports = watch(scenes, light=LIGHTING[light])
    assert max(r.changed_share for r in reports) < BankChangeSettings().min_changed_share


@pytest.mark.parametrize("light", ["darker", "gamma 2", "sensor noise"])
def test_a_ground_change_is_still_found_under_other_light(scenes, road, light: str) -> None:
    reports = watch(scenes, light=LIGHTING[light], patch=road[150:230, 40:200])
    assert reports[-1].changed_share >= BankChangeSettings().min_changed_share


def test_everything_changing_at_once_is_taken_as_lighting(scenes, road) -> None:
    """A camera knocked aside or snow on everything: every cell differs, nothing is blamed."""
    polygon = np.array([(x * W, y * H) for x, y in BANK])
    detector = BankChangeDetector(polygon, W, H)
    for image, dets in scenes[:CHANGE_AT]:
        detector.observe(gray(image), [d.box for d in dets])
    swapped = [detector.observe(gray(np.roll(road, 37, axis=0))) for _ in range(20)]
    assert all(r.lighting for r in swapped[5:])
    assert max(r.changed_share for r in swapped) == 0.0


def test_the_bank_change_rule_reports_once_and_then_watches_for_new_change(scenes, road) -> None:
    rule = build_rule(TypeAdapter(RuleSettings).validate_python({"type": "bank_change"}))
    zone = Zone(ZoneSettings(id="bank", polygon=BANK), W, H)
    patch = road[150:230, 40:200]
    every = BankChangeSettings().every_s
    events = []
    for k in range(3 * OBSERVATIONS):
        image, dets = scenes[k % OBSERVATIONS]
        if k >= CHANGE_AT:
            image = image.copy()
            x1, y1, x2, y2 = PATCH
            image[y1:y2, x1:x2] = cv2.resize(patch, (x2 - x1, y2 - y1))
        for sub in range(3):  # frames between observations: the verdict stands
            t = k * every + sub * every / 3
            frame = Frame.from_bgr("cam", k, t, 1_778_846_400.0 + t, image)
            inside = [d for d in dets if zone.contains(d.foot)]
            obs = ZoneObservation("cam", "bank", t, frame.wall, inside, frame, {}, [], zone)
            if (event := rule.observe(obs)) is not None:
                events.append(event)
    assert [e.phase for e in events] == ["start", "end"], "one change, one incident"
    start = events[0]
    assert start.kind == "bank_change"
    assert start.detections[0].cls == "ground change"
    assert start.details["conditions"]["ground_change"]["changed_share"] >= 0.05

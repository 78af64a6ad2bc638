"""Decode modes on real footage: keyframes only, the switch to every frame, the loop filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridwatch.ingest.sources import open_source
from gridwatch.settings.stream import StreamSettings
from tests.support.rtsp import loop_clip

GOP = 20


@pytest.fixture(scope="module")
def indoor_clip(footage_dir: Path) -> Path:
    """12 s of the indoor walkers at 10 fps, a keyframe every 2 s, no B-frames."""
    return loop_clip(footage_dir / "indoor_people_walk_768x432_10fps.mp4", seconds=12.0,
                     gop=GOP)


def _luma(frames) -> dict[int, np.ndarray]:
    return {round(f.t * 10): f.gray().astype(np.int16) for f in frames}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def test_keyframes_only_decodes_one_frame_per_gop(indoor_clip: Path) -> None:
    with open_source(str(indoor_clip), StreamSettings(keyframes_only=True)) as source:
        frames = list(source)
    assert [f.keyframe for f in frames] == [True] * 6
    assert [round(f.t, 3) for f in frames] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert source.counters.packets_received == 120
    assert source.counters.frames_decoded == 6


def test_switching_to_every_frame_mid_gop_goes_on_with_the_next_frame_undamaged(
    indoor_clip: Path,
) -> None:
    with open_source(str(indoor_clip)) as source:
        reference = _luma(source)
    delivered = []
    with open_source(str(indoor_clip), StreamSettings(keyframes_only=True)) as source:
        for frame in source:
            delivered.append(frame)
            if round(frame.t, 3) == 2.0:
                # The next packet is a P-frame whose references were never decoded.
                source.set_keyframes_only(False)
        after = [f for f in delivered if f.t > 2.0]
        luma = _luma(after)
    assert round(after[0].t, 3) == 2.1 and not after[0].keyframe, "no wait for a keyframe"
    assert len(after) == 99, "every frame after the switch"
    worst = max(int(np.abs(luma[k] - reference[k]).max()) for k in luma)
    assert worst == 0, "frames after the switch are exactly the full decode's"


def test_switching_back_to_keyframes_only_takes_effect_at_once(indoor_clip: Path) -> None:
    with open_source(str(indoor_clip)) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 25:
                source.set_keyframes_only(True)
    assert len(frames) == 25 + 4
    assert all(f.keyframe for f in frames[25:])
    assert [round(f.t, 3) for f in frames[25:]] == [4.0, 6.0, 8.0, 10.0]


def test_keyframes_decoded_without_the_loop_filter_match_the_full_quality_ones(
    indoor_clip: Path,
) -> None:
    def keyframes(skip_loop_filter: bool) -> list[np.ndarray]:
        options = StreamSettings(keyframes_only=True, keyframe_skip_loop_filter=skip_loop_filter)
        with open_source(str(indoor_clip), options) as source:
            return [f.gray().copy() for f in source]

    filtered, unfiltered = keyframes(False), keyframes(True)
    psnr = [_psnr(a, b) for a, b in zip(filtered, unfiltered, strict=True)]
    assert all(p > 45 for p in psnr), psnr
    assert any(p < float("inf") for p in psnr), "the option must change the decode"

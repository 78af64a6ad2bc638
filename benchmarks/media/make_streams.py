"""Camera-like 1080p streams for the ingest benchmarks, made once from real footage and cached.

The hall crowd clip (real overhead footage, 1280x720, people walking everywhere) is upscaled
to 1920x1080 at 25 fps, given temporal sensor-like noise (a real camera's noise is what makes
its P-frames cost what they cost), and encoded the way cameras send H.264: no B-frames, a
keyframe every 50 frames (GOP 2 s), ~4 Mbit/s constrained. 300 frames (12 s, 6 whole GOPs) so
that the served loop keeps the GOP regular. Nothing is re-encoded at serve time.

Files go to `$GRIDWATCH_CACHE_DIR/bench` (default `~/.cache/gridwatch/bench`), named by the
source's content hash and the parameters, written atomically.

Usage: .venv/bin/python benchmarks/media/make_streams.py   (prints the file's path)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.rtsp import cache_dir, encode_once  # noqa: E402

FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
SOURCE = FOOTAGE / "crowd_hall_topdown_1280x720.avi"


@dataclass(frozen=True)
class StreamSpec:
    width: int = 1920
    height: int = 1080
    fps: int = 25
    gop: int = 50
    frames: int = 300
    bitrate_kbps: int = 4000
    noise: int = 6

    @property
    def gop_s(self) -> float:
        return self.gop / self.fps

    def key(self) -> str:
        return (f"{self.width}x{self.height}p{self.fps}-g{self.gop}-n{self.frames}-"
                f"{self.bitrate_kbps}k-noise{self.noise}")


def camera_stream(spec: StreamSpec = StreamSpec(), source: Path = SOURCE) -> Path:
    """The cached stream file for `spec`, made on first use (about 40 s on 2 cores)."""
    if not source.is_file():
        raise FileNotFoundError(f"footage {source} is missing (set GRIDWATCH_FOOTAGE_DIR)")
    rate = spec.bitrate_kbps
    scale = (f"setpts=N/{spec.fps}/TB,scale={spec.width}:{spec.height}:flags=bicubic,"
             f"noise=alls={spec.noise}:allf=t,format=yuv420p")
    args = ["-an", "-vf", scale,
            "-r", str(spec.fps), "-frames:v", str(spec.frames), "-c:v", "libx264",
            "-preset", "veryfast", "-profile:v", "high", "-b:v", f"{rate}k",
            "-maxrate", f"{rate * 11 // 10}k", "-bufsize", f"{rate * 2}k", "-bf", "0",
            "-g", str(spec.gop), "-keyint_min", str(spec.gop), "-sc_threshold", "0",
            "-x264-params", "rc-lookahead=0", "-movflags", "+faststart"]
    return encode_once(source, f"-{spec.key()}", [], args, folder=cache_dir("bench"),
                       timeout=600)


if __name__ == "__main__":
    print(camera_stream())
    sys.exit(0)

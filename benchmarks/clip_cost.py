"""What evidence clips cost; prints one JSON object.

- Reader thread: every demuxed packet is copied into the camera's ring buffer. Measured per
  packet on real clips as demux alone (the baseline, same run) and demux + push, so the
  overhead is the difference; the share it adds to a decoded frame uses the same run's full
  decode of the clip.
- Memory: bytes the buffer holds per second of each clip (its bitrate) and what 10 s of it
  would take.
- Recorder: remuxing a clip of every packet of the clip to a faststart MP4 (ms, and ms per
  second of video), against copying the same bytes to a file (the floor any writer pays).

Usage: .venv/bin/python benchmarks/clip_cost.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import av

from gridwatch.ingest.packet_buffer import PacketRingBuffer
from gridwatch.worker.clips import write_mp4

REPO = Path(__file__).resolve().parent.parent
FOOTAGE = Path(os.environ.get("GRIDWATCH_FOOTAGE_DIR", REPO.parent / "shared" / "footage"))
CLIPS = {
    "boat_640x360_bframes": "fishing_boat_sea_640x360_30fps.mp4",
    "hall_1280x720": "crowd_hall_topdown_1280x720.avi",
    "indoor_768x432": "indoor_people_walk_768x432_10fps.mp4",
}


def demux_ms(path: Path, buffer: PacketRingBuffer | None) -> tuple[float, int]:
    """CPU ms per packet to demux the whole clip (and push each packet into `buffer`)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if buffer is not None:
            buffer.begin(stream)
        count = 0
        start = time.process_time()
        for packet in container.demux(stream):
            if packet.size:
                count += 1
                if buffer is not None:
                    buffer.push(packet, float(count))
        elapsed = time.process_time() - start
    return elapsed * 1000 / count, count


def decode_ms(path: Path) -> float:
    with av.open(str(path)) as container:
        container.streams.video[0].thread_count = 1
        start = time.process_time()
        frames = sum(1 for _ in container.decode(video=0))
        return (time.process_time() - start) * 1000 / frames


def measure(name: str, path: Path, repeat: int) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        seconds = float(container.duration / 1e6) if container.duration else None
        size = (stream.codec_context.width, stream.codec_context.height)
    baseline = statistics.median(demux_ms(path, None)[0] for _ in range(repeat))
    pushes, buffers = [], []
    for _ in range(repeat):
        buffer = PacketRingBuffer(max_seconds=1e9, max_bytes=1 << 40)
        pushes.append(demux_ms(path, buffer)[0])
        buffers.append(buffer)
    buffer = buffers[-1]
    packets = buffer.window(float("-inf"))
    decode = decode_ms(path)
    with tempfile.TemporaryDirectory() as tmp:
        remux, copy = [], []
        for i in range(repeat):
            start = time.perf_counter()
            write_mp4(packets, Path(tmp) / f"clip{i}.mp4")
            remux.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            with open(Path(tmp) / f"copy{i}.bin", "wb") as f:
                for p in packets:
                    f.write(p.data)
                f.flush()
                os.fsync(f.fileno())
            copy.append((time.perf_counter() - start) * 1000)
    held = buffer.size_bytes
    push = statistics.median(pushes)
    return {
        "clip": name,
        "size": f"{size[0]}x{size[1]}",
        "packets": len(packets),
        "seconds": round(seconds, 2) if seconds else None,
        "demux_ms_per_packet_baseline": round(baseline, 4),
        "demux_and_push_ms_per_packet": round(push, 4),
        "push_overhead_ms_per_packet": round(push - baseline, 4),
        "decode_ms_per_frame_same_run": round(decode, 3),
        "push_overhead_share_of_decode": round((push - baseline) / decode, 4),
        "buffer_bytes_per_s": round(held / seconds) if seconds else None,
        "buffer_mb_for_10_s": round(held / seconds * 10 / 1e6, 2) if seconds else None,
        "remux_ms_whole_clip": round(statistics.median(remux), 1),
        "remux_ms_per_video_s": round(statistics.median(remux) / seconds, 2) if seconds else None,
        "plain_copy_ms_whole_clip_baseline": round(statistics.median(copy), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [measure(name, FOOTAGE / file, args.repeat) for name, file in CLIPS.items()]
    print(json.dumps({"benchmark": "clip_cost", "repeat": args.repeat, "clips": results}))


if __name__ == "__main__":
    main()

"""Clips as incident evidence: recorded on the incident, announced, served with byte ranges,
and made end to end by the running service from the real boat clip. Also checks the
snapshot policy on the rules' real events: the stored picture is the best-scored one.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import select

from gridwatch.alerts.incidents.evidence import EvidenceWriter, annotate
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import IncidentStore, open_store
from gridwatch.alerts.store.tables import OutboxRow
from gridwatch.alerts.store.views import Incident
from gridwatch.detectors.backends.factory import create_detector
from gridwatch.detectors.events import Event, dedup_key
from gridwatch.detectors.pipeline import CameraAnalyzer
from gridwatch.ingest.av_source import AvSource
from gridwatch.ingest.camera import CameraRunner
from gridwatch.ingest.packet_buffer import PacketRingBuffer
from gridwatch.settings import parse_config
from gridwatch.settings.clips import ClipSettings
from gridwatch.settings.stream import StreamSettings
from gridwatch.worker.clips import Clip, ClipRecorder, packet_buffer, write_mp4
from tests.support.console import (
    ADMIN_PASSWORD,
    NO_FISHING,
    console_config,
    start_console,
)
from tests.support.grid_data import PASSWORD
from tests.support.incidents import BASE_WALL, event, mot_frame, mot_people
from tests.support.rtsp import RtspTestServer

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp", "tests.support.rtsp_fixtures")

BOAT = "fishing_boat_sea_640x360_30fps.mp4"
ROAD = "cctv_road_cart_320x240_3fps.mp4"


def real_clip(evidence: EvidenceWriter, relative: str, footage_dir: Path) -> Path:
    """The CCTV road clip's own packets remuxed to `relative`, as a recorder writes them."""
    buffer = PacketRingBuffer(max_seconds=3600)
    source = AvSource(str(footage_dir / ROAD), StreamSettings(), "road", live=False)
    source.record_packets(buffer)
    with source:
        for _ in source:
            pass
    path = evidence.path_of(relative)
    write_mp4(buffer.window(float("-inf")), path)
    return path


def open_incident(manager: IncidentManager, footage_dir: Path, t: float = 1.0,
                  camera: str = "cam-mall") -> Incident:
    made = manager.handle(event("start", t, camera=camera, objects={"person": 6},
                                frame=mot_frame(footage_dir, 1, camera=camera),
                                detections=mot_people(footage_dir, 1), score=0.9))
    assert made is not None
    return made


@pytest.fixture
def manager(store: IncidentStore, tmp_path: Path) -> IncidentManager:
    return IncidentManager(store, EvidenceWriter(tmp_path / "evidence"), cooldown_s=60)


def test_attached_clip_is_stored_announced_and_sent_to_sinks(
    manager: IncidentManager, footage_dir: Path,
) -> None:
    incident = open_incident(manager, footage_dir)
    heard: list[Incident] = []
    manager.subscribe(heard.append)
    relative = EvidenceWriter.clip_path(incident.id, incident.start_wall)
    real_clip(manager.evidence, relative, footage_dir)

    changed = manager.attach_clip(incident.id, relative)

    assert changed is not None and changed.clip == relative
    assert changed.version == incident.version + 1
    assert relative == f"{incident.snapshot[:-4]}.mp4", "the clip lies next to the snapshot"
    assert [h.clip for h in heard] == [relative]
    assert manager.store.get_incident(incident.id).clip == relative
    with manager.store.reading() as session:
        last = session.scalars(select(OutboxRow).where(OutboxRow.incident_id == incident.id)
                               .order_by(OutboxRow.id.desc()).limit(1)).one()
    assert last.topic == "incident.updated"
    assert last.payload["incident"]["clip"] == relative


def test_a_second_clip_does_not_replace_the_first_and_is_removed(
    manager: IncidentManager, footage_dir: Path,
) -> None:
    incident = open_incident(manager, footage_dir)
    first = EvidenceWriter.clip_path(incident.id, incident.start_wall)
    real_clip(manager.evidence, first, footage_dir)
    attached = manager.attach_clip(incident.id, first)
    second = EvidenceWriter.clip_path("late-worker-clip", incident.start_wall)
    late = real_clip(manager.evidence, second, footage_dir)
    heard: list[Incident] = []
    manager.subscribe(heard.append)

    assert manager.attach_clip(incident.id, second) is None
    again = manager.attach_clip(incident.id, first)
    assert again is not None and again.version == attached.version
    assert heard == [], "nothing changed, nothing is announced"
    assert manager.store.get_incident(incident.id).clip == first
    assert not late.exists()
    assert manager.evidence.path_of(first).is_file()


def test_worker_clip_finds_its_incident_by_dedup_key_and_event_time(
    manager: IncidentManager, footage_dir: Path,
) -> None:
    # Two incidents of one key: the first ends, the second opens after the cooldown.
    old = open_incident(manager, footage_dir, t=1.0)
    manager.handle(event("end", 5.0))
    new = open_incident(manager, footage_dir, t=200.0)
    assert new.id != old.id
    key = dedup_key("cam-mall", "walkway", "crowd")
    relative = EvidenceWriter.clip_path("clip-from-worker", new.start_wall)
    recorded = real_clip(manager.evidence, relative, footage_dir).read_bytes()

    changed = manager.attach_clip_for(key, BASE_WALL + 200.0, relative)

    assert changed is not None and changed.id == new.id
    # Renamed after the incident, next to its snapshot, like the clips recorded in-process.
    assert changed.clip == EvidenceWriter.clip_path(new.id, new.start_wall)
    assert manager.evidence.path_of(changed.clip).read_bytes() == recorded
    assert not manager.evidence.path_of(relative).exists()
    assert manager.store.get_incident(old.id).clip is None


def test_worker_records_clips_by_dedup_key_that_the_store_owner_attaches(
    manager: IncidentManager, footage_dir: Path, rtsp_server: RtspTestServer,
) -> None:
    # A camera worker records from its buffer knowing only events; the process that owns
    # the store attaches each clip to the incident open at the clip's event.
    settings = ClipSettings(pre_roll_s=0.5, post_roll_s=0.5, max_clip_s=3.0)
    buffer = packet_buffer(settings, "cam-mall", manager.evidence.dir)
    ready: queue.Queue[Clip] = queue.Queue()
    recorder = ClipRecorder(buffer, manager.evidence, settings, on_ready=ready.put)
    runner = CameraRunner("cam-mall", rtsp_server.url("cam"), packet_buffer=buffer).start()
    made = []
    try:
        while buffer.stats()["seconds"] < 1.0:
            time.sleep(0.05)
        for t in (1.0, 200.0):  # the second starts long after the first's cooldown
            start = event("start", t, objects={"person": 6}, frame=mot_frame(footage_dir, 1),
                          detections=mot_people(footage_dir, 1), score=0.9, wall=time.time())
            made.append(manager.handle(start))
            recorder.follow_event(start)
            time.sleep(0.3)
            end = event("end", t + 0.3, wall=time.time())
            manager.handle(end)
            recorder.follow_event(end)
            clip = ready.get(timeout=10)
            assert clip.key == dedup_key("cam-mall", "walkway", "crowd")
            manager.attach_clip_for(clip.key, clip.event_wall, clip.path)
    finally:
        runner.stop()
        buffer.close()

    first, second = (manager.store.get_incident(m.id) for m in made)
    assert first.id != second.id
    assert first.clip and second.clip and first.clip != second.clip
    for incident in (first, second):
        with av.open(str(manager.evidence.path_of(incident.clip))) as container:
            assert 1.0 <= container.duration / 1e6 <= 1.0 + 0.5 + 0.6


def test_a_clip_not_in_the_evidence_dir_is_refused_by_name(
    manager: IncidentManager, footage_dir: Path,
) -> None:
    incident = open_incident(manager, footage_dir)
    with pytest.raises(ValueError, match=r"clip '2025/06/15/nowhere.mp4' of incident"):
        manager.attach_clip(incident.id, "2025/06/15/nowhere.mp4")
    with pytest.raises(ValueError, match="leaves the evidence directory"):
        manager.attach_clip(incident.id, "../../etc/passwd")
    assert manager.store.get_incident(incident.id).clip is None


def test_clip_route_serves_byte_ranges_to_the_incidents_grid_only(
    env: Env, footage_dir: Path,
) -> None:
    incident = open_incident(env.manager, footage_dir, camera="cam-a1")
    no_clip = open_incident(env.manager, footage_dir, camera="cam-a2")
    relative = EvidenceWriter.clip_path(incident.id, incident.start_wall)
    file = real_clip(env.service.evidence, relative, footage_dir)
    env.manager.attach_clip(incident.id, relative)
    data = file.read_bytes()
    mine = env.token_client("op-a", "operator", "twp-a")
    theirs = env.token_client("op-b", "operator", "twp-b")
    url = f"/api/incidents/{incident.id}/clip"

    whole = mine.get(url)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content == data
    part = mine.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert part.content == data[1000:2000]
    tail = mine.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert mine.get(f"/api/incidents/{incident.id}").json()["clip"] == relative

    hidden = theirs.get(url)
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == f"incident {incident.id!r} does not exist"
    missing = mine.get(f"/api/incidents/{no_clip.id}/clip")
    assert missing.status_code == 404 and "no clip yet" in missing.json()["detail"]


def test_boat_incident_in_the_running_service_gets_a_clip_the_console_can_play(
    tmp_path: Path, models_dir: Path, footage_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real boat clip (B-frames) as a camera, the real detector, rules, store and API.
    camera = {"id": "river-boat", "name": "River mouth", "url": str(footage_dir / BOAT),
              "grid_cell": "cell-river-01", "stream": {"loop": True, "realtime": True},
              "zones": [NO_FISHING]}
    config = console_config(tmp_path, models_dir, [camera],
                            clips={"pre_roll_s": 3, "post_roll_s": 2, "max_clip_s": 10})
    console = start_console(config, monkeypatch)
    announced: list[Incident] = []
    heard = threading.Event()

    def listen(incident: Incident) -> None:
        announced.append(incident)
        if incident.clip:
            heard.set()

    console.service.store.subscribe(listen)
    try:
        console.start_cameras()
        assert heard.wait(45), f"no incident got a clip: {announced}"
        incident = next(i for i in announced if i.clip)
        client = httpx.Client(base_url=console.base, timeout=10)
        assert client.post("/api/login", json={"username": "admin",
                                               "password": ADMIN_PASSWORD}).status_code == 200
        body = client.get(f"/api/incidents/{incident.id}").json()
        whole = client.get(f"/api/incidents/{incident.id}/clip")
        first_kb = client.get(f"/api/incidents/{incident.id}/clip",
                              headers={"Range": "bytes=0-1023"})
        console.add_user("op-town", "operator", "twp-old-town")
        other = httpx.Client(base_url=console.base, timeout=10)
        other.post("/api/login", json={"username": "op-town", "password": PASSWORD})
        hidden = other.get(f"/api/incidents/{incident.id}/clip")
    finally:
        console.stop()

    assert incident.kind == "illegal_fishing"
    assert body["clip"] == incident.clip == f"{body['snapshot'][:-4]}.mp4"
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert first_kb.status_code == 206 and first_kb.content == whole.content[:1024]
    assert hidden.status_code == 404
    with av.open(io.BytesIO(whole.content)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 640, 360)
        duration = container.duration / 1e6
        frames = sum(1 for _ in container.decode(video=0))
    # 3 s of pre-roll from a keyframe (the clip's GOP is 3 s), or from the camera's first
    # packet when the incident opened sooner after the start; then 2 s of post-roll.
    start = incident.start
    assert min(start, 3.0) + 2.0 - 0.2 <= duration <= min(start, 3.0 + 3.0) + 2.0 + 0.2
    assert frames == pytest.approx(duration * 30000 / 1001, abs=2)


@dataclass
class BoatRun:
    """The boat clip through the real detection core into a real incident store."""

    sent: list[Event]
    pictures: dict[int, np.ndarray]  # id(event) -> its frame, annotated as the snapshot is
    boat_scores: list[tuple[float, float]]  # (t, best boat score in the zone) per analysis
    images: dict[float, np.ndarray]  # t -> picture of each analysed frame
    incident: Incident
    stored: np.ndarray


@pytest.fixture(scope="module")
def boat_run(models_dir: Path, footage_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             ) -> BoatRun:
    tmp = tmp_path_factory.mktemp("boat-run")
    config = parse_config({"cameras": [{"id": "river-boat", "url": str(footage_dir / BOAT),
                                        "zones": [NO_FISHING]}]}, "test")
    zone_top = NO_FISHING["polygon"][0][1] * 360
    detector = create_detector("yolox_nano_coco_416", models_dir, conf=0.3)
    analyzer = CameraAnalyzer("river-boat", config.cameras[0].zones, detector,
                              analysis_fps=5.0, conf=0.3)
    store = open_store(f"sqlite:///{tmp / 'incidents.db'}")
    manager = IncidentManager(store, EvidenceWriter(tmp / "evidence"), cooldown_s=60)
    run = BoatRun([], {}, [], {}, None, None)  # type: ignore[arg-type]
    try:
        with AvSource(str(footage_dir / BOAT), StreamSettings(), "river-boat",
                      live=False) as source:
            for frame in source:
                result = analyzer.process(frame)
                if result is None:
                    continue
                run.images[frame.t] = frame.bgr()
                run.boat_scores.append((frame.t, max(
                    (d.score for d in result.detections
                     if d.cls == "boat" and (d.box[1] + d.box[3]) / 2 >= zone_top),
                    default=0.0)))
                for ev in result.events:
                    if ev.frame is not None:
                        run.pictures[id(ev)] = annotate(ev.frame.bgr(), ev)
                    run.sent.append(ev)
                    manager.handle(ev)
        for ev in analyzer.finish():
            run.sent.append(ev)
            manager.handle(ev)
        (run.incident,) = store.list_incidents().items
        run.stored = cv2.imread(str(manager.evidence.path_of(run.incident.snapshot)))
    finally:
        store.close()
    return run


def test_boat_incident_keeps_the_best_scored_frame_the_rules_sent(boat_run: BoatRun) -> None:
    sent, stored = boat_run.sent, boat_run.stored
    assert sent[0].phase == "start" and sent[-1].phase == "end"
    best = max((e for e in sent if e.frame is not None), key=lambda e: e.score)
    assert boat_run.incident.evidence_score == pytest.approx(best.score)
    assert any(d.cls == "boat" for d in best.detections)
    # The file is the best event's frame as annotated (JPEG loss only): far closer to it
    # than the same camera's picture a second later is.
    assert stored.shape == (360, 640, 3)
    later = next(image for t, image in boat_run.images.items() if t >= best.t + 1.0)
    same = cv2.PSNR(stored, boat_run.pictures[id(best)])
    assert same > 25.0
    assert same > cv2.PSNR(stored, annotate(later, best)) + 3.0


def test_short_incident_keeps_the_best_frame_seen_while_it_was_open(
    boat_run: BoatRun,
) -> None:
    start, end = boat_run.sent[0].t, boat_run.sent[-1].details["last_seen_t"]
    seen = max(score for t, score in boat_run.boat_scores if start <= t <= end)
    assert boat_run.incident.evidence_score >= 0.95 * seen

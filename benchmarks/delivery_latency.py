"""Delivery latency on loopback: incident committed -> webhook request received, one JSON object.

Incidents are committed one at a time through the real IncidentManager into a real store
(SQLite file by default, or --db-url), and the real dispatcher delivers them to a webhook
receiver in this process (optionally also to Mosquitto and Redis, so the webhook shares the
batch with them). The commit time is taken by a store subscriber registered before the
dispatcher's, so it is the moment the transaction committed. Baseline, measured in the same
run: the same signed POST of the same body sent directly with httpx, i.e. what HTTP on
loopback costs without the outbox.

Usage: .venv/bin/python benchmarks/delivery_latency.py [--incidents 200] [--gap-ms 50]
       [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--all-sinks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from gridwatch.alerts.delivery.dispatcher import OutboxDispatcher
from gridwatch.alerts.delivery.sinks import build_sinks
from gridwatch.alerts.delivery.sinks.base import Message
from gridwatch.alerts.delivery.sinks.webhook import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from gridwatch.alerts.incidents.evidence import EvidenceWriter
from gridwatch.alerts.incidents.manager import IncidentManager
from gridwatch.alerts.store.incident_store import open_store
from gridwatch.detectors.events import Event
from gridwatch.settings.delivery import DeliverySettings
from gridwatch.settings.sinks import MqttSinkSettings, RedisStreamsSinkSettings, WebhookSinkSettings

SECRET_ENV = "GRIDWATCH_BENCH_WEBHOOK_SECRET"


class Receiver:
    """Records the arrival time of every idempotency key."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrivals.setdefault(self.headers.get(KEY_HEADER, ""), time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def stats_ms(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[max(0, int(len(ms) * 0.95) - 1)], 2),
        "max_ms": round(ms[-1], 2),
    }


def event(i: int) -> Event:
    now = time.time()
    return Event(kind="crowd", rule="crowd", camera=f"bench-{i % 4}", zone=f"zone-{i}",
                 phase="start", t=float(i), wall=now, severity="medium",
                 objects={"person": 12}, detections=[], frame=None, score=0.0, details={})


def direct_posts(url: str, secret: bytes, receiver: Receiver, runs: int, gap_s: float,
                 ) -> list[float]:
    """The baseline: the same signed request, sent straight to the receiver."""
    latencies = []
    body = Message.build(0, "x", "incident.opened", "x", {"topic": "incident.opened"},
                         datetime.now(UTC)).body
    with httpx.Client(trust_env=False) as client:
        for i in range(runs):
            key = f"direct-{i}"
            timestamp = str(int(time.time()))
            sent = time.time()
            client.post(url, content=body, headers={
                TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body),
                KEY_HEADER: key, "Content-Type": "application/json",
            })
            latencies.append(receiver.arrivals[key] - sent)
            time.sleep(gap_s)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0,
                        help="pause between commits (latency, not throughput)")
    parser.add_argument("--db-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--all-sinks", action="store_true",
                        help="also deliver to Mosquitto (127.0.0.1:1883) and Redis (6379)")
    args = parser.parse_args()

    secret = secrets.token_hex(16)
    os.environ[SECRET_ENV] = secret
    receiver = Receiver()
    gap_s = args.gap_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = open_store(url)
        committed: dict[str, float] = {}
        store.subscribe(lambda incident: committed.setdefault(
            f"{incident.id}:v{incident.version}", time.time()))
        specs: list = [WebhookSinkSettings(type="webhook", name="hook", url=receiver.url,
                                       secret_env=SECRET_ENV)]
        if args.all_sinks:
            tag = secrets.token_hex(4)
            specs += [MqttSinkSettings(type="mqtt", name="bus", topic_prefix=f"gwbench-{tag}"),
                      RedisStreamsSinkSettings(type="redis_streams", name="stream",
                                           stream=f"gwbench:{tag}", maxlen=1000)]
        dispatcher = OutboxDispatcher(store, build_sinks(specs), DeliverySettings())
        dispatcher.start()
        manager = IncidentManager(store, EvidenceWriter(Path(tmp) / "evidence"), cooldown_s=0)
        started = time.time()
        for i in range(args.incidents):
            manager.handle(event(i))
            time.sleep(gap_s)
        deadline = time.monotonic() + 30
        while (not set(committed) <= set(receiver.arrivals)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        elapsed = time.time() - started
        dispatcher.stop()
        backend = store.engine.dialect.name
        store.close()
    missing = set(committed) - set(receiver.arrivals)
    outbox = [receiver.arrivals[k] - t for k, t in committed.items() if k in receiver.arrivals]
    baseline = direct_posts(receiver.url, secret.encode(), receiver, args.incidents, gap_s)
    print(json.dumps({
        "benchmark": "delivery_latency",
        "what": "incident commit -> webhook request received, loopback",
        "backend": backend,
        "sinks": [s.type for s in specs],
        "incidents": args.incidents,
        "gap_ms": args.gap_ms,
        "outbox_webhook": stats_ms(outbox),
        "baseline_direct_post": stats_ms(baseline),
        "missing": len(missing),
        "elapsed_s": round(elapsed, 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_1m": round(os.getloadavg()[0], 2)},
    }))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

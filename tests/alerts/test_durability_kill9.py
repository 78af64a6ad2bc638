"""Kill -9 during a burst of incidents: nothing committed is lost, every delivery arrives.

The real service (`gridwatch serve`) runs three demo cameras on real footage with rules
tuned to fire constantly (no dwell, immediate end, no cooldown), so it commits several
incident changes a second. It delivers to a real webhook receiver (this process), the real
Mosquitto broker and the real Redis. The webhook receiver answers slowly at first so a
backlog builds up; the service is killed with SIGKILL in the middle of the burst, its
database read as the kill left it, and the service started again. Every incident committed
before the kill must still be there, and every outbox message committed before the kill
must reach each of the three receivers at least once (Redis: exactly once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import Engine, select

from gridwatch.alerts.store.incident_store import make_engine
from gridwatch.alerts.store.tables import IncidentRow, OutboxRow
from tests.support.processes import die_with_parent
from tests.support.receivers import (
    MQTT_HOST,
    MQTT_PORT,
    REDIS_URL,
    MqttSubscriber,
    WebhookReceiver,
    redis_client,
    unique_name,
    wait_until,
)

pytest_plugins = ("tests.support.db",)

SECRET_ENV = "GRIDWATCH_DURABILITY_SECRET"
ROWS_BEFORE_KILL = 25
PENDING_BEFORE_KILL = 8
ALWAYS = "min_dwell_s: 0, end_after_s: 0, update_every_s: 0.5"


def config_text(database_url: str, tmp_path: Path, models_dir: Path, hook_url: str,
                prefix: str, stream: str) -> str:
    person_rule = f"{{type: presence, kind: crowd, classes: [person], min_count: 8, {ALWAYS}}}"
    return textwrap.dedent(f"""
        model: {{name: yolox_nano_coco_416, dir: "{models_dir}", conf: 0.3}}
        storage: {{url: "{database_url}", evidence_dir: "{tmp_path / 'evidence'}"}}
        api: {{host: 127.0.0.1, port: 0}}
        analysis: {{fps: 5}}
        incident_cooldown_s: 0
        delivery:
          node: durability-node
          poll_s: 0.2
          backoff_initial_s: 0.2
          backoff_max_s: 1
          backoff_jitter_s: 0.1
        sinks:
          - {{type: webhook, name: hook, url: "{hook_url}", secret_env: {SECRET_ENV},
              timeout_s: 10}}
          - {{type: mqtt, name: bus, host: {MQTT_HOST}, port: {MQTT_PORT},
              topic_prefix: "{prefix}"}}
          - {{type: redis_streams, name: stream, url: "{REDIS_URL}", stream: "{stream}"}}
        cameras:
          - id: hall
            url: demo:crowd_hall
            grid_cell: cell-a
            zones:
              - {{id: left, polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], rules: [{person_rule}]}}
              - {{id: right, polygon: [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], rules: [{person_rule}]}}
          - id: boat
            url: demo:fishing_boat_sea
            grid_cell: cell-b
            zones:
              - id: water
                polygon: [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]
                rules:
                  - {{type: presence, kind: illegal_fishing, classes: [boat, person], {ALWAYS}}}
          - id: lobby
            url: demo:indoor_people_walk
            grid_cell: cell-b
            zones:
              - id: floor
                polygon: [[0, 0.2], [1, 0.2], [1, 1], [0, 1]]
                rules: [{{type: presence, kind: intrusion, classes: [person], {ALWAYS}}}]
    """)


class Service:
    """`gridwatch serve` as a child process, its output in a log file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._out = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridwatch.cli", "serve", "--config", str(config)],
            cwd=config.parent, stdout=self._out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=die_with_parent,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()


def outbox(engine: Engine) -> list[tuple[str, bool]]:
    with engine.connect() as conn:
        return [(key, delivered is not None) for key, delivered in conn.execute(
            select(OutboxRow.idempotency_key, OutboxRow.delivered_at)
        )]


def incident_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(IncidentRow.id)))


def dead_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.scalars(select(OutboxRow.id).where(OutboxRow.dead)).all())


@pytest.fixture
def redis() -> Iterator[Redis]:
    with redis_client() as client:
        yield client


@pytest.mark.slow
def test_kill_9_in_a_burst_loses_no_committed_incident_and_every_delivery_arrives(
    database_url, tmp_path, footage_dir, models_dir, redis,
):
    secret = b"durability-" + os.urandom(8).hex().encode()
    # Slower than any burst, even on a loaded machine: a backlog builds up to be killed.
    hook = WebhookReceiver(secret, delay_s=2.0)
    prefix, stream = unique_name("gwdur"), unique_name("gwdur:incidents")
    mqtt = MqttSubscriber(prefix)
    config = tmp_path / "gridwatch.yaml"
    config.write_text(config_text(database_url, tmp_path, models_dir, hook.url, prefix, stream))
    env = {**os.environ, SECRET_ENV: secret.decode(), "GRIDWATCH_FOOTAGE_DIR": str(footage_dir),
           "GRIDWATCH_OFFLINE": "1", "GRIDWATCH_ADMIN_PASSWORD": "durability-admin-pw"}
    engine = make_engine(database_url)

    def stream_keys() -> list[str]:
        return [f["idempotency_key"] for _, f in redis.xrange(stream)]

    service = Service(config, tmp_path / "serve.log", env)
    try:
        def burst_under_way() -> bool:
            assert service.alive(), service.tail()
            try:
                rows = outbox(engine)
            except Exception:  # the schema is not migrated yet
                return False
            pending = sum(1 for _, delivered in rows if not delivered)
            return (len(rows) >= ROWS_BEFORE_KILL and pending >= PENDING_BEFORE_KILL
                    and len(hook.accepted()) >= 2)

        wait_until(burst_under_way, 150, f"{ROWS_BEFORE_KILL} outbox rows, "
                   f"{PENDING_BEFORE_KILL} pending", interval_s=0.1)
        service.kill9()
        killed_at = time.time()

        committed_incidents = incident_ids(engine)
        committed = outbox(engine)
        keys = {key for key, _ in committed}
        pending = {key for key, delivered in committed if not delivered}
        received_before_kill = (
            {r.key for r in hook.accepted() if r.at <= killed_at} | mqtt.keys()
            | set(stream_keys())
        )
        assert received_before_kill <= keys, "a receiver got a message the database lacks"
        assert len(pending) >= PENDING_BEFORE_KILL

        hook.delay_s = 0.0
        service = Service(config, tmp_path / "serve.log", env)

        def all_arrived() -> bool:
            assert service.alive(), service.tail()
            return (keys <= hook.accepted_keys() and keys <= mqtt.keys()
                    and keys <= set(stream_keys()))

        wait_until(all_arrived, 90, "every pre-kill message at every receiver", interval_s=0.2)
        wait_until(lambda: {k for k, done in outbox(engine) if done} >= keys, 30,
                   "the pre-kill messages marked delivered")
        service.stop()

        assert committed_incidents <= incident_ids(engine), "a committed incident was lost"
        assert dead_count(engine) == 0
        # The one request cut off by the kill is the only one allowed to fail verification.
        assert all(r.signature_ok for r in hook.requests if r.complete)
        assert sum(1 for r in hook.requests if not r.complete) <= 1
        assert len(stream_keys()) == len(set(stream_keys())), "Redis got a key twice"
        repeats = len(hook.accepted()) - len(hook.accepted_keys())
        print(f"\n{len(committed_incidents)} incidents, {len(keys)} messages committed before "
              f"the kill, {len(pending)} of them pending; webhook repeats after restart: "
              f"{repeats}")
    finally:
        service.stop()
        mqtt.close()
        hook.close()
        engine.dispose()
        redis.delete(stream, *redis.scan_iter(f"{stream}:sent:*"))

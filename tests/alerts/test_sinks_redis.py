"""Redis Streams sink against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from gridwatch.alerts.delivery.sinks import Message, RetryableError
from gridwatch.alerts.delivery.sinks.redis_streams import RedisStreamsSink
from gridwatch.settings.sinks import RedisStreamsSinkSettings
from tests.support.receivers import REDIS_URL, redis_client, unique_name


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    with redis_client() as made:
        yield made


@pytest.fixture
def stream(client: redis.Redis) -> Iterator[str]:
    name = unique_name("gwtest:incidents")
    yield name
    client.delete(name, *client.scan_iter(f"{name}:sent:*"))


def sink_for(stream: str, **options) -> RedisStreamsSink:
    return RedisStreamsSink(RedisStreamsSinkSettings(type="redis_streams", name="stream",
                                                 url=REDIS_URL, stream=stream, **options))


def message(key: str, kind: str = "sand_digging") -> Message:
    incident = {"id": key.split(":")[0], "kind": kind, "grid_cell": "cell-river-01"}
    return Message.build(3, key, "incident.opened", incident["id"],
                         {"topic": "incident.opened", "incident": incident},
                         datetime(2026, 11, 28, tzinfo=UTC))


def test_entry_carries_key_and_routing_fields_and_a_consumer_group_reads_it(client, stream):
    client.xgroup_create(stream, "desk", id="0", mkstream=True)
    sink = sink_for(stream)
    sent = message("inc1:v1")
    sink.send(sent)
    ((_, entries),) = client.xreadgroup("desk", "worker-1", {stream: ">"}, count=10)
    ((entry_id, fields),) = entries
    assert fields == {
        "idempotency_key": "inc1:v1", "topic": "incident.opened", "incident_id": "inc1",
        "grid_cell": "cell-river-01", "kind": "sand_digging", "payload": sent.body.decode(),
    }
    assert json.loads(fields["payload"])["idempotency_key"] == "inc1:v1"
    assert client.xack(stream, "desk", entry_id) == 1
    sink.close()


def test_sending_the_same_key_again_adds_no_second_entry(client, stream):
    sink = sink_for(stream)
    sink.send(message("inc1:v1"))
    sink.send(message("inc1:v1"))
    sink.send(message("inc1:v2"))
    keys = [fields["idempotency_key"] for _, fields in client.xrange(stream)]
    assert keys == ["inc1:v1", "inc1:v2"]
    assert 0 < client.ttl(f"{stream}:sent:inc1:v1") <= 7 * 86400
    sink.close()


def test_stream_is_trimmed_near_maxlen(client, stream):
    sink = sink_for(stream, maxlen=10)
    for i in range(300):
        sink.send(message(f"inc{i}:v1"))
    length = client.xlen(stream)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), never below 10.
    assert 10 <= length <= 110
    assert client.xrevrange(stream, count=1)[0][1]["idempotency_key"] == "inc299:v1"
    sink.close()


def test_redis_down_is_retryable(stream):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = RedisStreamsSink(RedisStreamsSinkSettings(
        type="redis_streams", name="stream", url=f"redis://127.0.0.1:{port}/0", stream=stream,
        timeout_s=0.5,
    ))
    with pytest.raises(RetryableError, match="ConnectionError"):
        sink.send(message("inc1:v1"))
    sink.close()

"""MQTT sink against the real Mosquitto broker on 127.0.0.1:1883."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gridwatch.alerts.delivery.sinks import Message, RetryableError
from gridwatch.alerts.delivery.sinks.mqtt import MqttSink, topic_for
from gridwatch.settings.sinks import MqttSinkSettings
from tests.support.receivers import MQTT_HOST, MQTT_PORT, MqttSubscriber, unique_name, wait_until


@pytest.fixture
def prefix() -> str:
    return unique_name("gwtest")


@pytest.fixture
def subscriber(prefix: str) -> Iterator[MqttSubscriber]:
    try:
        made = MqttSubscriber(prefix)
    except (OSError, AssertionError) as exc:
        pytest.skip(f"no MQTT broker on {MQTT_HOST}:{MQTT_PORT}: {exc}")
    yield made
    made.close()


@pytest.fixture
def sink(prefix: str) -> Iterator[MqttSink]:
    made = MqttSink(MqttSinkSettings(type="mqtt", name="bus", host=MQTT_HOST, port=MQTT_PORT,
                                 topic_prefix=prefix, timeout_s=3))
    yield made
    made.close()


def message(key: str, cell: str | None, kind: str, topic: str = "incident.opened") -> Message:
    incident = {"id": key.split(":")[0], "kind": kind, "grid_cell": cell}
    return Message.build(1, key, topic, incident["id"], {"topic": topic, "incident": incident},
                         datetime(2026, 11, 28, tzinfo=UTC))


def test_topic_per_grid_cell_and_kind_at_qos1_with_the_key(subscriber, sink, prefix):
    sent = [
        message("a:v1", "cell-river-01", "illegal_fishing"),
        message("b:v2", "cell-square-02", "crowd", "incident.status"),
    ]
    for m in sent:
        sink.send(m)
    wait_until(lambda: len(subscriber.messages) == 2, 5, "two MQTT messages")
    got = {m.topic: m for m in subscriber.messages}
    assert set(got) == {f"{prefix}/cell-river-01/illegal_fishing/incident.opened",
                        f"{prefix}/cell-square-02/crowd/incident.status"}
    first = got[f"{prefix}/cell-river-01/illegal_fishing/incident.opened"]
    assert first.qos == 1
    assert first.payload == sent[0].body
    assert first.user_properties == {"idempotency-key": "a:v1"}
    assert first.json()["idempotency_key"] == "a:v1"


def test_camera_outside_every_cell_and_odd_names_still_make_one_level_each(prefix):
    assert topic_for(prefix, message("a:v1", None, "crowd")) == (
        f"{prefix}/unassigned/crowd/incident.opened"
    )
    assert topic_for("gw/", message("a:v1", "cell/7", "sand+digging#")) == (
        "gw/cell_7/sand_digging_/incident.opened"
    )


def test_broker_down_is_retryable_within_the_timeout(prefix):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = MqttSink(MqttSinkSettings(type="mqtt", name="bus", host="127.0.0.1", port=port,
                                 topic_prefix=prefix, timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(RetryableError, match="not connected"):
        sink.send(message("a:v1", "cell", "crowd"))
    assert time.monotonic() - started < 2
    sink.close()

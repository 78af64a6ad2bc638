"""The `sinks:` and `delivery:` sections: field-named errors, secrets only from the environment."""

from __future__ import annotations

import pytest

from gridwatch.alerts.delivery.sinks import build_sinks
from gridwatch.alerts.delivery.sinks.mqtt import MqttSink
from gridwatch.alerts.delivery.sinks.redis_streams import RedisStreamsSink
from gridwatch.alerts.delivery.sinks.webhook import WebhookSink
from gridwatch.settings import ConfigError, parse_config


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_each_sink_type_is_built_from_its_section(monkeypatch):
    monkeypatch.setenv("GW_HOOK_SECRET", "k" * 32)
    config = parse_config({
        "sinks": [
            {"type": "webhook", "name": "centre", "url": "http://127.0.0.1:9/hook",
             "secret_env": "GW_HOOK_SECRET"},
            {"type": "mqtt", "name": "bus", "topic_prefix": "city/gridwatch"},
            {"type": "redis_streams", "name": "stream", "stream": "gw:incidents"},
        ],
        "delivery": {"max_attempts": 5, "backoff_initial_s": 0.5},
    })
    assert config.delivery.max_attempts == 5
    sinks = build_sinks(config.sinks)
    try:
        assert [type(s) for s in sinks] == [WebhookSink, MqttSink, RedisStreamsSink]
        assert [s.name for s in sinks] == ["centre", "bus", "stream"]
        assert sinks[1].target == "mqtt://127.0.0.1:1883/city/gridwatch"
        assert sinks[2].target == "redis://127.0.0.1:6379/gw:incidents"
    finally:
        for sink in sinks:
            sink.close()


def test_no_sinks_and_default_delivery_policy_without_a_section():
    config = parse_config({})
    assert config.sinks == []
    assert config.delivery.max_attempts == 20
    assert config.delivery.backoff_max_s == 600


def test_problems_name_the_sink_and_field():
    found = problems({
        "sinks": [
            {"type": "pager", "name": "x"},
            {"type": "mqtt", "name": "bad name!", "qos": 0},
            {"type": "redis_streams", "name": "r", "url": "redis://:hunter2@127.0.0.1/0"},
            {"type": "mqtt", "name": "m", "password_env": "GW_UNSET_MQTT_PASSWORD"},
        ],
        "delivery": {"backoff_initial_s": 10, "backoff_max_s": 1},
    })
    text = "\n".join(found)
    assert "sinks[0]: Input tag 'pager' found using 'type' does not match" in text
    assert "sinks[1].name: String should match pattern" in text
    assert "sinks[1].qos: Input should be 1 or 2" in text
    assert "sinks[2].url: must not hold a password; name its variable in password_env" in text
    assert ("sinks[3]: password_env: environment variable GW_UNSET_MQTT_PASSWORD "
            "(the MQTT password) is not set or empty") in text
    assert "delivery: backoff_max_s: must be at least backoff_initial_s" in text
    assert "hunter2" not in text


def test_sink_names_must_be_unique():
    found = problems({"sinks": [{"type": "mqtt", "name": "bus"},
                                {"type": "redis_streams", "name": "bus"}]})
    assert found == ["(top level): sinks[1].name: 'bus' is used twice"]

"""Outside systems incidents are delivered to: webhook, MQTT, Redis Streams.

`build_sinks` turns the validated `sinks:` configuration into sink objects; each client
library is imported only when a sink of its type is configured, so a node without MQTT or
Redis does not need their packages.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

from gridwatch.alerts.delivery.sinks.base import (
    DeliveryError,
    Message,
    PermanentError,
    RetryableError,
    Sink,
)
from gridwatch.settings.sinks import MqttSinkSettings, RedisStreamsSinkSettings, WebhookSinkSettings

log = logging.getLogger(__name__)

__all__ = [
    "DeliveryError", "Message", "PermanentError", "RetryableError", "Sink", "SinkUnavailable",
    "build_sink", "build_sinks",
]

AnySinkSettings = WebhookSinkSettings | MqttSinkSettings | RedisStreamsSinkSettings
# type -> (module, class, the extra of pyproject.toml that installs its client library)
_SINKS = {
    "webhook": ("gridwatch.alerts.delivery.sinks.webhook", "WebhookSink", None),
    "mqtt": ("gridwatch.alerts.delivery.sinks.mqtt", "MqttSink", "mqtt"),
    "redis_streams": ("gridwatch.alerts.delivery.sinks.redis_streams", "RedisStreamsSink", "redis"),
}


class SinkUnavailable(RuntimeError):
    """A configured sink whose client library is not installed."""


def build_sink(spec: AnySinkSettings) -> Sink:
    module_name, class_name, extra = _SINKS[spec.type]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SinkUnavailable(
            f"sink {spec.name!r} ({spec.type}) needs the package {exc.name!r}: "
            f"pip install 'gridwatch[{extra}]'"
        ) from None
    sink: Sink = getattr(module, class_name)(spec)
    log.info("delivering to %r", sink)
    return sink


def build_sinks(specs: Sequence[AnySinkSettings]) -> list[Sink]:
    """One sink per spec; those already built are closed if a later one cannot be."""
    sinks: list[Sink] = []
    try:
        for spec in specs:
            sinks.append(build_sink(spec))
    except Exception:
        for sink in sinks:
            sink.close()
        raise
    return sinks

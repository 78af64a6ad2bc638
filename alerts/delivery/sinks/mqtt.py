"""MQTT sink: one topic per grid cell and incident kind, acknowledged by the broker.

Topic: `<topic_prefix>/<grid cell or "unassigned">/<kind>/<topic>`, e.g.
`gridwatch/cell-river-01/illegal_fishing/incident.opened`, so a grid centre subscribes to
`gridwatch/cell-river-01/#` and a dashboard of one kind to `gridwatch/+/crowd/#`. Messages go
out with QoS 1 (or 2) and count as delivered only when the broker's PUBACK (PUBCOMP) came
back with a success code. MQTT 5 is used so the idempotency key also travels as a user
property; the JSON body carries it too.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridwatch.alerts.delivery.sinks.base import Message, PermanentError, RetryableError, Sink
from gridwatch.settings.sinks import MqttSinkSettings, read_secret

log = logging.getLogger(__name__)

UNASSIGNED = "unassigned"
_NOT_A_LEVEL = re.compile(r"[/+#\x00]")


def topic_level(value: object) -> str:
    """A value usable as one topic level: no separator, no wildcard, never empty."""
    text = _NOT_A_LEVEL.sub("_", str(value)) if value not in (None, "") else ""
    return text or "_"


def topic_for(prefix: str, message: Message) -> str:
    incident = message.incident
    cell = incident.get("grid_cell") or UNASSIGNED
    kind = incident.get("kind") or "_"
    return "/".join((prefix.rstrip("/"), topic_level(cell), topic_level(kind),
                     topic_level(message.topic)))


class MqttSink(Sink):
    """A connection kept open by paho's network thread, which also reconnects."""

    type = "mqtt"

    def __init__(self, spec: MqttSinkSettings) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self._connected = threading.Event()
        self._refused: str | None = None
        self._acks: dict[int, ReasonCode] = {}
        self._acks_lock = threading.Lock()
        client_id = spec.client_id or f"gridwatch-{spec.name}-{secrets.token_hex(4)}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5)
        if spec.username:
            password = read_secret(spec.password_env) if spec.password_env else None
            self._client.username_pw_set(spec.username, password)
        if spec.tls:
            self._client.tls_set(ca_certs=str(spec.ca_file) if spec.ca_file else None)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        # Connecting in the background: a broker that is down must not stop the service
        # from starting; messages wait in the outbox until it is back.
        self._client.connect_async(spec.host, spec.port, keepalive=spec.keepalive_s)
        self._client.loop_start()

    @property
    def target(self) -> str:
        scheme = "mqtts" if self.spec.tls else "mqtt"
        return f"{scheme}://{self.spec.host}:{self.spec.port}/{self.spec.topic_prefix}"

    def _on_connect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                    reason_code: ReasonCode, _properties: object) -> None:
        if reason_code.is_failure:
            self._refused = f"broker {self.target} refused the connection: {reason_code}"
            log.error("mqtt sink %r: %s", self.name, self._refused)
            return
        self._refused = None
        self._connected.set()
        log.info("mqtt sink %r connected to %s", self.name, self.target)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                       reason_code: ReasonCode, _properties: object) -> None:
        if self._connected.is_set():
            log.warning("mqtt sink %r disconnected from %s: %s", self.name, self.target,
                        reason_code)
        self._connected.clear()

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int,
                    reason_code: ReasonCode, _properties: object) -> None:
        with self._acks_lock:
            self._acks[mid] = reason_code

    def send(self, message: Message) -> None:
        if not self._connected.wait(self.spec.timeout_s):
            raise RetryableError(self._refused or f"not connected to broker {self.target}")
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = ("idempotency-key", message.key)
        properties.ContentType = "application/json"
        topic = topic_for(self.spec.topic_prefix, message)
        info = self._client.publish(topic, message.body, qos=self.spec.qos,
                                    properties=properties)
        try:
            info.wait_for_publish(self.spec.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise RetryableError(f"publish to {self.target} failed: {exc}") from None
        if not info.is_published():
            raise RetryableError(f"no acknowledgement from {self.target} within the timeout")
        with self._acks_lock:
            reason = self._acks.pop(info.mid, None)
        if reason is not None and reason.is_failure:
            raise PermanentError(f"broker {self.target} refused topic {topic}: {reason}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

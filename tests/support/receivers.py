"""Real receivers for delivery tests: an HTTP webhook server, an MQTT subscriber, Redis reads.

The webhook receiver checks signatures with its own code, written as docs/sinks.md tells a
receiver to, not with the sink's signing function, so a wrong signature cannot pass by
being wrong the same way on both sides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
REDIS_URL = "redis://127.0.0.1:6379/0"


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def verify_signature(secret: bytes, headers: dict[str, str], body: bytes,
                     max_age_s: float = 300) -> bool:
    """The receiver side of docs/sinks.md."""
    timestamp = headers.get("x-gridwatch-timestamp", "")
    signature = headers.get("x-gridwatch-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age_s:
        return False
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass(frozen=True)
class Request:
    at: float
    status: int
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    complete: bool  # False: the sender died while sending the body

    @property
    def key(self) -> str:
        return self.headers.get("x-gridwatch-idempotency-key", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each POST with the next status of `script`, then `status`; records them all.

    A request whose signature does not verify is answered 401 whatever the script says.
    `delay_s` slows every answer down, which is how a test builds up a backlog.
    """

    secret: bytes
    status: int = 200
    script: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                headers = {k.lower(): v for k, v in self.headers.items()}
                signed = verify_signature(receiver.secret, headers, body)
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.status
                    if not signed:
                        status = 401  # as a real receiver must: never act on it
                    receiver.requests.append(Request(
                        time.time(), status, headers, body, signed, len(body) == length,
                    ))
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0" if status < 300 else "12")
                self.end_headers()
                if status >= 300:
                    self.wfile.write(b"bad request!")

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def accepted(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def accepted_keys(self) -> set[str]:
        return {r.key for r in self.accepted()}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass(frozen=True)
class MqttMessage:
    at: float
    topic: str
    payload: bytes
    qos: int
    user_properties: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttSubscriber:
    """Subscribed (SUBACK received) to `<prefix>/#` on the real broker before it returns."""

    def __init__(self, prefix: str, timeout_s: float = 5.0) -> None:
        self.prefix = prefix
        self.messages: list[MqttMessage] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"test-sub-{secrets.token_hex(4)}",
                                   protocol=mqtt.MQTTv5)
        self._client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(MQTT_HOST, MQTT_PORT)
        self._client.loop_start()
        if not subscribed.wait(timeout_s):
            self.close()
            raise AssertionError(f"no SUBACK from {MQTT_HOST}:{MQTT_PORT} within {timeout_s} s")

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        with self._lock:
            self.messages.append(MqttMessage(time.time(), msg.topic, msg.payload, msg.qos,
                                             props))

    def keys(self) -> set[str]:
        with self._lock:
            return {m.json()["idempotency_key"] for m in self.messages}

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@contextmanager
def redis_client() -> Iterator[redis.Redis]:
    """A client of the real Redis; the test is skipped, saying why, when none answers."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    try:
        yield client
    finally:
        client.close()

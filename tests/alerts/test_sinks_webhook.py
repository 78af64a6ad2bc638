"""Webhook sink against a real HTTP server: signature, headers, and what each answer means."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridwatch.alerts.delivery.sinks import Message, PermanentError, RetryableError
from gridwatch.alerts.delivery.sinks.webhook import WebhookSink
from gridwatch.settings import ConfigError, parse_config
from gridwatch.settings.sinks import WebhookSinkSettings
from tests.support.receivers import WebhookReceiver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sinks.md"
SECRET_ENV = "GRIDWATCH_TEST_HOOK_SECRET"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    value = "whsec-" + secrets.token_hex(16)
    monkeypatch.setenv(SECRET_ENV, value)
    return value.encode()


@pytest.fixture
def receiver(secret: bytes) -> Iterator[WebhookReceiver]:
    made = WebhookReceiver(secret)
    yield made
    made.close()


def sink_for(url: str, timeout_s: float = 2.0) -> WebhookSink:
    return WebhookSink(WebhookSinkSettings(type="webhook", name="centre", url=url,
                                       secret_env=SECRET_ENV, timeout_s=timeout_s))


def message(key: str = "01a2:v1") -> Message:
    incident = {"id": "01a2", "kind": "crowd", "grid_cell": "cell-a", "version": 1}
    return Message.build(7, key, "incident.opened", "01a2",
                         {"topic": "incident.opened", "incident": incident},
                         datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


def docs_verify():
    """The receiver snippet of docs/sinks.md, run as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    source = next(b for b in blocks if "def verify(" in b)
    namespace: dict = {}
    exec(compile(source, str(DOCS), "exec"), namespace)
    return namespace["verify"]


def test_signature_verifies_with_the_documented_recipe_and_nothing_else(secret, receiver):
    sink = sink_for(receiver.url)
    sink.send(message())
    (request,) = receiver.requests
    verify = docs_verify()
    assert verify(secret, request.headers, request.body)
    assert not verify(b"another secret", request.headers, request.body)
    assert not verify(secret, request.headers, request.body.replace(b"crowd", b"crown"))
    stale = {**request.headers, "x-gridwatch-timestamp": str(int(time.time()) - 3600)}
    assert not verify(secret, stale, request.body)
    sink.close()


def test_request_carries_key_topic_timestamp_and_the_exact_body(secret, receiver):
    sink = sink_for(receiver.url)
    sent = message("01a2:v3")
    before = int(time.time())
    sink.send(sent)
    (request,) = receiver.requests
    assert request.body == sent.body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-gridwatch-idempotency-key"] == "01a2:v3"
    assert request.headers["x-gridwatch-topic"] == "incident.opened"
    timestamp = request.headers["x-gridwatch-timestamp"]
    assert before <= int(timestamp) <= int(time.time())
    mac = hmac.new(secret, f"{timestamp}.".encode() + sent.body, hashlib.sha256).hexdigest()
    assert request.headers["x-gridwatch-signature"] == f"sha256={mac}"
    body = request.json()
    assert body["idempotency_key"] == "01a2:v3"
    assert body["created_at"] == "2026-11-28T12:00:00+00:00"
    sink.close()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_refusal_is_permanent_with_the_receivers_reason(receiver, status):
    receiver.status = status
    sink = sink_for(receiver.url)
    with pytest.raises(PermanentError, match=f"HTTP {status} from .*bad request!"):
        sink.send(message())
    sink.close()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_overload_and_server_errors_are_retryable(receiver, status):
    receiver.status = status
    receiver.headers = {"Retry-After": "7"}
    sink = sink_for(receiver.url)
    with pytest.raises(RetryableError, match=f"HTTP {status}") as caught:
        sink.send(message())
    assert caught.value.retry_after_s == 7.0
    sink.close()


def test_slow_receiver_is_a_retryable_timeout_within_the_configured_time(receiver):
    receiver.delay_s = 2.0
    sink = sink_for(receiver.url, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RetryableError, match="within the timeout"):
        sink.send(message())
    assert time.monotonic() - started < 1.5
    sink.close()


def test_nothing_listening_is_retryable(secret):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = sink_for(f"http://127.0.0.1:{port}/hook", timeout_s=1)
    with pytest.raises(RetryableError, match="ConnectError"):
        sink.send(message())
    sink.close()


def test_secret_appears_in_no_log_error_or_repr(secret, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    sink = sink_for(receiver.url)
    texts = [repr(sink), sink.target]
    for status in (400, 503):
        receiver.status = status
        with pytest.raises((PermanentError, RetryableError)) as caught:
            sink.send(message())
        texts.append(str(caught.value))
    sink.close()
    texts.append(caplog.text)
    assert all(secret.decode() not in text for text in texts)


def test_missing_secret_is_a_configuration_error_naming_the_field(monkeypatch):
    monkeypatch.delenv("GRIDWATCH_NOT_SET_SECRET", raising=False)
    with pytest.raises(ConfigError) as caught:
        parse_config({"sinks": [{"type": "webhook", "name": "centre",
                                 "url": "https://alerts.example.org/hook",
                                 "secret_env": "GRIDWATCH_NOT_SET_SECRET"}]})
    (problem,) = caught.value.problems
    assert problem.startswith("sinks[0]: secret_env: environment variable "
                              "GRIDWATCH_NOT_SET_SECRET")


def test_url_with_credentials_or_other_scheme_is_refused(secret):
    with pytest.raises(ConfigError) as caught:
        parse_config({"sinks": [
            {"type": "webhook", "name": "a", "url": "https://u:pw@example.org/x",
             "secret_env": SECRET_ENV},
            {"type": "webhook", "name": "b", "url": "ftp://example.org/x",
             "secret_env": SECRET_ENV},
        ]})
    problems = caught.value.problems
    assert problems[0].startswith("sinks[0].url: must not hold a user or password")
    assert problems[1].startswith("sinks[1].url: must be an http:// or https:// URL")
    assert all("pw@" not in p for p in problems)

"""Webhook sink: POST the JSON body, signed so the receiver can trust and date it.

The signature is HMAC-SHA256 over `<timestamp>.<body>` with the sink's secret, sent as
`X-Gridwatch-Signature: sha256=<hex>` beside `X-Gridwatch-Timestamp` (unix seconds): the
receiver recomputes it, and rejects old timestamps to stop replays. 2xx means delivered;
408, 429 and 5xx are retried (honouring a numeric Retry-After); any other answer is a
refusal of the message and goes to the dead-letter list with the receiver's reason.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

import httpx

from gridwatch.alerts.delivery.sinks.base import (
    Message,
    PermanentError,
    RetryableError,
    Sink,
    shorten,
)
from gridwatch.settings.sinks import WebhookSinkSettings, read_secret

SIGNATURE_HEADER = "X-Gridwatch-Signature"
TIMESTAMP_HEADER = "X-Gridwatch-Timestamp"
KEY_HEADER = "X-Gridwatch-Idempotency-Key"
TOPIC_HEADER = "X-Gridwatch-Topic"
RETRYABLE_STATUS = frozenset({408, 429})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Gridwatch-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class WebhookSink(Sink):
    type = "webhook"

    def __init__(self, spec: WebhookSinkSettings) -> None:
        super().__init__(spec.name)
        self.url = spec.url
        self._secret = read_secret(spec.secret_env).encode()
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_s), follow_redirects=False,
            # Proxy variables of the environment must not reroute alerts.
            trust_env=False,
            headers={"User-Agent": "gridwatch-webhook/1"},
        )

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def send(self, message: Message) -> None:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, message.body),
            KEY_HEADER: message.key,
            TOPIC_HEADER: message.topic,
        }
        try:
            response = self._client.post(self.url, content=message.body, headers=headers)
        except httpx.TimeoutException:
            raise RetryableError(f"no answer from {self.target} within the timeout") from None
        except httpx.HTTPError as exc:
            raise RetryableError(f"{self.target}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"HTTP {status} from {self.target}: {shorten(response.text) or '(empty)'}"
        if status >= 500 or status in RETRYABLE_STATUS:
            raise RetryableError(reason, _retry_after(response))
        raise PermanentError(reason)

    def close(self) -> None:
        self._client.close()

"""What every sink is: a named destination that takes one outbox message or says why not.

Sinks only deliver; retries, backoff and the dead-letter list belong to the dispatcher
(`gridwatch.alerts.delivery.dispatcher`). A sink tells the two failures apart because they are
handled
differently: a `RetryableError` (receiver down, timeout, overload) is tried again later,
a `PermanentError` (the receiver refused this message) goes to the dead-letter list at once.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

# Longest receiver answer kept in an error: enough to say why, never a whole error page.
MAX_REASON_CHARS = 300


class DeliveryError(Exception):
    """A sink did not take a message; the text says why and never holds a secret."""


class RetryableError(DeliveryError):
    """Try again later; `retry_after_s` is the receiver's own hint, when it gave one."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentError(DeliveryError):
    """The receiver refused the message itself: sending it again would fail the same way."""


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Message:
    """One outbox row as sinks see it.

    `body` is the JSON every sink sends: the outbox payload (topic, incident, extras) plus the
    idempotency key and the time the change was committed. It is built once, so a retry of
    the same row sends the same bytes and a receiver may compare them.
    """

    outbox_id: int
    key: str
    topic: str
    incident_id: str
    payload: Mapping[str, Any]
    created_at: datetime
    body: bytes

    @classmethod
    def build(
        cls, outbox_id: int, key: str, topic: str, incident_id: str,
        payload: Mapping[str, Any], created_at: datetime,
    ) -> Message:
        document = {**payload, "idempotency_key": key, "created_at": created_at.isoformat()}
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(outbox_id, key, topic, incident_id, payload, created_at, body)

    @property
    def incident(self) -> Mapping[str, Any]:
        value = self.payload.get("incident")
        return value if isinstance(value, Mapping) else {}


class Sink(ABC):
    """A configured destination; `name` is what delivery records and logs call it."""

    type: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    @abstractmethod
    def target(self) -> str:
        """Where messages go, safe to log (no password, no secret)."""

    @abstractmethod
    def send(self, message: Message) -> None:
        """Deliver and return once the receiver acknowledged; raise a `DeliveryError` if not."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the sink is not used afterwards."""

    def __repr__(self) -> str:
        return f"{self.type} sink {self.name!r} ({self.target})"

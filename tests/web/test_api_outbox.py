"""The outbox routes: administrators see dead letters in their scope and send them again."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest

from gridwatch.alerts.delivery.dispatcher import OutboxDispatcher
from gridwatch.alerts.delivery.sinks.webhook import WebhookSink
from gridwatch.settings.delivery import DeliverySettings
from gridwatch.settings.sinks import WebhookSinkSettings
from tests.support.incidents import event
from tests.support.receivers import WebhookReceiver, wait_until

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)

SECRET_ENV = "GRIDWATCH_TEST_OUTBOX_API_SECRET"


def test_dead_letters_are_listed_in_scope_and_retried_by_an_admin(
    env: Env, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = secrets.token_urlsafe(16)
    monkeypatch.setenv(SECRET_ENV, secret)
    receiver = WebhookReceiver(secret.encode(), status=400)
    sink = WebhookSink(WebhookSinkSettings(type="webhook", name="centre", url=receiver.url,
                                       secret_env=SECRET_ENV, timeout_s=2))
    dispatcher = OutboxDispatcher(env.store, [sink], DeliverySettings(poll_s=0.05,
                                                                  backoff_jitter_s=0.0))
    env.service.dispatcher = dispatcher  # type: ignore[attr-defined]
    dispatcher.start()
    try:
        env.manager.handle(event("start", 1.0, camera="cam-a1", objects={"person": 1}))
        env.manager.handle(event("start", 2.0, camera="cam-b1", objects={"person": 1}))
        city = env.token_client("root", "admin", "city")
        township_b = env.token_client("admin-b", "admin", "twp-b")
        operator = env.token_client("op", "operator", "city")

        wait_until(lambda: city.get("/api/outbox").json()["dead"] == 2, 10, "two dead letters")
        assert operator.get("/api/outbox/dead").status_code == 403
        assert len(city.get("/api/outbox/dead").json()) == 2
        (only_b,) = township_b.get("/api/outbox/dead").json()
        assert only_b["sinks"][0]["dead"] is True and "HTTP 400" in only_b["last_error"]
        letters_a = [d for d in city.get("/api/outbox/dead").json() if d["id"] != only_b["id"]]
        assert township_b.post(f"/api/outbox/dead/{letters_a[0]['id']}/retry").status_code == 404

        receiver.status = 200
        again = township_b.post(f"/api/outbox/dead/{only_b['id']}/retry")
        assert again.status_code == 200 and again.json()["dead"] is False
        wait_until(lambda: only_b["idempotency_key"] in receiver.accepted_keys(), 10,
                   "the retried message at the webhook")
        assert township_b.post(f"/api/outbox/dead/{only_b['id']}/retry").status_code == 409
        assert city.get("/api/outbox").json()["dead"] == 1
    finally:
        dispatcher.stop(timeout_s=10)
        receiver.close()

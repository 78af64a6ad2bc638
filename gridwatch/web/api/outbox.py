"""The delivery outbox for administrators: what is waiting, and the dead-letter list.

A dead letter is a message a sink refused for good (or after every retry); once the cause
is fixed (receiver up, credentials corrected) an administrator sends it again from here.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from gridwatch.accounts.store import User
from gridwatch.alerts.store import outbox_queue
from gridwatch.web.api.schemas import DeadLetterBody, OutboxSummary, errors
from gridwatch.web.auth import Admin

log = logging.getLogger(__name__)


def _cells(admin: User) -> set[str] | None:
    return None if admin.cells is None else set(admin.cells)


def build(service: Any) -> APIRouter:
    router = APIRouter(prefix="/api/outbox", tags=["delivery"])

    @router.get("", response_model=OutboxSummary)
    def summary(_admin: Admin) -> dict[str, Any]:
        """How many messages are pending, delivered and dead, and whether a dispatcher runs."""
        return {**outbox_queue.counts(service.store),
                "dispatcher": getattr(service, "dispatcher", None) is not None}

    @router.get("/dead", response_model=list[DeadLetterBody])
    def dead_letters(
        admin: Admin,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Dead messages in the administrator's scope, newest first."""
        letters = outbox_queue.list_dead_letters(
            service.store, grid_cells=_cells(admin), limit=limit, before_id=before_id,
        )
        return [d.to_api() for d in letters]

    @router.post("/dead/{outbox_id}/retry", response_model=DeadLetterBody, responses=errors({
        404: "No such message in your scope", 409: "The message is not a dead letter",
    }))
    def retry(outbox_id: int, admin: Admin) -> dict[str, Any]:
        """Put a dead message back in the queue for every sink that has not taken it."""
        try:
            letter = outbox_queue.retry_dead_letter(service.store, outbox_id,
                                                    grid_cells=_cells(admin))
        except outbox_queue.OutboxMessageNotFound as err:
            raise HTTPException(404, str(err)) from None
        except outbox_queue.NotDeadLetter as err:
            raise HTTPException(409, str(err)) from None
        dispatcher = getattr(service, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.wake()
        log.info("outbox message %d sent again by %s", outbox_id, admin.username)
        return letter.to_api()

    return router

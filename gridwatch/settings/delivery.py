"""The `delivery:` section: how the outbox dispatcher works through the queue."""

from __future__ import annotations

from pydantic import Field, model_validator

from gridwatch.settings.base import StrictSettings


class DeliverySettings(StrictSettings):
    """How the outbox dispatcher works through the queue (the `delivery:` section).

    With the defaults a message is tried about 20 times over roughly an hour and three
    quarters (1, 2, 4, ... s, then every 10 minutes) before it becomes a dead letter.
    """

    node: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="This node's name in leases (default: the host name); unique per node",
    )
    batch_size: int = Field(default=100, ge=1, le=1000)
    poll_s: float = Field(default=1.0, ge=0.05, le=60,
                          description="Longest idle wait; commits on this node wake it at once")
    lease_s: float = Field(default=60.0, ge=5, le=3600,
                           description="How long a claimed batch is reserved to this node")
    batch_time_s: float = Field(
        default=2.0, gt=0, le=600,
        description="Longest a batch waits for its slowest sink; what that sink did not "
                    "reach goes in the next batch, so a slow sink does not hold up the others",
    )
    max_attempts: int = Field(default=20, ge=1, le=1000)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=600.0, gt=0, le=86400)
    backoff_jitter_s: float = Field(default=1.0, ge=0, le=3600)
    keep_delivered_days: float | None = Field(
        default=7.0, gt=0, description="Delivered messages are deleted after this (null: kept)",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> DeliverySettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s: must be at least backoff_initial_s")
        if self.lease_s < 2 * self.batch_time_s:
            raise ValueError("lease_s: must be at least twice batch_time_s")
        return self

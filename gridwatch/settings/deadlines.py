"""The `deadlines:` section: how long an incident may wait to be acknowledged and resolved
before it escalates up the grid, by default and per incident kind."""

from __future__ import annotations

from pydantic import Field, model_validator

from gridwatch.settings.base import StrictSettings


class DeadlineSettings(StrictSettings):
    acknowledge_s: float = Field(gt=0, description="Seconds from start to leaving `new`")
    resolve_s: float = Field(gt=0, description="Seconds from start to resolved/false_alarm")

    @model_validator(mode="after")
    def _resolve_after_acknowledge(self) -> DeadlineSettings:
        if self.resolve_s < self.acknowledge_s:
            raise ValueError(f"resolve_s: {self.resolve_s} is shorter than acknowledge_s "
                             f"({self.acknowledge_s}); an incident is resolved after it is seen")
        return self


class KindDeadlineSettings(StrictSettings):
    """A kind's own deadlines; an omitted one is the default's."""

    acknowledge_s: float | None = Field(default=None, gt=0)
    resolve_s: float | None = Field(default=None, gt=0)


class DeadlinesSettings(StrictSettings):
    """The `deadlines:` section."""

    default: DeadlineSettings = Field(default_factory=lambda: DeadlineSettings(acknowledge_s=300,
                                                               resolve_s=3600))
    kinds: dict[str, KindDeadlineSettings] = Field(default_factory=dict)
    check_interval_s: float = Field(default=15.0, gt=0, le=3600,
                                    description="How often the escalation job runs")

    @model_validator(mode="after")
    def _kinds_are_consistent(self) -> DeadlinesSettings:
        for kind in self.kinds:
            got = self.for_kind(kind)
            if got.resolve_s < got.acknowledge_s:
                raise ValueError(f"kinds.{kind}: resolve_s {got.resolve_s} is shorter than "
                                 f"acknowledge_s {got.acknowledge_s}")
        return self

    def for_kind(self, kind: str) -> DeadlineSettings:
        own = self.kinds.get(kind)
        if own is None:
            return self.default
        return DeadlineSettings.model_construct(
            acknowledge_s=own.acknowledge_s or self.default.acknowledge_s,
            resolve_s=own.resolve_s or self.default.resolve_s,
        )

"""Running cost records of the detection core's stages, for the API and the benchmarks.

An exponentially weighted mean follows the current cost (scene changes, machine load) while
the plain mean over the whole run is what benchmarks compare.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RunningMs:
    """Milliseconds per call: count, EWMA (weight `alpha` for the newest) and mean."""

    count: int = 0
    ewma: float = 0.0
    total: float = 0.0
    alpha: float = 0.05

    def add(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.ewma = ms if self.count == 1 else self.ewma + self.alpha * (ms - self.ewma)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def to_json(self) -> dict:
        mean = self.mean
        return {"frames": self.count, "ms_ewma": round(self.ewma, 3),
                "ms_mean": None if mean is None else round(mean, 3)}

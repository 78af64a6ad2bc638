"""Reconnect delays: exponential with jitter, capped, slower for answers a retry won't fix.

The policy objects are tenacity's wait strategies; the camera loop calls them directly
because it needs to reset after a good session and to switch policy by failure kind,
which a `Retrying` loop around one call does not model.
"""

from __future__ import annotations

import tenacity
from gridwatch.ingest.options import StreamOptions
from gridwatch.ingest.state import REJECTED, CameraState


def _policy(initial: float, maximum: float) -> tenacity.wait.wait_base:
    # delay(n) = initial * 2**(n-1) + U(0, initial), capped: the jitter spreads a fleet of
    # cameras that lost the same server, and never makes a delay shorter than the last.
    return tenacity.wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)


class Backoff:
    def __init__(self, options: StreamOptions) -> None:
        self._normal = _policy(options.backoff_initial_s, options.backoff_max_s)
        self._rejected = _policy(options.rejected_backoff_initial_s,
                                 options.rejected_backoff_max_s)
        self.failures = 0

    def next_delay(self, state: CameraState) -> float:
        """Seconds to wait before the next attempt after a failure ending in `state`."""
        self.failures += 1
        call = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        call.attempt_number = self.failures
        policy = self._rejected if state in REJECTED else self._normal
        return float(policy(call))

    def reset(self) -> None:
        """A session delivered frames: the next outage starts from the shortest wait."""
        self.failures = 0

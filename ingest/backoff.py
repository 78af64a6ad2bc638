"""Reconnect delays: exponential with jitter, capped, slower for answers a retry won't fix.

The delay maths is the common `ExponentialBackoff`; this keeps the camera loop's state:
the count resets after a good session, and the policy switches by failure kind.
"""

from __future__ import annotations

from gridwatch.common.backoff import ExponentialBackoff
from gridwatch.ingest.state import REJECTED, CameraState
from gridwatch.settings.stream import StreamSettings


def _policy(initial: float, maximum: float) -> ExponentialBackoff:
    # Jitter of one initial step spreads a fleet of cameras that lost the same server, and
    # never makes a delay shorter than the last.
    return ExponentialBackoff(initial, maximum, jitter_s=initial)


class ReconnectDelays:
    """One camera's reconnect waits: its failures in a row and the policy for the failure kind.

    Not a second backoff: the delay for a count is `ExponentialBackoff`'s; this is the state the
    camera loop keeps around it.
    """

    def __init__(self, options: StreamSettings) -> None:
        self._normal = _policy(options.backoff_initial_s, options.backoff_max_s)
        self._rejected = _policy(options.rejected_backoff_initial_s,
                                 options.rejected_backoff_max_s)
        self.failures = 0

    def next_delay(self, state: CameraState) -> float:
        """Seconds to wait before the next attempt after a failure ending in `state`."""
        self.failures += 1
        policy = self._rejected if state in REJECTED else self._normal
        return policy.delay(self.failures)

    def reset(self) -> None:
        """A session delivered frames: the next outage starts from the shortest wait."""
        self.failures = 0

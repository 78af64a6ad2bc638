"""How long to wait before trying again: exponential with jitter, capped.

Every caller keeps its own count of failures in a row, because each decides differently when
that count starts again: a camera after a session that delivered frames, a worker supervisor
after a worker that ran long enough, the outbox in the database between delivery rounds. So
this is the delay for a given count, not a retry loop; the formula is that of tenacity's
`wait_exponential_jitter`, whose strategies can only be evaluated inside a retry loop's call
state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """`initial_s * 2**(n-1)` plus a random `0..jitter_s` after the n-th failure, at most `max_s`.

    The jitter spreads out a fleet of clients that failed together; with `jitter_s` at most
    `initial_s`, a longer run of failures never waits less.
    """

    initial_s: float
    max_s: float
    jitter_s: float

    def delay(self, failures: int, requested_s: float | None = None) -> float:
        """Seconds to wait after `failures` failures in a row (0 counts as the first).

        `requested_s` is a wait the other side asked for (an HTTP Retry-After): honoured when
        longer, but never beyond `max_s`.
        """
        try:
            grown = self.initial_s * 2.0 ** (max(failures, 1) - 1)
        except OverflowError:
            grown = self.max_s
        delay = min(grown + random.uniform(0, self.jitter_s), self.max_s)
        if requested_s is not None:
            delay = max(delay, min(requested_s, self.max_s))
        return delay

"""The one backoff: exponential growth, bounded jitter, the cap, and a requested wait."""

from __future__ import annotations

import itertools

from gridwatch.common.backoff import ExponentialBackoff


def test_delay_doubles_with_bounded_jitter_up_to_the_cap() -> None:
    backoff = ExponentialBackoff(initial_s=1.0, max_s=10.0, jitter_s=0.5)
    for failures in range(1, 8):
        base = min(2.0 ** (failures - 1), 10.0)
        for _ in range(20):
            assert base <= backoff.delay(failures) <= min(base + 0.5, 10.0)


def test_no_failure_yet_waits_as_the_first_and_a_huge_count_waits_the_cap() -> None:
    backoff = ExponentialBackoff(initial_s=2.0, max_s=60.0, jitter_s=0.0)

    assert backoff.delay(0) == backoff.delay(1) == 2.0
    assert backoff.delay(100_000) == 60.0


def test_jitter_within_the_first_step_never_makes_a_later_delay_shorter() -> None:
    backoff = ExponentialBackoff(initial_s=1.0, max_s=30.0, jitter_s=1.0)
    for _ in range(20):
        delays = [backoff.delay(n) for n in range(1, 9)]
        assert all(b >= a for a, b in itertools.pairwise(delays))


def test_a_requested_wait_is_honoured_when_longer_but_not_beyond_the_cap() -> None:
    backoff = ExponentialBackoff(initial_s=1.0, max_s=10.0, jitter_s=0.0)

    assert backoff.delay(1, requested_s=5.0) == 5.0
    assert backoff.delay(1, requested_s=3600.0) == 10.0
    assert backoff.delay(3, requested_s=0.5) == 4.0

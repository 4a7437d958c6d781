from __future__ import annotations

import datetime as dt

import pytest

from pki.clock import FixedClock
from pki.errors import RateLimited
from pki.ratelimit import RateLimiter


def test_bucket_refills_with_time_and_is_per_key() -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    rl = RateLimiter(2.0, 3, clock=clock)
    assert [rl.allow("a") for _ in range(4)] == [True, True, True, False]
    assert rl.allow("b")
    with pytest.raises(RateLimited):
        rl.check("a")
    clock.advance(dt.timedelta(seconds=1))  # +2 tokens
    assert [rl.allow("a") for _ in range(3)] == [True, True, False]


def test_memory_is_bounded() -> None:
    rl = RateLimiter(1.0, 1, max_keys=10)
    for i in range(1000):
        rl.allow(str(i))
    assert len(rl) == 10

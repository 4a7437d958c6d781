"""Token-bucket rate limiting per caller (API token, client certificate, OCPP station), with bounded memory.

Pure and clock-injected so tests never sleep. One instance is shared per process; limits are per instance (several
service instances each allow the configured rate — put a shared limiter in the reverse proxy when that matters).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from pki.clock import Clock, SystemClock
from pki.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_second: float, burst: int, *, clock: Clock | None = None,
                 max_keys: int = 100_000, what: str = "caller") -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate_per_second
        self.burst = burst
        self.clock: Clock = clock or SystemClock()
        self.max_keys = max_keys  # least recently seen callers are forgotten (they start with a full bucket)
        self.what = what
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, cost: float = 1.0) -> bool:
        now = self.clock.now().timestamp()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
                bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return True
            return False

    def check(self, key: str, cost: float = 1.0) -> None:
        """Raise :class:`RateLimited` when ``key`` has exhausted its bucket."""
        if not self.allow(key, cost):
            raise RateLimited(f"too many requests for this {self.what}; retry later")

    def __len__(self) -> int:
        return len(self._buckets)

"""Per-agent rate limits: one token bucket per agent, refilled at ``rate`` tokens a second up
to ``burst``. A request takes a token; when the bucket is empty the caller learns how long to
wait (the API answers 429 with ``Retry-After``).

The buckets live in the process. With several hub processes (``--workers`` or hosts behind a
load balancer) each enforces its own buckets, so an agent may get up to that many times the
rate in all; set the rate with that in mind. Only authenticated agents get a bucket, so the
memory is bounded by the number of enrolled agents.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from gardien.clock import Clock, SystemClock

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key (an agent's id). ``rate <= 0`` turns the limit off.

    Thread-safe: the API's endpoints run in a thread pool.
    """

    def __init__(self, rate: float, burst: float, clock: Clock | None = None) -> None:
        if burst < 1 and rate > 0:
            raise ValueError("a rate limit's burst must allow at least one request")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock or SystemClock()
        self._buckets: dict[object, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: object, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket: ``0.0`` when allowed, otherwise the
        seconds until the bucket holds enough (nothing is taken then)."""
        if self.rate <= 0:
            return 0.0
        cost = min(cost, self.burst)  # a cost above the burst could never be paid
        now = self._clock.now()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            elapsed = max(0.0, now - bucket.updated)  # a clock stepping back refills nothing
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``wait`` seconds as a ``Retry-After`` header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))

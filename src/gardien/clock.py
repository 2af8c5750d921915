"""Time, injected: domain code asks a :class:`Clock`, tests hand it a :class:`FakeClock`."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Where pure code gets the current time from."""

    def now(self) -> float:
        """Seconds since the epoch (UTC), as ``time.time()``."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to, for tests and for replaying old logs."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def set(self, when: float) -> None:
        """Jump to ``when`` (seconds since the epoch)."""
        self._now = float(when)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self._now += seconds

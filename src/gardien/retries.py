"""Waiting before trying again: exponential backoff with jitter, and a server's
``Retry-After``. Shared by the notifiers (mail, webhook) and the hub's client; no I/O."""

from __future__ import annotations

import random
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER", "backoff_after", "backoff_delays", "retry_after"]

#: the longest wait a server's ``Retry-After`` is obeyed for (seconds); beyond it a queue
#: would be asked too much, and the answer is not believed
MAX_RETRY_AFTER = 600.0


def backoff_delays(first: float, attempts: int, *, cap: float = 300.0) -> Iterator[float]:
    """The waits between ``attempts`` tries: ``first``, doubling each time (at most ``cap``),
    each with up to a quarter of jitter so that many agents do not retry in step."""
    delay = first
    for _ in range(attempts - 1):
        yield min(cap, delay) * (1 + random.uniform(0, 0.25))  # noqa: S311 (not a secret)
        delay *= 2


def backoff_after(failures: int, first: float, cap: float) -> float:
    """The wait after ``failures`` failed tries in a row, for a loop that never gives up:
    ``first`` doubling each time, at most ``cap``, less up to a fifth of jitter so that many
    agents do not retry in step."""
    delay = min(cap, first * 2.0 ** min(failures - 1, 30))
    return delay * (1 - random.uniform(0, 0.2))  # noqa: S311 (not a secret)


def retry_after(value: str | None, now: float, *, cap: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds to wait that a ``Retry-After`` header ``value`` asks for (seconds, or an HTTP
    date compared with ``now``), between 0 and ``cap``; ``None`` when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    return min(cap, max(0.0, seconds))

"""The outbox of a notifier: notices wait in a bounded queue that one background task drains.

A notifier (mail, webhook) must never delay or block a ban: its ``ban()`` only puts a notice
in the outbox and returns. When the outbox is full (a relay that stays down during an attack
wave), further notices are not queued but counted, a warning is logged once, and a summary
of what was dropped is sent when the queue has drained. Retrying a delivery is the notifier's
business; :func:`backoff_delays` gives the waits, and :func:`retry_after` reads how long a
server asked to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from gardien.retries import backoff_delays, retry_after

__all__ = ["Outbox", "backoff_delays", "retry_after"]

logger = logging.getLogger("gardien.actions")

T = TypeVar("T")

#: addresses kept to name in the summary of dropped notices
SAMPLE = 20


class Outbox(Generic[T]):
    """A bounded queue of notices and the task that delivers them one by one.

    ``deliver`` sends one notice, retrying as it sees fit, and says whether it went (what it
    raises is logged).
    ``summarise(dropped, addresses)`` makes the notice that reports notices dropped when the
    queue was full. ``poll`` (called at least every ``poll_every`` seconds, and after each
    delivery) returns notices that became due with time, such as a digest.
    """

    def __init__(
        self,
        label: str,
        deliver: Callable[[T], Awaitable[bool]],
        summarise: Callable[[int, Sequence[str]], T],
        *,
        capacity: int = 100,
        poll: Callable[[], Sequence[T]] | None = None,
        poll_every: float = 1.0,
    ) -> None:
        self.label = label
        self._deliver = deliver
        self._summarise = summarise
        self._poll = poll
        self._poll_every = poll_every
        self._queue: asyncio.Queue[T | None] = asyncio.Queue(capacity)  # None: wake up
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0  # notices not queued since the last summary
        self._dropped_addresses: list[str] = []
        self.delivered = 0
        self.failed = 0  # given up (the notifier logged why)

    def start(self) -> None:
        """Start the background task (in the running event loop)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, notice: T, addresses: Sequence[str] = ()) -> bool:
        """Queue ``notice`` without waiting; when the queue is full, count it (with the
        ``addresses`` it is about) for the summary and return ``False``."""
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            if self.dropped == 0:
                logger.warning(
                    "%s: too many notices waiting (%d): further ones are counted and "
                    "summarised once the queue drains",
                    self.label,
                    self._queue.maxsize,
                )
            self.dropped += 1
            room = SAMPLE - len(self._dropped_addresses)
            self._dropped_addresses += list(addresses[: max(0, room)])
            return False
        return True

    @property
    def pending(self) -> int:
        """Notices waiting to be delivered."""
        return self._queue.qsize()

    async def close(self, final: Sequence[T] = (), *, timeout: float = 10.0) -> None:
        """Deliver what is queued, then ``final`` (a digest in progress...), waiting at most
        ``timeout`` seconds; what is still undelivered then is given up, with a log line."""
        task = self._task
        if task is None:
            return
        self._closing = True
        for notice in final:
            self.put(notice)
        with contextlib.suppress(asyncio.QueueFull):  # full: the task is busy, not waiting
            self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            left = self._queue.qsize() + self.dropped
            logger.error(
                "%s: gave up after %g s at stop: %d notice(s) not sent", self.label, timeout, left
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                notice = await asyncio.wait_for(self._queue.get(), self._poll_every)
            except TimeoutError:
                notice = None
            if notice is not None:
                await self._send(notice)
            if self._poll is not None:
                for due in self._poll():
                    self.put(due)
            if self._queue.empty() and self.dropped:
                summary = self._summarise(self.dropped, tuple(self._dropped_addresses))
                self.dropped = 0
                self._dropped_addresses = []
                await self._send(summary)
            if self._closing and self._queue.empty():
                return

    async def _send(self, notice: T) -> None:
        try:
            sent = await self._deliver(notice)
        except asyncio.CancelledError:
            raise
        except Exception:
            # a bug or an unforeseen failure must not end the task: later notices still go
            logger.exception("%s: a notice could not be sent", self.label)
            sent = False
        if sent:
            self.delivered += 1
        else:
            self.failed += 1

"""Reporting bans to a gardien hub: ``hub[url=https://hub.example.org, token_file=...]``.

Nothing is lost while the hub is away. ``ban()`` writes one report per banned address to an
on-disk queue (SQLite, WAL, ``synchronous=FULL``: on disk before ``ban()`` returns; the file
0600, its directory created 0700) and returns; it never waits for the network. A background
task sends what is queued in batches, oldest first, every ``every`` seconds (at once when a
full batch is waiting), and deletes reports only once the hub answered 2xx. So reports are
delivered at least once: a daemon killed between the hub's answer and the delete sends that
batch again at its next start.

When the hub is unreachable, answers 5xx or 429, the batch stays queued and is tried again
after an exponential backoff with jitter (capped at 5 minutes; a ``Retry-After`` is
honoured); a warning is logged when the hub goes away and a line when it is back. The queue
survives restarts: what a stopped daemon could not send is sent by the next one.

When the hub refuses the *content* of a batch (400, 413, 422: a report older than the hub's
window, say), the batch is split in halves until the refused reports are isolated; those are
moved to the queue's ``rejected`` table (kept, with the hub's answer, for the administrator)
and logged, and the rest is sent. Any other refusal (401, 403: a wrong or disabled token;
404: a wrong URL) is a configuration problem that no report can fix: everything stays
queued, an error is logged, and sending is tried again every 5 minutes.

Reported: the address (single addresses only, and not those a hub never lists: private,
loopback, reserved... which would only tell the hub about the local network), the jail, a
category (``category=``, else :func:`gardien.hub.model.category_of_jail`), the time of the ban
and its failures. Bans given back at start were reported when they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import httpx

from gardien.clock import Clock, SystemClock
from gardien.config.values import parse_duration
from gardien.errors import ConfigError, HubRefused, HubUnavailable
from gardien.hub.client import HubClient, endpoint_url
from gardien.hub.model import (
    CATEGORY_PATTERN,
    JAIL_PATTERN,
    MAX_REPORTS_PER_REQUEST,
    Report,
    category_of_jail,
    never_listed,
)
from gardien.model import Ban, Unban
from gardien.retries import backoff_after
from gardien.secretfile import read_secret
from gardien.settings import Spec

__all__ = ["DEFAULT_QUEUE", "HubAction", "ReportQueue", "hub_action"]

logger = logging.getLogger("gardien.actions.hub")

DEFAULT_QUEUE = "/var/lib/gardien/hub-queue.sqlite3"
#: the longest wait between two tries
MAX_BACKOFF = 300.0
#: refusals about the content of a batch, which splitting it can isolate
_CONTENT_REFUSALS = frozenset({400, 413, 422})
_MAX_FAILURES = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    jail TEXT NOT NULL, ip TEXT NOT NULL, category TEXT NOT NULL,
    time REAL NOT NULL, failures INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_jail ON reports (jail, id);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    jail TEXT NOT NULL, ip TEXT NOT NULL, category TEXT NOT NULL,
    time REAL NOT NULL, failures INTEGER NOT NULL,
    rejected REAL NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL
);
"""


class ReportQueue:
    """The on-disk queue of reports waiting for the hub (one SQLite file, safe to share
    between threads; blocking: call it from a thread in the event loop)."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = Path(path).parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # created 0600 here, before SQLite makes it with the umask's mode
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a report is on disk when put() returns, even through a power cut
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(f"cannot open the hub report queue {path}: {error}") from None
        self._lock = threading.Lock()

    def put(self, reports: Sequence[Report]) -> None:
        """Queue ``reports``: on disk when this returns."""
        rows = [(r.jail, r.ip, r.category, r.time, r.failures) for r in reports]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO reports (jail, ip, category, time, failures) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def oldest(self, jail: str, limit: int) -> list[tuple[int, Report]]:
        """The ``limit`` oldest reports of ``jail``, with their ids."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, jail, ip, category, time, failures FROM reports "
                "WHERE jail = ? ORDER BY id LIMIT ?",
                (jail, limit),
            ).fetchall()
        return [(row[0], Report(row[2], row[1], row[3], row[4], row[5])) for row in rows]

    def delete(self, ids: Sequence[int]) -> None:
        """Forget the reports ``ids`` (the hub has them)."""
        with self._lock, self._db:
            self._db.executemany("DELETE FROM reports WHERE id = ?", [(i,) for i in ids])

    def reject(self, ids: Sequence[int], *, when: float, status: int, reason: str) -> None:
        """Move the reports ``ids`` to the ``rejected`` table, with the hub's answer."""
        with self._lock, self._db:
            for report_id in ids:
                self._db.execute(
                    "INSERT OR REPLACE INTO rejected "
                    "SELECT id, jail, ip, category, time, failures, ?, ?, ? "
                    "FROM reports WHERE id = ?",
                    (when, status, reason, report_id),
                )
                self._db.execute("DELETE FROM reports WHERE id = ?", (report_id,))

    def pending(self, jail: str | None = None) -> int:
        """How many reports wait (of ``jail``, or of every jail)."""
        query, args = "SELECT COUNT(*) FROM reports", ()
        if jail is not None:
            query, args = query + " WHERE jail = ?", (jail,)  # type: ignore[assignment]
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    def rejected(self) -> list[tuple[Report, int, str]]:
        """The reports the hub refused: each with the HTTP status and the hub's answer."""
        with self._lock:
            rows = self._db.execute(
                "SELECT jail, ip, category, time, failures, status, reason "
                "FROM rejected ORDER BY id"
            ).fetchall()
        return [(Report(r[1], r[0], r[2], r[3], r[4]), r[5], r[6]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class HubAction:
    """An :class:`~gardien.actions.base.Action` that reports a jail's bans to a hub."""

    #: (queue file, jail) of the running actions of this process: two senders on the same
    #: reports would send them twice
    _claimed: ClassVar[set[tuple[str, str]]] = set()

    def __init__(
        self,
        jail: str,
        url: str,
        token: str,
        *,
        category: str | None = None,
        queue: str = DEFAULT_QUEUE,
        batch: int = 500,
        every: float = 2.0,
        timeout: float = 10.0,
        retry_delay: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
        stop_timeout: float = 5.0,
        clock: Clock | None = None,
        name: str = "hub",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.jail = jail
        self.url = url
        self.category = category or category_of_jail(jail)
        self.queue_path = os.path.abspath(queue)
        self.batch = batch
        self.every = every
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.clock = clock or SystemClock()
        self._token = token
        self._transport = transport
        self.queue: ReportQueue | None = None
        self._client: HubClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._failures = 0  # failed tries in a row
        self.sent = 0  # reports the hub accepted since start
        self.rejected = 0  # reports the hub refused since start

    # ---- the Action protocol ----------------------------------------------------------
    async def start(self) -> None:
        key = (self.queue_path, self.jail)
        if key in HubAction._claimed:
            raise ConfigError(
                f"action 'hub': queue: {self.queue_path} is already used by another hub "
                f"action of jail {self.jail!r}: give each one its own queue="
            )
        client = HubClient(self.url, self._token, timeout=self.timeout, transport=self._transport)
        self.queue = await asyncio.to_thread(ReportQueue, self.queue_path)
        HubAction._claimed.add(key)
        self._client = client
        self._closing = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self.queue, client))
        waiting = await asyncio.to_thread(self.queue.pending, self.jail)
        if waiting:
            logger.info(
                "[%s] %d report(s) queued for hub %s", self.jail, waiting, self._client.where
            )

    async def restore(self, bans: Sequence[Ban]) -> None:
        """Bans given back after a restart were reported when they were made."""

    async def ban(self, bans: Sequence[Ban]) -> None:
        queue = self.queue
        if queue is None:
            return
        now = self.clock.now()
        reports = [report for ban in bans if (report := self._report(ban, now)) is not None]
        if not reports:
            return
        await asyncio.to_thread(queue.put, reports)
        if len(reports) >= self.batch:
            self._wake.set()

    async def unban(self, unbans: Sequence[Unban]) -> None:
        """The hub lists and unlists addresses by itself: unbans are not reported."""

    async def stop(self) -> None:
        """Send what is queued if the hub answers within ``stop_timeout``; what is left stays
        in the queue for the next start."""
        task, queue = self._task, self.queue
        if task is None or queue is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
        except TimeoutError:
            pass
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._task = None
            left = await asyncio.to_thread(queue.pending, self.jail)
            if left:
                logger.warning(
                    "[%s] %d report(s) stay queued in %s, to send at the next start",
                    self.jail,
                    left,
                    self.queue_path,
                )
            if self._client is not None:
                await self._client.aclose()
                self._client = None
            await asyncio.to_thread(queue.close)
            self.queue = None
            HubAction._claimed.discard((self.queue_path, self.jail))

    # ---- reports ----------------------------------------------------------------------
    def _report(self, ban: Ban, now: float) -> Report | None:
        address = ban.address
        if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            logger.debug("[%s] not reported to the hub: %s is a network", self.jail, address)
            return None
        if never_listed(address) is not None:
            logger.debug("[%s] not reported to the hub: %s is not public", self.jail, address)
            return None
        # a report cannot come from the future (a log written in another time zone)
        return Report(
            str(address),
            self.jail,
            self.category,
            min(ban.start, now),
            min(max(ban.failures, 0), _MAX_FAILURES),
        )

    # ---- sending ----------------------------------------------------------------------
    async def _run(self, queue: ReportQueue, client: HubClient) -> None:
        """Send what is queued until stopped; tries again after failures."""
        full = False  # the last batch was full: more may wait, send at once
        while True:
            if not (full or self._closing):
                await self._pause(self.every)
            entries = await asyncio.to_thread(queue.oldest, self.jail, self.batch)
            if not entries:
                if self._closing:
                    return
                full = False
                continue
            try:
                await self._send(queue, client, entries)
            except HubUnavailable as error:
                delay = self._failed(error, client.where)
                if self._closing:
                    return
                full = False
                await self._pause(delay)
                continue
            except HubRefused as error:
                # not about the content: a wrong token or URL; nothing to do but wait
                self._failures += 1
                logger.error(
                    "[%s] %s; %d report(s) kept in the queue, tried again in %g s",
                    self.jail,
                    error,
                    await asyncio.to_thread(queue.pending, self.jail),
                    self.max_backoff,
                )
                if self._closing:
                    return
                full = False
                await self._pause(self.max_backoff)
                continue
            if self._failures:
                logger.warning("[%s] hub %s is back: sending the queue", self.jail, client.where)
                self._failures = 0
            full = len(entries) >= self.batch

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken (a full batch waits, or the action stops)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _failed(self, error: HubUnavailable, where: str) -> float:
        """Count a failed try, log it (loudly only the first time), and say how long to wait."""
        self._failures += 1
        delay = backoff_after(self._failures, self.retry_delay, self.max_backoff)
        if error.retry_after is not None:
            delay = min(self.max_backoff, error.retry_after)
        if self._failures == 1:
            logger.warning(
                "[%s] %s; reports wait in %s (next try in %.1f s)",
                self.jail,
                error,
                self.queue_path,
                delay,
            )
        else:
            logger.debug(
                "[%s] %s (try %d; next in %.1f s)", self.jail, error, self._failures, delay
            )
        return delay

    async def _send(
        self, queue: ReportQueue, client: HubClient, entries: list[tuple[int, Report]]
    ) -> None:
        """Send ``entries``, splitting them to isolate reports whose content the hub refuses.
        Raises what cannot be handled here (the hub away, a wrong token), having deleted what
        was sent."""
        try:
            result = await client.send_reports([report for _, report in entries])
        except HubRefused as error:
            if error.status not in _CONTENT_REFUSALS:
                raise
            if len(entries) > 1:
                half = len(entries) // 2
                await self._send(queue, client, entries[:half])
                await self._send(queue, client, entries[half:])
                return
            report = entries[0][1]
            logger.error(
                "[%s] the hub refused the report of %s (HTTP %d %s): moved to the rejected "
                "table of %s",
                self.jail,
                report.ip,
                error.status,
                error.detail,
                self.queue_path,
            )
            await asyncio.to_thread(
                queue.reject,
                [entries[0][0]],
                when=self.clock.now(),
                status=error.status,
                reason=error.detail,
            )
            self.rejected += 1
            return
        await asyncio.to_thread(queue.delete, [report_id for report_id, _ in entries])
        self.sent += len(entries)
        logger.debug(
            "[%s] sent %d report(s) to hub %s%s",
            self.jail,
            len(entries),
            client.where,
            f"; listed now: {', '.join(result.listed)}" if result.listed else "",
        )


def _parameter_error(option: str, message: str) -> ConfigError:
    return ConfigError(f"action 'hub': {option}: {message}")


def _duration(params: dict[str, str], option: str, default: float) -> float:
    if option not in params:
        return default
    try:
        seconds = parse_duration(params[option])
    except ConfigError as error:
        raise _parameter_error(option, error.message) from None
    if seconds <= 0:
        raise _parameter_error(option, "must be longer than 0 seconds")
    return seconds


def hub_action(spec: Spec, jail: str, *, clock: Clock | None = None) -> HubAction:
    """The action ``hub[url=..., token_file=..., ...]``; :class:`ConfigError` naming a wrong
    parameter. The token file is read now (it must not be readable by others)."""
    params = {key.lower(): value.strip() for key, value in spec.params.items()}
    known = {"url", "token_file", "category", "queue", "batch", "every", "timeout"}
    for option in params:
        if option not in known:
            raise _parameter_error(
                option, "unknown parameter (known: " + ", ".join(sorted(known)) + ")"
            )
    if not JAIL_PATTERN.match(jail):
        raise ConfigError(
            f"action 'hub': the jail name {jail!r} cannot be reported (letters, digits, "
            "'_.@-', at most 64)"
        )
    url = endpoint_url(params, _parameter_error)
    try:
        token = read_secret(params["token_file"])
    except ConfigError as error:
        raise _parameter_error("token_file", error.message) from None
    if not token.isprintable() or any(char.isspace() for char in token):
        raise _parameter_error("token_file", "the token must be one word on one line")
    category = params.get("category") or category_of_jail(jail)
    if not CATEGORY_PATTERN.match(category):
        raise _parameter_error(
            "category", f"{category!r} is not a category (a-z, 0-9 and '-', e.g. ssh, sip)"
        )
    queue = params.get("queue") or DEFAULT_QUEUE
    if not os.path.isabs(queue):
        raise _parameter_error("queue", f"{queue!r} is not an absolute path")
    batch = 500
    if "batch" in params:
        text = params["batch"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_REPORTS_PER_REQUEST:
            raise _parameter_error(
                "batch", f"{text!r} is not a number from 1 to {MAX_REPORTS_PER_REQUEST}"
            )
        batch = int(text)
    return HubAction(
        jail,
        url,
        token,
        category=category,
        queue=queue,
        batch=batch,
        every=_duration(params, "every", 2.0),
        timeout=_duration(params, "timeout", 10.0),
        clock=clock,
        name=spec.name,
    )

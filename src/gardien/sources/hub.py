"""The hub feed: a jail whose bans are a gardien hub's blocklist (``backend = hub[...]``).

    [hub-blocklist]
    enabled = true
    backend = hub[url=https://hub.example.org, token_file=/etc/gardien/hub.token, every=5s]
    action  = nftables-allports[name=hub, protocol=all]
    bantime = 1d

Such a jail reads no log and has no filter. :class:`HubFeed` asks the hub for its whole list
once, then every ``every`` seconds for what changed since the cursor of the last answer: it is
a :class:`~gardien.sources.base.Source` whose records are :class:`FeedUpdate`\\ s and whose
checkpoint is the hub's cursor. The daemon bans and unbans through the jail and stores the
cursor with those bans, so that a restart asks only for the changes.

A whole list is asked for again every ``resync`` (default 1h), and when the hub's cursor went
backwards (a new hub database); the hub also answers with the whole list (a *reset*) when it
no longer keeps the changes since the cursor (it prunes its journal). Either way the daemon
then bans what it misses (a ban that ran out while the hub still lists the address) and lifts
what the hub no longer lists.

A hub that cannot be reached is logged once (and once when it is back) and asked again after
an exponential backoff (capped at 5 minutes); the bans in force stay meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from dataclasses import dataclass

import httpx

from gardien.config.mail import read_secret
from gardien.config.values import Spec, parse_duration
from gardien.errors import ConfigError, HubRefused, HubUnavailable
from gardien.hub.client import HubClient, endpoint_url, hub_url
from gardien.model import Address, Checkpoint
from gardien.retries import backoff_after
from gardien.sources.base import Batch

__all__ = [
    "FeedOptions",
    "FeedUpdate",
    "HubFeed",
    "feed_options",
]

logger = logging.getLogger("gardien.sources.hub")

#: the longest wait between two tries when the hub is away
MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class FeedOptions:
    """The parameters of ``backend = hub[...]``, checked (the token file is not read yet)."""

    url: str
    token_file: str
    every: float = 5.0
    timeout: float = 30.0
    resync: float = 3600.0


@dataclass(frozen=True)
class FeedUpdate:
    """What the hub's list became: the whole list in ``added`` when ``full``, else what was
    added and removed since the previous update. ``cursor`` is where the next one starts."""

    full: bool
    added: tuple[Address, ...]
    removed: tuple[Address, ...]
    cursor: int


def _parameter_error(option: str, message: str) -> ConfigError:
    return ConfigError(f"backend 'hub': {option}: {message}")


def feed_options(spec: Spec) -> FeedOptions:
    """The options of ``backend = hub[url=..., token_file=..., every=5s, timeout=30s,
    resync=1h]``; :class:`ConfigError` naming the wrong one. Reads no file."""
    params = {key.lower(): value.strip() for key, value in spec.params.items()}
    known = ("url", "token_file", "every", "timeout", "resync")
    for option in params:
        if option not in known:
            raise _parameter_error(option, f"unknown parameter (known: {', '.join(known)})")
    url = endpoint_url(params, _parameter_error)
    durations: dict[str, float] = {"every": 5.0, "timeout": 30.0, "resync": 3600.0}
    for option in tuple(durations):
        if option not in params:
            continue
        try:
            seconds = parse_duration(params[option])
        except ConfigError as error:
            raise _parameter_error(option, error.message) from None
        if seconds <= 0:
            raise _parameter_error(option, "must be longer than 0 seconds")
        durations[option] = seconds
    return FeedOptions(url, params["token_file"], **durations)


def _parse(texts: tuple[str, ...]) -> tuple[Address, ...]:
    # the client gives canonical address text: ipaddress alone is enough
    return tuple(ipaddress.ip_address(text) for text in texts)


class HubFeed:
    """Follows one hub's blocklist for one jail; see the module docstring.

    ``token`` is the agent's token (read from ``token_file`` by :meth:`from_options`);
    ``transport`` is for tests of the layers above.
    """

    def __init__(
        self,
        jail: str,
        url: str,
        token: str,
        *,
        every: float = 5.0,
        timeout: float = 30.0,
        resync: float = 3600.0,
        max_backoff: float = MAX_BACKOFF,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.jail = jail
        self.url = url
        self.every = every
        self.timeout = timeout
        self.resync = resync
        self.max_backoff = max_backoff
        self._token = token
        self._transport = transport
        hub_url(url)  # a wrong URL is refused now, not when the daemon runs
        self.failures = 0  # failed requests in a row
        self.updates = 0  # updates handed to the daemon
        self._client: HubClient | None = None
        self._cursor: int | None = None
        self._last_full: float | None = None
        self._due = 0.0  # when to ask next (time.monotonic())

    @classmethod
    def from_options(cls, jail: str, options: FeedOptions) -> HubFeed:
        """The feed ``options`` describe; reads the token file (:class:`ConfigError` if it is
        missing, empty, or readable by others)."""
        try:
            token = read_secret(options.token_file)
        except ConfigError as error:
            raise _parameter_error("token_file", error.message) from None
        if not token.isprintable() or any(char.isspace() for char in token):
            raise _parameter_error("token_file", "the token must be one word on one line")
        return cls(
            jail,
            options.url,
            token,
            every=options.every,
            timeout=options.timeout,
            resync=options.resync,
        )

    # the Source protocol

    key = "hub"

    @property
    def description(self) -> str:
        return f"the blocklist of hub {self.url}"

    def resume(self, checkpoint: Checkpoint | None) -> None:
        """Go on after the hub's cursor in ``checkpoint``; the whole list without one."""
        state = None if checkpoint is None else checkpoint.state
        self._cursor = int(state) if state is not None and state.isdigit() else None
        self._last_full = time.monotonic() if self._cursor is not None else None
        self._due = time.monotonic()

    async def read(self) -> Batch[FeedUpdate] | None:
        """Ask the hub when it is time to (every ``every`` seconds, later after failures):
        one update, the whole list when there is no cursor yet or ``resync`` has passed, with
        the hub's cursor as checkpoint; ``None`` when it is not time yet, or the hub cannot be
        reached (the bans in force stay)."""
        if time.monotonic() < self._due:
            return None
        if self._client is None:
            self._client = HubClient(
                self.url, self._token, timeout=self.timeout, transport=self._transport
            )
        cursor = self._cursor
        full = cursor is None or (
            self._last_full is not None and time.monotonic() - self._last_full >= self.resync
        )
        try:
            delta = await self._client.blocklist_delta(None if full else cursor)
        except (HubUnavailable, HubRefused) as error:
            self._due = time.monotonic() + self._failed(error)
            return None
        next_cursor = delta.cursor
        if not full and delta.reset:
            logger.info(
                "[%s] the hub no longer keeps the changes since cursor %s: "
                "replacing the whole list",
                self.jail,
                cursor,
            )
            full = True
        elif not full and cursor is not None and next_cursor < cursor:
            logger.warning(
                "[%s] the hub's cursor went back (%d < %d): a new hub database? "
                "asking for the whole list",
                self.jail,
                next_cursor,
                cursor,
            )
            self._cursor = None
            return None  # due now: asked again at once
        if self.failures:
            logger.warning("[%s] hub %s is back", self.jail, self._client.where)
            self.failures = 0
        update = FeedUpdate(
            full,
            await asyncio.to_thread(_parse, delta.added),
            await asyncio.to_thread(_parse, delta.removed),
            next_cursor,
        )
        self.updates += 1
        self._cursor = next_cursor
        if full:
            self._last_full = time.monotonic()
        self._due = time.monotonic() + self.every
        return Batch([update], Checkpoint(self.key, str(next_cursor)))

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(max(0.0, min(timeout, self._due - time.monotonic())))

    def retry_later(self) -> None:
        """The last update could not be carried out: ask again in ``every`` seconds (the
        caller resumes the feed from its last stored checkpoint)."""
        self._due = time.monotonic() + self.every

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # the client's connections go with the loop that made them, if it is running
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(client.aclose())

    def _failed(self, error: HubUnavailable | HubRefused) -> float:
        """Count a failed request, log it (the first of a series only, unless the hub refused:
        that needs the administrator), and say how long to wait."""
        self.failures += 1
        if isinstance(error, HubRefused):
            delay = self.max_backoff
            logger.error("[%s] %s; asking again in %g s", self.jail, error, delay)
            return delay
        delay = backoff_after(self.failures, self.every, self.max_backoff)
        if error.retry_after is not None:
            delay = min(self.max_backoff, max(error.retry_after, self.every))
        if self.failures == 1:
            logger.warning(
                "[%s] %s; the bans in force stay, asking again in %.1f s", self.jail, error, delay
            )
        else:
            logger.debug("[%s] %s (try %d)", self.jail, error, self.failures)
        return delay

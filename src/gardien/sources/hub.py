"""The hub feed: a jail whose bans are a gardien hub's blocklist (``backend = hub[...]``).

    [hub-blocklist]
    enabled = true
    backend = hub[url=https://hub.example.org, token_file=/etc/gardien/hub.token, every=5s]
    action  = nftables-allports[name=hub, protocol=all]
    bantime = 1d

Such a jail reads no log and has no filter. :class:`HubFeed` asks the hub for its whole list
once, then every ``every`` seconds for what changed since the cursor of the last answer, and
hands each :class:`FeedUpdate` to the daemon, which bans and unbans through the jail (store
first, then actions) and saves the cursor, so that a restart asks only for the changes.

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
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from gardien.errors import ConfigError, GardienError, HubRefused, HubUnavailable
from gardien.hub.client import HubClient, hub_url
from gardien.model import Address
from gardien.retries import backoff_after
from gardien.secretfile import read_secret
from gardien.settings import FeedOptions  # re-exported: it was defined here

__all__ = [
    "CURSOR_PREFIX",
    "FeedOptions",
    "FeedUpdate",
    "HubFeed",
    "cursor_from_text",
]

logger = logging.getLogger("gardien.sources.hub")

#: a feed's cursor is saved as ``hub:<cursor>`` beside the journal cursors of the ban store
CURSOR_PREFIX = "hub:"
#: the longest wait between two tries when the hub is away
MAX_BACKOFF = 300.0


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


def cursor_from_text(text: str | None) -> int | None:
    """The feed cursor saved as ``hub:<n>``; ``None`` when none was (or it is something else,
    such as a journal cursor left by an earlier ``backend``)."""
    if text is None or not text.startswith(CURSOR_PREFIX):
        return None
    number = text[len(CURSOR_PREFIX) :]
    return int(number) if number.isdigit() else None


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

    async def follow(
        self, cursor: int | None, apply: Callable[[FeedUpdate], Awaitable[None]]
    ) -> None:
        """Poll the hub for ever (until cancelled), starting after ``cursor`` (the whole list
        when ``None``), and ``apply`` each update. An update that ``apply`` fails to carry
        out (it raises) is asked for again."""
        client = HubClient(self.url, self._token, timeout=self.timeout, transport=self._transport)
        last_full = time.monotonic() if cursor is not None else None
        try:
            while True:
                full = cursor is None or (
                    last_full is not None and time.monotonic() - last_full >= self.resync
                )
                try:
                    delta = await client.blocklist_delta(None if full else cursor)
                except (HubUnavailable, HubRefused) as error:
                    await asyncio.sleep(self._failed(error))
                    continue
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
                    cursor = None
                    continue
                if self.failures:
                    logger.warning("[%s] hub %s is back", self.jail, client.where)
                    self.failures = 0
                update = FeedUpdate(
                    full,
                    await asyncio.to_thread(_parse, delta.added),
                    await asyncio.to_thread(_parse, delta.removed),
                    next_cursor,
                )
                try:
                    await apply(update)
                except GardienError as error:
                    logger.error("[%s] cannot apply the hub's list: %s", self.jail, error)
                    await asyncio.sleep(self.every)
                    continue
                except Exception:
                    # a bug must not end the feed: the bans would silently stop following
                    logger.exception("[%s] cannot apply the hub's list", self.jail)
                    await asyncio.sleep(self.every)
                    continue
                self.updates += 1
                cursor = next_cursor
                if full:
                    last_full = time.monotonic()
                await asyncio.sleep(self.every)
        finally:
            await client.aclose()

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

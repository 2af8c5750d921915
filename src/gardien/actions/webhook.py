"""Webhook alerts: ``webhook[url=https://..., ...]`` POSTs each batch of bans as JSON.

The body of a POST::

    {"event": "ban", "host": "web1",
     "bans": [{"jail": "sshd", "ip": "192.0.2.7", "time": "2024-05-01T12:00:00Z",
               "end": "2024-05-01T12:10:00Z", "failures": 5, "count": 1}]}

Times are ISO 8601 in UTC; ``end`` is ``null`` for a permanent ban; ``count`` is how many
times the address has been banned. With ``unban=yes``, unbans are posted too
(``{"event": "unban", "host": ..., "unbans": [{"jail", "ip", "reason", "time"}]}``). When
posts pile up, those that do not fit in the queue are summarised in one
``{"event": "dropped", "host", "jail", "count", "addresses"}`` post.

Parameters: ``url`` (http or https), ``timeout`` (default 10s), ``unban`` (yes/no),
``token_file`` (a file, not readable by others, holding a token sent as
``Authorization: Bearer ...``), ``header``, ``header2``... (``"Name: value"``), ``attempts``
(default 5). Connection errors, 5xx and 429 answers are retried with exponential backoff and
jitter (a ``Retry-After`` is honoured); another 4xx is permanent and logged with its status.
A ban never waits for the endpoint: posts go through an :class:`~gardien.actions.outbox.Outbox`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from gardien._version import __version__
from gardien.actions.outbox import Outbox, backoff_delays, retry_after
from gardien.clock import Clock, SystemClock
from gardien.config.mail import read_secret
from gardien.config.values import Spec, parse_bool, parse_duration
from gardien.errors import ConfigError
from gardien.model import Ban, Unban

__all__ = ["WebhookAction", "webhook_action"]

logger = logging.getLogger("gardien.actions.webhook")

Payload = dict[str, Any]
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class WebhookAction:
    """An :class:`~gardien.actions.base.Action` that posts a jail's bans to a URL."""

    def __init__(
        self,
        jail: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        unban: bool = False,
        clock: Clock | None = None,
        hostname: str | None = None,
        name: str = "webhook",
        capacity: int = 100,
        attempts: int = 5,
        retry_delay: float = 1.0,
        stop_timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.jail = jail
        self.url = httpx.URL(url)
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.post_unbans = unban
        self.clock = clock or SystemClock()
        self.host = hostname or socket.gethostname()
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.stop_timeout = stop_timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        # where posts go, for log lines: not the path or query, which often hold a secret
        self.where = f"{self.url.scheme}://{self.url.netloc.decode('ascii', 'replace')}"
        self.outbox: Outbox[Payload] = Outbox(
            f"[{jail}] action {name}", self._deliver, self._dropped, capacity=capacity
        )

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            headers={"User-Agent": f"gardien/{__version__}", **self.headers},
            transport=self._transport,
            follow_redirects=False,
        )
        self.outbox.start()

    async def restore(self, bans: Sequence[Ban]) -> None:
        """Bans given back after a restart were posted when they were made."""

    async def stop(self) -> None:
        await self.outbox.close(timeout=self.stop_timeout)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ban(self, bans: Sequence[Ban]) -> None:
        if not bans:
            return
        payload: Payload = {
            "event": "ban",
            "host": self.host,
            "bans": [
                {
                    "jail": ban.jail,
                    "ip": str(ban.address),
                    "time": _iso(ban.start),
                    "end": None if ban.end is None else _iso(ban.end),
                    "failures": ban.failures,
                    "count": ban.count,
                }
                for ban in bans
            ],
        }
        self.outbox.put(payload, [str(ban.address) for ban in bans])

    async def unban(self, unbans: Sequence[Unban]) -> None:
        if not (self.post_unbans and unbans):
            return
        now = _iso(self.clock.now())
        payload: Payload = {
            "event": "unban",
            "host": self.host,
            "unbans": [
                {"jail": u.jail, "ip": str(u.address), "reason": u.reason, "time": now}
                for u in unbans
            ],
        }
        self.outbox.put(payload, [str(u.address) for u in unbans])

    def _dropped(self, count: int, addresses: Sequence[str]) -> Payload:
        return {
            "event": "dropped",
            "host": self.host,
            "jail": self.jail,
            "count": count,
            "addresses": list(addresses),
        }

    async def _deliver(self, payload: Payload) -> bool:
        client = self._client
        if client is None:
            return False
        delays = backoff_delays(self.retry_delay, self.attempts)
        event = payload["event"]
        for attempt in range(1, self.attempts + 1):
            wait: float | None = None
            try:
                response = await client.post(self.url, json=payload)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    logger.info("[%s] posted %s to %s", self.jail, event, self.where)
                    return True
                if status != 429 and status < 500:
                    logger.error(
                        "[%s] webhook %s refused the %s post: HTTP %d %s",
                        self.jail,
                        self.where,
                        event,
                        status,
                        " ".join(response.text[:200].split()),
                    )
                    return False
                problem = f"HTTP {status}"
                wait = retry_after(response.headers.get("retry-after"), self.clock.now())
            delay = next(delays, None)
            if delay is None:
                logger.error(
                    "[%s] webhook %s: %s post given up after %d attempts: %s",
                    self.jail,
                    self.where,
                    event,
                    attempt,
                    problem,
                )
                return False
            delay = delay if wait is None else wait
            logger.warning(
                "[%s] webhook %s: %s; trying again in %.1f s", self.jail, self.where, problem, delay
            )
            await asyncio.sleep(delay)
        return False


def _parameter_error(option: str, message: str) -> ConfigError:
    return ConfigError(f"action 'webhook': {option}: {message}")


def webhook_action(
    spec: Spec, jail: str, *, clock: Clock | None = None, hostname: str | None = None
) -> WebhookAction:
    """The action ``webhook[url=..., ...]``; :class:`ConfigError` naming a wrong parameter."""
    params = {key.lower(): value.strip() for key, value in spec.params.items()}
    known = {"url", "timeout", "unban", "token_file", "attempts"}
    for option in params:
        if option not in known and not option.startswith("header"):
            raise _parameter_error(
                option, "unknown parameter (known: " + ", ".join(sorted(known)) + ", header)"
            )
    text = params.get("url", "")
    if not text:
        raise _parameter_error("url", "webhook needs url=http://... or https://...")
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as error:
        raise _parameter_error("url", f"{text!r} is not a URL ({error})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _parameter_error("url", f"{text!r} is not an http:// or https:// URL")
    timeout = 10.0
    if "timeout" in params:
        try:
            timeout = parse_duration(params["timeout"])
        except ConfigError as error:
            raise _parameter_error("timeout", error.message) from None
        if timeout <= 0:
            raise _parameter_error("timeout", "must be longer than 0 seconds")
    try:
        unban = parse_bool(params.get("unban", "no"))
    except ConfigError as error:
        raise _parameter_error("unban", error.message) from None
    attempts = 5
    if "attempts" in params:
        if not params["attempts"].isdigit() or int(params["attempts"]) < 1:
            raise _parameter_error("attempts", f"{params['attempts']!r} is not a number >= 1")
        attempts = int(params["attempts"])
    headers: dict[str, str] = {}
    for option, value in params.items():
        if not option.startswith("header"):
            continue
        name, colon, content = value.partition(":")
        name, content = name.strip(), content.strip()
        if not colon or not _HEADER_NAME_RE.fullmatch(name) or not content.isprintable():
            raise _parameter_error(option, f"{value!r} is not 'Name: value'")
        headers[name] = content
    if "token_file" in params:
        try:
            token = read_secret(params["token_file"])
        except ConfigError as error:
            raise _parameter_error("token_file", error.message) from None
        if not token.isprintable() or "\n" in token:
            raise _parameter_error("token_file", "the token must be one line of text")
        headers["Authorization"] = f"Bearer {token}"
    return WebhookAction(
        jail,
        str(url),
        headers=headers,
        timeout=timeout,
        unban=unban,
        clock=clock,
        hostname=hostname,
        name=spec.name,
        attempts=attempts,
    )

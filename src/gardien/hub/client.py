"""The agent side's HTTP client of a gardien hub: send reports, read the blocklist.

Used by the daemon's ``hub`` action (:mod:`gardien.actions.hub`) and ``hub`` feed
(:mod:`gardien.sources.hub`); it needs httpx only, not the ``[hub]`` extra.

Failures are told apart by what a caller should do about them:
:class:`~gardien.errors.HubUnavailable` (unreachable, timed out, 5xx, 429: try again later,
after ``retry_after`` when the hub said) and :class:`~gardien.errors.HubRefused` (another 4xx,
or a redirect: the same request would fail again). What the hub sends back is checked as
strictly as what it receives: a malformed answer is an error, an entry that is not an address
is skipped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from gardien._version import __version__
from gardien.errors import ConfigError, HubRefused, HubUnavailable
from gardien.hub.model import BlocklistDelta, IngestResult, Report
from gardien.model import parse_address
from gardien.retries import retry_after

__all__ = ["HubClient", "endpoint_url", "hub_url"]

logger = logging.getLogger("gardien.hub.client")

#: statuses that say "not now" rather than "never"
_TEMPORARY = frozenset({408, 425, 429})
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def hub_url(text: str) -> httpx.URL:
    """The base URL of a hub (``https://hub.example.org``, maybe with a path prefix behind a
    reverse proxy); :class:`ConfigError` unless it is a plain http:// or https:// URL."""
    text = text.strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as error:
        raise ConfigError(f"{text!r} is not a URL ({error})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{text!r} is not an http:// or https:// URL")
    if url.userinfo or url.query or url.fragment:
        # a token belongs in token_file, not in a URL that ends up in logs
        raise ConfigError(f"{text!r}: a hub URL has no user, password, query or fragment")
    return url


def endpoint_url(params: Mapping[str, str], error: Callable[[str, str], ConfigError]) -> str:
    """The hub URL of a ``hub`` action's or feed's parameters, which need ``url`` and
    ``token_file`` (the file is not read here); ``error(option, message)`` makes the
    :class:`ConfigError` that names the wrong parameter."""
    if not params.get("url"):
        raise error("url", "the hub's address is needed: url=https://...")
    try:
        url = str(hub_url(params["url"]))
    except ConfigError as problem:
        raise error("url", problem.message) from None
    if not params.get("token_file"):
        raise error("token_file", "the agent's token is needed (gardien hub agent add prints it)")
    return url


def _detail(response: httpx.Response) -> str:
    """The hub's explanation of a refusal, on one short line."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        detail = body.get("detail", body) if isinstance(body, dict) else body
        text = detail if isinstance(detail, str) else json.dumps(detail)
    return " ".join(text.split())[:300]


def _addresses(value: object, what: str) -> tuple[str, ...]:
    """The canonical addresses of a JSON list from the hub; entries that are not single
    addresses are skipped (and counted in a warning), anything else is a malformed answer."""
    if not isinstance(value, list):
        raise HubUnavailable(f"the hub's blocklist has no {what!r} list")
    found: list[str] = []
    skipped = 0
    for item in value:
        address = parse_address(item) if isinstance(item, str) and len(item) <= 64 else None
        if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            skipped += 1
            continue
        found.append(str(address))
    if skipped:
        logger.warning("the hub's blocklist had %d entries that are not addresses", skipped)
    return tuple(found)


def _cursor(body: dict[str, Any]) -> int:
    cursor = body.get("cursor")
    if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
        raise HubUnavailable("the hub's blocklist has no valid cursor")
    return cursor


def _blocklist(content: bytes, since: int | None) -> BlocklistDelta:
    """Decode and check a JSON blocklist answer (in a thread: a full list can be 1M entries)."""
    try:
        body = json.loads(content)
    except ValueError:
        raise HubUnavailable("the hub's blocklist is not JSON") from None
    if not isinstance(body, dict):
        raise HubUnavailable("the hub's blocklist is not a JSON object")
    cursor = _cursor(body)
    if since is None:
        return BlocklistDelta(_addresses(body.get("addresses"), "addresses"), (), cursor, True)
    reset = body.get("reset", False)  # absent from hubs that never prune their journal
    if not isinstance(reset, bool):
        raise HubUnavailable("the hub's blocklist has a 'reset' that is not true or false")
    return BlocklistDelta(
        _addresses(body.get("add"), "add"), _addresses(body.get("remove"), "remove"), cursor, reset
    )


class HubClient:
    """Talks to one hub as one agent (``token``: the agent's token, sent as a bearer token).

    Asynchronous (the daemon's event loop must never wait on the network); close it with
    :meth:`aclose`. ``transport`` is for tests of the layers above.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = hub_url(url)
        if not token or not token.isprintable() or any(c.isspace() for c in token):
            raise ConfigError("a hub token is one word of printable characters")
        self.timeout = timeout
        base = str(self.url).rstrip("/")
        self._reports_url = f"{base}/api/v1/reports"
        self._blocklist_url = f"{base}/api/v1/blocklist"
        #: where requests go, for log lines
        self.where = f"{self.url.scheme}://{self.url.netloc.decode('ascii', 'replace')}"
        self._client = httpx.AsyncClient(
            timeout=timeout,
            headers={
                "User-Agent": f"gardien/{__version__}",
                "Authorization": f"Bearer {token}",
            },
            transport=transport,
            follow_redirects=False,
        )
        self._warned_plain = False

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def send_reports(self, reports: Sequence[Report]) -> IngestResult:
        """POST ``reports`` (1 to 1000) to ``/api/v1/reports``; what the hub did with them."""
        body = {
            "reports": [
                {
                    "ip": r.ip,
                    "jail": r.jail,
                    "category": r.category,
                    "time": r.time,
                    "failures": r.failures,
                }
                for r in reports
            ]
        }
        response = await self._request("POST", self._reports_url, json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        accepted = answer.get("accepted") if isinstance(answer, dict) else None
        listed = answer.get("listed") if isinstance(answer, dict) else None
        return IngestResult(
            accepted=accepted if isinstance(accepted, int) else len(reports),
            listed=tuple(str(a) for a in listed) if isinstance(listed, list) else (),
        )

    async def blocklist_delta(self, since: int | None) -> BlocklistDelta:
        """What changed in the blocklist after ``since`` (a cursor an earlier call returned);
        the whole list as ``added``, with ``reset`` set, when ``since`` is ``None`` or when
        the hub no longer knows what changed since then. Addresses are canonical text."""
        params = {"format": "json"}
        if since is not None:
            params["since"] = str(since)
        response = await self._request("GET", self._blocklist_url, params=params)
        return await asyncio.to_thread(_blocklist, response.content, since)

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.url.scheme == "http" and not self._warned_plain:
            self._warned_plain = True
            if self.url.host not in _LOOPBACK_HOSTS:
                logger.warning("hub %s: plain http sends the agent token in clear", self.where)
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise HubUnavailable(f"hub {self.where} cannot be reached: {problem}") from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status >= 500 or status in _TEMPORARY:
            raise HubUnavailable(
                f"hub {self.where} answered HTTP {status}",
                retry_after=retry_after(response.headers.get("retry-after"), time.time()),
            )
        if 300 <= status < 400:
            target = response.headers.get("location", "?")
            raise HubRefused(
                f"hub {self.where} redirects to {target[:200]}: give the final URL",
                status=status,
            )
        detail = _detail(response)
        raise HubRefused(
            f"hub {self.where} refused: HTTP {status} {detail}", status=status, detail=detail
        )

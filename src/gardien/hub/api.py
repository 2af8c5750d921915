"""The hub's JSON API (``/api/v1``) and ``/health``: what agents and scripts call.

Every route but ``/health`` needs an agent token (:mod:`gardien.hub.auth`). Every field of a
request is checked before it reaches the store: a single address (canonicalised; networks
refused), a jail and a category of the shapes in :mod:`gardien.hub.model`, a finite time not
ahead of the hub's clock by more than a few minutes, a failure count in range, no unknown
field, at most ``MAX_REPORTS_PER_REQUEST`` reports. Bad input gets 4xx, never 5xx.

The endpoints that touch the database are plain ``def`` functions: FastAPI runs them in its
thread pool, so a slow query never stalls the event loop.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gardien._version import __version__
from gardien.errors import HubError
from gardien.hub import blocklist
from gardien.hub.auth import Agent, client_address, hub_context
from gardien.hub.model import (
    CATEGORY_PATTERN,
    JAIL_PATTERN,
    MAX_REPORTS_PER_REQUEST,
    HubStats,
    Report,
    Reputation,
)
from gardien.model import parse_address

__all__ = ["CURSOR_HEADER", "router"]

logger = logging.getLogger("gardien.hub.api")

#: the response header that carries the blocklist's cursor
CURSOR_HEADER = "X-Gardien-Cursor"
#: the longest text taken for an address (the longest IPv6 form is 45 characters)
_MAX_ADDRESS_TEXT = 64
#: latest time a report may carry, as a bound in the schema (the API checks the real one)
_MAX_TIME = 2.0**33
_MAX_FAILURES = 1_000_000
_MAX_CURSOR = 2**63 - 1


def _anchored(pattern: str) -> str:
    # model.py's patterns use Python's \A...\Z; pydantic's (Rust) engine spells them ^...$
    # and, unlike Python's ``$``, its ``$`` does not match before a final newline.
    return "^" + pattern.removeprefix(r"\A").removesuffix(r"\Z") + "$"


def _single_address(text: str) -> str:
    # parse_address forgives surrounding blanks; a report must not carry any
    plain = len(text) <= _MAX_ADDRESS_TEXT and text == text.strip()
    address = parse_address(text) if plain else None
    if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise ValueError("not a single IPv4 or IPv6 address")
    return str(address)


# ---- models --------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ReportIn(_Strict):
    """One ban an agent reports."""

    ip: Annotated[
        str,
        Field(
            min_length=2,
            max_length=_MAX_ADDRESS_TEXT,
            description="The banned address: one IPv4 or IPv6 address (no network).",
            examples=["203.0.113.7"],
        ),
    ]
    jail: Annotated[
        str,
        Field(
            pattern=_anchored(JAIL_PATTERN.pattern),
            description="The jail that banned it.",
            examples=["sshd"],
        ),
    ]
    category: Annotated[
        str,
        Field(
            pattern=_anchored(CATEGORY_PATTERN.pattern),
            description="The kind of attack: ssh, sip, smtp-auth, imap, http, other...",
            examples=["ssh"],
        ),
    ]
    time: Annotated[
        float,
        Field(
            ge=0,
            le=_MAX_TIME,
            allow_inf_nan=False,
            description="When the ban started, in seconds since the epoch (UTC). Reports older "
            "than the consensus window are ignored; more than 5 minutes ahead is refused.",
            examples=[1767225600.0],
        ),
    ]
    failures: Annotated[
        int,
        Field(ge=0, le=_MAX_FAILURES, description="Failures that led to the ban.", examples=[5]),
    ]

    @field_validator("ip")
    @classmethod
    def _canonical_ip(cls, value: str) -> str:
        return _single_address(value)

    @field_validator("jail")
    @classmethod
    def _jail(cls, value: str) -> str:
        if not JAIL_PATTERN.match(value):  # the schema's pattern, checked by the model's own
            raise ValueError("not a jail name")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if not CATEGORY_PATTERN.match(value):
            raise ValueError("not a category")
        return value


class ReportsIn(_Strict):
    """A batch of reports."""

    reports: Annotated[list[ReportIn], Field(min_length=1, max_length=MAX_REPORTS_PER_REQUEST)]


class ReportsOut(BaseModel):
    """What the hub did with a batch."""

    accepted: int = Field(description="Reports stored.")
    ignored: int = Field(0, description="Reports older than the consensus window, dropped.")
    listed: list[str] = Field(description="Addresses this batch put on the blocklist.")


class ReputationOut(BaseModel):
    """What the hub knows of an address."""

    ip: str
    known: bool = Field(description="Whether any agent reported it.")
    reports: int
    agents: int = Field(description="Distinct agents that reported it, ever.")
    networks: int = Field(description="Distinct reporter networks, ever.")
    recent_agents: int = Field(description="Distinct agents within the consensus window.")
    recent_networks: int = Field(description="Distinct networks within the consensus window.")
    categories: list[str]
    jails: list[str]
    first_seen: float | None
    last_seen: float | None
    score: float = Field(description="One per report, halving every half-life; as of now.")
    listed: bool
    listed_since: float | None
    expires: float | None = Field(description="When it leaves the blocklist if not reported.")
    allowlisted: str | None = Field(description="Why it is never listed, if it is not.")

    @classmethod
    def of(cls, reputation: Reputation) -> ReputationOut:
        return cls(
            ip=reputation.ip,
            known=reputation.known,
            reports=reputation.reports,
            agents=reputation.agents,
            networks=reputation.networks,
            recent_agents=reputation.recent_agents,
            recent_networks=reputation.recent_networks,
            categories=list(reputation.categories),
            jails=list(reputation.jails),
            first_seen=reputation.first_seen,
            last_seen=reputation.last_seen,
            score=reputation.score if math.isfinite(reputation.score) else 0.0,
            listed=reputation.listed,
            listed_since=reputation.listed_since,
            expires=reputation.expires,
            allowlisted=reputation.allowlisted,
        )


class BlocklistOut(BaseModel):
    """The whole blocklist (``format=json``)."""

    cursor: int = Field(description="Pass it as `since` to get what changes after this list.")
    addresses: list[str]


class BlocklistDeltaOut(BaseModel):
    """What changed after a cursor (``format=json&since=CURSOR``)."""

    cursor: int
    add: list[str] = Field(description="Listed since the cursor (with `reset`: the whole list).")
    remove: list[str] = Field(description="Unlisted since the cursor.")
    reset: bool = Field(
        description="The changes since that cursor are no longer kept (or the cursor is from "
        "another database): `add` is the whole list, and the caller replaces its own with it "
        "(unlisting whatever it got from the hub before and is not in `add`)."
    )


class CountAt(BaseModel):
    """Reports in the hour or day starting at ``time``."""

    time: float
    reports: int


class AddressCount(BaseModel):
    ip: str
    reports: int


class CategoryCount(BaseModel):
    category: str
    reports: int


class ReporterCount(BaseModel):
    agent: str
    reports: int


class StatsOut(BaseModel):
    """Trends and tops over the last ``days`` days."""

    since: float
    until: float
    reports: int
    addresses: int
    listed: int
    per_hour: list[CountAt]
    per_day: list[CountAt]
    top_addresses: list[AddressCount]
    top_categories: list[CategoryCount]
    top_reporters: list[ReporterCount]

    @classmethod
    def of(cls, stats: HubStats) -> StatsOut:
        return cls(
            since=stats.since,
            until=stats.until,
            reports=stats.reports,
            addresses=stats.addresses,
            listed=stats.listed,
            per_hour=[CountAt(time=t, reports=n) for t, n in stats.per_hour],
            per_day=[CountAt(time=t, reports=n) for t, n in stats.per_day],
            top_addresses=[AddressCount(ip=a, reports=n) for a, n in stats.top_addresses],
            top_categories=[CategoryCount(category=c, reports=n) for c, n in stats.top_categories],
            top_reporters=[ReporterCount(agent=a, reports=n) for a, n in stats.top_reporters],
        )


class HealthOut(BaseModel):
    status: Literal["ok", "error"]
    database: str
    version: str


class ErrorOut(BaseModel):
    detail: str


# ---- routes --------------------------------------------------------------------------------

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No agent token, or not a valid one."},
    429: {"model": ErrorOut, "description": "Rate limit exceeded; see `Retry-After`."},
    503: {"model": ErrorOut, "description": "The database does not answer."},
}

router = APIRouter()


def _unavailable(error: HubError) -> HTTPException:
    logger.error("database failure: %s", error)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database unavailable")


@router.get(
    "/health",
    tags=["health"],
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database does not answer."}},
)
def health(request: Request) -> Any:
    """Whether this hub process and its database answer (no authentication)."""
    try:
        hub_context(request).store.health()
    except HubError as error:
        logger.error("health check: %s", error)
        return JSONResponse(
            HealthOut(status="error", database="unavailable", version=__version__).model_dump(),
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return HealthOut(status="ok", database="ok", version=__version__)


@router.post(
    "/api/v1/reports",
    tags=["agents"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReportsOut,
    responses={
        **_AUTH_ERRORS,
        413: {"model": ErrorOut, "description": "The body is larger than the hub accepts."},
    },
)
def post_reports(batch: ReportsIn, request: Request, agent: Agent) -> ReportsOut:
    """Report bans (1 to 1000 in one request). The reports count under the agent's enrolment
    network, or under the /24 (IPv4) or /48 (IPv6) of the address the request came from."""
    context = hub_context(request)
    now = context.clock.now()
    latest = now + context.settings.clock_skew
    too_new = [
        {
            "type": "value_error",
            "loc": ["body", "reports", index, "time"],
            "msg": f"more than {context.settings.clock_skew:g} s ahead of the hub's clock",
        }
        for index, report in enumerate(batch.reports)
        if report.time > latest
    ]
    if too_new:
        raise HTTPException(422, detail=too_new)
    oldest = now - context.settings.consensus.window
    reports = [
        Report(ip=r.ip, jail=r.jail, category=r.category, time=r.time, failures=r.failures)
        for r in batch.reports
        if r.time >= oldest
    ]
    ignored = len(batch.reports) - len(reports)
    if not reports:
        return ReportsOut(accepted=0, ignored=ignored, listed=[])
    source = client_address(request)
    if source is None or parse_address(source) is None:
        if agent.network is None:
            # Without an address there is no reporter network to count the reports under.
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "the client address is unknown and the agent has no enrolment network",
            )
        source = "0.0.0.0"  # noqa: S104 (not bound: the store uses the agent's network)
    try:
        result = context.store.ingest(agent, source, reports)
    except HubError as error:
        raise _unavailable(error) from None
    return ReportsOut(accepted=result.accepted, ignored=ignored, listed=list(result.listed))


@router.get(
    "/api/v1/ip/{ip}",
    tags=["agents"],
    response_model=ReputationOut,
    responses={**_AUTH_ERRORS, 404: {"model": ErrorOut, "description": "Not an address."}},
)
async def get_reputation(
    ip: Annotated[str, Path(description="An IPv4 or IPv6 address.", examples=["203.0.113.7"])],
    request: Request,
    agent: Agent,
) -> ReputationOut:
    """What the hub knows of one address: reports, agents, networks, categories, first and
    last seen, its decayed score, whether it is listed (and until when) or never listed."""
    try:
        address = _single_address(ip)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not an IPv4 or IPv6 address") from None
    store = hub_context(request).store
    try:
        if store.local:
            # a point read of a local SQLite file takes about 0.1 ms: less than handing it
            # to a worker thread and back, which also makes the threads fight for the GIL
            reputation = store.reputation(address)
        else:
            reputation = await run_in_threadpool(store.reputation, address)
    except HubError as error:
        raise _unavailable(error) from None
    return ReputationOut.of(reputation)


_BLOCKLIST_CONTENT = {
    "text/plain": {
        "schema": {"type": "string"},
        "example": "198.51.100.7\n203.0.113.9\n",
    },
    "application/json": {
        "schema": {
            "oneOf": [
                BlocklistOut.model_json_schema(),
                BlocklistDeltaOut.model_json_schema(),
            ]
        }
    },
}


@router.get(
    "/api/v1/blocklist",
    tags=["agents"],
    response_class=Response,
    responses={
        200: {
            "description": "The list; its cursor is also in the `X-Gardien-Cursor` header.",
            "content": _BLOCKLIST_CONTENT,
            "headers": {CURSOR_HEADER: {"schema": {"type": "integer"}}},
        },
        400: {"model": ErrorOut, "description": "`since` with a format other than json."},
        **_AUTH_ERRORS,
    },
)
def get_blocklist(
    request: Request,
    agent: Agent,
    fmt: Annotated[
        Literal["plain", "cidr", "nft", "ipset", "json"],
        Query(
            alias="format",
            description="plain: one address a line; cidr: aggregated into CIDR blocks; nft: a "
            "script for `nft -f` (sets hub4 and hub6 of table inet gardien_hub); ipset: a "
            "script for `ipset restore` (sets gardien-hub4 and gardien-hub6); json.",
        ),
    ] = "plain",
    since: Annotated[
        int | None,
        Query(
            ge=0,
            le=_MAX_CURSOR,
            description="A cursor from an earlier answer: only what changed after it "
            "(format=json only).",
        ),
    ] = None,
) -> Response:
    """The blocklist, whole or as a delta since a cursor."""
    store = hub_context(request).store
    if since is not None:
        if fmt != "json":
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "since is only for format=json")
        try:
            delta = store.blocklist_delta(since)
        except HubError as error:
            raise _unavailable(error) from None
        return Response(
            blocklist.render_delta(delta.added, delta.removed, delta.cursor, reset=delta.reset),
            media_type=blocklist.MEDIA_TYPES["json"],
            headers={CURSOR_HEADER: str(delta.cursor)},
        )
    try:
        addresses, cursor = store.blocklist()
    except HubError as error:
        raise _unavailable(error) from None
    # Streamed: a list of a million entries is tens of megabytes of text.
    return StreamingResponse(
        (chunk.encode() for chunk in blocklist.render(fmt, addresses, cursor)),
        media_type=blocklist.MEDIA_TYPES[fmt],
        headers={CURSOR_HEADER: str(cursor)},
    )


@router.get("/api/v1/stats", tags=["agents"], response_model=StatsOut, responses=_AUTH_ERRORS)
def get_stats(
    request: Request,
    agent: Agent,
    days: Annotated[int, Query(ge=1, le=366, description="How many days back.")] = 7,
    top: Annotated[int, Query(ge=1, le=100, description="Length of the top lists.")] = 10,
) -> StatsOut:
    """Reports per hour and per day, top addresses, categories and reporters."""
    context = hub_context(request)
    until = context.clock.now()
    try:
        stats = context.store.stats(until - days * 86400.0, until, top=top)
    except HubError as error:
        raise _unavailable(error) from None
    return StatsOut.of(stats)

"""Agents' bearer tokens: the FastAPI dependency that turns ``Authorization: Bearer <token>``
into the :class:`~gardien.hub.model.AgentInfo` of an enabled agent, or a 401.

The same dependency applies the agent's rate limit (429 with ``Retry-After``) and records
when and from where the agent was last seen. It reads the bearer header only: a dashboard
session cookie never opens an API route, so a page that tricks an administrator's browser
into calling the API gets nowhere.

The client address is ``request.client.host``: the peer's address, or, when the hub runs
behind a reverse proxy with ``gardien hub serve --proxy-headers``, the address the proxy
puts in ``X-Forwarded-For`` (trusted only from ``--forwarded-allow-ips``). An agent enrolled
without a network counts under the /24 or /48 of that address.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gardien.errors import HubError
from gardien.hub.model import AgentInfo
from gardien.hub.settings import HubContext
from gardien.model import parse_address

__all__ = ["BEARER_SCHEME", "Agent", "client_address", "hub_context", "require_agent"]

logger = logging.getLogger("gardien.hub.auth")

#: documented in the OpenAPI spec as ``bearerAuth``; missing credentials are ours to refuse
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An agent token, as `gardien hub agent add NAME` printed it (`gdn_...`).",
)
#: longer than any token the hub issues; refused before asking the database
_MAX_TOKEN_LENGTH = 256
_CHALLENGE = 'Bearer realm="gardien-hub"'


def hub_context(request: Request) -> HubContext:
    """The :class:`HubContext` of the application serving ``request``."""
    context: HubContext = request.app.state.hub
    return context


def client_address(request: Request) -> str | None:
    """The address the request came from (after uvicorn's proxy-header handling), if known."""
    return request.client.host if request.client else None


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = _CHALLENGE if error is None else f'{_CHALLENGE}, error="{error}"'
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge}
    )


async def require_agent(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)],
) -> AgentInfo:
    """The enabled agent whose token the request carries; 401, 429 or 503 otherwise."""
    if credentials is None:
        raise _unauthorized("an agent token is required: Authorization: Bearer <token>")
    token = credentials.credentials.strip()
    if not token or len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
        raise _unauthorized("invalid agent token", "invalid_token")
    context = hub_context(request)
    try:
        agent = context.cached_agent(token)
        if agent is None:
            agent = await run_in_threadpool(context.agent_for_token, token)
    except HubError as error:
        logger.error("cannot check an agent token: %s", error)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database unavailable") from None
    if agent is None:  # unknown or disabled: the same answer, so nobody learns which
        raise _unauthorized("invalid agent token", "invalid_token")
    wait = context.limiter.take(agent.id)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit of agent {agent.name!r} exceeded",
            headers={"Retry-After": context.limiter.retry_after(wait)},
        )
    address = client_address(request)
    if address is not None and parse_address(address) is None:
        address = None  # a Unix socket's peer, or a test client's made-up name
    if address is not None and context.should_touch(agent.id, address):
        try:
            await run_in_threadpool(context.store.touch_agent, agent.id, address)
        except HubError as error:  # bookkeeping: not worth refusing the request for
            logger.warning("cannot record that agent %s was seen: %s", agent.name, error)
    return agent


#: ``agent: Agent`` in an endpoint's parameters requires an agent token
Agent = Annotated[AgentInfo, Depends(require_agent)]

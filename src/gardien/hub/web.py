"""The hub's admin dashboard: server-rendered HTML pages behind a password and a TOTP code.

    /login          name and password            (a ``password``-stage session follows)
    /login/code     the authenticator code       (then a new, ``full`` session)
    /logout         POST: end the session
    /               totals, SVG charts of reports per hour (48 h) and per day (30 days), tops
    /lookup?ip=     what the hub knows of one address
    /agents         the agents; enrol one (its token is shown once) or disable one
    /allowlist      the never-listed ranges; add or remove one

Pages are plain HTML and CSS: no JavaScript at all, so the Content-Security-Policy allows no
script, and the one inline stylesheet by its hash. Jinja2 escapes everything it prints. Only
the session cookie opens a page; an agent's bearer token does not. Handlers are plain
``def``: FastAPI runs them in its thread pool, where the (synchronous) store may block.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from gardien.clock import Clock
from gardien.errors import HubError
from gardien.hub import charts
from gardien.hub.auth import client_address, hub_context
from gardien.hub.model import SessionInfo, UserInfo
from gardien.hub.passwords import Passwords, verify_totp
from gardien.hub.sessions import (
    COOKIE,
    FULL,
    LOGIN_COOKIE,
    PASSWORD,
    AddressThrottle,
    Sessions,
    SessionSettings,
    csrf_matches,
    current_admin,
    form_token,
    new_login_token,
)
from gardien.hub.store import HubStore
from gardien.model import parse_address

__all__ = ["GENERIC_FAILURE", "Dashboard", "dashboard", "router"]

#: the one message for every failed login: it does not tell which part was wrong
GENERIC_FAILURE = "Wrong name, password or code."
_THROTTLED = "Too many failed logins from your address. Try again later."

_TEMPLATES = Path(__file__).with_name("templates")
_CSS = Markup((_TEMPLATES / "dashboard.css").read_text(encoding="utf-8"))  # noqa: S704 (ours)
_CSS_HASH = base64.b64encode(hashlib.sha256(str(_CSS).encode()).digest()).decode()

#: sent with every dashboard response
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: float | None) -> str:
    if value is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["when"] = _when


@dataclass
class Dashboard:
    """What the pages of one hub process share: the store, the clock, sessions, password
    checks and the per-address login throttle."""

    store: HubStore
    clock: Clock
    sessions: Sessions
    passwords: Passwords
    throttle: AddressThrottle

    @classmethod
    def create(
        cls,
        store: HubStore,
        clock: Clock,
        settings: SessionSettings,
        passwords: Passwords | None = None,
    ) -> Dashboard:
        """A dashboard on ``store`` with ``settings``."""
        return cls(
            store=store,
            clock=clock,
            sessions=Sessions(store, clock, settings),
            passwords=passwords or Passwords(),
            throttle=AddressThrottle(clock, settings.address_failures, settings.address_window),
        )


_setup_lock = threading.Lock()


def dashboard(request: Request) -> Dashboard:
    """The :class:`Dashboard` of the application serving ``request``: ``app.state.dashboard``
    if set, else one made (once) from the application's hub context."""
    state = request.app.state
    found: Dashboard | None = getattr(state, "dashboard", None)
    if found is None:
        with _setup_lock:
            found = getattr(state, "dashboard", None)
            if found is None:
                context = hub_context(request)
                settings = SessionSettings(secure_cookies=context.settings.secure_cookies)
                found = Dashboard.create(context.store, context.clock, settings)
                state.dashboard = found
    return found


router = APIRouter(include_in_schema=False)

Admin = Annotated[SessionInfo, Depends(current_admin)]
Board = Annotated[Dashboard, Depends(dashboard)]
FormText = Annotated[str, Form(max_length=4096)]


def _page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("csrf", "")
    values.setdefault("error", "")
    values["css"] = _CSS
    html = _environment.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def _forbidden() -> HTMLResponse:
    return _page("error.html", 403, message="The form was stale or forged; reload the page.")


def _address(request: Request) -> str:
    return client_address(request) or "unknown"


def _login_page(request: Request, board: Dashboard, status: int, error: str) -> HTMLResponse:
    token = new_login_token()
    response = _page("login.html", status, login_csrf=token, error=error)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/login",
        secure=board.sessions.secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


# ---- logging in and out ---------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, board: Board) -> Response:
    """The name and password form (or the overview, for someone logged in)."""
    if board.sessions.load(request.cookies.get(COOKIE), FULL) is not None:
        return _redirect("/")
    return _login_page(request, board, 200, "")


def _failed(board: Dashboard, user: UserInfo | None, address: str) -> bool:
    """Count a failed login against the address and the user; whether the user is now
    locked. A lock that ran out leaves the count where it was: the next failure locks again,
    until a successful login clears it."""
    board.throttle.failed(address)
    if user is None:
        return False
    now = board.clock.now()
    if user.locked_until is not None and user.locked_until > now:
        return True  # already locked: a failure does not push the lock further
    settings = board.sessions.settings
    lock = user.failed_logins + 1 >= settings.max_failures
    board.store.record_login(user.id, False, now + settings.lock if lock else None)
    return lock


def _locked(board: Dashboard, user: UserInfo) -> bool:
    return user.locked_until is not None and user.locked_until > board.clock.now()


@router.post("/login")
def login(
    request: Request,
    board: Board,
    name: FormText = "",
    password: FormText = "",
    csrf: FormText = "",
) -> Response:
    """Check name and password; on success a ``password``-stage session and the code page."""
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE, ""), csrf):
        return _forbidden()
    address = _address(request)
    if board.throttle.blocked(address):
        return _login_page(request, board, 429, _THROTTLED)
    user = board.store.user(name) if 0 < len(name) <= 64 else None
    right = board.passwords.verify(user.password_hash if user else None, password)
    if user is None or not right or _locked(board, user):
        _failed(board, user, address)
        return _login_page(request, board, 401, GENERIC_FAILURE)
    value, _session = board.sessions.start(user.id, address)
    response = _redirect("/login/code")
    board.sessions.set_cookie(response, request, value)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _code_page(session: SessionInfo, status: int = 200, error: str = "") -> HTMLResponse:
    return _page("code.html", status, code_csrf=form_token(session), error=error)


@router.get("/login/code")
def code_form(request: Request, board: Board) -> Response:
    """The TOTP code form, for a session whose password was right."""
    session = board.sessions.load(request.cookies.get(COOKIE), PASSWORD)
    if session is None:
        return _redirect("/login")
    return _code_page(session)


def _user_by_id(store: HubStore, user_id: int) -> UserInfo | None:
    # a hub has a handful of administrators: no index needed
    return next((user for user in store.users() if user.id == user_id), None)


@router.post("/login/code")
def code(request: Request, board: Board, code: FormText = "", csrf: FormText = "") -> Response:
    """Check the TOTP code (each code once); on success a new ``full`` session."""
    session = board.sessions.load(request.cookies.get(COOKIE), PASSWORD)
    if session is None:
        return _redirect("/login")
    if not csrf_matches(form_token(session), csrf):
        return _forbidden()
    address = _address(request)
    if board.throttle.blocked(address):
        board.sessions.end(session)
        return _login_page(request, board, 429, _THROTTLED)
    user = _user_by_id(board.store, session.user_id)
    if user is None:
        board.sessions.end(session)
        return _login_page(request, board, 401, GENERIC_FAILURE)
    step = verify_totp(user.totp_secret, code, board.clock.now(), None)
    # the store accepts each time step once per user (atomically, whatever the process)
    if step is None or _locked(board, user) or not board.store.set_totp_step(user.id, step):
        if _failed(board, user, address):
            board.sessions.end(session)
            return _login_page(request, board, 401, GENERIC_FAILURE)
        return _code_page(session, 401, GENERIC_FAILURE)
    promoted = board.sessions.promote(session)
    if promoted is None:  # another request with the same session won
        return _redirect("/login")
    board.store.record_login(user.id, True)
    response = _redirect("/")
    board.sessions.set_cookie(response, request, promoted[0])
    return response


@router.post("/logout")
def logout(request: Request, board: Board, admin: Admin, csrf: FormText = "") -> Response:
    """End the session."""
    if not csrf_matches(form_token(admin), csrf):
        return _forbidden()
    board.sessions.end(admin)
    response = _redirect("/login")
    board.sessions.clear_cookie(response, request)
    return response


# ---- pages ------------------------------------------------------------------------------------


@router.get("/")
def overview(board: Board, admin: Admin) -> Response:
    """Totals, charts and tops over the last 30 days."""
    now = board.clock.now()
    days = 30
    until = (math.floor(now / charts.DAY) + 1) * charts.DAY
    stats = board.store.stats(until - days * charts.DAY, until, top=10)
    return _page(
        "overview.html",
        page="overview",
        csrf=form_token(admin),
        stats=stats,
        days=days,
        agents=len(board.store.agents()),
        hourly_chart=Markup(charts.hourly_chart(stats.per_hour, now)),  # noqa: S704 (escaped)
        daily_chart=Markup(charts.daily_chart(stats.per_day, now, days)),  # noqa: S704
    )


@router.get("/lookup")
def lookup(board: Board, admin: Admin, ip: str = "") -> Response:
    """The reputation of one address."""
    query = ip.strip()[:64]
    values: dict[str, Any] = {"page": "lookup", "csrf": form_token(admin), "query": query}
    if not query:
        return _page("lookup.html", rep=None, **values)
    address = parse_address(query)
    if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return _page("lookup.html", 400, rep=None, error=f"{query!r} is not an address.", **values)
    return _page("lookup.html", rep=board.store.reputation(str(address)), **values)


def _agents_page(
    board: Board, admin: SessionInfo, status: int = 200, **values: Any
) -> HTMLResponse:
    return _page(
        "agents.html",
        status,
        page="agents",
        csrf=form_token(admin),
        agents=board.store.agents(),
        **values,
    )


@router.get("/agents")
def agents(board: Board, admin: Admin) -> Response:
    """The enrolled agents."""
    return _agents_page(board, admin)


@router.post("/agents")
def add_agent(
    board: Board, admin: Admin, name: FormText = "", network: FormText = "", csrf: FormText = ""
) -> Response:
    """Enrol an agent and show its token, this once."""
    if not csrf_matches(form_token(admin), csrf):
        return _forbidden()
    try:
        agent, token = board.store.add_agent(name.strip(), network.strip() or None)
    except HubError as error:
        return _agents_page(board, admin, 400, error=str(error))
    return _agents_page(board, admin, token=token, token_agent=agent.name)


@router.post("/agents/disable")
def disable_agent(
    request: Request, board: Board, admin: Admin, name: FormText = "", csrf: FormText = ""
) -> Response:
    """Refuse an agent's token from now on (at once in this process; other hub processes
    refuse it once their token cache, ``token_cache`` seconds, has expired)."""
    if not csrf_matches(form_token(admin), csrf):
        return _forbidden()
    if not board.store.disable_agent(name):
        return _agents_page(board, admin, 404, error=f"No agent is called {name!r}.")
    context = getattr(request.app.state, "hub", None)
    if context is not None:
        context.forget_tokens()
    return _redirect("/agents")


def _allowlist_page(
    board: Board, admin: SessionInfo, status: int = 200, **values: Any
) -> HTMLResponse:
    return _page(
        "allowlist.html",
        status,
        page="allowlist",
        csrf=form_token(admin),
        entries=board.store.allowlist(),
        **values,
    )


@router.get("/allowlist")
def allowlist(board: Board, admin: Admin) -> Response:
    """The never-listed ranges."""
    return _allowlist_page(board, admin)


@router.post("/allowlist")
def allow(
    board: Board, admin: Admin, network: FormText = "", comment: FormText = "", csrf: FormText = ""
) -> Response:
    """Add a never-listed range (what it covers leaves the blocklist)."""
    if not csrf_matches(form_token(admin), csrf):
        return _forbidden()
    try:
        board.store.allow(network.strip(), comment.strip()[:200])
    except HubError as error:
        return _allowlist_page(board, admin, 400, error=str(error))
    return _redirect("/allowlist")


@router.post("/allowlist/remove")
def disallow(board: Board, admin: Admin, network: FormText = "", csrf: FormText = "") -> Response:
    """Take a range off the allowlist."""
    if not csrf_matches(form_token(admin), csrf):
        return _forbidden()
    try:
        removed = board.store.disallow(network)
    except HubError as error:
        return _allowlist_page(board, admin, 400, error=str(error))
    if not removed:
        return _allowlist_page(board, admin, 404, error=f"{network!r} is not in the allowlist.")
    return _redirect("/allowlist")

"""Dashboard sessions and login throttling.

A session lives in the hub's database (so any hub process behind a load balancer knows it);
the browser holds a random cookie value and the database only its SHA-256, so a copy of the
database opens no session. A session goes through two stages:

    password  the password was right; only the TOTP page answers (5 minutes to type the code)
    full      the code was right too; a *new* session id is issued (no fixation) and every
              page answers, until 30 minutes without a request or 12 hours after the login

Every POST form carries the session's CSRF token. Failed logins lock a user after 5 failures
for 15 minutes (in the database) and slow down an address that fails too often (in memory,
per process).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

from fastapi import HTTPException, Request, Response

from gardien.clock import Clock
from gardien.hub.model import SessionInfo
from gardien.hub.store import HubStore

__all__ = [
    "COOKIE",
    "FULL",
    "LOGIN_COOKIE",
    "PASSWORD",
    "AddressThrottle",
    "SessionSettings",
    "Sessions",
    "csrf_matches",
    "current_admin",
    "form_token",
    "new_login_token",
    "session_id",
]

#: the session cookie
COOKIE = "gardien_hub_session"
#: the double-submit cookie that protects the login form itself, before any session exists
LOGIN_COOKIE = "gardien_hub_login"

#: the stage of a session whose password was right and whose TOTP code is awaited
PASSWORD = "password"  # noqa: S105 (a stage, not a password)
#: the stage of a logged-in session
FULL = "full"


@dataclass(frozen=True)
class SessionSettings:
    """Lifetimes (seconds), lockout rules, and whether cookies are marked ``Secure``
    (``None``: when the request came over https)."""

    idle: float = 30 * 60
    absolute: float = 12 * 3600
    code_wait: float = 5 * 60
    max_failures: int = 5
    lock: float = 15 * 60
    address_failures: int = 20
    address_window: float = 15 * 60
    secure_cookies: bool | None = None


def session_id(cookie_value: str) -> str:
    """The key a session is stored under: the SHA-256 (hex) of its cookie value."""
    return hashlib.sha256(cookie_value.encode("utf-8", "surrogateescape")).hexdigest()


def _new_value() -> str:
    return secrets.token_urlsafe(32)


class Sessions:
    """Creates, checks, promotes and ends dashboard sessions in a :class:`HubStore`."""

    def __init__(self, store: HubStore, clock: Clock, settings: SessionSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def start(self, user_id: int, address: str) -> tuple[str, SessionInfo]:
        """A new ``password``-stage session: its cookie value, and the stored session."""
        now = self.clock.now()
        value = _new_value()
        session = SessionInfo(
            id=session_id(value),
            user_id=user_id,
            stage=PASSWORD,
            csrf=secrets.token_urlsafe(32),
            created=now,
            expires=now + self.settings.code_wait,
            address=address,
        )
        # sessions left behind (closed browsers, abandoned code pages) go at each login
        self.store.purge_sessions()
        self.store.create_session(session)
        return value, session

    def load(self, cookie_value: str | None, stage: str) -> SessionInfo | None:
        """The live session of ``cookie_value`` at ``stage``, or ``None``. Using a ``full``
        session moves its idle deadline (never past the absolute one)."""
        if not cookie_value or len(cookie_value) > 128:
            return None
        session = self.store.session(session_id(cookie_value))
        now = self.clock.now()
        if session is None or session.stage != stage:
            return None
        if now >= session.expires:
            self.store.delete_session(session.id)
            return None
        if stage == FULL:
            deadline = min(now + self.settings.idle, session.created + self.settings.absolute)
            # write at most once a minute: a page with many requests costs one update
            if deadline - session.expires >= 60:
                self.store.touch_session(session.id, deadline)
                session = replace(session, expires=deadline)
        return session

    def promote(self, session: SessionInfo) -> tuple[str, SessionInfo] | None:
        """The ``full`` session that replaces ``session`` after a right code: a new cookie
        value, id and CSRF secret, so whatever knew the old one knows nothing. ``None`` if
        ``session`` was gone (expired, or promoted by a concurrent request)."""
        now = self.clock.now()
        value = _new_value()
        full = SessionInfo(
            id=session_id(value),
            user_id=session.user_id,
            stage=FULL,
            csrf=secrets.token_urlsafe(32),
            created=now,
            expires=min(now + self.settings.idle, now + self.settings.absolute),
            address=session.address,
        )
        if not self.store.promote_session(session.id, full):
            return None
        return value, full

    def end(self, session: SessionInfo) -> None:
        """Log out: the session is deleted."""
        self.store.delete_session(session.id)

    def set_cookie(self, response: Response, request: Request, value: str) -> None:
        """Hand the browser its session cookie."""
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(self.settings.absolute),
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response, request: Request) -> None:
        """Make the browser forget its session cookie."""
        response.delete_cookie(
            COOKIE, path="/", secure=self.secure(request), httponly=True, samesite="strict"
        )

    def secure(self, request: Request) -> bool:
        """Whether cookies get the ``Secure`` flag for ``request``."""
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        return request.url.scheme == "https"


def form_token(session: SessionInfo) -> str:
    """The CSRF token the session's forms carry: bound to the session's secret and to its id,
    so it changes when the session is promoted."""
    key = session.csrf.encode()
    return hmac.new(key, session.id.encode(), hashlib.sha256).hexdigest()


def new_login_token() -> str:
    """A random token for the login form and its double-submit cookie."""
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str, given: str) -> bool:
    """Whether a form's CSRF token is the expected, non-empty one (constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


class AddressThrottle:
    """Failed logins per client address in a sliding window, in this process's memory: an
    address with too many failures is refused before any password is checked, which also
    keeps argon2 from being used to load the server."""

    def __init__(self, clock: Clock, limit: int, window: float, capacity: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._capacity = capacity
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        horizon = self._clock.now() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def blocked(self, address: str) -> bool:
        """Whether ``address`` failed too often lately."""
        times = self._recent(address)
        return times is not None and len(times) >= self._limit

    def failed(self, address: str) -> None:
        """Count one failure from ``address``."""
        times = self._recent(address)
        if times is None:
            times = self._failures[address] = deque(maxlen=self._limit)
        self._failures.move_to_end(address)
        times.append(self._clock.now())
        while len(self._failures) > self._capacity:  # bounded memory under a spray
            self._failures.popitem(last=False)


class _LoginRequired(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status_code=303,
            detail="login required",
            headers={"Location": "/login", "Cache-Control": "no-store"},
        )


def current_admin(request: Request) -> SessionInfo:
    """FastAPI dependency of every dashboard page: the ``full`` session of the request's
    cookie, else a 303 redirect to ``/login``. Only the cookie counts: an
    ``Authorization`` header (an agent's bearer token) is ignored."""
    from gardien.hub.web import dashboard

    session = dashboard(request).sessions.load(request.cookies.get(COOKIE), FULL)
    if session is None:
        raise _LoginRequired()
    return session

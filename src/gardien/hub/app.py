"""The hub's ASGI application: :func:`create_app` puts together the JSON API, the dashboard,
the request body limit and the background tasks that unlist expired entries and prune old
rows.

``gardien hub serve`` runs it under uvicorn through :func:`app_from_environment`, a factory
that reads the settings the command left in the environment: uvicorn's worker processes
import the application by name, so nothing else can reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gardien._version import __version__
from gardien.clock import Clock
from gardien.errors import HubError
from gardien.hub import api
from gardien.hub.auth import BEARER_SCHEME, require_agent
from gardien.hub.settings import SETTINGS_ENVIRONMENT, HubContext, HubSettings
from gardien.hub.store import HubStore, database_url

__all__ = ["BodyLimit", "app_from_environment", "check_schema", "create_app"]

logger = logging.getLogger("gardien.hub.app")

_TOO_LARGE = 413

_DESCRIPTION = """\
The gardien hub gathers the bans of many gardien servers (agents) and lists an address only
when several independent agents agree. Agents authenticate with the token that
`gardien hub agent add NAME` printed: `Authorization: Bearer gdn_...`.
"""


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413, whether announced by
    ``Content-Length`` or streamed in chunks (counted as they arrive)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            code = 413 if declared.isdigit() else 400
            await self._refuse(
                send, code, "request body too large" if code == 413 else "bad length"
            )
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI passes an HTTPException raised while reading the body through
                    # to its handler, which answers with it.
                    raise HTTPException(_TOO_LARGE, "request body too large")
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except HTTPException as error:  # raised where no handler caught it
            if started or error.status_code != _TOO_LARGE:
                raise
            await self._refuse(send, error.status_code, str(error.detail))

    @staticmethod
    async def _refuse(send: Send, code: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    """422 with what was wrong where, without echoing the input back: it can be anything,
    even a NaN that JSON cannot carry (FastAPI's own handler would fail on it with a 500)."""
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    detail = [
        {
            "type": str(e.get("type", "")),
            "loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
        }
        for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _expire_forever(context: HubContext) -> None:
    """Unlist expired entries now and every ``expire_interval`` seconds (each hub process does
    it; the store makes concurrent runs safe)."""
    while True:
        try:
            removed = await asyncio.to_thread(context.store.expire)
        except HubError as error:
            logger.warning("cannot expire blocklist entries: %s", error)
        except Exception:  # the loop must outlive a surprise; the log tells what it was
            logger.exception("expiring blocklist entries failed")
        else:
            if removed:
                logger.info("%d addresses left the blocklist", removed)
        await asyncio.sleep(context.settings.expire_interval)


async def _prune_forever(context: HubContext) -> None:
    """Forget old reports, stale addresses and old journal changes now and every
    ``prune_interval`` seconds (each process does it, in short transactions; the store makes
    concurrent runs safe)."""
    while True:
        try:
            result = await asyncio.to_thread(context.store.prune)
        except HubError as error:
            logger.warning("cannot prune the hub's tables: %s", error)
        except Exception:  # the loop must outlive a surprise; the log tells what it was
            logger.exception("pruning the hub's tables failed")
        else:
            if result:
                logger.info(
                    "pruned %d reports, %d addresses, %d blocklist changes",
                    result.reports,
                    result.addresses,
                    result.changes,
                )
        await asyncio.sleep(context.settings.prune_interval)


def create_app(
    store: HubStore,
    settings: HubSettings | None = None,
    *,
    clock: Clock | None = None,
    close_store: bool = False,
) -> FastAPI:
    """The hub application over ``store`` (migrated). ``close_store``: close the store when the
    application shuts down (when the application owns it)."""
    context = HubContext(store, settings or HubSettings(), clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_expire_forever(context)),
            asyncio.create_task(_prune_forever(context)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if close_store:
                await asyncio.to_thread(store.close)

    app = FastAPI(
        title="gardien hub",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Served below, to authenticated callers only: nothing but /health answers strangers.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = context
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(api.router)
    _add_docs(app)
    if importlib.util.find_spec("gardien.hub.web") is not None:
        # The dashboard (its own module, its own session authentication).
        from gardien.hub import web

        router = getattr(web, "router", None)
        if router is not None:
            app.include_router(router)
    app.add_middleware(BodyLimit, limit=context.settings.max_body)
    return app


async def _docs_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)],
) -> None:
    """The API's documentation is for agents (their token) and for administrators logged in
    to the dashboard (their session cookie: a browser cannot send a bearer token)."""
    if credentials is None and importlib.util.find_spec("gardien.hub.web") is not None:
        from gardien.hub.sessions import COOKIE, FULL
        from gardien.hub.web import dashboard

        sessions = dashboard(request).sessions
        cookie = request.cookies.get(COOKIE)
        if await run_in_threadpool(sessions.load, cookie, FULL) is not None:
            return
    await require_agent(request, credentials)


def _add_docs(app: FastAPI) -> None:
    readers = [Depends(_docs_reader)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=readers)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=readers)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="gardien hub API")


def check_schema(url: str) -> None:
    """Raise :class:`HubError` unless the database at ``url`` has the newest schema
    (``gardien hub migrate`` brings it there)."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    parsed = database_url(url)
    shown = parsed.render_as_string(hide_password=True)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        raise HubError(f"hub database {shown}: no such file (run `gardien hub migrate`)")
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = create_engine(parsed)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as error:
        text = str(getattr(error, "orig", None) or error).strip().splitlines()
        message = text[0] if text else type(error).__name__
        if parsed.password:
            message = message.replace(str(parsed.password), "***")
        raise HubError(f"hub database {shown}: {message}") from None
    finally:
        engine.dispose()
    if current != heads:
        have = ", ".join(sorted(current)) or "none"
        raise HubError(
            f"hub database {shown}: schema revision {have}, this gardien needs "
            f"{', '.join(sorted(heads))} (run `gardien hub migrate`)"
        )


def app_from_environment() -> FastAPI:
    """The application ``gardien hub serve`` describes in :data:`SETTINGS_ENVIRONMENT`
    (``{"database": URL, "settings": {...}}``): uvicorn's factory."""
    text = os.environ.get(SETTINGS_ENVIRONMENT)
    if not text:
        raise HubError(f"{SETTINGS_ENVIRONMENT} is not set: start the hub with `gardien hub serve`")
    data: dict[str, Any] = json.loads(text)
    settings = HubSettings.from_json(json.dumps(data.get("settings", {})))
    url = str(data["database"])
    check_schema(url)
    store = HubStore(url, consensus=settings.consensus)
    return create_app(store, settings, close_store=True)

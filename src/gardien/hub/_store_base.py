"""The hub database's foundation: its URL, engine, transactions, errors and schema upgrades.

:class:`StoreBase` opens a pool of connections to SQLite or PostgreSQL with the settings each
needs (on SQLite: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for writers), runs each unit of
work in one transaction (retried when PostgreSQL picks it as a deadlock's victim), turns
database failures into one-line :class:`HubError` messages without the password, and brings
the schema up to date. The small helpers that the store's other parts share live here too.
:class:`gardien.hub.store.HubStore` builds on it.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from gardien.clock import Clock, SystemClock
from gardien.errors import HubError
from gardien.hub.model import Consensus, never_listed
from gardien.model import parse_address

#: agent and user names
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")

_T = TypeVar("_T")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_RETRIES = 6
# PostgreSQL: deadlock_detected, serialization_failure; both mean "run it again"
_RETRY_STATES = frozenset({"40P01", "40001"})
_CHUNK = 500  # addresses per IN (...) list, rows per multi-row statement
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x6761_7264  # a PostgreSQL advisory lock key: one migrator at a time
_USAGE = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/NAME"
#: pooled SQLite connections (uvicorn runs sync endpoints in a pool of 40 threads)
_SQLITE_POOL = 40


def database_url(text: str) -> URL:
    """The SQLAlchemy URL for ``text``: ``sqlite:///PATH``, or ``postgresql://``,
    ``postgres://`` or ``postgresql+psycopg://`` (all driven by psycopg 3)."""
    text = text.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # the text may hold a password: do not repeat it
        raise HubError(f"the database is not given as a URL ({_USAGE})") from None
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername in ("postgresql", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url.set(drivername="sqlite+pysqlite")
    raise HubError(f"unsupported database {url.render_as_string(hide_password=True)!r} ({_USAGE})")


class StoreBase:
    """The connections, transactions, errors and schema upgrades of
    :class:`gardien.hub.store.HubStore` (which documents the arguments)."""

    def __init__(
        self, url: str, *, consensus: Consensus | None = None, clock: Clock | None = None
    ) -> None:
        self.consensus = consensus or Consensus()
        self._clock = clock or SystemClock()
        self._url = database_url(url)
        #: the URL with its password hidden, for messages
        self.url = self._url.set(drivername=self._url.get_backend_name()).render_as_string(
            hide_password=True
        )
        self._engine = self._create_engine()
        self._postgres = self._engine.dialect.name == "postgresql"
        #: a SQLite file on this machine: point reads are quicker than a thread hop
        self.local = not self._postgres
        self._allow_cache: tuple[float, list[tuple[_Network, str]]] | None = None

    # ---- connections, transactions, errors ---------------------------------------------

    def _create_engine(self) -> Engine:
        url = self._url
        if url.get_backend_name() == "postgresql":
            return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        database = url.database or ""
        if database in ("", ":memory:"):
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            path = Path(database)
            if not path.parent.is_dir():
                raise HubError(f"hub database {self.url}: no such directory {path.parent}")
            if not path.exists():
                # agent token hashes, password hashes and TOTP secrets: root's eyes only
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            # as many connections as the server's worker threads: a connection closed and
            # opened again costs its pragmas, a schema parse and its statement cache
            engine = create_engine(
                url, connect_args={"timeout": 30}, pool_size=_SQLITE_POOL, max_overflow=8
            )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "foreign_keys=ON",
                "busy_timeout=30000",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # a writer takes the lock first: upgrading a read lock later can fail at once
            options = connection.get_execution_options()
            if options.get("gardien_lookup"):
                return  # a lookup: each statement on its own (autocommit), one round trip less
            connection.exec_driver_sql(
                "BEGIN IMMEDIATE" if options.get("gardien_write") else "BEGIN"
            )

        return engine

    def _run(
        self,
        work: Callable[[Connection], _T],
        *,
        write: bool = True,
        snapshot: bool = False,
        lookup: bool = False,
    ) -> _T:
        """``work`` in one transaction (retried when PostgreSQL picks it as a deadlock's
        victim); ``snapshot``: all its reads see one moment; ``lookup``: a read whose
        statements need not see one moment (on SQLite, no BEGIN at all)."""
        for attempt in range(_RETRIES):
            try:
                with self._engine.connect() as connection:
                    options: dict[str, Any] = {
                        "gardien_write": write,
                        "gardien_lookup": lookup and not write,
                    }
                    if snapshot and self._postgres:
                        options["isolation_level"] = "REPEATABLE READ"
                    connection.execution_options(**options)
                    with connection.begin():
                        return work(connection)
            except DBAPIError as error:
                state = getattr(error.orig, "sqlstate", None)
                if state in _RETRY_STATES and attempt + 1 < _RETRIES:
                    time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))  # noqa: S311
                    continue
                raise self._error(error) from None
            except SQLAlchemyError as error:
                raise self._error(error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, error: SQLAlchemyError) -> HubError:
        """A one-line :class:`HubError` (no SQL, no parameters, no password)."""
        orig = error.orig if isinstance(error, DBAPIError) else None
        text = str(orig if orig is not None else error).strip()
        text = text.splitlines()[0] if text else type(error).__name__
        if self._url.password:
            text = text.replace(str(self._url.password), "***")
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            text += " (run `gardien hub migrate`)"
        return HubError(f"hub database {self.url}: {text}")

    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema up to date (``alembic upgrade head``); safe to run again and from
        several processes at once. Returns the revision before and after."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        def work(connection: Connection) -> tuple[str | None, str]:
            if self._postgres:
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            before = MigrationContext.configure(connection).get_current_revision()
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            after = MigrationContext.configure(connection).get_current_revision()
            return before, str(after)

        return self._run(work)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def health(self) -> None:
        """Return if the database answers a trivial query; raise :class:`HubError` if not."""
        self._run(lambda connection: connection.exec_driver_sql("SELECT 1").scalar(), write=False)


# ---- helpers ----------------------------------------------------------------------------


def _single_address(text: str) -> str:
    """``text`` as a canonical single address, or :class:`HubError`."""
    parsed = parse_address(text) if isinstance(text, str) else None
    if parsed is None or isinstance(parsed, ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise HubError(f"{text!r} is not an IP address")
    return str(parsed)


def _network(text: str) -> _Network:
    """``text`` (a CIDR, or one address meaning its /32 or /128) as a network."""
    parsed = parse_address(text)
    if parsed is None:
        raise HubError(f"{text!r} is not a network (CIDR such as 192.0.2.0/24 or 2001:db8::/48)")
    if isinstance(parsed, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return parsed
    return ipaddress.ip_network(parsed)


def _why_never(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    allowed: Iterable[tuple[_Network, str]],
) -> str | None:
    """Why ``address`` is never listed: a built-in range or an allowlist entry."""
    built_in = never_listed(address)
    if built_in is not None:
        return built_in
    for network, comment in allowed:
        if network.version == address.version and address in network:
            return f"allowlist {network}" + (f" ({comment})" if comment else "")
    return None


def _decay(value: float, elapsed: float, half_life: float) -> float:
    """``value`` after ``elapsed`` seconds of halving every ``half_life``."""
    if elapsed <= 0 or half_life <= 0:
        return value
    return float(value * 0.5 ** (elapsed / half_life))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

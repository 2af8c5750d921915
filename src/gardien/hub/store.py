"""The hub's database: every read and write, the same on SQLite and on PostgreSQL.

:class:`HubStore` is thread-safe (a pool of connections) and several hub processes may share
one PostgreSQL database: counters are updated under row locks, the blocklist journal is
written in commit order (so a delta-sync cursor never skips a change), and ``expire()`` and
``allow()`` unlist with a conditional UPDATE that exactly one process wins. Writes on SQLite
take the write lock up front (``BEGIN IMMEDIATE``) and wait for it (busy timeout); a
PostgreSQL transaction that loses a deadlock is retried.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Row,
    Select,
    Table,
    bindparam,
    cast,
    create_engine,
    delete,
    distinct,
    event,
    func,
    insert,
    make_url,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from gardien.clock import Clock, SystemClock
from gardien.errors import HubError
from gardien.hub import schema
from gardien.hub.model import (
    CATEGORY_PATTERN,
    JAIL_PATTERN,
    AgentInfo,
    AllowEntry,
    BlocklistDelta,
    Consensus,
    HubStats,
    IngestResult,
    PruneResult,
    Report,
    Reputation,
    SessionInfo,
    UserInfo,
    never_listed,
    reporter_network,
)
from gardien.model import parse_address

__all__ = [
    "NAME_PATTERN",
    "PRUNE_BATCH",
    "TOKEN_PREFIX",
    "HubStore",
    "database_url",
    "token_hash",
]

#: agent and user names
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
#: what every agent token starts with (so that a leaked one is easy to recognise)
TOKEN_PREFIX = "gdn_"  # noqa: S105 (not a secret)

_T = TypeVar("_T")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_RETRIES = 6
# PostgreSQL: deadlock_detected, serialization_failure; both mean "run it again"
_RETRY_STATES = frozenset({"40P01", "40001"})
_CHUNK = 500  # addresses per IN (...) list, rows per multi-row statement
# PostgreSQL array types of the columns that batches send as arrays
_PG_ARRAYS = {
    **dict.fromkeys(("ip", "network", "jail", "category", "categories", "op"), "text[]"),
    **dict.fromkeys(("agent_id", "failures", "reports"), "integer[]"),
    **dict.fromkeys(
        (
            "time",
            "received",
            "first_seen",
            "last_seen",
            "score",
            "score_time",
            "listed_since",
            "expires",
        ),
        "float8[]",
    ),
}
# the columns of ``addresses`` that ingest() recomputes
_MERGED = (
    "first_seen",
    "last_seen",
    "reports",
    "score",
    "score_time",
    "categories",
    "expires",
)
# one batch into ``addresses`` on PostgreSQL: counts add up, times widen, the score decays to
# the later of the two score times before adding (0.5 ** x is capped: PostgreSQL refuses to
# underflow), categories are a sorted union, a listed address's expiry moves with its last
# report
_PG_MERGE = """
INSERT INTO addresses AS a (ip, first_seen, last_seen, reports, score, score_time, categories)
SELECT * FROM unnest(%(ip)s::text[], %(first_seen)s::float8[], %(last_seen)s::float8[],
                     %(reports)s::integer[], %(score)s::float8[], %(score_time)s::float8[],
                     %(categories)s::text[])
ON CONFLICT (ip) DO UPDATE SET
    first_seen = LEAST(a.first_seen, excluded.first_seen),
    last_seen = GREATEST(a.last_seen, excluded.last_seen),
    reports = a.reports + excluded.reports,
    score = a.score * power(0.5, LEAST(1000, (GREATEST(a.score_time, excluded.score_time)
                                              - a.score_time) / %(half_life)s))
          + excluded.score * power(0.5, LEAST(1000, (GREATEST(a.score_time,
                                                   excluded.score_time)
                                              - excluded.score_time) / %(half_life)s)),
    score_time = GREATEST(a.score_time, excluded.score_time),
    categories = CASE WHEN a.categories = excluded.categories THEN a.categories ELSE (
        SELECT json_agg(c ORDER BY c)::text FROM (
            SELECT jsonb_array_elements_text(a.categories::jsonb)
            UNION SELECT jsonb_array_elements_text(excluded.categories::jsonb)) AS t(c)
    ) END,
    expires = CASE WHEN a.listed_since IS NULL THEN NULL
                   ELSE GREATEST(a.expires, GREATEST(a.last_seen, excluded.last_seen) + %(ttl)s)
              END
RETURNING ip, listed_since IS NOT NULL, last_seen, reports
"""
_TOUCH_INTERVAL = 60.0
#: rows one prune transaction deletes at most: the write lock is never held for long
PRUNE_BATCH = 10_000
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x6761_7264  # a PostgreSQL advisory lock key: one migrator at a time
_USAGE = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/NAME"


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


def token_hash(token: str) -> str:
    """What the database keeps of an agent token: its SHA-256 (a token carries 256 random
    bits, so a fast hash is enough; argon2 is for passwords people choose)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _Touched:
    """One address's share of a batch of reports."""

    first: float
    last: float
    times: list[float] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)

    def score(self, at: float, half_life: float) -> float:
        """What these reports add to the score, decayed to time ``at``."""
        return sum(_decay(1.0, at - when, half_life) for when in self.times)


_ALLOW_CACHE_SECONDS = 1.0
#: pooled SQLite connections (uvicorn runs sync endpoints in a pool of 40 threads)
_SQLITE_POOL = 40
_ADDRESS_ROW = select(schema.addresses).where(schema.addresses.c.ip == bindparam("ip"))
# who reported an address, in which jail, and when last: a few rows (agents x jails), from
# which one pass in Python counts agents, networks and jails, recent or not
_REPORTERS_OF = (
    select(
        schema.reports.c.agent_id,
        schema.reports.c.network,
        schema.reports.c.jail,
        func.max(schema.reports.c.time),
    )
    .where(schema.reports.c.ip == bindparam("ip"))
    .group_by(schema.reports.c.agent_id, schema.reports.c.network, schema.reports.c.jail)
)


class HubStore:
    """The hub's database (see docs/hub.md). ``url``: ``sqlite:///PATH`` or
    ``postgresql://...``; ``consensus``: when addresses are listed; ``clock``: what "now" is.

    Every method raises :class:`HubError` when the database fails (the URL's password is
    never shown) or when given something invalid.
    """

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

    def health(self) -> None:
        """Return if the database answers a trivial query; raise :class:`HubError` if not."""
        self._run(lambda connection: connection.exec_driver_sql("SELECT 1").scalar(), write=False)

    # ---- agents ------------------------------------------------------------------------

    def add_agent(self, name: str, network: str | None = None) -> tuple[AgentInfo, str]:
        """Enrol an agent; returns it and its token, which is shown this once (only its
        SHA-256 is kept). ``network``: the CIDR its reports count under, else the /24 or /48
        of the address each report comes from."""
        if not NAME_PATTERN.match(name):
            raise HubError(
                f"{name!r} is not a valid agent name (letters, digits, '_.@-', up to 64)"
            )
        canonical = str(_network(network)) if network is not None else None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock.now()

        def work(connection: Connection) -> AgentInfo:
            taken = connection.execute(
                select(schema.agents.c.id).where(schema.agents.c.name == name)
            ).first()
            if taken is not None:
                raise HubError(f"an agent named {name!r} already exists")
            key = connection.execute(
                insert(schema.agents)
                .values(
                    name=name,
                    token_hash=token_hash(token),
                    network=canonical,
                    created=now,
                    disabled=False,
                )
                .returning(schema.agents.c.id)
            ).scalar_one()
            return AgentInfo(id=int(key), name=name, network=canonical, created=now)

        return self._run(work), token

    def agents(self) -> list[AgentInfo]:
        """Every agent, disabled ones included, by name."""
        return self._run(
            lambda connection: [
                _agent(row)
                for row in connection.execute(select(schema.agents).order_by(schema.agents.c.name))
            ],
            write=False,
        )

    def disable_agent(self, name: str) -> bool:
        """Refuse the agent's token from now on; false if there is no such agent."""
        return self._run(
            lambda connection: (
                connection.execute(
                    update(schema.agents).where(schema.agents.c.name == name).values(disabled=True)
                ).rowcount
                > 0
            )
        )

    def agent_for_token(self, token: str) -> AgentInfo | None:
        """The enabled agent this bearer token belongs to, or ``None``."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        digest = token_hash(token)

        def work(connection: Connection) -> AgentInfo | None:
            row = connection.execute(
                select(schema.agents).where(
                    schema.agents.c.token_hash == digest,
                    schema.agents.c.disabled.is_(False),
                )
            ).first()
            return None if row is None else _agent(row)

        return self._run(work, write=False, lookup=True)

    def touch_agent(self, agent_id: int, address: str) -> None:
        """Note when and from where an agent was last heard (written at most once a minute,
        or when its address changes)."""
        now = self._clock.now()
        agents = schema.agents.c
        self._run(
            lambda connection: connection.execute(
                update(schema.agents)
                .where(
                    agents.id == agent_id,
                    or_(
                        agents.last_seen.is_(None),
                        agents.last_seen <= now - _TOUCH_INTERVAL,
                        agents.last_address.is_(None),
                        agents.last_address != address,
                    ),
                )
                .values(last_seen=now, last_address=address)
            )
        )

    # ---- reports and consensus ---------------------------------------------------------

    def ingest(
        self, agent: AgentInfo, source_address: str, reports: Sequence[Report]
    ) -> IngestResult:
        """Store one batch of ``agent``'s reports, sent from ``source_address``, in one
        transaction; list the addresses that now reach consensus."""
        if not reports:
            return IngestResult(accepted=0)
        try:
            network = reporter_network(agent, source_address)
        except ValueError:
            raise HubError(f"{source_address!r} is not an address") from None
        now = self._clock.now()
        rows: list[dict[str, Any]] = []
        touched: dict[str, _Touched] = {}
        for report in reports:
            ip = _single_address(report.ip)
            if not JAIL_PATTERN.match(report.jail):
                raise HubError(f"{report.jail!r} is not a jail name")
            if not CATEGORY_PATTERN.match(report.category):
                raise HubError(f"{report.category!r} is not a category")
            when = float(report.time)
            rows.append(
                {
                    "agent_id": agent.id,
                    "ip": ip,
                    "network": network,
                    "jail": report.jail,
                    "category": report.category,
                    "time": when,
                    "failures": int(report.failures),
                    "received": now,
                }
            )
            entry = touched.get(ip)
            if entry is None:
                entry = touched[ip] = _Touched(first=when, last=when)
            entry.first = min(entry.first, when)
            entry.last = max(entry.last, when)
            entry.times.append(when)
            entry.categories.add(report.category)
        listed = self._run(lambda connection: self._ingest(connection, rows, touched, now))
        return IngestResult(accepted=len(rows), listed=tuple(listed))

    def _ingest(
        self,
        connection: Connection,
        rows: list[dict[str, Any]],
        touched: dict[str, _Touched],
        now: float,
    ) -> list[str]:
        rules = self.consensus
        addresses = schema.addresses.c
        self._insert_many(connection, schema.reports, rows)
        ips = sorted(touched)  # one lock order for every process: fewer deadlocks
        merge = self._merge_postgres if self._postgres else self._merge_sqlite
        state = merge(connection, ips, touched)
        # an address needs at least min_agents reports: most are reported once, by one agent
        unlisted = [ip for ip in ips if not state[ip][0] and state[ip][2] >= rules.min_agents]
        agreed = self._agreed(connection, unlisted, now) if unlisted else set()
        allowed = self._allow_networks(connection) if agreed else []
        newly_listed = [
            ip
            for ip in unlisted
            if ip in agreed
            and state[ip][1] + rules.ttl > now
            and _why_never(ipaddress.ip_address(ip), allowed) is None
        ]
        for chunk in _chunks(newly_listed):
            # the rows are locked by this transaction since the merge: no one else lists them
            connection.execute(
                update(schema.addresses)
                .where(addresses.ip.in_(chunk))
                .values(listed_since=now, expires=addresses.last_seen + rules.ttl)
            )
        self._journal(connection, newly_listed, "add", now)
        return newly_listed

    def _merge_sqlite(
        self, connection: Connection, ips: list[str], touched: dict[str, _Touched]
    ) -> dict[str, tuple[bool, float, int]]:
        """Fold a batch into ``addresses`` (the database is locked for the transaction):
        read, merge here, write back. Returns, per address, whether it is listed, its last
        report time and its number of reports."""
        rules = self.consensus
        addresses = schema.addresses.c
        self._insert_many(
            connection,
            schema.addresses,
            [
                {
                    "ip": ip,
                    "first_seen": touched[ip].first,
                    "last_seen": touched[ip].last,
                    "reports": 0,
                    "score": 0.0,
                    "score_time": touched[ip].first,
                    "categories": "[]",
                }
                for ip in ips
            ],
            skip_existing=True,
        )
        current = {
            row.ip: row
            for chunk in _chunks(ips)
            for row in connection.execute(select(schema.addresses).where(addresses.ip.in_(chunk)))
        }
        updates: list[dict[str, Any]] = []
        state: dict[str, tuple[bool, float, int]] = {}
        for ip in ips:
            row, batch = current[ip], touched[ip]
            last_seen = max(row.last_seen, batch.last)
            score_time = max(row.score_time, batch.last)
            expires = row.expires
            if row.listed_since is not None:
                expires = max(expires or 0.0, last_seen + rules.ttl)
            reports = row.reports + len(batch.times)
            state[ip] = (row.listed_since is not None, last_seen, reports)
            updates.append(
                {
                    "k_ip": ip,
                    "k_first_seen": min(row.first_seen, batch.first),
                    "k_last_seen": last_seen,
                    "k_reports": reports,
                    "k_score": _decay(row.score, score_time - row.score_time, rules.half_life)
                    + batch.score(score_time, rules.half_life),
                    "k_score_time": score_time,
                    "k_categories": json.dumps(
                        sorted(set(json.loads(row.categories)) | batch.categories)
                    ),
                    "k_expires": expires,
                }
            )
        connection.execute(
            update(schema.addresses)
            .where(addresses.ip == bindparam("k_ip"))
            .values({name: bindparam(f"k_{name}") for name in _MERGED}),
            updates,
        )
        return state

    def _merge_postgres(
        self, connection: Connection, ips: list[str], touched: dict[str, _Touched]
    ) -> dict[str, tuple[bool, float, int]]:
        """Fold a batch into ``addresses`` in one upsert that does the arithmetic in the
        server and locks the rows till commit, so concurrent hub processes add up rather
        than overwrite. Returns what :meth:`_merge_sqlite` does."""
        rules = self.consensus
        rows = {
            "ip": ips,
            "first_seen": [touched[ip].first for ip in ips],
            "last_seen": [touched[ip].last for ip in ips],
            "reports": [len(touched[ip].times) for ip in ips],
            "score": [touched[ip].score(touched[ip].last, rules.half_life) for ip in ips],
            "score_time": [touched[ip].last for ip in ips],
            "categories": [json.dumps(sorted(touched[ip].categories)) for ip in ips],
        }
        half_life = rules.half_life if rules.half_life > 0 else float("inf")
        result = connection.exec_driver_sql(
            _PG_MERGE, {**rows, "half_life": half_life, "ttl": rules.ttl}
        )
        return {ip: (listed, last_seen, reports) for ip, listed, last_seen, reports in result}

    def _insert_many(
        self,
        connection: Connection,
        table: Table,
        rows: list[dict[str, Any]],
        *,
        skip_existing: bool = False,
    ) -> None:
        """Insert ``rows`` (``skip_existing``: but not over a row with the same key). On
        PostgreSQL one statement of arrays, ``INSERT ... SELECT FROM unnest(...)``, with a
        fixed text the server prepares once (a round trip per row, or compiling a statement
        of a thousand values, costs more than the rows); the driver's loop on SQLite."""
        if not rows:
            return
        if not self._postgres:
            statement = sqlite.insert(table)
            if skip_existing:
                statement = statement.on_conflict_do_nothing()
            connection.execute(statement, rows)
            return
        names = list(rows[0])
        arrays = ", ".join(f"%({name})s::{_PG_ARRAYS[name]}" for name in names)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"  # noqa: S608
        if skip_existing:
            sql += " ON CONFLICT DO NOTHING"
        # names and types are ours, never data: the values travel as parameters
        connection.exec_driver_sql(sql, {name: [row[name] for row in rows] for name in names})

    def _agreed(self, connection: Connection, ips: Sequence[str], now: float) -> set[str]:
        """Those of ``ips`` that enough distinct agents and networks reported within the
        window (one grouped query per chunk)."""
        reports = schema.reports.c
        rules = self.consensus
        found: set[str] = set()
        for chunk in _chunks(ips):
            found.update(
                connection.execute(
                    select(reports.ip)
                    .where(reports.ip.in_(chunk), reports.time >= now - rules.window)
                    .group_by(reports.ip)
                    .having(
                        func.count(distinct(reports.agent_id)) >= rules.min_agents,
                        func.count(distinct(reports.network)) >= rules.min_networks,
                    )
                ).scalars()
            )
        return found

    def _journal(self, connection: Connection, ips: Sequence[str], op: str, now: float) -> None:
        """Append changes to the blocklist journal. On PostgreSQL one transaction at a time
        may do so, so that sequence numbers become visible in order: a reader's cursor never
        jumps over a change still being committed."""
        if not ips:
            return
        if self._postgres:
            connection.exec_driver_sql("LOCK TABLE blocklist_changes IN EXCLUSIVE MODE")
        self._insert_many(
            connection,
            schema.blocklist_changes,
            [{"ip": ip, "op": op, "time": now} for ip in ips],
        )

    def expire(self) -> int:
        """Unlist the addresses whose time is up; returns how many. Safe from several
        processes at once: each removal is journalled by exactly one of them."""
        now = self._clock.now()
        addresses = schema.addresses.c

        def work(connection: Connection) -> int:
            ips = list(
                connection.execute(
                    update(schema.addresses)
                    .where(addresses.expires <= now)
                    .values(listed_since=None, expires=None)
                    .returning(addresses.ip)
                ).scalars()
            )
            self._journal(connection, ips, "remove", now)
            return len(ips)

        return self._run(work)

    # ---- reading -----------------------------------------------------------------------

    def reputation(self, ip: str) -> Reputation:
        """What the hub knows of one address. The hot path of ``GET /api/v1/ip``: its
        statements are built once, and the allowlist is read at most once a second."""
        address = _single_address(ip)
        parsed = ipaddress.ip_address(address)
        now = self._clock.now()
        rules = self.consensus

        def work(connection: Connection) -> Reputation:
            why = _why_never(parsed, self._recent_allow_networks(connection))
            row = connection.execute(_ADDRESS_ROW, {"ip": address}).first()
            if row is None:
                return Reputation(ip=address, known=False, allowlisted=why)
            recent = now - rules.window
            agents: set[int] = set()
            networks: set[str] = set()
            recent_agents: set[int] = set()
            recent_networks: set[str] = set()
            jails: set[str] = set()
            for agent_id, network, jail, last in connection.execute(_REPORTERS_OF, {"ip": address}):
                agents.add(agent_id)
                networks.add(network)
                jails.add(jail)
                if last >= recent:
                    recent_agents.add(agent_id)
                    recent_networks.add(network)
            return Reputation(
                ip=address,
                known=True,
                reports=row.reports,
                agents=len(agents),
                networks=len(networks),
                recent_agents=len(recent_agents),
                recent_networks=len(recent_networks),
                categories=tuple(json.loads(row.categories)),
                jails=tuple(sorted(jails)),
                first_seen=row.first_seen,
                last_seen=row.last_seen,
                score=_decay(row.score, now - row.score_time, rules.half_life),
                listed=row.listed_since is not None,
                listed_since=row.listed_since,
                expires=row.expires,
                allowlisted=why,
            )

        return self._run(work, write=False, lookup=True)

    def _recent_allow_networks(self, connection: Connection) -> list[tuple[_Network, str]]:
        """The allowlist as read less than a second ago (by this store), else read now. For
        lookups only: listing decisions always read it afresh."""
        now = time.monotonic()
        cached = self._allow_cache
        if cached is not None and now - cached[0] < _ALLOW_CACHE_SECONDS:
            return cached[1]
        networks = self._allow_networks(connection)
        self._allow_cache = (now, networks)
        return networks

    def blocklist(self) -> tuple[list[str], int]:
        """Every listed address (canonical, in no particular order) and the cursor that
        ``blocklist_delta`` continues from."""

        def work(connection: Connection) -> tuple[list[str], int]:
            # straight from the driver: a million rows, no per-row objects
            result = connection.exec_driver_sql(
                "SELECT ip FROM addresses WHERE listed_since IS NOT NULL"
            )
            listed = [row[0] for row in result.cursor.fetchall()] if result.cursor else []
            return listed, self._last_seq(connection)

        return self._run(work, write=False, snapshot=True)

    def blocklist_delta(self, since: int) -> BlocklistDelta:
        """What changed after cursor ``since`` (each address once, as it is now). When the
        journal cannot tell (``since`` predates the oldest change it still holds, pruned
        since, or is ahead of it: another database), a *reset*: the whole list in
        ``added``."""
        changes = schema.blocklist_changes.c

        def work(connection: Connection) -> BlocklistDelta:
            first, last = connection.execute(
                select(func.min(changes.seq), func.coalesce(func.max(changes.seq), 0))
            ).one()
            if since > last or (first is not None and since < first - 1):
                # one snapshot: the list is exactly the state at cursor ``last``
                listed = connection.execute(
                    select(schema.addresses.c.ip).where(
                        schema.addresses.c.listed_since.is_not(None)
                    )
                ).scalars()
                return BlocklistDelta(tuple(sorted(listed)), (), int(last), reset=True)
            state: dict[str, str] = {}
            for ip, op in connection.execute(
                select(changes.ip, changes.op)
                .where(changes.seq > since, changes.seq <= last)
                .order_by(changes.seq)
            ):
                state[ip] = op
            added = tuple(sorted(ip for ip, op in state.items() if op == "add"))
            removed = tuple(sorted(ip for ip, op in state.items() if op == "remove"))
            return BlocklistDelta(added, removed, int(last))

        return self._run(work, write=False, snapshot=True)

    def prune(self, batch: int = PRUNE_BATCH) -> PruneResult:
        """Forget what the hub no longer needs (see :class:`Consensus`): reports older than
        ``kept_reports``, addresses neither listed nor reported for as long, and journal
        changes older than ``journal_retention`` but the newest (the cursor never goes back).
        At most ``batch`` rows per transaction; safe from several processes at once (each
        row is deleted, and counted, by one of them)."""
        now = self._clock.now()
        rules = self.consensus
        forget_before = now - rules.kept_reports
        reports = schema.reports.c
        addresses = schema.addresses.c
        changes = schema.blocklist_changes.c

        def old_reports(connection: Connection) -> int:
            ids = self._locked(select(reports.id).where(reports.time < forget_before).limit(batch))
            return connection.execute(delete(schema.reports).where(reports.id.in_(ids))).rowcount

        def old_changes(connection: Connection) -> int:
            newest = select(func.max(changes.seq)).scalar_subquery()
            seqs = self._locked(
                select(changes.seq)
                .where(changes.time < now - rules.journal_retention, changes.seq < newest)
                .order_by(changes.seq)
                .limit(batch)
            )
            deleted = delete(schema.blocklist_changes).where(changes.seq.in_(seqs))
            return connection.execute(deleted).rowcount

        removed_reports = self._repeat(old_reports, batch)
        removed_changes = self._repeat(old_changes, batch)
        # addresses last: their reports are gone by now. Walked in key order, so that each
        # batch starts where the last one stopped instead of reading the kept rows again.
        removed_addresses = 0
        after = ""
        while True:

            def stale_addresses(connection: Connection, after: str = after) -> list[str]:
                ips = self._locked(
                    select(addresses.ip)
                    .where(
                        addresses.ip > after,
                        addresses.listed_since.is_(None),
                        addresses.last_seen < forget_before,
                    )
                    .order_by(addresses.ip)
                    .limit(batch)
                )
                deleted = delete(schema.addresses).where(addresses.ip.in_(ips))
                return list(connection.execute(deleted.returning(addresses.ip)).scalars())

            gone = self._run(stale_addresses)
            removed_addresses += len(gone)
            if len(gone) < batch:
                break
            after = max(gone)
        return PruneResult(removed_reports, removed_changes, removed_addresses)

    def _locked(self, query: Select[Any]) -> Select[Any]:
        """``query``'s rows locked for the deletion that follows; on PostgreSQL, rows another
        process holds (an ingest, another prune) are skipped rather than waited for."""
        return query.with_for_update(skip_locked=True) if self._postgres else query

    def _repeat(self, work: Callable[[Connection], int], batch: int) -> int:
        """Run ``work`` (one batch of deletions) in transactions until a batch is not full."""
        total = 0
        while True:
            deleted = self._run(work)
            total += deleted
            if deleted < batch:
                return total

    @staticmethod
    def _last_seq(connection: Connection) -> int:
        return int(
            connection.execute(
                select(func.coalesce(func.max(schema.blocklist_changes.c.seq), 0))
            ).scalar_one()
        )

    def stats(self, since: float, until: float, top: int = 10) -> HubStats:
        """Reports between ``since`` and ``until`` (by the time of each ban): totals, per hour
        and per day, and the ``top`` addresses, categories and reporters."""
        reports = schema.reports.c
        within = (reports.time >= since, reports.time < until)
        top = max(0, int(top))

        def tops(connection: Connection, column: Any) -> tuple[tuple[str, int], ...]:
            count = func.count().label("n")
            query = select(column, count).where(*within).group_by(column)
            if column is schema.agents.c.name:
                query = query.join_from(schema.reports, schema.agents)
            rows = connection.execute(query.order_by(count.desc(), column).limit(top))
            return tuple((str(name), int(n)) for name, n in rows)

        def per(connection: Connection, seconds: int) -> tuple[tuple[float, int], ...]:
            bucket = self._bucket(reports.time, seconds).label("bucket")
            rows = connection.execute(
                select(bucket, func.count()).where(*within).group_by(bucket).order_by(bucket)
            )
            return tuple((float(int(start) * seconds), int(n)) for start, n in rows)

        def work(connection: Connection) -> HubStats:
            total, distinct_ips = connection.execute(
                select(func.count(), func.count(distinct(reports.ip))).where(*within)
            ).one()
            listed = connection.execute(
                select(func.count()).where(schema.addresses.c.listed_since.is_not(None))
            ).scalar_one()
            return HubStats(
                since=since,
                until=until,
                reports=int(total),
                addresses=int(distinct_ips),
                listed=int(listed),
                per_hour=per(connection, 3600),
                per_day=per(connection, 86400),
                top_addresses=tops(connection, reports.ip),
                top_categories=tops(connection, reports.category),
                top_reporters=tops(connection, schema.agents.c.name),
            )

        return self._run(work, write=False, snapshot=True)

    def _bucket(self, column: Any, seconds: int) -> ColumnElement[Any]:
        """The number of the hour (day...) a time falls in."""
        if self._postgres:
            return cast(func.floor(column / seconds), Integer)
        return cast(column / seconds, Integer)  # SQLite truncates, and times are positive

    # ---- allowlist ---------------------------------------------------------------------

    def allowlist(self) -> list[AllowEntry]:
        """The administrator's never-listed ranges, oldest first."""
        allow = schema.allowlist.c
        return self._run(
            lambda connection: [
                AllowEntry(network=row.network, comment=row.comment, created=row.created)
                for row in connection.execute(
                    select(schema.allowlist).order_by(allow.created, allow.id)
                )
            ],
            write=False,
        )

    def allow(self, network: str, comment: str = "") -> AllowEntry:
        """Never list ``network`` (a CIDR or one address); what it covers leaves the list
        now, with a 'remove' change each."""
        self._allow_cache = None
        parsed = _network(network)
        comment = " ".join(comment.split())[:200]
        now = self._clock.now()
        addresses = schema.addresses.c

        def work(connection: Connection) -> AllowEntry:
            exists = connection.execute(
                select(schema.allowlist.c.id).where(schema.allowlist.c.network == str(parsed))
            ).first()
            if exists is not None:
                raise HubError(f"{parsed} is already in the allowlist")
            connection.execute(
                insert(schema.allowlist).values(network=str(parsed), comment=comment, created=now)
            )
            query = select(addresses.ip).where(addresses.listed_since.is_not(None))
            prefix = _text_prefix(parsed)
            if prefix:
                query = query.where(addresses.ip.startswith(prefix, autoescape=True))
            covered = [ip for ip in connection.execute(query).scalars() if _covers(parsed, ip)]
            removed: list[str] = []
            for chunk in _chunks(covered):
                removed.extend(
                    connection.execute(
                        update(schema.addresses)
                        .where(addresses.ip.in_(chunk), addresses.listed_since.is_not(None))
                        .values(listed_since=None, expires=None)
                        .returning(addresses.ip)
                    ).scalars()
                )
            self._journal(connection, removed, "remove", now)
            return AllowEntry(network=str(parsed), comment=comment, created=now)

        return self._run(work)

    def disallow(self, network: str) -> bool:
        """Take ``network`` off the allowlist; false if it was not on it."""
        self._allow_cache = None
        canonical = str(_network(network))
        return self._run(
            lambda connection: (
                connection.execute(
                    delete(schema.allowlist).where(schema.allowlist.c.network == canonical)
                ).rowcount
                > 0
            )
        )

    @staticmethod
    def _allow_networks(connection: Connection) -> list[tuple[_Network, str]]:
        return [
            (ipaddress.ip_network(network), comment)
            for network, comment in connection.execute(
                select(schema.allowlist.c.network, schema.allowlist.c.comment)
            )
        ]

    # ---- dashboard users and sessions --------------------------------------------------

    def add_user(self, name: str, password_hash: str, totp_secret: str) -> UserInfo:
        """Create a dashboard user (the caller hashes the password with argon2)."""
        if not NAME_PATTERN.match(name):
            raise HubError(f"{name!r} is not a valid user name (letters, digits, '_.@-')")
        now = self._clock.now()

        def work(connection: Connection) -> UserInfo:
            if connection.execute(
                select(schema.users.c.id).where(schema.users.c.name == name)
            ).first():
                raise HubError(f"a user named {name!r} already exists")
            key = connection.execute(
                insert(schema.users)
                .values(
                    name=name,
                    password_hash=password_hash,
                    totp_secret=totp_secret,
                    created=now,
                    failed_logins=0,
                )
                .returning(schema.users.c.id)
            ).scalar_one()
            return UserInfo(
                id=int(key),
                name=name,
                password_hash=password_hash,
                totp_secret=totp_secret,
                created=now,
            )

        return self._run(work)

    def users(self) -> list[UserInfo]:
        """Every dashboard user, by name."""
        return self._run(
            lambda connection: [
                _user(row)
                for row in connection.execute(select(schema.users).order_by(schema.users.c.name))
            ],
            write=False,
        )

    def user(self, name: str) -> UserInfo | None:
        """The user called ``name``, or ``None``."""

        def work(connection: Connection) -> UserInfo | None:
            row = connection.execute(
                select(schema.users).where(schema.users.c.name == name)
            ).first()
            return None if row is None else _user(row)

        return self._run(work, write=False)

    def remove_user(self, name: str) -> bool:
        """Delete the user called ``name`` and their sessions; false if there is none."""

        def work(connection: Connection) -> bool:
            key = connection.execute(
                select(schema.users.c.id).where(schema.users.c.name == name)
            ).scalar()
            if key is None:
                return False
            connection.execute(delete(schema.sessions).where(schema.sessions.c.user_id == key))
            connection.execute(delete(schema.users).where(schema.users.c.id == key))
            return True

        return self._run(work)

    def record_login(self, user_id: int, ok: bool, locked_until: float | None = None) -> None:
        """After a login attempt: on success note the time and clear the failures; on failure
        count it and lock the account until ``locked_until`` if given."""
        users = schema.users.c
        values: dict[str, Any]
        if ok:
            values = {"last_login": self._clock.now(), "failed_logins": 0, "locked_until": None}
        else:
            values = {"failed_logins": users.failed_logins + 1}
            if locked_until is not None:
                values["locked_until"] = locked_until
        self._run(
            lambda connection: connection.execute(
                update(schema.users).where(users.id == user_id).values(**values)
            )
        )

    def set_totp_step(self, user_id: int, step: int) -> bool:
        """Accept TOTP time step ``step`` for the user only once: false if that step (or a
        later one) was already used, so a code cannot be replayed, even on another process."""
        users = schema.users.c
        return self._run(
            lambda connection: (
                connection.execute(
                    update(schema.users)
                    .where(
                        users.id == user_id,
                        or_(users.totp_last_step.is_(None), users.totp_last_step < step),
                    )
                    .values(totp_last_step=step)
                ).rowcount
                == 1
            )
        )

    def create_session(self, session: SessionInfo) -> None:
        """Store a new session (``session.id`` is the SHA-256 of the cookie value)."""
        if session.stage not in ("password", "full"):
            raise HubError(f"{session.stage!r} is not a session stage")
        self._run(
            lambda connection: connection.execute(
                insert(schema.sessions).values(**_session_values(session))
            )
        )

    def session(self, id_hash: str) -> SessionInfo | None:
        """The unexpired session with this id hash, or ``None``."""
        now = self._clock.now()

        def work(connection: Connection) -> SessionInfo | None:
            row = connection.execute(
                select(schema.sessions).where(
                    schema.sessions.c.id == id_hash, schema.sessions.c.expires > now
                )
            ).first()
            return None if row is None else SessionInfo(**row._asdict())

        return self._run(work, write=False)

    def touch_session(self, id_hash: str, expires: float) -> bool:
        """Move a session's expiry (the idle deadline); false if it is gone."""
        sessions = schema.sessions.c
        return self._run(
            lambda connection: (
                connection.execute(
                    update(schema.sessions).where(sessions.id == id_hash).values(expires=expires)
                ).rowcount
                == 1
            )
        )

    def promote_session(self, id_hash: str, full: SessionInfo) -> bool:
        """Once the TOTP code is right: the unexpired 'password' session ``id_hash`` is
        replaced by ``full`` (a new id, so a cookie fixed before login is worthless). False,
        and nothing stored, if the old session was not there: only one of two requests with
        the same code wins."""
        sessions = schema.sessions.c
        now = self._clock.now()

        def work(connection: Connection) -> bool:
            gone = connection.execute(
                delete(schema.sessions).where(
                    sessions.id == id_hash, sessions.stage == "password", sessions.expires > now
                )
            ).rowcount
            if gone != 1:
                return False
            connection.execute(insert(schema.sessions).values(**_session_values(full)))
            return True

        return self._run(work)

    def delete_session(self, id_hash: str) -> bool:
        """Log out; false if there was no such session."""
        return self._run(
            lambda connection: (
                connection.execute(
                    delete(schema.sessions).where(schema.sessions.c.id == id_hash)
                ).rowcount
                > 0
            )
        )

    def purge_sessions(self) -> int:
        """Delete expired sessions; returns how many."""
        now = self._clock.now()
        return self._run(
            lambda connection: (
                connection.execute(
                    delete(schema.sessions).where(schema.sessions.c.expires <= now)
                ).rowcount
            )
        )


# ---- helpers ----------------------------------------------------------------------------


def _agent(row: Row[Any]) -> AgentInfo:
    return AgentInfo(
        id=row.id,
        name=row.name,
        network=row.network,
        created=row.created,
        last_seen=row.last_seen,
        last_address=row.last_address,
        disabled=bool(row.disabled),
    )


def _session_values(session: SessionInfo) -> dict[str, Any]:
    return {
        "id": session.id,
        "user_id": session.user_id,
        "stage": session.stage,
        "csrf": session.csrf,
        "created": session.created,
        "expires": session.expires,
        "address": session.address,
    }


def _user(row: Row[Any]) -> UserInfo:
    return UserInfo(
        id=row.id,
        name=row.name,
        password_hash=row.password_hash,
        totp_secret=row.totp_secret,
        created=row.created,
        last_login=row.last_login,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
    )


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


def _covers(network: _Network, ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.version == network.version and address in network


def _text_prefix(network: _Network) -> str:
    """A prefix that the text of every IPv4 address in ``network`` starts with (the whole
    octets its prefix length fixes), to narrow a search by LIKE; '' when none helps."""
    if network.version != 4:
        return ""
    octets = min(network.prefixlen // 8, 3)
    if octets == 0:
        return ""
    return ".".join(str(network.network_address).split(".")[:octets]) + "."


def _decay(value: float, elapsed: float, half_life: float) -> float:
    """``value`` after ``elapsed`` seconds of halving every ``half_life``."""
    if elapsed <= 0 or half_life <= 0:
        return value
    return float(value * 0.5 ** (elapsed / half_life))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]

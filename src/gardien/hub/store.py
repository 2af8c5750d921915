"""The hub's database: every read and write, the same on SQLite and on PostgreSQL.

:class:`HubStore` is thread-safe (a pool of connections) and several hub processes may share
one PostgreSQL database: counters are updated under row locks, the blocklist journal is
written in commit order (so a delta-sync cursor never skips a change), and ``expire()`` and
``allow()`` unlist with a conditional UPDATE that exactly one process wins. Writes on SQLite
take the write lock up front (``BEGIN IMMEDIATE``) and wait for it (busy timeout); a
PostgreSQL transaction that loses a deadlock is retried.

The class is built in layers, one module each: ``_store_base.StoreBase`` (the URL, the
engine, transactions, errors, migrations), ``_store_accounts.AccountsStore`` (dashboard users
and sessions), ``_store_ingest.IngestStore`` (reports, consensus, the blocklist journal) and,
here, :class:`HubStore`: agents, expiry, lookups, the blocklist and its delta, pruning,
statistics and the allowlist.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    bindparam,
    cast,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    update,
)

from gardien.errors import HubError
from gardien.hub import schema
from gardien.hub._store_base import (
    NAME_PATTERN,
    _chunks,
    _decay,
    _Network,
    _network,
    _single_address,
    _why_never,
    database_url,
)
from gardien.hub._store_ingest import IngestStore
from gardien.hub.model import (
    AgentInfo,
    AllowEntry,
    BlocklistDelta,
    HubStats,
    PruneResult,
    Reputation,
)

__all__ = [
    "NAME_PATTERN",
    "PRUNE_BATCH",
    "TOKEN_PREFIX",
    "HubStore",
    "database_url",
    "token_hash",
]

#: what every agent token starts with (so that a leaked one is easy to recognise)
TOKEN_PREFIX = "gdn_"  # noqa: S105 (not a secret)

_TOUCH_INTERVAL = 60.0
#: rows one prune transaction deletes at most: the write lock is never held for long
PRUNE_BATCH = 10_000


def token_hash(token: str) -> str:
    """What the database keeps of an agent token: its SHA-256 (a token carries 256 random
    bits, so a fast hash is enough; argon2 is for passwords people choose)."""
    return hashlib.sha256(token.encode()).hexdigest()


_ALLOW_CACHE_SECONDS = 1.0
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


class HubStore(IngestStore):
    """The hub's database (see docs/hub.md). ``url``: ``sqlite:///PATH`` or
    ``postgresql://...``; ``consensus``: when addresses are listed; ``clock``: what "now" is.

    Every method raises :class:`HubError` when the database fails (the URL's password is
    never shown) or when given something invalid.
    """

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

"""Reports in, addresses listed: the hub database's write path and its consensus.

:class:`IngestStore` stores a batch of an agent's reports in one transaction, folds it into the
per-address counters (read, merged in Python and written back on SQLite, where the database is
locked for the transaction; one upsert that does the arithmetic in the server and locks the rows
on PostgreSQL, so that concurrent hub processes add up rather than overwrite), lists the
addresses that enough distinct agents and networks now agree on, and journals each listing in
commit order. :class:`gardien.hub.store.HubStore` builds on it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, bindparam, distinct, func, select, update
from sqlalchemy.dialects import sqlite

from gardien.errors import HubError
from gardien.hub import schema
from gardien.hub._store_accounts import AccountsStore
from gardien.hub._store_base import _chunks, _decay, _Network, _single_address, _why_never
from gardien.hub.model import (
    CATEGORY_PATTERN,
    JAIL_PATTERN,
    AgentInfo,
    IngestResult,
    Report,
    reporter_network,
)

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


class IngestStore(AccountsStore):
    """The reports, consensus and blocklist journal of :class:`gardien.hub.store.HubStore`."""

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

    @staticmethod
    def _allow_networks(connection: Connection) -> list[tuple[_Network, str]]:
        return [
            (ipaddress.ip_network(network), comment)
            for network, comment in connection.execute(
                select(schema.allowlist.c.network, schema.allowlist.c.comment)
            )
        ]

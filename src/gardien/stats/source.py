"""Where the statistics read bans from, already summed up.

:class:`StatsSource` asks only for aggregates (bans per hour, and per address and jail), so
that a million-record history is summed up by SQLite in a few GROUP BY passes instead of
becoming a million Python objects. Two sources:

- :class:`StoreReader`: the daemon's SQLite file, opened read-only. It never migrates nor
  writes, works while the daemon writes (WAL: readers see the last committed transaction
  and never wait) and when it is stopped.
- :class:`Fail2banReader`: fail2ban's own database (its ``bans`` table, which keeps every
  ban until fail2ban's ``dbpurgeage``), read-only too, so that ``gardien -c /etc/fail2ban
  stats`` works on a server that still runs fail2ban.
- :class:`BansSource`: bans in memory (a list, or ``store.history()`` of any
  :class:`~gardien.store.BanStore`), for tests and for other stores.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from gardien.errors import StoreError
from gardien.model import Ban, parse_address
from gardien.store.base import canonical_address
from gardien.store.migrations import APPLICATION_ID, SCHEMA_VERSION

# Each query selects the bans that started in [:since, :until) in the jails of the JSON array
# :jails (all when NULL): constant SQL text whatever the number of jails.
_FIRST_BAN = """
    SELECT MIN(start_time) FROM ban_history
    WHERE start_time >= :since AND start_time < :until
        AND (:jails IS NULL OR jail IN (SELECT value FROM json_each(:jails)))
"""
# start_time >= :since >= :origin, so CAST (which truncates) is the floor
_BANS_PER_HOUR = """
    SELECT CAST((start_time - :origin) / 3600 AS INTEGER) AS hour, COUNT(*) FROM ban_history
    WHERE start_time >= :since AND start_time < :until
        AND (:jails IS NULL OR jail IN (SELECT value FROM json_each(:jails)))
    GROUP BY hour
"""
_ADDRESS_JAIL_COUNTS = """
    SELECT address, jail, COUNT(*), MIN(start_time), MAX(start_time) FROM ban_history
    WHERE start_time >= :since AND start_time < :until
        AND (:jails IS NULL OR jail IN (SELECT value FROM json_each(:jails)))
    GROUP BY address, jail
"""
# The same, made to read the (address, jail, start_time) index from end to end, which holds
# every column needed and in the GROUP BY's order (the unary + keeps SQLite from using the
# start_time index): 5 times faster than the start_time index and a sort of its rows, when
# the range holds much of the history.
_ADDRESS_JAIL_COUNTS_SCAN = """
    SELECT address, jail, COUNT(*), MIN(start_time), MAX(start_time) FROM ban_history
    WHERE +start_time >= :since AND +start_time < :until
        AND (:jails IS NULL OR jail IN (SELECT value FROM json_each(:jails)))
    GROUP BY address, jail
"""
_COUNT = """
    SELECT COUNT(*) FROM ban_history WHERE start_time >= :since AND start_time < :until
"""
_SCAN_FROM_SHARE = 0.2  # of the history in the range: the index from end to end is faster

__all__ = [
    "AddressJailCount",
    "BansSource",
    "Fail2banReader",
    "StatsSource",
    "StoreReader",
    "open_store",
]


AddressJailCount = tuple[str, str, int, float, float]
"""The bans of one address (canonical text, as stored) in one jail: address, jail, how many,
the first start and the last start. Plain tuples: there may be hundreds of thousands."""


class StatsSource(Protocol):
    """The aggregates statistics are computed from. Every method counts the bans that started
    in ``[since, until)``, in ``jails`` (every jail when empty)."""

    def first_ban(self, until: float, jails: Collection[str]) -> float | None:
        """When the earliest ban before ``until`` started, or ``None`` when there is none."""
        ...

    def bans_per_hour(
        self, origin: float, since: float, until: float, jails: Collection[str]
    ) -> Mapping[int, int]:
        """Bans per hour, keyed by the hour's index ``(start - origin) // 3600``; hours without
        bans may be left out. ``origin <= since``."""
        ...

    def address_jail_counts(
        self, since: float, until: float, jails: Collection[str]
    ) -> Iterable[AddressJailCount]:
        """One record per address and jail with bans."""
        ...


class BansSource:
    """A :class:`StatsSource` over bans in memory (their start times count)."""

    def __init__(self, bans: Iterable[Ban]) -> None:
        self._records = [
            (ban.jail, str(canonical_address(ban.address)), float(ban.start)) for ban in bans
        ]

    def _selected(
        self, since: float, until: float, jails: Collection[str]
    ) -> Iterator[tuple[str, str, float]]:
        for record in self._records:
            if since <= record[2] < until and (not jails or record[0] in jails):
                yield record

    def first_ban(self, until: float, jails: Collection[str]) -> float | None:
        return min(
            (start for _, _, start in self._selected(float("-inf"), until, jails)), default=None
        )

    def bans_per_hour(
        self, origin: float, since: float, until: float, jails: Collection[str]
    ) -> Mapping[int, int]:
        counts: dict[int, int] = {}
        for _, _, start in self._selected(since, until, jails):
            index = int((start - origin) // 3600)
            counts[index] = counts.get(index, 0) + 1
        return counts

    def address_jail_counts(
        self, since: float, until: float, jails: Collection[str]
    ) -> Iterable[AddressJailCount]:
        found: dict[tuple[str, str], AddressJailCount] = {}
        for jail, address, start in self._selected(since, until, jails):
            seen = found.get((address, jail))
            found[address, jail] = (
                (address, jail, 1, start, start)
                if seen is None
                else (address, jail, seen[2] + 1, min(seen[3], start), max(seen[4], start))
            )
        return list(found.values())


class StoreReader:
    """The ban history of the daemon's SQLite file ``path``, read-only.

    Opening checks that the file exists, is a gardien store and has a schema this gardien
    knows; each failure raises :class:`StoreError` naming the file. Use :meth:`snapshot` to read
    several aggregates from one consistent state while the daemon keeps writing.
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        self._path = Path(path)
        if not self._path.is_file():
            why = "not a file" if self._path.exists() else "no such file"
            raise StoreError(
                f"{self._path}: no ban store here ({why}; see dbfile in gardien.conf, or --dbfile)"
            )
        try:
            # mode=ro: this connection can neither write nor migrate, whatever is asked of it
            self._connection = sqlite3.connect(
                f"{self._path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=timeout,
                isolation_level=None,  # transactions are explicit (snapshot)
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            self._check_schema()
        except BaseException:
            self._connection.close()
            raise

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Release the file."""
        self._connection.close()

    @contextmanager
    def snapshot(self) -> Iterator[StoreReader]:
        """Read from one state of the store: what the daemon commits meanwhile is not seen, so
        the hourly counts and the per-address counts add up to the same total."""
        self._run("BEGIN")
        try:
            yield self
        finally:
            self._run("COMMIT")

    def first_ban(self, until: float, jails: Collection[str]) -> float | None:
        rows = self._run(_FIRST_BAN, _parameters(float("-inf"), until, jails))
        value = rows[0][0]
        return None if value is None else float(value)

    def bans_per_hour(
        self, origin: float, since: float, until: float, jails: Collection[str]
    ) -> Mapping[int, int]:
        rows = self._run(_BANS_PER_HOUR, {"origin": origin, **_parameters(since, until, jails)})
        return {int(hour): int(count) for hour, count in rows}

    def address_jail_counts(
        self, since: float, until: float, jails: Collection[str]
    ) -> Iterable[AddressJailCount]:
        everything = self._run(_COUNT, _parameters(float("-inf"), float("inf"), ()))[0][0]
        in_range = self._run(_COUNT, _parameters(since, until, ()))[0][0]
        query = (
            _ADDRESS_JAIL_COUNTS_SCAN
            if in_range >= everything * _SCAN_FROM_SHARE
            else _ADDRESS_JAIL_COUNTS
        )
        return self._run(query, _parameters(since, until, jails))

    # helpers

    def _check_schema(self) -> None:
        version = int(self._run("PRAGMA user_version")[0][0])
        application_id = int(self._run("PRAGMA application_id")[0][0])
        if application_id != APPLICATION_ID:
            tables = [row[0] for row in self._run("SELECT name FROM sqlite_master")]
            if not tables:
                raise StoreError(f"{self._path}: an empty database, not a gardien ban store")
            kind = "a fail2ban database" if "fail2banDb" in tables else "not a gardien database"
            raise StoreError(f"{self._path}: {kind} (application_id {application_id:#x})")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self._path}: the ban store has schema version {version}, newer than version "
                f"{SCHEMA_VERSION} this gardien knows; use a newer gardien"
            )

    def _run(self, sql: str, parameters: Sequence[object] | Mapping[str, object] = ()) -> list[Any]:
        try:
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        reason = str(exc)
        name = getattr(exc, "sqlite_errorname", None)
        if name:
            reason += f" ({name})"
        return StoreError(f"{self._path}: cannot read the ban store: {reason}")


def _fail2ban_sql(sql: str) -> str:
    """A query of :class:`StoreReader` on fail2ban's ``bans(jail, ip, timeofban, ...)``."""
    return (
        sql.replace("ban_history", "bans")
        .replace("start_time", "timeofban")
        .replace("address", "ip")
    )


class Fail2banReader(StoreReader):
    """The ban history of fail2ban's SQLite database (``dbfile`` of ``fail2ban.conf``),
    read-only. fail2ban keeps it only for its ``dbpurgeage`` (one day by default)."""

    def _check_schema(self) -> None:
        tables = {row[0] for row in self._run("SELECT name FROM sqlite_master")}
        if not {"fail2banDb", "bans"} <= tables:
            raise StoreError(f"{self._path}: not a fail2ban database")

    def first_ban(self, until: float, jails: Collection[str]) -> float | None:
        rows = self._run(_fail2ban_sql(_FIRST_BAN), _parameters(float("-inf"), until, jails))
        value = rows[0][0]
        return None if value is None else float(value)

    def bans_per_hour(
        self, origin: float, since: float, until: float, jails: Collection[str]
    ) -> Mapping[int, int]:
        rows = self._run(
            _fail2ban_sql(_BANS_PER_HOUR), {"origin": origin, **_parameters(since, until, jails)}
        )
        return {int(hour): int(count) for hour, count in rows}

    def address_jail_counts(
        self, since: float, until: float, jails: Collection[str]
    ) -> Iterable[AddressJailCount]:
        # fail2ban's text is not always canonical (and may not be an address at all): merge
        # what canonical form makes equal, drop what is no address
        rows = self._run(_fail2ban_sql(_ADDRESS_JAIL_COUNTS), _parameters(since, until, jails))
        merged: dict[tuple[str, str], AddressJailCount] = {}
        for text, jail, count, first, last in rows:
            address = parse_address(str(text)) if text is not None else None
            if address is None:
                continue
            key = (str(address), jail)
            seen = merged.get(key)
            merged[key] = (
                (key[0], jail, int(count), float(first), float(last))
                if seen is None
                else (
                    key[0],
                    jail,
                    seen[2] + int(count),
                    min(seen[3], float(first)),
                    max(seen[4], float(last)),
                )
            )
        return list(merged.values())


def open_store(path: str | Path) -> StoreReader:
    """A reader of ``path``: gardien's ban store, or fail2ban's database. Raises
    :class:`StoreError` naming the file when it is neither, or cannot be read."""
    try:
        return StoreReader(path)
    except StoreError:
        if not _is_fail2ban(Path(path)):
            raise
    return Fail2banReader(path)


def _is_fail2ban(path: Path) -> bool:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return {"fail2banDb", "bans"} <= names


def _parameters(since: float, until: float, jails: Collection[str]) -> dict[str, object]:
    """The parameters selecting ``[since, until)`` in ``jails`` (all when empty)."""
    return {"since": since, "until": until, "jails": json.dumps(sorted(jails)) if jails else None}

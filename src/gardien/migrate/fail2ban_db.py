"""Read fail2ban's SQLite database (``dbfile`` of ``fail2ban.conf``): its bans and their history.

fail2ban 1.0 keeps (schema version 4)::

    bans (jail, ip, timeofban, bantime, bancount, data)   one row per ban made: the history
    bips (ip, jail, timeofban, bantime, bancount, data)   the last ban of each address per jail

``bantime`` is in seconds, ``-1`` for a permanent ban; ``data`` is JSON (``matches``,
``failures``). The file is opened read-only (fail2ban may still be running and writing it) and
nothing in it is ever unpickled: a ``data`` value that is not JSON (a database of fail2ban 0.9,
which pickled it) is left out, the ban itself is kept.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardien.errors import MigrateError
from gardien.model import Ban, parse_address

__all__ = ["Fail2banBans", "read_fail2ban_db"]

_REQUIRED_TABLES = ("bans", "bips")


@dataclass(frozen=True)
class Fail2banBans:
    """What fail2ban's database holds, as gardien's :class:`~gardien.model.Ban` values."""

    path: str
    #: the current bans not over at the time of reading (permanent ones included)
    active: tuple[Ban, ...]
    #: every ban recorded (``bans``), and the last ban of each address (``bips``) when the
    #: history lost it: what ``bantime.increment`` counts
    history: tuple[Ban, ...]
    #: current bans already over: they become history only
    expired: int = 0
    #: rows whose ``ip`` is not an address (fail2ban can ban other identifiers): left out
    not_addresses: tuple[str, ...] = ()

    def active_by_jail(self) -> dict[str, int]:
        """How many active bans each jail has."""
        counts: dict[str, int] = {}
        for ban in self.active:
            counts[ban.jail] = counts.get(ban.jail, 0) + 1
        return dict(sorted(counts.items()))


def read_fail2ban_db(path: str | Path, now: float) -> Fail2banBans:
    """The bans in fail2ban's database ``path``, active at ``now`` or past.

    Raises :class:`MigrateError` naming the file when it is missing, not an SQLite database,
    not fail2ban's, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise MigrateError(f"{path}: no such fail2ban database (dbfile of fail2ban.conf)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as error:
        raise MigrateError(f"{path}: cannot open fail2ban's database: {error}") from None
    try:
        return _read(connection, path, now)
    except sqlite3.Error as error:
        raise MigrateError(f"{path}: cannot read fail2ban's database: {error}") from None
    finally:
        connection.close()


def _read(connection: sqlite3.Connection, path: Path, now: float) -> Fail2banBans:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    missing = [table for table in _REQUIRED_TABLES if table not in tables]
    if missing:
        kind = "fail2ban's database" if "fail2banDb" in tables else "not fail2ban's database"
        hint = (
            " (a database of fail2ban before 0.11: start fail2ban 1.0 once, it upgrades it)"
            if "fail2banDb" in tables
            else ""
        )
        raise MigrateError(f"{path}: {kind} without table(s) {', '.join(missing)}{hint}")
    odd: list[str] = []
    history: dict[tuple[str, str, float], Ban] = {}
    for ban in _bans(connection, "bans", path, odd):
        history[(ban.jail, str(ban.address), ban.start)] = ban
    active: list[Ban] = []
    expired = 0
    for ban in _bans(connection, "bips", path, odd):
        history.setdefault((ban.jail, str(ban.address), ban.start), ban)
        if ban.end is None or ban.end > now:
            active.append(ban)
        else:
            expired += 1
    active.sort(key=lambda b: (b.start, b.jail, str(b.address)))
    ordered = sorted(history.values(), key=lambda b: (b.start, b.jail, str(b.address)))
    return Fail2banBans(
        path=str(path),
        active=tuple(active),
        history=tuple(ordered),
        expired=expired,
        not_addresses=tuple(sorted(set(odd))),
    )


def _bans(connection: sqlite3.Connection, table: str, path: Path, odd: list[str]) -> Iterable[Ban]:
    rows = connection.execute(
        f"SELECT rowid, jail, ip, timeofban, bantime, bancount, data FROM {table}"  # noqa: S608
    )
    for rowid, jail, ip, timeofban, bantime, bancount, data in rows:
        where = f"{path}: table {table}, row {rowid}"
        if not isinstance(jail, str) or not jail:
            raise MigrateError(f"{where}: no jail name")
        address = parse_address(ip) if isinstance(ip, str) else None
        if address is None:
            odd.append(str(ip))
            continue
        try:
            start = float(timeofban)
            duration = float(bantime)
            count = int(bancount) if bancount is not None else 1
        except (TypeError, ValueError):
            raise MigrateError(
                f"{where}: timeofban {timeofban!r}, bantime {bantime!r} or bancount "
                f"{bancount!r} is not a number"
            ) from None
        failures, matches = _data(data)
        yield Ban(
            jail=jail,
            address=address,
            start=start,
            end=None if duration < 0 else start + duration,
            count=max(1, count),
            failures=failures,
            matches=matches,
        )


def _data(data: Any) -> tuple[int, tuple[str, ...]]:
    """``failures`` and ``matches`` of a row's JSON ``data``; nothing when it is not JSON."""
    if not isinstance(data, (str, bytes)):
        return 0, ()
    try:  # fail2ban 1.0 stores JSON text (as bytes); 0.9 pickled it: never unpickled here
        parsed = json.loads(data)
    except ValueError:
        return 0, ()
    if not isinstance(parsed, dict):
        return 0, ()
    failures = parsed.get("failures")
    raw = parsed.get("matches") or ()
    matches: list[str] = []
    if isinstance(raw, list):
        for match in raw:
            if isinstance(match, str):
                matches.append(match)
            elif isinstance(match, list):  # a multi-line match: its lines
                matches.append("".join(part for part in match if isinstance(part, str)))
    return (failures if isinstance(failures, int) else 0), tuple(matches)

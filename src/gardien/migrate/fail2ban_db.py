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
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from gardien.errors import MigrateError
from gardien.model import Address, Ban, parse_address

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
    #: ``(jail, canonical address, start)`` of each of ``active`` and ``history``, in order
    active_keys: tuple[tuple[str, str, float], ...] = ()
    history_keys: tuple[tuple[str, str, float], ...] = ()
    #: the last rowid read in ``bans`` and ``bips``: a later read can take only what follows
    last_rows: tuple[int, int] = (0, 0)

    def active_by_jail(self) -> dict[str, int]:
        """How many active bans each jail has."""
        counts: dict[str, int] = {}
        for ban in self.active:
            counts[ban.jail] = counts.get(ban.jail, 0) + 1
        return dict(sorted(counts.items()))


def read_fail2ban_db(
    path: str | Path, now: float, *, after: tuple[int, int] = (0, 0)
) -> Fail2banBans:
    """The bans in fail2ban's database ``path``, active at ``now`` or past; with ``after``
    (the ``last_rows`` of an earlier read), only the rows written since (fail2ban appends its
    bans, and a ban replacing another in ``bips`` gets a new row).

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
        return _read(connection, path, now, after)
    except sqlite3.Error as error:
        raise MigrateError(f"{path}: cannot read fail2ban's database: {error}") from None
    finally:
        connection.close()


def _read(
    connection: sqlite3.Connection, path: Path, now: float, after: tuple[int, int]
) -> Fail2banBans:
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
    active: dict[tuple[str, str, float], Ban] = {}
    expired = 0
    bips = _rows(connection, "bips", after[1], matches=True)
    last_bips = max((row[0] for row in bips), default=0)
    seen = {(row[1], row[2], row[3]) for row in bips}  # jail, ip, timeofban as written
    for key, ban in _bans(bips, "bips", path, odd):
        history[key] = ban
        if ban.end is None or ban.end > now:
            active[key] = ban
        else:
            expired += 1
    # the history: what bips has not given already (most of its rows, skipped as they are)
    rows = _rows(connection, "bans", after[0], matches=False)
    for key, ban in _bans(rows, "bans", path, odd, known=history, seen=seen):
        history[key] = ban
    last_bans = int(connection.execute("SELECT coalesce(max(rowid), 0) FROM bans").fetchone()[0])
    return Fail2banBans(
        path=str(path),
        active=tuple(active.values()),
        history=tuple(history.values()),
        active_keys=tuple(active),
        history_keys=tuple(history),
        expired=expired,
        not_addresses=tuple(sorted(set(odd))),
        last_rows=(max(last_bans, after[0]), max(last_bips, after[1])),
    )


def _address(text: object) -> tuple[str, Address] | None:
    """The canonical text and the address of fail2ban's ``ip`` column, ``None`` when it is not
    an address. Plain IPv4 addresses take the C parser (100,000 bans notice the difference)."""
    if not isinstance(text, str):
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except OSError:
        address = parse_address(text)
        return None if address is None else (str(address), address)
    return socket.inet_ntop(socket.AF_INET, packed), IPv4Address(int.from_bytes(packed, "big"))


_Row = tuple[Any, ...]


def _rows(connection: sqlite3.Connection, table: str, after: int, *, matches: bool) -> list[_Row]:
    """The rows of ``table`` after rowid ``after`` as ``(rowid, jail, ip, timeofban, bantime,
    bancount, failures, matches)``. SQLite's JSON functions take ``failures`` and ``matches``
    out of ``data`` (NULL when it is not JSON), and one ``json.loads`` parses them for every
    row (100,000 calls of it would cost seconds)."""
    data = "CAST(data AS TEXT)"
    paths = "'$.failures', '$.matches'" if matches else "'$.failures'"
    rows = connection.execute(
        "SELECT rowid, jail, ip, timeofban, bantime, bancount,"  # noqa: S608 - fixed names
        f" CASE WHEN json_valid({data}) THEN json_extract({data}, {paths}) END"
        f" FROM {table} WHERE rowid > ?",
        (after,),
    ).fetchall()
    if not matches:
        return [(*row, None) for row in rows]
    texts = [row[6] if isinstance(row[6], str) else "[null, null]" for row in rows]
    parsed = json.loads("[" + ",".join(texts) + "]") if texts else []
    return [(*row[:6], *pair) for row, pair in zip(rows, parsed, strict=True)]


def _bans(
    rows: list[_Row],
    table: str,
    path: Path,
    odd: list[str],
    *,
    known: Mapping[tuple[str, str, float], Ban] | None = None,
    seen: set[tuple[Any, Any, Any]] | None = None,
) -> Iterator[tuple[tuple[str, str, float], Ban]]:
    """``((jail, address, start), ban)`` of each row whose key is not in ``known``, and whose
    ``(jail, ip, timeofban)`` as written is not in ``seen``."""
    known = known or {}
    seen = seen or set()
    for rowid, jail, ip, timeofban, bantime, bancount, failures, matches in rows:
        if (jail, ip, timeofban) in seen:
            continue
        try:
            start = float(timeofban)
            duration = float(bantime)
            count = int(bancount) if bancount is not None else 1
        except (TypeError, ValueError):
            raise MigrateError(
                f"{path}: table {table}, row {rowid}: timeofban {timeofban!r}, bantime "
                f"{bantime!r} or bancount {bancount!r} is not a number"
            ) from None
        if not isinstance(jail, str) or not jail:
            raise MigrateError(f"{path}: table {table}, row {rowid}: no jail name")
        parsed = _address(ip)
        if parsed is not None and (jail, parsed[0], start) in known:
            continue
        if parsed is None:
            odd.append(str(ip))
            continue
        canonical, address = parsed
        ban = Ban(
            jail=jail,
            address=address,
            start=start,
            end=None if duration < 0 else start + duration,
            count=max(1, count),
            failures=failures if isinstance(failures, int) else 0,
            matches=_matches(matches) if matches else (),
        )
        yield (jail, canonical, start), ban


def _matches(raw: object) -> tuple[str, ...]:
    """The matched lines of a parsed ``matches`` value (a multi-line match: its lines joined)."""
    if not isinstance(raw, list):
        return ()
    out: list[str] = []
    for match in raw:
        if isinstance(match, str):
            out.append(match)
        elif isinstance(match, list):
            out.append("".join(part for part in match if isinstance(part, str)))
    return tuple(out)

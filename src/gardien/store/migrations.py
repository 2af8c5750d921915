"""The schema of the SQLite ban store, as the list of steps that build it.

``PRAGMA user_version`` says how many steps a database has been through. Opening a database
runs the steps it lacks, each in its own transaction with the version bump, so a failing step
leaves the database as it was. To change the schema, append a step; never edit a released one.

Times are REAL seconds since the epoch, addresses TEXT in canonical form, and the matched
lines of a ban a JSON array of strings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from gardien.errors import StoreError

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

APPLICATION_ID = 0x67617264  # "gard": tells a gardien database from another SQLite file

Migration = Callable[[sqlite3.Connection], None]


def _statements(*sql: str) -> Migration:
    """A step made of plain statements (not ``executescript``, which would commit midway)."""

    def run(connection: sqlite3.Connection) -> None:
        for statement in sql:
            connection.execute(statement)

    return run


_VERSION_1 = _statements(
    # the current ban of each address in each jail; end_time NULL: permanent. A rowid table:
    # rows carry matched lines, too long for WITHOUT ROWID to pay, and this way the table
    # grows at its end and only the small (jail, address) index takes random inserts
    """CREATE TABLE bans (
        id INTEGER PRIMARY KEY,
        jail TEXT NOT NULL,
        address TEXT NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL,
        count INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        matches TEXT NOT NULL,
        UNIQUE (jail, address)
    )""",
    # every ban made, one row per jail, address and start time
    """CREATE TABLE ban_history (
        id INTEGER PRIMARY KEY,
        jail TEXT NOT NULL,
        address TEXT NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL,
        count INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        UNIQUE (address, jail, start_time)  -- address first: ban_count in one jail or all
    )""",
    "CREATE INDEX ban_history_by_start ON ban_history (start_time)",  # history()
    "CREATE INDEX ban_history_by_end ON ban_history (end_time)",  # purge()
    """CREATE TABLE file_positions (
        jail TEXT NOT NULL,
        path TEXT NOT NULL,
        inode INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        first_line_hash TEXT NOT NULL,
        PRIMARY KEY (jail, path)
    ) WITHOUT ROWID""",
    f"PRAGMA application_id = {APPLICATION_ID}",
)

_VERSION_2 = _statements(
    # where each jail stopped reading the systemd journal (backend = systemd)
    """CREATE TABLE journal_cursors (
        jail TEXT PRIMARY KEY,
        cursor TEXT NOT NULL
    ) WITHOUT ROWID""",
)

_VERSION_3 = _statements(
    # one checkpoint per jail and source (file:PATH, journal, hub), the source's own text; the
    # file positions and journal cursors of version 2 become checkpoints
    """CREATE TABLE checkpoints (
        jail TEXT NOT NULL,
        source TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (jail, source)
    ) WITHOUT ROWID""",
    """INSERT INTO checkpoints (jail, source, state)
        SELECT jail, 'file:' || path,
            json_object('inode', inode, 'offset', offset, 'first_line_hash', first_line_hash)
        FROM file_positions""",
    """INSERT INTO checkpoints (jail, source, state)
        SELECT jail, CASE WHEN cursor LIKE 'hub:%' THEN 'hub' ELSE 'journal' END,
            CASE WHEN cursor LIKE 'hub:%' THEN substr(cursor, 5) ELSE cursor END
        FROM journal_cursors""",
    "DROP TABLE file_positions",
    "DROP TABLE journal_cursors",
    # the failures a jail counts and has not banned for yet: [[time, [line, ...]], ...]; one
    # B-tree, written at every failure of an address (purge() scans it: it is bounded)
    """CREATE TABLE pending_failures (
        jail TEXT NOT NULL,
        address TEXT NOT NULL,
        last_time REAL NOT NULL,
        failures TEXT NOT NULL,
        PRIMARY KEY (jail, address)
    ) WITHOUT ROWID""",
)

MIGRATIONS: list[Migration] = [_VERSION_1, _VERSION_2, _VERSION_3]
"""Step ``i`` takes a database from version ``i`` to version ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, path: str) -> int:
    """Bring the database behind ``connection`` (opened with ``isolation_level=None``) to the
    latest version and return the version it had. Raises :class:`StoreError` if it is newer
    than this gardien knows, or is not a gardien database."""
    steps = MIGRATIONS
    original = _version(connection)
    _check_known(connection, path, original, len(steps))
    while (version := _version(connection)) < len(steps):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated it while this one waited for the lock
            if _version(connection) == version:
                steps[version](connection)
                connection.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    return original


def _version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _check_known(connection: sqlite3.Connection, path: str, version: int, latest: int) -> None:
    if version > latest:
        raise StoreError(
            f"{path}: the ban store has schema version {version}, newer than version "
            f"{latest} this gardien knows; use a newer gardien or another dbfile"
        )
    application_id = int(connection.execute("PRAGMA application_id").fetchone()[0])
    if application_id not in (0, APPLICATION_ID):
        raise StoreError(f"{path}: not a gardien database (application_id {application_id:#x})")
    if version == 0:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        if tables:
            kind = "a fail2ban database" if "fail2banDb" in tables else "not a gardien database"
            raise StoreError(f"{path}: {kind} (it has tables {', '.join(tables)})")

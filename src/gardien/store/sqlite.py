"""The ban store in an SQLite file: what a restarted daemon gets its bans back from.

Durability: the database is in WAL mode with ``synchronous=NORMAL``. A write returns after its
transaction is committed, that is written to the WAL file, so a daemon killed at any point
(``kill -9``, a crash, the OOM killer) loses nothing it was told was stored. Only an operating
system crash or a power cut can lose the last transactions, and even then never corrupts the
file. ``synchronous=FULL`` would add an fsync to every transaction to cover that case too, at
the price of slowing down the bursts of bans an attack causes; the trade is poor here, because
a power cut also empties the kernel's ban sets, and file positions are stored in the same
transactions as the bans they led to: the lost tail rolls back together, and the daemon reads
those log lines and bans again. Pass ``synchronous="full"`` to have it anyway.

Concurrency: every write goes through one thread (:class:`~gardien.store.writer.Writer`), which
commits the writes waiting together in one transaction; reads use a read-only connection of
their own and never wait for writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gardien.clock import Clock, SystemClock
from gardien.errors import StoreError
from gardien.model import Address, Ban, Checkpoint, PendingFailures
from gardien.store.base import (
    DEFAULT_MAX_MATCHES,
    BanStore,
    Progress,
    address_from_text,
    canonical_address,
    pending_from_rows,
    pending_row,
    sample_of,
)
from gardien.store.migrations import migrate
from gardien.store.writer import Writer

__all__ = ["SQLiteBanStore", "active_ban_counts", "history_keys"]

_HISTORY_PAGE = 1000  # records read at a time by history(), so no read stays open while iterating

_UPSERT_BAN = """
    INSERT INTO bans (jail, address, start_time, end_time, count, failures, matches)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (jail, address) DO UPDATE SET
        start_time = excluded.start_time, end_time = excluded.end_time,
        count = excluded.count, failures = excluded.failures, matches = excluded.matches
"""
_UPSERT_HISTORY = """
    INSERT INTO ban_history (jail, address, start_time, end_time, count, failures)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (address, jail, start_time) DO UPDATE SET
        end_time = excluded.end_time, count = excluded.count, failures = excluded.failures
"""
_INSERT_HISTORY = """
    INSERT INTO ban_history (jail, address, start_time, end_time, count, failures)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (address, jail, start_time) DO NOTHING
"""
_CREATE_IMPORT = """
    CREATE TEMP TABLE import_bans (
        jail TEXT, address TEXT, start_time REAL, end_time REAL, count INTEGER,
        failures INTEGER, matches TEXT)
"""
_INSERT_IMPORT = "INSERT INTO temp.import_bans VALUES (?, ?, ?, ?, ?, ?, ?)"
# the current bans of those the history does not know yet (run before _IMPORT_HISTORY)
_IMPORT_CURRENT = """
    INSERT INTO bans (jail, address, start_time, end_time, count, failures, matches)
    SELECT jail, address, start_time, end_time, count, failures, matches
    FROM temp.import_bans AS i WHERE NOT EXISTS (
        SELECT 1 FROM ban_history AS h
        WHERE h.address = i.address AND h.jail = i.jail AND h.start_time = i.start_time)
    ON CONFLICT (jail, address) DO UPDATE SET
        start_time = excluded.start_time, end_time = excluded.end_time,
        count = excluded.count, failures = excluded.failures, matches = excluded.matches
"""
_IMPORT_HISTORY = """
    INSERT INTO ban_history (jail, address, start_time, end_time, count, failures)
    SELECT jail, address, start_time, end_time, count, failures FROM temp.import_bans WHERE true
    ON CONFLICT (address, jail, start_time) DO NOTHING
"""
_UPSERT_CHECKPOINT = """
    INSERT INTO checkpoints (jail, source, state) VALUES (?, ?, ?)
    ON CONFLICT (jail, source) DO UPDATE SET state = excluded.state
"""
_UPSERT_PENDING = """
    INSERT INTO pending_failures (jail, address, last_time, failures) VALUES (?, ?, ?, ?)
    ON CONFLICT (jail, address) DO UPDATE SET
        last_time = excluded.last_time, failures = excluded.failures
"""
_DELETE_PENDING = "DELETE FROM pending_failures WHERE jail = ? AND address = ?"
_BanRow = tuple[str, str, float, float | None, int, int]


class SQLiteBanStore:
    """A :class:`~gardien.store.BanStore` in the SQLite file ``path``.

    Opening creates the file (mode 0600, in a directory created with mode 0700 if missing)
    or brings an older one to the current schema. ``clock`` tells when a lifted ban ended;
    ``max_matches`` bounds the matched lines kept per ban; ``timeout`` is how many seconds to
    wait for another process holding the database. Every failure raises :class:`StoreError`
    naming the file and the reason.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        synchronous: Literal["normal", "full"] = "normal",
        max_matches: int = DEFAULT_MAX_MATCHES,
        timeout: float = 5.0,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self._path = Path(path)
        self._clock = clock if clock is not None else SystemClock()
        self._max_matches = max_matches
        self._read_lock = threading.Lock()
        self._closed = False
        _create_file(self._path)
        writing = self._connect(self._path, timeout=timeout)
        try:
            writing.execute("PRAGMA journal_mode = WAL")
            writing.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            migrate(writing, str(self._path))
            # read-only: a read can never write, nor hold the write lock
            self._reader = self._connect(
                f"{self._path.resolve().as_uri()}?mode=ro", timeout=timeout, uri=True
            )
        except sqlite3.Error as exc:
            writing.close()
            raise self._error("open", exc) from exc
        except BaseException:
            writing.close()
            raise
        self._writer = Writer(writing, self._error)

    def __enter__(self) -> SQLiteBanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteBanStore {str(self._path)!r}>"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def transactions(self) -> int:
        """How many write transactions were committed since opening: fewer than the writes
        when writes arrive together."""
        return self._writer.transactions

    # writing

    def add_ban(self, ban: Ban) -> None:
        self.add_bans((ban,))

    def add_bans(self, bans: Iterable[Ban]) -> None:
        ban_rows, history_rows = self._ban_rows(bans)
        if not ban_rows:
            return

        def add(connection: sqlite3.Connection) -> None:
            connection.executemany(_UPSERT_BAN, ban_rows)
            connection.executemany(_UPSERT_HISTORY, history_rows)

        self._writer.run(add)

    def _ban_rows(
        self, bans: Iterable[Ban]
    ) -> tuple[list[tuple[str, str, float, float | None, int, int, str]], list[_BanRow]]:
        ban_rows: list[tuple[str, str, float, float | None, int, int, str]] = []
        history_rows: list[_BanRow] = []
        for ban in bans:
            row: _BanRow = (
                ban.jail,
                str(canonical_address(ban.address)),
                float(ban.start),
                None if ban.end is None else float(ban.end),
                int(ban.count),
                int(ban.failures),
            )
            # ASCII JSON: a line read with surrogateescape still encodes
            ban_rows.append((*row, json.dumps(sample_of(ban.matches, self._max_matches))))
            history_rows.append(row)
        return ban_rows, history_rows

    def save_progress(self, progress: Progress) -> None:
        if not progress:
            return
        jail = progress.jail
        ban_rows, history_rows = self._ban_rows(progress.bans)
        lifted = [(jail, str(canonical_address(a))) for a in progress.lifted]
        now = self._clock.now()
        max_matches = self._max_matches
        pending_rows = [
            (jail, _address_text(p.address), p.times[-1], pending_row(p, max_matches))
            for p in progress.pending
            if p.times
        ]
        settled = [(jail, _address_text(a)) for a in progress.settled]
        checkpoint = progress.checkpoint

        def save(connection: sqlite3.Connection) -> None:
            if ban_rows:
                connection.executemany(_UPSERT_BAN, ban_rows)
                connection.executemany(_UPSERT_HISTORY, history_rows)
            if lifted:
                _remove(connection, lifted, now)
            if settled:
                connection.executemany(_DELETE_PENDING, settled)
            if pending_rows:
                connection.executemany(_UPSERT_PENDING, pending_rows)
            if checkpoint is not None:
                connection.execute(_UPSERT_CHECKPOINT, (jail, checkpoint.source, checkpoint.state))

        self._writer.run(save)

    def import_bans(self, active: Iterable[Ban], history: Iterable[Ban]) -> tuple[list[Ban], int]:
        """Take in bans made by another tool (fail2ban's, through ``gardien migrate``), all or
        none (one transaction).

        Each ``history`` record the store lacks (same jail, address and start time) is added.
        Each ``active`` ban whose record the store lacked becomes the current ban of its address
        in its jail; one the store already knew is left as it is, so importing the same bans
        again changes nothing, and a ban lifted since is not brought back. Returns the active
        bans taken and how many history records were added.
        """
        candidates = list(active)
        active_rows = [(*self._history_row(ban), self._matches(ban)) for ban in candidates]
        history_rows = [self._history_row(ban) for ban in history]

        def add(connection: sqlite3.Connection) -> tuple[list[int], int]:
            connection.execute(_CREATE_IMPORT)
            try:
                connection.executemany(_INSERT_IMPORT, active_rows)
                taken = [
                    row[0] - 1
                    for row in connection.execute(
                        "SELECT i.rowid FROM temp.import_bans AS i WHERE NOT EXISTS (SELECT 1"
                        " FROM ban_history AS h WHERE h.address = i.address"
                        " AND h.jail = i.jail AND h.start_time = i.start_time) ORDER BY i.rowid"
                    )
                ]
                connection.execute(_IMPORT_CURRENT)
                before = connection.total_changes
                connection.execute(_IMPORT_HISTORY)
                connection.executemany(_INSERT_HISTORY, history_rows)
                return taken, connection.total_changes - before
            finally:
                connection.execute("DROP TABLE temp.import_bans")

        taken, added = self._writer.run(add)
        return [candidates[index] for index in taken], added

    def _history_row(self, ban: Ban) -> _BanRow:
        address = ban.address
        # an IPv4Address prints in canonical form already: skip the round trip through text
        text = str(address) if type(address) is IPv4Address else str(canonical_address(address))
        return (
            ban.jail,
            text,
            float(ban.start),
            None if ban.end is None else float(ban.end),
            int(ban.count),
            int(ban.failures),
        )

    def _matches(self, ban: Ban) -> str:
        return json.dumps(sample_of(ban.matches, self._max_matches))

    def remove_ban(self, jail: str, address: Address) -> bool:
        return self.remove_bans(jail, (address,)) == 1

    def remove_bans(self, jail: str, addresses: Iterable[Address]) -> int:
        keys = [(jail, str(canonical_address(address))) for address in addresses]
        now = self._clock.now()

        return self._writer.run(lambda connection: _remove(connection, keys, now))

    def save_checkpoint(self, jail: str, checkpoint: Checkpoint) -> None:
        row = (jail, checkpoint.source, checkpoint.state)
        self._writer.run(lambda connection: connection.execute(_UPSERT_CHECKPOINT, row))

    def purge(self, older_than: float) -> int:
        cutoff = min(older_than, self._clock.now())  # never what is not over yet

        def purge(connection: sqlite3.Connection) -> int:
            removed = connection.execute(
                "DELETE FROM ban_history WHERE end_time < ?", (cutoff,)
            ).rowcount
            connection.execute("DELETE FROM bans WHERE end_time < ?", (cutoff,))
            connection.execute("DELETE FROM pending_failures WHERE last_time < ?", (cutoff,))
            return int(removed)

        return self._writer.run(purge)

    # reading

    def active_bans(self, now: float, jail: str | None = None) -> list[Ban]:
        rows = self._query(
            "SELECT jail, address, start_time, end_time, count, failures, matches FROM bans"
            " WHERE (end_time IS NULL OR end_time > ?) AND (?2 IS NULL OR jail = ?2)"
            " ORDER BY start_time, jail, address",
            (now, jail),
        )
        return self._bans_from_rows(rows)

    def ban_count(self, address: Address, jail: str | None = None) -> int:
        rows = self._query(
            "SELECT count(*) FROM ban_history WHERE address = ? AND (?2 IS NULL OR jail = ?2)",
            (str(canonical_address(address)), jail),
        )
        return int(rows[0][0])

    def history(
        self, since: float | None = None, until: float | None = None, jail: str | None = None
    ) -> Iterator[Ban]:
        self._check_open()
        return self._history_pages(since, until, jail)

    def _history_pages(
        self, since: float | None, until: float | None, jail: str | None
    ) -> Iterator[Ban]:
        # keyset pagination: each page is read on its own, and the lock is not held while the
        # caller iterates, so a slow consumer blocks nobody
        after: tuple[float, int] = (float("-inf") if since is None else since, -1)
        while True:
            rows = self._query(
                "SELECT jail, address, start_time, end_time, count, failures, '[]', id"
                " FROM ban_history WHERE (start_time, id) > (?1, ?2)"
                " AND (?3 IS NULL OR start_time < ?3) AND (?4 IS NULL OR jail = ?4)"
                " ORDER BY start_time, id LIMIT ?5",
                (*after, until, jail, _HISTORY_PAGE),
            )
            yield from self._bans_from_rows(row[:-1] for row in rows)
            if len(rows) < _HISTORY_PAGE:
                return
            after = (rows[-1][2], rows[-1][-1])

    def checkpoint(self, jail: str, source: str) -> Checkpoint | None:
        rows = self._query(
            "SELECT state FROM checkpoints WHERE jail = ? AND source = ?", (jail, source)
        )
        return Checkpoint(source, str(rows[0][0])) if rows else None

    def pending_failures(self, jail: str) -> list[PendingFailures]:
        rows = self._query(
            "SELECT address, failures FROM pending_failures WHERE jail = ?"
            " ORDER BY last_time, address",
            (jail,),
        )
        return pending_from_rows(rows)

    def close(self) -> None:
        with self._read_lock:
            if self._closed:
                return
            self._closed = True
            # the reader goes first, so that the writer is the last connection and, closing,
            # folds the WAL back into the database
            self._reader.close()
        self._writer.close()

    # helpers

    def _query(self, sql: str, parameters: Sequence[object]) -> list[Any]:
        """The rows ``sql`` reads, on the reading connection."""
        with self._read_lock:
            self._check_open()
            try:
                return self._reader.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise self._error("read", exc) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._path}: the ban store is closed")

    def _bans_from_rows(self, rows: Iterable[Sequence[Any]]) -> list[Ban]:
        rows = list(rows)
        samples = _matches_of(rows)
        bans = []
        for row, sample in zip(rows, samples, strict=True):
            try:
                jail, address, start, end, count, failures, matches = row
                bans.append(
                    Ban(
                        jail=jail,
                        address=address_from_text(address),
                        start=start,
                        end=end,
                        count=count,
                        failures=failures,
                        matches=tuple(json.loads(matches)) if sample is None else sample,
                    )
                )
            except (TypeError, ValueError) as exc:
                raise StoreError(f"{self._path}: malformed ban record {row!r}: {exc}") from exc
        return bans

    def _error(self, action: str, exc: sqlite3.Error) -> StoreError:
        reason = str(exc)
        name = getattr(exc, "sqlite_errorname", None)
        if name:
            reason += f" ({name})"
        return StoreError(f"{self._path}: cannot {action} the ban store: {reason}")

    def _connect(
        self, database: str | Path, *, timeout: float, uri: bool = False
    ) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                database,
                timeout=timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,
                uri=uri,
            )
        except sqlite3.Error as exc:
            raise self._error("open", exc) from exc


def _matches_of(rows: Sequence[Sequence[Any]]) -> list[tuple[str, ...] | None]:
    """The matched lines of each row (its last column, a JSON array), parsed by one
    ``json.loads`` for all rows: restoring 100,000 bans notices the 100,000 calls it saves.
    ``None`` for every row when one of them is malformed (each is then parsed on its own, and
    the malformed one reported)."""
    texts = [row[-1] for row in rows]
    if all(text == "[]" for text in texts):
        return [()] * len(rows)
    try:
        parsed = json.loads("[" + ",".join(texts) + "]")
    except (TypeError, ValueError):
        return [None] * len(rows)
    if len(parsed) != len(rows) or not all(isinstance(item, list) for item in parsed):
        return [None] * len(rows)
    return [tuple(item) for item in parsed]


def active_ban_counts(path: str | os.PathLike[str], now: float) -> dict[str, int]:
    """How many current bans each jail has at ``now`` in the store at ``path``, read without
    changing the file (empty when there is none)."""
    file = Path(path)
    if not file.is_file():
        return {}
    try:
        connection = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute(
                "SELECT jail, count(*) FROM bans WHERE end_time IS NULL OR end_time > ?"
                " GROUP BY jail",
                (now,),
            )
            return {jail: int(count) for jail, count in rows}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{file}: cannot read the ban store: {exc}") from exc


def history_keys(path: str | os.PathLike[str]) -> set[tuple[str, str, float]]:
    """The (jail, address, start time) of every history record in the store at ``path``, read
    without changing the file (an empty set when there is none): what a dry run of
    ``gardien migrate`` compares with. Raises :class:`StoreError` for an unreadable file."""
    file = Path(path)
    if not file.is_file():
        return set()
    try:
        connection = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute("SELECT jail, address, start_time FROM ban_history")
            return {(jail, address, float(start)) for jail, address, start in rows}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{file}: cannot read the ban store: {exc}") from exc


def _address_text(address: Address) -> str:
    """The stored text of ``address``: an IPv4 address prints in canonical form already, so
    the round trip through :func:`canonical_address` is skipped for the common case."""
    return str(address) if type(address) is IPv4Address else str(canonical_address(address))


def _remove(connection: sqlite3.Connection, keys: Iterable[tuple[str, str]], now: float) -> int:
    """Forget the current bans of ``keys`` (jail, address), ending their history records now;
    how many there were."""
    removed = 0
    for key in keys:
        row = connection.execute(
            "SELECT start_time FROM bans WHERE jail = ? AND address = ?", key
        ).fetchone()
        if row is None:
            continue
        connection.execute("DELETE FROM bans WHERE jail = ? AND address = ?", key)
        connection.execute(
            "UPDATE ban_history SET end_time = ? WHERE jail = ? AND address = ?"
            " AND start_time = ? AND (end_time IS NULL OR end_time > ?)",
            (now, *key, row[0], now),
        )
        removed += 1
    return removed


def _create_file(path: Path) -> None:
    """Create ``path`` with mode 0600, and its missing directories with mode 0700."""
    missing = [parent for parent in path.parents if not parent.exists()]
    try:
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):  # created by someone else meanwhile
                directory.mkdir(mode=0o700)
                directory.chmod(0o700)  # whatever the umask
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(descriptor, 0o600)
            finally:
                os.close(descriptor)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the ban store: {exc.strerror or exc}") from exc


if TYPE_CHECKING:  # mypy checks that the protocol is met
    _conforms: type[BanStore] = SQLiteBanStore

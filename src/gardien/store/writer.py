"""The one thread that writes to an SQLite database.

Callers hand it operations and wait for them; the thread runs every operation waiting in its
queue in one transaction, so writes that arrive together cost one commit. Each operation runs
inside its own savepoint: one that fails is undone and reported to its caller alone.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from gardien.errors import StoreError

__all__ = ["Writer"]

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

_MAX_BATCH = 1000  # operations per transaction: bounds how long a caller waits behind others


class Writer:
    """Runs operations on ``connection`` (opened with ``isolation_level=None`` and
    ``check_same_thread=False``, used by nobody else) in a background thread, which closes it
    when the writer is closed. ``error(action, exc)`` turns an SQLite error into the
    :class:`StoreError` to raise."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        error: Callable[[str, sqlite3.Error], StoreError],
        *,
        name: str = "gardien-store-writer",
    ) -> None:
        self._connection = connection
        self._error = error
        self._queue: queue.SimpleQueue[tuple[Operation, Future[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._transactions = 0
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def transactions(self) -> int:
        """How many transactions have been committed (batches, not operations)."""
        return self._transactions

    def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation(connection)`` in the writing thread and return its result once it
        has been committed."""
        future: Future[T] = Future()
        with self._lock:  # close() cannot slip its stop mark in between the check and the put
            if self._closed:
                raise self._error("write", sqlite3.ProgrammingError("the ban store is closed"))
            self._queue.put((operation, future))
        return future.result()

    def close(self) -> None:
        """Finish the operations already handed over, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while True:
                item = self._queue.get()
                batch: list[tuple[Operation, Future[Any]]] = []
                while item is not None:
                    batch.append(item)
                    if len(batch) >= _MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(batch)
                if item is None:
                    return
        finally:
            self._connection.close()

    def _commit(self, batch: list[tuple[Operation, Future[Any]]]) -> None:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            for operation, future in batch:
                if not future.set_running_or_notify_cancel():
                    continue
                connection.execute("SAVEPOINT operation")
                try:
                    result = operation(connection)
                except sqlite3.Error as exc:
                    connection.execute("ROLLBACK TO operation")
                    outcomes.append((future, False, self._error("write", exc)))
                except Exception as exc:
                    connection.execute("ROLLBACK TO operation")
                    outcomes.append((future, False, exc))
                else:
                    outcomes.append((future, True, result))
                connection.execute("RELEASE operation")
            connection.execute("COMMIT")
        except Exception as exc:
            # the transaction itself failed (locked by another process, disk full, I/O error)
            with contextlib.suppress(sqlite3.Error):
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            failure = self._error("commit", exc) if isinstance(exc, sqlite3.Error) else exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        self._transactions += 1
        for future, succeeded, value in outcomes:
            if succeeded:
                future.set_result(value)
            else:
                future.set_exception(value)

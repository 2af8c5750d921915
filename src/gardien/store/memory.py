"""A ban store in memory: the real double for testing the layers above the store."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from gardien.clock import Clock, SystemClock
from gardien.errors import StoreError
from gardien.model import Address, Ban, Checkpoint, PendingFailures
from gardien.store.base import (
    DEFAULT_MAX_MATCHES,
    BanStore,
    Progress,
    canonical_address,
    pending_from_rows,
    pending_row,
    sample_of,
)

__all__ = ["MemoryBanStore"]


class MemoryBanStore:
    """A :class:`~gardien.store.BanStore` that keeps everything in dictionaries.

    It behaves as the SQLite store does, short of outliving the process; ``clock`` tells
    when a lifted ban ended.
    """

    def __init__(
        self, clock: Clock | None = None, *, max_matches: int = DEFAULT_MAX_MATCHES
    ) -> None:
        self._clock = clock if clock is not None else SystemClock()
        self._max_matches = max_matches
        self._lock = threading.Lock()
        self._closed = False
        self._bans: dict[tuple[str, str], Ban] = {}
        # keyed by (jail, address, start); dicts keep insertion order, the tie-breaker
        self._history: dict[tuple[str, str, float], Ban] = {}
        self._checkpoints: dict[tuple[str, str], Checkpoint] = {}
        # (jail, address) -> (last time, stored text), in the order last written
        self._pending: dict[tuple[str, str], tuple[float, str]] = {}

    def __enter__(self) -> MemoryBanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add_ban(self, ban: Ban) -> None:
        self.add_bans((ban,))

    def add_bans(self, bans: Iterable[Ban]) -> None:
        stored = [self._normalised(ban) for ban in bans]
        with self._lock:
            self._check_open()
            self._add(stored)

    def _add(self, stored: Iterable[Ban]) -> None:
        for ban in stored:
            address = str(ban.address)
            self._bans[ban.jail, address] = ban
            self._history[ban.jail, address, ban.start] = dataclasses.replace(ban, matches=())

    def remove_bans(self, jail: str, addresses: Iterable[Address]) -> int:
        keys = [(jail, str(canonical_address(address))) for address in addresses]
        with self._lock:
            self._check_open()
            return sum(self._remove(key) for key in keys)

    def remove_ban(self, jail: str, address: Address) -> bool:
        return self.remove_bans(jail, (address,)) == 1

    def _remove(self, key: tuple[str, str]) -> bool:
        ban = self._bans.pop(key, None)
        if ban is None:
            return False
        now = self._clock.now()
        record_key = (*key, ban.start)
        record = self._history.get(record_key)
        if record is not None and (record.end is None or record.end > now):
            self._history[record_key] = dataclasses.replace(record, end=now)
        return True

    def save_progress(self, progress: Progress) -> None:
        jail = progress.jail
        stored = [self._normalised(ban) for ban in progress.bans]
        lifted = [(jail, str(canonical_address(a))) for a in progress.lifted]
        pending = [
            (
                (jail, str(canonical_address(p.address))),
                (p.times[-1], pending_row(p, self._max_matches)),
            )
            for p in progress.pending
            if p.times
        ]
        settled = [(jail, str(canonical_address(a))) for a in progress.settled]
        with self._lock:
            self._check_open()
            self._add(stored)
            for key in lifted:
                self._remove(key)
            for key in settled:
                self._pending.pop(key, None)
            for key, row in pending:
                self._pending.pop(key, None)
                self._pending[key] = row
            if progress.checkpoint is not None:
                self._checkpoints[jail, progress.checkpoint.source] = progress.checkpoint

    def checkpoint(self, jail: str, source: str) -> Checkpoint | None:
        with self._lock:
            self._check_open()
            return self._checkpoints.get((jail, source))

    def save_checkpoint(self, jail: str, checkpoint: Checkpoint) -> None:
        with self._lock:
            self._check_open()
            self._checkpoints[jail, checkpoint.source] = checkpoint

    def pending_failures(self, jail: str) -> list[PendingFailures]:
        with self._lock:
            self._check_open()
            rows = sorted(
                (last, key[1], text)
                for key, (last, text) in self._pending.items()
                if key[0] == jail
            )
        return pending_from_rows([(address, text) for _, address, text in rows])

    def active_bans(self, now: float, jail: str | None = None) -> list[Ban]:
        with self._lock:
            self._check_open()
            found = [
                ban
                for (ban_jail, _), ban in self._bans.items()
                if (jail is None or ban_jail == jail) and (ban.end is None or ban.end > now)
            ]
        return sorted(found, key=lambda ban: (ban.start, ban.jail, str(ban.address)))

    def ban_count(self, address: Address, jail: str | None = None) -> int:
        text = str(canonical_address(address))
        with self._lock:
            self._check_open()
            return sum(
                1
                for record_jail, record_address, _ in self._history
                if record_address == text and (jail is None or record_jail == jail)
            )

    def history(
        self, since: float | None = None, until: float | None = None, jail: str | None = None
    ) -> Iterator[Ban]:
        with self._lock:
            self._check_open()
            records = [
                (record.start, order, record)
                for order, record in enumerate(self._history.values())
                if (jail is None or record.jail == jail)
                and (since is None or record.start >= since)
                and (until is None or record.start < until)
            ]
        records.sort(key=lambda item: item[:2])
        return iter([record for _, _, record in records])

    def purge(self, older_than: float) -> int:
        with self._lock:
            self._check_open()
            cutoff = min(older_than, self._clock.now())
            old = [key for key, record in self._history.items() if _ended_before(record, cutoff)]
            for key in old:
                del self._history[key]
            for ban_key in [k for k, ban in self._bans.items() if _ended_before(ban, cutoff)]:
                del self._bans[ban_key]
            for pending_key in [k for k, (last, _) in self._pending.items() if last < cutoff]:
                del self._pending[pending_key]
            return len(old)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the ban store is closed")

    def _normalised(self, ban: Ban) -> Ban:
        """``ban`` as the SQLite store would read it back."""
        return Ban(
            jail=ban.jail,
            address=canonical_address(ban.address),
            start=float(ban.start),
            end=None if ban.end is None else float(ban.end),
            count=int(ban.count),
            failures=int(ban.failures),
            matches=sample_of(ban.matches, self._max_matches),
        )


def _ended_before(ban: Ban, cutoff: float) -> bool:
    return ban.end is not None and ban.end < cutoff


if TYPE_CHECKING:  # mypy checks that the protocol is met
    _conforms: type[BanStore] = MemoryBanStore

"""A firewall that only remembers: the real in-memory double of the backends, for tests of the
layers above and for dry runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gardien.backends.base import BlockSpec
from gardien.model import Address, Ban

__all__ = ["MemoryFirewall"]


class MemoryFirewall:
    """Keeps each jail's banned addresses and their end times; expires them like a kernel
    timeout would, when asked with the time."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jails: dict[str, BlockSpec] = {}
        self.elements: dict[str, dict[Address, float | None]] = {}
        self.transactions = 0

    def setup(self, spec: BlockSpec) -> None:
        with self._lock:
            self.jails[spec.name] = spec
            self.elements.setdefault(spec.name, {})

    def teardown(self, spec: BlockSpec, *, keep_bans: bool = False) -> None:
        with self._lock:
            self.jails.pop(spec.name, None)
            if not keep_bans:
                self.elements.pop(spec.name, None)

    def ban(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        with self._lock:
            table = self.elements.setdefault(spec.name, {})
            for ban in bans:
                if ban.end is None or ban.end > now:
                    table[ban.address] = ban.end
            self.transactions += 1

    def replace(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        with self._lock:
            self.elements[spec.name] = {
                ban.address: ban.end for ban in bans if ban.end is None or ban.end > now
            }
            self.transactions += 1

    def unban(self, spec: BlockSpec, addresses: Sequence[Address]) -> None:
        with self._lock:
            table = self.elements.get(spec.name, {})
            for address in addresses:
                table.pop(address, None)
            self.transactions += 1

    def banned(self, spec: BlockSpec) -> set[Address]:
        with self._lock:
            return set(self.elements.get(spec.name, {}))

    def expire(self, now: float) -> None:
        """Drop what a kernel timeout would have dropped by ``now``."""
        with self._lock:
            for table in self.elements.values():
                for address in [a for a, end in table.items() if end is not None and end <= now]:
                    del table[address]

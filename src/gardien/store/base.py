"""What a ban store promises, and the values it keeps besides bans.

A :class:`BanStore` remembers three things across restarts:

- the *current ban* of each address in each jail (one per jail and address: banning again
  replaces it), from which :meth:`BanStore.active_bans` answers what is still banned;
- the *history* of every ban made, one record per jail, address and start time, which
  ``bantime.increment`` counts (:meth:`BanStore.ban_count`) and statistics read
  (:meth:`BanStore.history`), until :meth:`BanStore.purge` forgets the old part (``dbpurgeage``);
- where reading each log file stopped (:class:`FilePosition`), so a restart neither misses
  nor repeats lines.

Addresses are kept in canonical form: ``::ffff:192.0.2.1`` is ``192.0.2.1``, and a network
of one host (``192.0.2.1/32``) is that host; a ban reads back with the canonical address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator
from typing import Protocol

from gardien.model import Address, Ban, FilePosition, parse_address

__all__ = [
    "DEFAULT_MAX_MATCHES",
    "BanStore",
    "FilePosition",
    "address_from_text",
    "canonical_address",
    "sample_of",
]

DEFAULT_MAX_MATCHES = 10
"""How many matched lines a stored ban keeps, the most recent ones (fail2ban's ``dbmaxmatches``)."""


class BanStore(Protocol):
    """Bans and file positions that outlive the daemon.

    Writes return once the data is stored: a write that has returned survives the process
    being killed. Implementations are safe to use from several threads.
    """

    def add_ban(self, ban: Ban) -> None:
        """Store ``ban``: it becomes the current ban of its address in its jail (replacing any
        other) and is recorded in the history (once per jail, address and start time)."""
        ...

    def add_bans(self, bans: Iterable[Ban]) -> None:
        """Store several bans at once, all or none (one transaction)."""
        ...

    def remove_ban(self, jail: str, address: Address) -> bool:
        """Forget the current ban of ``address`` in ``jail`` (it was lifted); its history record
        ends now if it had not ended yet. Returns whether there was a current ban."""
        ...

    def remove_bans(self, jail: str, addresses: Iterable[Address]) -> int:
        """:meth:`remove_ban` of several addresses at once, all or none (one transaction);
        how many had a current ban."""
        ...

    def active_bans(self, now: float, jail: str | None = None) -> list[Ban]:
        """The current bans not yet over at ``now`` (permanent ones included), in ``jail`` or in
        every jail, ordered by start time, then jail, then address."""
        ...

    def ban_count(self, address: Address, jail: str | None = None) -> int:
        """How many times ``address`` has been banned in ``jail``, or in any jail when ``jail``
        is ``None`` (``bantime.overalljails``), as far as the history remembers."""
        ...

    def history(
        self, since: float | None = None, until: float | None = None, jail: str | None = None
    ) -> Iterator[Ban]:
        """The recorded bans that started in ``[since, until)``, oldest first, in ``jail`` or in
        every jail. Records carry no matched lines, and ``end`` is when the ban was lifted if
        that was before its planned end."""
        ...

    def file_position(self, jail: str, path: str) -> FilePosition | None:
        """Where ``jail`` stopped reading ``path``, or ``None`` if it never saved a position."""
        ...

    def save_file_position(self, jail: str, position: FilePosition) -> None:
        """Remember where ``jail`` stopped reading ``position.path``."""
        ...

    def journal_cursor(self, jail: str) -> str | None:
        """The cursor of the last journal entry ``jail`` read, or ``None``."""
        ...

    def save_journal_cursor(self, jail: str, cursor: str) -> None:
        """Remember where ``jail`` stopped reading the systemd journal."""
        ...

    def purge(self, older_than: float) -> int:
        """Forget the bans that ended before ``older_than`` (``dbpurgeage`` ago): their history
        records and stale current bans. A ban not over yet is never forgotten. Returns how
        many history records were removed."""
        ...

    def close(self) -> None:
        """Finish pending writes and release the store; using it afterwards raises
        :class:`~gardien.errors.StoreError`. Closing twice is harmless."""
        ...


def canonical_address(address: Address) -> Address:
    """The one form under which ``address`` is stored (see the module docstring)."""
    canonical = parse_address(str(address))
    if canonical is None:  # pragma: no cover - every Address prints as a parseable one
        raise ValueError(f"not an address: {address!r}")
    return canonical


def address_from_text(text: str) -> Address:
    """The address a canonical ``text`` (as stored) stands for."""
    if "/" in text:
        return ipaddress.ip_network(text)
    # the C parser first: five times faster than ipaddress's own, which restoring 100,000
    # bans notices; ipaddress still has the last word (IPv6 scope ids, anything odd)
    try:
        if ":" in text:
            packed = socket.inet_pton(socket.AF_INET6, text)
            return ipaddress.IPv6Address(int.from_bytes(packed, "big"))
        return ipaddress.IPv4Address(int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
    except OSError:
        return ipaddress.ip_address(text)


def sample_of(matches: Iterable[str], max_matches: int) -> tuple[str, ...]:
    """The most recent ``max_matches`` of ``matches``."""
    kept = tuple(matches)
    if max_matches <= 0:
        return ()
    return kept[-max_matches:]

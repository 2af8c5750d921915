"""What a ban store promises, and the values it keeps besides bans.

A :class:`BanStore` remembers three things across restarts:

- the *current ban* of each address in each jail (one per jail and address: banning again
  replaces it), from which :meth:`BanStore.active_bans` answers what is still banned;
- the *history* of every ban made, one record per jail, address and start time, which
  ``bantime.increment`` counts (:meth:`BanStore.ban_count`) and statistics read
  (:meth:`BanStore.history`), until :meth:`BanStore.purge` forgets the old part (``dbpurgeage``);
- where each source of each jail stopped (its :class:`~gardien.model.Checkpoint`), and the
  failures each jail counts but has not banned for yet (:class:`~gardien.model.PendingFailures`),
  both written in the transaction of the bans they led to (:meth:`BanStore.save_progress`): a
  restart, clean or not, neither reads a batch twice nor forgets a failure inside ``findtime``.

Addresses are kept in canonical form: ``::ffff:192.0.2.1`` is ``192.0.2.1``, and a network
of one host (``192.0.2.1/32``) is that host; a ban reads back with the canonical address.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gardien.model import Address, Ban, Checkpoint, PendingFailures, parse_address

__all__ = [
    "DEFAULT_MAX_MATCHES",
    "MAX_PENDING_LINE",
    "BanStore",
    "Progress",
    "address_from_text",
    "canonical_address",
    "pending_from_row",
    "pending_from_rows",
    "pending_row",
    "sample_of",
]

DEFAULT_MAX_MATCHES = 10
"""How many matched lines a stored ban keeps, the most recent ones (fail2ban's ``dbmaxmatches``)."""

MAX_PENDING_LINE = 4096
"""Characters kept of each matched line of a pending failure (a ban's sample keeps them whole;
a pending failure is written again at each failure of its address, so it is kept small)."""


@dataclass(frozen=True)
class Progress:
    """What one batch read from one source of ``jail`` changed, stored all or nothing.

    ``bans`` are made (as :meth:`BanStore.add_bans`), ``lifted`` addresses lose their current
    ban (as :meth:`BanStore.remove_bans`), ``checkpoint`` becomes where its source resumes,
    ``pending`` replace the pending failures of their addresses, and ``settled`` addresses have
    none any more (banned, or their failures left ``findtime``).
    """

    jail: str
    bans: Sequence[Ban] = ()
    lifted: Sequence[Address] = ()
    checkpoint: Checkpoint | None = None
    pending: Sequence[PendingFailures] = ()
    settled: Sequence[Address] = ()

    def __bool__(self) -> bool:
        return bool(self.bans or self.lifted or self.checkpoint or self.pending or self.settled)


class BanStore(Protocol):
    """Bans, checkpoints and pending failures that outlive the daemon.

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

    def save_progress(self, progress: Progress) -> None:
        """Store what one batch changed (see :class:`Progress`) in one transaction."""
        ...

    def checkpoint(self, jail: str, source: str) -> Checkpoint | None:
        """Where ``source`` of ``jail`` resumes, or ``None`` if it never saved a checkpoint."""
        ...

    def save_checkpoint(self, jail: str, checkpoint: Checkpoint) -> None:
        """Remember where ``checkpoint.source`` of ``jail`` resumes."""
        ...

    def pending_failures(self, jail: str) -> list[PendingFailures]:
        """The failures ``jail`` counted and has not banned for, as :meth:`save_progress` left
        them, the address whose last failure is the oldest first."""
        ...

    def purge(self, older_than: float) -> int:
        """Forget the bans that ended before ``older_than`` (``dbpurgeage`` ago): their history
        records and stale current bans; and pending failures all older than that. A ban not
        over yet is never forgotten. Returns how many history records were removed."""
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


def pending_row(pending: PendingFailures, max_matches: int) -> str:
    """The stored text of ``pending``: JSON ``[[time, [line, ...]], ...]``, only the last
    ``max_matches`` failures keeping their lines, each cut to :data:`MAX_PENDING_LINE`."""
    keep_from = len(pending.times) - max(max_matches, 0)
    rows = [
        [when, [line[:MAX_PENDING_LINE] for line in lines] if index >= keep_from else []]
        for index, (when, lines) in enumerate(zip(pending.times, pending.lines, strict=True))
    ]
    return json.dumps(rows)  # ASCII: a line read with surrogateescape still encodes


def pending_from_row(address: Address, text: str) -> PendingFailures | None:
    """The :class:`PendingFailures` of a stored row; ``None`` for a row that is not one."""
    try:
        return _pending(address, json.loads(text))
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def pending_from_rows(rows: Iterable[Sequence[str]]) -> list[PendingFailures]:
    """The pending failures of stored rows (address text, stored text), parsed by one
    ``json.loads`` for all of them (a restart with 100,000 pending addresses notices); a row
    that is not one is left out."""
    rows = list(rows)
    try:
        parsed = json.loads("[" + ",".join(text for _, text in rows) + "]")
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or len(parsed) != len(rows):  # one is broken: one by one
        found = (pending_from_row(address_from_text(a), text) for a, text in rows)
        return [pending for pending in found if pending is not None]
    pending: list[PendingFailures] = []
    for (address, _), failures in zip(rows, parsed, strict=True):
        try:
            item = _pending(address_from_text(address), failures)
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        if item is not None:
            pending.append(item)
    return pending


def _pending(address: Address, rows: Any) -> PendingFailures | None:
    times = tuple(float(row[0]) for row in rows)
    lines = tuple(tuple(str(line) for line in row[1]) for row in rows)
    return PendingFailures(address, times, lines) if times else None


def sample_of(matches: Iterable[str], max_matches: int) -> tuple[str, ...]:
    """The most recent ``max_matches`` of ``matches``."""
    kept = tuple(matches)
    if max_matches <= 0:
        return ()
    return kept[-max_matches:]

"""The small protocol every firewall backend implements, and what a jail asks it to block.

A backend is synchronous (it talks to the kernel through libnftables or a short-lived restore
command); the daemon calls it from a worker thread. Bans that arrive together are passed
together, so that a backend can apply them in one transaction. Every ban carries its end time:
backends that can (nftables, ipset) give each element a kernel timeout, so that a ban ends on
time even while the daemon is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gardien.model import Address, Ban

__all__ = ["CHAINS", "BlockSpec", "Firewall", "replace_by_difference"]

#: where a jail's rule is hooked: packets to this host, routed ones, or Docker's published ports
CHAINS = ("INPUT", "FORWARD", "DOCKER-USER")


@dataclass(frozen=True)
class BlockSpec:
    """What one jail's firewall action blocks for a banned address.

    ``name`` identifies the jail's objects in the firewall (fail2ban's ``name`` parameter,
    e.g. ``asterisk``); ``ports`` is ``None`` for every port; ``protocol`` is ``tcp``, ``udp``,
    ``sctp``, ``udplite`` or ``all``; ``blocktype`` is ``drop`` or ``reject``.
    """

    name: str
    ports: tuple[str, ...] | None = None
    protocol: str = "tcp"
    blocktype: str = "drop"
    chain: str = "INPUT"


class Firewall(Protocol):
    """A firewall backend (nftables, ipset with iptables, iptables, memory)."""

    name: str

    def setup(self, spec: BlockSpec) -> None:
        """Create what the jail needs (table, sets, chain, rule); harmless when it exists."""
        ...

    def teardown(self, spec: BlockSpec, *, keep_bans: bool = False) -> None:
        """Remove the jail's rule and, unless ``keep_bans``, its banned addresses."""
        ...

    def ban(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        """Block these addresses until each ban's end (``None``: for ever). Banning an address
        already banned updates it; one transaction for the whole batch."""
        ...

    def replace(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        """Make the jail block exactly ``bans`` (at start, from the store): leftovers removed,
        missing ones added, atomically where the firewall allows it."""
        ...

    def unban(self, spec: BlockSpec, addresses: Sequence[Address]) -> None:
        """Stop blocking these addresses; an address that is not banned is ignored."""
        ...

    def banned(self, spec: BlockSpec) -> set[Address]:
        """The addresses the firewall blocks for this jail now (to reconcile with the store)."""
        ...


def replace_by_difference(
    firewall: Firewall, spec: BlockSpec, bans: Sequence[Ban], now: float
) -> None:
    """:meth:`Firewall.replace` for backends without an atomic swap: unban what is there and
    should not be, then ban the rest (an address banned twice is harmless)."""
    wanted = {ban.address for ban in bans if ban.end is None or ban.end > now}
    leftovers = sorted(firewall.banned(spec) - wanted, key=str)
    if leftovers:
        firewall.unban(spec, leftovers)
    if bans:
        firewall.ban(spec, bans, now)

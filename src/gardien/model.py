"""The data that flows between gardien's modules: plain frozen values, no behaviour of note."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Address", "Ban", "Checkpoint", "Failure", "PendingFailures", "Unban", "parse_address"]

Address = (
    ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
)


@functools.lru_cache(maxsize=1 << 16)
def parse_address(text: str) -> Address | None:
    """The address or network ``text`` denotes, or ``None`` if it is not one.

    Accepts ``192.0.2.1``, ``2001:db8::1``, ``[2001:db8::1]``, ``::ffff:192.0.2.1`` (as IPv4) and
    ``192.0.2.0/24``; a network written with host bits set (``192.0.2.7/24``) means its network.
    The last 65,536 texts are remembered: logs name the same attackers again and again, and
    the addresses are immutable.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
            if network.prefixlen == network.max_prefixlen:
                return network.network_address
            return network
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Failure(NamedTuple):
    """One failed attempt recognised in a log: who, when, and what was captured.

    ``host`` is the text identifying the offender as the filter captured it (normalised when it
    is an address): an IPv4/IPv6 address, a network, a host name, or a failure id (``<F-ID>``).
    ``address`` is that text as a validated address, or ``None`` when it is not one.
    (A named tuple: immutable, and cheap to make by the hundred thousand.)
    """

    host: str
    time: float | None
    regex_index: int
    fields: Mapping[str, object] = {}
    lines: tuple[str, ...] = ()

    @property
    def address(self) -> Address | None:
        return parse_address(self.host)

    @property
    def user(self) -> str | None:
        value = self.fields.get("user")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Ban:
    """A decision to ban ``address`` in ``jail`` from ``start`` until ``end`` (seconds since the
    epoch; ``end`` is ``None`` for a permanent ban). ``count`` is how many times this address
    has been banned (1 for the first ban), which ``bantime.increment`` uses; ``failures`` the
    failures that led to it; ``matches`` a bounded sample of the matched log lines."""

    jail: str
    address: Address
    start: float
    end: float | None
    count: int = 1
    failures: int = 0
    matches: tuple[str, ...] = ()

    @property
    def permanent(self) -> bool:
        return self.end is None

    def remaining(self, now: float) -> float | None:
        """Seconds left at ``now`` (0 when over), ``None`` for a permanent ban."""
        return None if self.end is None else max(0.0, self.end - now)


@dataclass(frozen=True)
class Unban:
    """A decision to lift the ban of ``address`` in ``jail`` (expired, or asked for)."""

    jail: str
    address: Address
    reason: str = "expired"  # "expired" | "manual" | "reload"


@dataclass(frozen=True)
class Checkpoint:
    """Where one source of a jail stopped, as it can resume from: ``source`` names the source
    within its jail (``file:/var/log/auth.log``, ``journal``, ``hub``), ``state`` is the
    source's own text, opaque to everyone else. The store keeps one per jail and source."""

    source: str
    state: str


@dataclass(frozen=True)
class PendingFailures:
    """The failures of ``address`` a jail counts but has not banned it for (fewer than
    ``maxretry`` within ``findtime``): their ``times`` in order and, aligned with them, the
    matched lines of each (only the most recent failures keep theirs, as a ban keeps a bounded
    sample). Stored beside the checkpoints so that a restart goes on counting."""

    address: Address
    times: tuple[float, ...]
    lines: tuple[tuple[str, ...], ...]

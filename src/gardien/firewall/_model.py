"""What the checks need to know of a ruleset, whatever format it was written in.

The iptables and nftables readers both reduce a rule to a :class:`Rule`: where it came from, what
it matches that the checks understand, and its verdict. Anything else a rule matches makes it
``restricted``, so the checks never take a narrow rule for an open one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from gardien.severity import Severity


@dataclass(frozen=True)
class Finding:
    """One problem in a ruleset: what is wrong at ``line`` (1-based) and how to fix it."""

    id: str
    severity: Severity
    line: int
    message: str
    fix: str


PortRange = tuple[int, int]


@dataclass(frozen=True)
class Rule:
    """One rule of an input chain, reduced to what the checks look at."""

    line: int
    verdict: str | None  # ACCEPT, DROP, REJECT, RETURN, or the chain jumped to
    protocol: str | None = None
    ports: tuple[PortRange, ...] | None = None  # destination ports; None: any port
    sourced: bool = False  # restricted to some source addresses
    interface: str | None = None
    states: frozenset[str] = frozenset()  # conntrack states, upper case
    restricted: bool = False  # matches something else the checks do not model

    @property
    def unconditional(self) -> bool:
        """Matches every packet."""
        return not (
            self.protocol
            or self.ports is not None
            or self.sourced
            or self.interface
            or self.states
            or self.restricted
        )

    @property
    def open_to_all(self) -> bool:
        """Matches new connections from any address on any interface (ports aside)."""
        new = not self.states or "NEW" in self.states
        return new and not (self.sourced or self.interface or self.restricted)

    @property
    def accepts_established(self) -> bool:
        return self.verdict == "ACCEPT" and "ESTABLISHED" in self.states


@dataclass
class Chain:
    """A chain: its policy (None for a user chain) and rules in evaluation order."""

    name: str
    policy: str | None = None
    policy_line: int | None = None
    rules: list[Rule] = field(default_factory=list)


def host_with_mask(value: str, line: int, where: str) -> Finding | None:
    """A ``host-with-mask`` finding when ``value`` is an address/prefix with host bits set."""
    if "/" not in value:
        return None
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        return None
    network = interface.network
    if interface.ip == network.network_address:
        return None
    host = interface.ip
    single = 32 if host.version == 4 else 128
    return Finding(
        "host-with-mask",
        "error",
        line,
        f"{where} {value} is a host address with a /{network.prefixlen} mask: it admits "
        f"{network.num_addresses:,} addresses ({network}), not the one host {host}",
        f"write {host}/{single} (or {host}) for the one host, or {network} for the network",
    )


def parse_ports(text: str, names: dict[str, int]) -> tuple[PortRange, ...] | None:
    """``80,443``, ``1000:2000``, ``1000-2000`` or ``ssh`` as port ranges; None if unreadable."""
    ranges: list[PortRange] = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        low, sep, high = part.replace("-", ":").partition(":")
        bounds = []
        for bound in (low, high) if sep else (low,):
            if bound.isdigit():
                bounds.append(int(bound))
            elif bound in names:
                bounds.append(names[bound])
            elif bound == "" and sep:
                bounds.append(0 if not bounds else 65535)
            else:
                return None
        ranges.append((bounds[0], bounds[-1]))
    return tuple(ranges) or None


#: service names people write instead of numbers
SERVICES = {
    "ssh": 22,
    "telnet": 23,
    "http": 80,
    "https": 443,
    "mysql": 3306,
    "postgresql": 5432,
    "sip": 5060,
    "sip-tls": 5061,
    "webmin": 10000,
    "http-alt": 8080,
}

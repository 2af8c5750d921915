"""Firewall actions: fail2ban's action names and parameters mapped onto gardien's backends.

===================================  ==================  =====================================
action (fail2ban name)               backend             blocks
===================================  ==================  =====================================
``nftables``, ``nftables-multiport``  nftables            ``port`` (a list) for ``protocol``
``nftables-allports``                nftables            every port
``iptables``, ``iptables-multiport``  iptables            ``port`` for ``protocol``
``iptables-allports``                iptables            every port
``iptables-ipset``,                  ipset + iptables    ``port``; the ``-allports`` variant
``iptables-ipset-proto4``,                               every port
``iptables-ipset-proto6``,
``iptables-ipset-proto6-allports``
===================================  ==================  =====================================

Parameters: ``name`` (the jail's objects in the firewall; default: the jail's name), ``port``
(``ssh``, ``5060,5061``, ``10000:20000``), ``protocol`` (``tcp``, ``udp``, ``all``...),
``chain`` (``INPUT``, ``FORWARD``, ``DOCKER-USER``) and ``blocktype`` (``DROP``, or
``REJECT``, the default as in fail2ban, also written ``REJECT --reject-with ...``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from gardien.backends.base import CHAINS, BlockSpec, Firewall
from gardien.clock import Clock, SystemClock
from gardien.errors import ConfigError
from gardien.model import Ban, Unban
from gardien.settings import Spec

__all__ = ["BACKEND_OF", "FirewallAction", "block_spec", "firewall_action", "kernel_place"]

logger = logging.getLogger("gardien.actions.firewall")

#: fail2ban action name -> (backend, blocks every port)
BACKEND_OF: dict[str, tuple[str, bool]] = {
    "nftables": ("nftables", False),
    "nftables-multiport": ("nftables", False),
    "nftables-allports": ("nftables", True),
    "iptables": ("iptables", False),
    "iptables-multiport": ("iptables", False),
    "iptables-allports": ("iptables", True),
    "iptables-ipset": ("ipset", False),
    "iptables-ipset-proto4": ("ipset", False),
    "iptables-ipset-proto6": ("ipset", False),
    "iptables-ipset-proto6-allports": ("ipset", True),
    # the same blocking; fail2ban's variants also log dropped packets or match NEW only
    "iptables-multiport-log": ("iptables", False),
    "iptables-new": ("iptables", False),
}
PROTOCOLS = ("tcp", "udp", "sctp", "udplite", "all")
_KNOWN_PARAMETERS = frozenset(
    {
        "name",
        "port",
        "protocol",
        "chain",
        "blocktype",
        "actname",
        "bantime",
        "returntype",
        "lockingopt",
        "iptables",
        "type",
        "table",
        "table_family",
        "addr_type",
    }
)


def block_spec(spec: Spec, jail: str) -> BlockSpec:
    """What ``spec`` (e.g. ``iptables-allports[name=asterisk, protocol=all]``) blocks."""
    _backend, all_ports = BACKEND_OF[spec.name]
    params = {k.lower(): v.strip() for k, v in spec.params.items()}
    ignored = sorted(set(params) - _KNOWN_PARAMETERS)
    if ignored:
        # fail2ban lets a jail override any part of an action (its shell commands too);
        # gardien builds its rules itself, so such parameters have no effect here
        logger.warning(
            "[%s] action %s: parameter(s) %s have no effect in gardien",
            jail,
            spec.name,
            ", ".join(ignored),
        )
    name = params.get("name") or jail
    protocol = (params.get("protocol") or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"action {spec.name!r}: protocol {protocol!r} is not one of " + ", ".join(PROTOCOLS)
        )
    chain = params.get("chain") or "INPUT"
    if chain.startswith("<"):  # fail2ban's '<known/chain>': the action's own default
        chain = "INPUT"
    if chain not in CHAINS:
        raise ConfigError(
            f"action {spec.name!r}: chain {chain!r} is not one of " + ", ".join(CHAINS)
        )
    # fail2ban's actions reject by default (an ICMP port unreachable, a TCP reset)
    blocktype_text = (params.get("blocktype") or "REJECT").split()[0].upper()
    blocktype = {"DROP": "drop", "REJECT": "reject"}.get(blocktype_text)
    if blocktype_text == "RETURN":
        raise ConfigError(
            f"action {spec.name!r}: blocktype RETURN turns a ban into a permission (fail2ban's "
            "pass2allow trick), which gardien does not do"
        )
    if blocktype is None:
        raise ConfigError(
            f"action {spec.name!r}: blocktype {params['blocktype']!r} is not DROP or REJECT"
        )
    ports: tuple[str, ...] | None = None
    if not all_ports and protocol != "all":
        text = params.get("port") or ""
        ports = tuple(p.strip() for p in text.replace(" ", ",").split(",") if p.strip())
        if not ports:
            raise ConfigError(f"action {spec.name!r} needs port=... (or use the -allports variant)")
    return BlockSpec(name=name, ports=ports, protocol=protocol, blocktype=blocktype, chain=chain)


class FirewallAction:
    """An :class:`~gardien.actions.base.Action` carried out by a firewall backend."""

    def __init__(
        self,
        firewall: Firewall,
        spec: BlockSpec,
        *,
        clock: Clock | None = None,
        keep_bans: bool = False,
        name: str = "firewall",
    ) -> None:
        self.firewall = firewall
        self.spec = spec
        self.clock = clock or SystemClock()
        self.keep_bans = keep_bans
        self.name = name

    async def start(self) -> None:
        await asyncio.to_thread(self.firewall.setup, self.spec)

    async def restore(self, bans: Sequence[Ban]) -> None:
        """Make the firewall hold exactly ``bans``: leftovers removed, missing ones added."""
        await asyncio.to_thread(self.firewall.replace, self.spec, list(bans), self.clock.now())
        logger.info(
            "[%s] firewall holds the %d active ban(s) of the store", self.spec.name, len(bans)
        )

    async def stop(self) -> None:
        await asyncio.to_thread(self.firewall.teardown, self.spec, keep_bans=self.keep_bans)

    async def ban(self, bans: Sequence[Ban]) -> None:
        await asyncio.to_thread(self.firewall.ban, self.spec, list(bans), self.clock.now())

    async def unban(self, unbans: Sequence[Unban]) -> None:
        addresses = [unban.address for unban in unbans]
        await asyncio.to_thread(self.firewall.unban, self.spec, addresses)


def kernel_place(action: object) -> tuple[str, str, str] | None:
    """Where ``action`` keeps its bans in the kernel (backend, chain, objects' name), or None
    for an action that keeps none. Two actions with the same place hold the same sets and
    rules: a reload hands them from the old to the new without taking them down."""
    if not isinstance(action, FirewallAction):
        return None
    return (type(action.firewall).__name__, action.spec.chain, action.spec.name)


def firewall_action(
    spec: Spec,
    jail: str,
    firewalls: Callable[[str], Firewall],
    *,
    clock: Clock | None = None,
    keep_bans: bool = False,
) -> FirewallAction:
    """The action ``spec`` names, on the backend ``firewalls(backend_name)`` gives."""
    backend, _ = BACKEND_OF[spec.name]
    return FirewallAction(
        firewalls(backend), block_spec(spec, jail), clock=clock, keep_bans=keep_bans, name=spec.name
    )

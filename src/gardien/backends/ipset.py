"""The ``ipset`` backend: banned addresses in kernel sets with timeouts, matched by one
iptables rule per jail.

For a jail named ``asterisk`` (UDP 5060 and 5061), in each address family::

    ipset create gardien-asterisk  hash:net family inet  timeout 0 maxelem 1048576
    ipset create gardien6-asterisk hash:net family inet6 timeout 0 maxelem 1048576

    -N gardien-asterisk
    -A gardien-asterisk -p udp -m multiport --dports 5060,5061 \\
        -m set --match-set gardien-asterisk src -j DROP
    -A gardien-asterisk -j RETURN
    -I INPUT 1 -j gardien-asterisk

Each address is added with ``timeout N`` (seconds left of its ban), so a ban ends on time even
while the daemon is down; a permanent ban has ``timeout 0``, as does a ban longer than ipset's
longest timeout (2147483 s, about 24 days), which the daemon then lifts at its end. A batch of
bans or unbans is one ``ipset restore -exist``; rules change through
``iptables-restore --noflush``.

Choices worth knowing:

- ``maxelem`` is explicit: ipset's default of 65536 elements silently refuses the 65537th ban.
- The sets are ``hash:net``, not fail2ban's ``hash:ip``: a ban may be a network, which
  ``hash:ip`` would store as every one of its addresses (a /16 is 65536 elements), and then
  :meth:`IpsetFirewall.banned` could not give the network back. A single address is a /32 (/128)
  element, listed without its prefix; lookups cost one hash probe per prefix length in use.
- Names are limited to 31 characters for sets and 28 for chains: a longer jail name is cut and
  given a short hash (:func:`~gardien.backends.iptables.object_name`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gardien.backends.base import BlockSpec, replace_by_difference
from gardien.backends.conntrack import forget_banned
from gardien.backends.iptables import (
    FAMILIES,
    MAX_CHAIN_NAME,
    Xtables,
    family_of,
    has_chain,
    insert_jumps,
    object_name,
    port_matches,
    remove_jumps,
    run_command,
    target,
    timeout_of,
)
from gardien.errors import BackendError
from gardien.model import Address, Ban, parse_address

__all__ = ["IpsetFirewall"]

#: the longest set name ipset accepts
MAX_SET_NAME = 31
#: the longest timeout ipset accepts, in seconds
MAX_TIMEOUT = 2147483
#: elements per set (ipset's default, 65536, is easily reached by a busy jail or a blocklist)
MAX_ELEMENTS = 1048576
_SET_PREFIX = {4: "gardien-", 6: "gardien6-"}
_SET_FAMILY = {4: "inet", 6: "inet6"}


class IpsetFirewall:
    """Bans as elements of the sets ``gardien-<name>`` and ``gardien6-<name>``, with kernel
    timeouts, matched by the chain ``gardien-<name>``.

    ``command_prefix`` goes before every command (e.g. ``("ip", "netns", "exec", "ns")`` to act
    in a network namespace); ``forget_connections`` cuts a banned address's tracked connections
    (see :mod:`gardien.backends.conntrack`).
    """

    name = "ipset"

    def __init__(
        self, *, command_prefix: Sequence[str] = (), forget_connections: bool = True
    ) -> None:
        self.command_prefix = tuple(command_prefix)
        self.forget_connections = forget_connections
        self._tables = {family: Xtables(tool, command_prefix) for family, tool in FAMILIES}

    def set_name(self, spec: BlockSpec, family: int) -> str:
        """The jail's set for addresses of ``family`` (4 or 6)."""
        return object_name(_SET_PREFIX[family], spec.name, MAX_SET_NAME)

    def chain(self, spec: BlockSpec) -> str:
        """The jail's chain, ``gardien-<name>``."""
        return object_name("gardien-", spec.name, MAX_CHAIN_NAME)

    def setup(self, spec: BlockSpec) -> None:
        self._ipset_restore(
            f"create {self.set_name(spec, family)} hash:net family {_SET_FAMILY[family]} "
            f"timeout 0 maxelem {MAX_ELEMENTS}"
            for family, _tool in FAMILIES
        )
        chain = self.chain(spec)
        verdict = target(spec)
        for family, tables in self._tables.items():
            match_set = ["-m", "set", "--match-set", self.set_name(spec, family), "src"]
            # declaring an existing chain empties it: its rules are rewritten from the spec
            lines = [f":{chain} - [0:0]"]
            lines += [
                " ".join(["-A", chain, *match, *match_set, *verdict])
                for match in port_matches(spec)
            ]
            lines.append(f"-A {chain} -j RETURN")
            lines += remove_jumps(tables.rules(), chain)
            lines += insert_jumps(spec, chain, [[]])
            tables.restore(lines)

    def teardown(self, spec: BlockSpec, *, keep_bans: bool = False) -> None:
        chain = self.chain(spec)
        for tables in self._tables.values():
            rules = tables.rules()
            lines = remove_jumps(rules, chain)
            if has_chain(rules, chain):
                lines += [f"-F {chain}", f"-X {chain}"]
            tables.restore(lines)
        if keep_bans:
            return
        existing = set(self._ipset(["list", "-n"]).split())
        self._ipset_restore(
            f"destroy {self.set_name(spec, family)}"
            for family, _tool in FAMILIES
            if self.set_name(spec, family) in existing
        )

    def ban(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        lines: list[str] = []
        added: list[Address] = []
        for ban in bans:
            timeout = timeout_of(ban, now)
            if timeout is None:
                continue
            if timeout > MAX_TIMEOUT:
                timeout = 0
            address = ban.address
            lines.append(
                f"add {self.set_name(spec, family_of(address))} {address} timeout {timeout}"
            )
            added.append(address)
        self._ipset_restore(lines)
        if self.forget_connections:
            forget_banned(added, command_prefix=self.command_prefix)

    def replace(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        """Block exactly ``bans`` (at start): leftovers unbanned, the others banned."""
        replace_by_difference(self, spec, bans, now)

    def unban(self, spec: BlockSpec, addresses: Sequence[Address]) -> None:
        self._ipset_restore(
            f"del {self.set_name(spec, family_of(address))} {address}" for address in addresses
        )

    def banned(self, spec: BlockSpec) -> set[Address]:
        found: set[Address] = set()
        for family, _tool in FAMILIES:
            name = self.set_name(spec, family)
            try:
                text = self._ipset(["list", "-output", "save", name])
            except BackendError as error:
                if "does not exist" in str(error):
                    continue
                raise
            for line in text.splitlines():
                words = line.split()
                if len(words) >= 3 and words[0] == "add" and words[1] == name:
                    address = parse_address(words[2])
                    if address is not None:
                        found.add(address)
        return found

    def _ipset(self, arguments: Sequence[str], *, input: str | None = None) -> str:
        return run_command([*self.command_prefix, "ipset", *arguments], input=input)

    def _ipset_restore(self, lines: Iterable[str]) -> None:
        """One ``ipset restore -exist`` for these commands (none: nothing is run)."""
        text = "".join(line + "\n" for line in lines)
        if text:
            self._ipset(["restore", "-exist"], input=text)

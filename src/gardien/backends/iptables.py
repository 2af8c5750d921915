"""The ``iptables`` backend: one rule per banned address, in fail2ban's layout.

For a jail named ``sshd`` this makes, in the ``filter`` table of both ``iptables`` and
``ip6tables``, what fail2ban's ``iptables``/``iptables-multiport``/``iptables-allports`` actions
make, so that rules and scripts written for fail2ban (and a switch between the two) keep working::

    -N f2b-sshd
    -A f2b-sshd -s 192.0.2.7/32 -j DROP           one rule per ban, the newest first
    -A f2b-sshd -j RETURN
    -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd

The jump is restricted to the jail's protocol and ports (no ``-p`` for ``all``, no ports for
every port) and inserted first in its chain (``INPUT``, ``FORWARD`` or ``DOCKER-USER``), before
any ``ACCEPT``. Rules have no timeouts: the daemon lifts each ban at its end (and a restarted
daemon reconciles the chain with its store). Changes go through ``iptables-restore --noflush``,
one transaction per address family.

This module also holds what the ``ipset`` backend shares: running commands, object names,
port matches.
"""

from __future__ import annotations

import hashlib
import math
import re
import socket
import subprocess
from collections.abc import Iterable, Sequence

from gardien.backends.base import BlockSpec, replace_by_difference
from gardien.backends.conntrack import forget_banned
from gardien.errors import BackendError
from gardien.model import Address, Ban, parse_address

__all__ = ["IptablesFirewall"]

#: the longest chain name iptables accepts
MAX_CHAIN_NAME = 28
#: ``iptables-multiport`` takes at most 15 ports, a range counting as two
_MULTIPORT_SLOTS = 15
#: a batch larger than this is a restore or a flood: forgetting connections would cost one
#: ``conntrack`` process per address, so it is left to the next (small) bans
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: (address family, tool)
FAMILIES = ((4, "iptables"), (6, "ip6tables"))


def object_name(prefix: str, name: str, limit: int) -> str:
    """``prefix + name``, made to fit ``limit`` characters and the firewall's alphabet.

    A name that is too long (or has characters other than letters, digits, ``_ . -``) is cut and
    ends with ``-`` and six hexadecimal digits of its SHA-256, so that two long names sharing a
    beginning stay apart: ``gardien-a-very-long-jail-name`` -> ``gardien-a-very-long-j-1f2e3d``.
    """
    full = prefix + name
    if len(full) <= limit and _SAFE_NAME.fullmatch(name):
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return prefix + safe[: limit - len(prefix) - 7] + "-" + digest


def run_command(argv: Sequence[str], *, input: str | None = None) -> str:
    """Run ``argv`` (never through a shell) and return its output; a failure raises
    :class:`~gardien.errors.BackendError` with the command's error output."""
    try:
        result = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as error:
        raise BackendError(f"{argv[0]} is not installed: {error}") from error
    if result.returncode != 0:
        message = result.stderr.strip() or result.stdout.strip()
        raise BackendError(f"{' '.join(argv)} failed ({result.returncode}): {message}")
    return result.stdout


def timeout_of(ban: Ban, now: float) -> int | None:
    """Whole seconds left of ``ban`` at ``now`` (``0``: permanent), ``None`` when it is over."""
    if ban.end is None:
        return 0
    if ban.end <= now:
        return None
    return max(1, math.ceil(ban.end - now))


def family_of(address: Address) -> int:
    return address.version


def canonical(address: Address) -> Address:
    """The one spelling of ``address``: a /32 (/128) network is its address."""
    return parse_address(str(address)) or address


def port_matches(spec: BlockSpec) -> list[list[str]]:
    """The match arguments of the jail's rules, one list per rule: ``[]`` for every packet
    (protocol ``all``), ``-p PROTO`` for every port, else ``-p PROTO -m multiport --dports``
    with at most 15 ports per rule."""
    if spec.protocol == "all":
        return [[]]
    if not spec.ports:
        return [["-p", spec.protocol]]
    matches: list[list[str]] = []
    group: list[str] = []
    used = 0
    for written in spec.ports:
        port = port_number(written, spec.protocol)
        cost = 2 if ":" in port else 1
        if used + cost > _MULTIPORT_SLOTS:
            matches.append(group)
            group, used = [], 0
        group.append(port)
        used += cost
    matches.append(group)
    return [["-p", spec.protocol, "-m", "multiport", "--dports", ",".join(g)] for g in matches]


def port_number(text: str, protocol: str) -> str:
    """A port (``22``) or a range (``5000-5001``, ``5000:5001``) as numbers: a service name is
    looked up for ``protocol``, then for any protocol (``/etc/services`` lists ``ssh`` for TCP
    only, and fail2ban's ``port = ssh`` is also written for UDP jails)."""
    parts = text.replace("-", ":").split(":", 1)
    numbers = []
    for part in parts:
        if part.isdigit():
            numbers.append(part)
            continue
        try:
            number = socket.getservbyname(part, protocol)
        except OSError:
            try:
                number = socket.getservbyname(part)
            except OSError:
                raise BackendError(f"unknown port or service {part!r}") from None
        numbers.append(str(number))
    return ":".join(numbers)


def target(spec: BlockSpec) -> list[str]:
    """``-j DROP`` or ``-j REJECT`` (ICMP port unreachable, in either family)."""
    return ["-j", "REJECT" if spec.blocktype == "reject" else "DROP"]


class Xtables:
    """The ``filter`` table of one family (``iptables`` or ``ip6tables``), read with ``-S`` and
    changed with ``-restore --noflush``."""

    def __init__(self, tool: str, command_prefix: Sequence[str] = ()) -> None:
        self.tool = tool
        self.prefix = tuple(command_prefix)

    def rules(self) -> list[str]:
        """The table as ``iptables -S`` prints it (``-P``, ``-N`` and ``-A`` lines)."""
        return run_command([*self.prefix, self.tool, "-w", "-S"]).splitlines()

    def restore(self, lines: Iterable[str]) -> None:
        """Apply these lines (``:chain``, ``-A``, ``-I``, ``-D``, ``-F``, ``-X``) as one
        transaction; nothing is run when there are none."""
        lines = list(lines)
        if not lines:
            return
        text = "*filter\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
        run_command([*self.prefix, f"{self.tool}-restore", "-w", "--noflush"], input=text)


def has_chain(rules: Sequence[str], chain: str) -> bool:
    return f"-N {chain}" in rules


def remove_jumps(rules: Sequence[str], chain: str) -> list[str]:
    """Restore lines deleting every rule, in any chain, that jumps to ``chain``."""
    return [
        "-D" + line[2:]
        for line in rules
        if line.startswith("-A ") and line.split()[-2:] == ["-j", chain]
    ]


def insert_jumps(spec: BlockSpec, chain: str, matches: Sequence[Sequence[str]]) -> list[str]:
    """Restore lines putting the jumps to ``chain`` first in the jail's hook chain."""
    return [" ".join(["-I", spec.chain, "1", *match, "-j", chain]) for match in matches]


class IptablesFirewall:
    """Bans as one ``-s ADDRESS -j DROP|REJECT`` rule each in the chain ``f2b-<name>``.

    ``command_prefix`` goes before every command (e.g. ``("ip", "netns", "exec", "ns")`` to act
    in a network namespace). ``forget_connections`` cuts a banned address's tracked connections
    (see :mod:`gardien.backends.conntrack`). ``chain_prefix`` names the chains (``f2b-`` is
    fail2ban's).
    """

    name = "iptables"

    def __init__(
        self,
        *,
        command_prefix: Sequence[str] = (),
        forget_connections: bool = True,
        chain_prefix: str = "f2b-",
    ) -> None:
        self.command_prefix = tuple(command_prefix)
        self.forget_connections = forget_connections
        self.chain_prefix = chain_prefix
        self._tables = {family: Xtables(tool, command_prefix) for family, tool in FAMILIES}

    def chain(self, spec: BlockSpec) -> str:
        """The jail's chain (``f2b-<name>``, shortened to iptables' 28 characters)."""
        return object_name(self.chain_prefix, spec.name, MAX_CHAIN_NAME)

    def setup(self, spec: BlockSpec) -> None:
        chain = self.chain(spec)
        for tables in self._tables.values():
            rules = tables.rules()
            lines: list[str] = []
            if not has_chain(rules, chain):
                lines += [f":{chain} - [0:0]", f"-A {chain} -j RETURN"]
            # an existing jump is replaced: the ports may have changed, or a rule was put first
            lines += remove_jumps(rules, chain)
            lines += insert_jumps(spec, chain, port_matches(spec))
            tables.restore(lines)

    def teardown(self, spec: BlockSpec, *, keep_bans: bool = False) -> None:
        chain = self.chain(spec)
        for tables in self._tables.values():
            rules = tables.rules()
            lines = remove_jumps(rules, chain)
            if not keep_bans and has_chain(rules, chain):
                lines += [f"-F {chain}", f"-X {chain}"]
            tables.restore(lines)

    def ban(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        chain = self.chain(spec)
        verdict = " ".join(target(spec))
        added: list[Address] = []
        for family, tables in self._tables.items():
            present = self._banned_rules(tables.rules(), chain)
            lines: list[str] = []
            for ban in bans:
                address = canonical(ban.address)
                if family_of(address) != family or timeout_of(ban, now) is None:
                    continue
                if address in present:
                    continue
                present[address] = ""
                lines.append(f"-I {chain} 1 -s {address} {verdict}")
                added.append(address)
            tables.restore(lines)
        if self.forget_connections:
            forget_banned(added, command_prefix=self.command_prefix)

    def replace(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        """Block exactly ``bans`` (at start): leftovers unbanned, the others banned."""
        replace_by_difference(self, spec, bans, now)

    def unban(self, spec: BlockSpec, addresses: Sequence[Address]) -> None:
        chain = self.chain(spec)
        for family, tables in self._tables.items():
            wanted = {canonical(a) for a in addresses if family_of(a) == family}
            if not wanted:
                continue
            present = self._banned_rules(tables.rules(), chain)
            tables.restore("-D" + present[address][2:] for address in wanted if address in present)

    def banned(self, spec: BlockSpec) -> set[Address]:
        chain = self.chain(spec)
        found: set[Address] = set()
        for tables in self._tables.values():
            found |= set(self._banned_rules(tables.rules(), chain))
        return found

    @staticmethod
    def _banned_rules(rules: Sequence[str], chain: str) -> dict[Address, str]:
        """Each banned address of ``chain`` and its rule as ``-S`` prints it."""
        found: dict[Address, str] = {}
        start = f"-A {chain} -s "
        for line in rules:
            if line.startswith(start):
                address = parse_address(line[len(start) :].split()[0])
                if address is not None:
                    found[address] = line
        return found

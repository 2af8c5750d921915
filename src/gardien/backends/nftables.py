"""The nftables backend: each jail's banned addresses in kernel sets with timeouts, matched by
one chain per jail, driven in-process through libnftables' JSON API.

Layout (all in the one table ``inet gardien``, shared by every jail)::

    set   <jail>-v4    ipv4_addr  flags timeout            addresses, a hash: fast at any size
    set   <jail>-v6    ipv6_addr  flags timeout
    set   <jail>-net4  ipv4_addr  flags interval, timeout  networks (rare; overlaps are refused)
    set   <jail>-net6  ipv6_addr  flags interval, timeout
    chain <jail>       type filter hook input|forward priority filter - 1; policy accept
        [meta l4proto ...] [th dport {...}] ip saddr @<jail>-v4 drop|reject   (one per set)

Addresses and networks live in separate sets because nft checks an interval set against its
whole content on every change: with a million banned addresses that would make each batch
slow, while a hash set costs the same at any size. Every set has an explicit ``size``
(``SET_SIZE``): without one the kernel refuses the 65,536th element.

The chain's priority is ``filter - 1`` so that it runs before the usual ``filter`` chains
(firewalld, ufw, a hand-written ``inet filter``) at the same hook: an accept there cannot be
seen before our drop, and the order at equal priority, which nftables leaves undefined, never
matters. It is after conntrack (``-200``), so established connections of a banned address are
cut as well, as fail2ban does.

Commands are JSON objects built from validated values (``ipaddress`` objects, port numbers,
names checked against ``_NAME``), never text spliced into nft syntax. Each call is one
``nft_run_cmd_from_buffer``: one netlink batch, hence one kernel transaction, all or nothing.
nftables 1.0.6 has no ``destroy``, and ``delete`` of a missing element fails the whole batch,
so removals are written ``add`` then ``delete`` (the ``add`` is a no-op when the object exists).
A ban is a plain ``add`` with the timeout where the kernel updates the timeout of an element it
already holds (Linux 6.10 and later, probed once per object); on older kernels, which keep the
old timeout, it is ``add``, ``delete``, ``add`` with the timeout, in the same batch.

Listing a set (``banned``) is slow for very large sets: the kernel restarts its walk of a hash
set for every netlink message of a dump, so a million elements take about a minute. The daemon
should reconcile from its store and list a jail only when it has to.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import math
import re
import socket
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gardien.backends.base import BlockSpec
from gardien.backends.conntrack import forget_banned
from gardien.errors import BackendError, ConfigError
from gardien.model import Address, Ban

__all__ = ["MAX_TIMEOUT", "SET_SIZE", "TABLE", "NftablesFirewall"]

#: the table holding every jail's sets and chains (family ``inet``: IPv4 and IPv6 together)
TABLE = "gardien"
#: the most elements one set holds (the kernel's default, 65,536, is easily reached)
SET_SIZE = 1 << 20
#: longer bans get no kernel timeout (the kernel refuses very long ones); the daemon lifts them
MAX_TIMEOUT = 10 * 365 * 86400

_LIBRARY = "libnftables.so.1"
_NFT_CTX_DEFAULT = 0
_NFT_CTX_OUTPUT_JSON = 1 << 4
_TERSE = 1 << 11  # NFT_CTX_OUTPUT_TERSE: sets listed without their elements (nft -t)
_HOOKS = {"INPUT": "input", "FORWARD": "forward"}
_PRIORITY = -1  # filter - 1: see the module docstring
#: protocols with ports (``th dport`` reads the same offset in each of them)
_PORT_PROTOCOLS = ("tcp", "udp", "sctp", "udplite")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_RANGE = re.compile(r"(\w+)\s*[:-]\s*(\w+)")

Json = dict[str, Any]


@dataclass(frozen=True)
class _Set:
    suffix: str
    version: int
    networks: bool

    @property
    def type(self) -> str:
        return "ipv4_addr" if self.version == 4 else "ipv6_addr"

    @property
    def payload(self) -> str:
        return "ip" if self.version == 4 else "ip6"


_SETS = (_Set("v4", 4, False), _Set("v6", 6, False), _Set("net4", 4, True), _Set("net6", 6, True))


class _Library:
    """libnftables, loaded once per process on first use."""

    _lock = threading.Lock()
    _loaded: ctypes.CDLL | None = None

    @classmethod
    def get(cls) -> ctypes.CDLL:
        with cls._lock:
            if cls._loaded is None:
                try:
                    lib = ctypes.CDLL(_LIBRARY, use_errno=True)
                except OSError as error:
                    raise BackendError(
                        f"cannot load {_LIBRARY} (Debian package libnftables1): {error}"
                    ) from error
                lib.nft_ctx_new.restype = ctypes.c_void_p
                lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
                lib.nft_ctx_free.restype = None
                lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
                lib.nft_ctx_output_set_flags.restype = None
                lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
                for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
                    getattr(lib, name).restype = ctypes.c_int
                    getattr(lib, name).argtypes = [ctypes.c_void_p]
                for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
                    getattr(lib, name).restype = ctypes.c_char_p
                    getattr(lib, name).argtypes = [ctypes.c_void_p]
                lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
                lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                cls._loaded = lib
            return cls._loaded


def _free_context(lib: ctypes.CDLL, context: int) -> None:
    lib.nft_ctx_free(context)


class NftablesFirewall:
    """Bans addresses in nftables sets with kernel timeouts, one chain per jail.

    Safe to share between threads (calls are serialised). The netlink socket belongs to the
    network namespace the object is used in. ``close()`` frees the libnftables context
    (garbage collection does it too).
    """

    name = "nftables"

    def __init__(
        self, *, table: str = TABLE, set_size: int = SET_SIZE, forget_connections: bool = True
    ) -> None:
        if not _NAME.fullmatch(table):
            raise ConfigError(f"invalid nftables table name {table!r}")
        self.table = table
        self.set_size = set_size
        #: cut the tracked connections of banned addresses (an ESTABLISHED accept rule would
        #: otherwise keep passing a UDP SIP flow: fail2ban issues #2503, #3351)
        self.forget_connections = forget_connections
        self._lock = threading.Lock()
        self._timeout_update: bool | None = None
        self._lib = _Library.get()
        context = self._lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not context:
            raise BackendError("nft_ctx_new failed")
        self._context: int | None = context
        self._finalizer = weakref.finalize(self, _free_context, self._lib, context)
        self._lib.nft_ctx_output_set_flags(context, _NFT_CTX_OUTPUT_JSON)
        if self._lib.nft_ctx_buffer_output(context) or self._lib.nft_ctx_buffer_error(context):
            self.close()
            raise BackendError("libnftables cannot buffer its output")

    def close(self) -> None:
        """Free the libnftables context; the object cannot be used afterwards."""
        with self._lock:
            self._context = None
            self._finalizer()

    def __enter__(self) -> NftablesFirewall:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the Firewall protocol ------------------------------------------------------------

    def setup(self, spec: BlockSpec) -> None:
        """Create the table, the jail's sets and its chain, and (re)write the chain's rules;
        running it again replaces the rules and keeps the banned addresses."""
        hook = self._hook(spec)
        rules = _rules(spec)
        commands: list[Json] = [{"add": {"table": self._table()}}]
        commands += [{"add": {"set": self._set(spec, kind)}} for kind in _SETS]
        chain = self._chain(spec, hook)
        commands += [{"add": {"chain": chain}}, {"flush": {"chain": _ref(chain)}}]
        for kind in _SETS:
            for match in rules:
                expr = [*match[:-1], _saddr(kind, _set_name(spec, kind)), match[-1]]
                commands.append(
                    {"add": {"rule": {**_ref(chain), "chain": chain["name"], "expr": expr}}}
                )
        self._run(commands, f"setup of jail {spec.name}")

    def teardown(self, spec: BlockSpec, *, keep_bans: bool = False) -> None:
        """Remove the jail's chain and rules, and its sets unless ``keep_bans``.

        With ``keep_bans`` the sets stay with their elements and timeouts, blocking nothing
        until ``setup`` hooks them again (a reload or restart loses no ban). The table, shared
        by every jail, goes with the last of them: once it holds no chain and no set, it is
        deleted too, so that a stopped gardien leaves no empty ``table inet gardien`` behind.
        """
        chain = self._chain(spec, self._hook(spec))
        commands: list[Json] = [
            {"add": {"table": self._table()}},
            {"add": {"chain": chain}},
            {"flush": {"chain": _ref(chain)}},
            {"delete": {"chain": _ref(chain)}},
        ]
        if not keep_bans:
            for kind in _SETS:
                definition = self._set(spec, kind)
                commands += [{"add": {"set": definition}}, {"delete": {"set": _ref(definition)}}]
        self._run(commands, f"teardown of jail {spec.name}")
        self._remove_table_if_empty()

    def ban(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        """Add the addresses with their remaining time as kernel timeout, in one transaction.

        An address already banned gets the new timeout. Bans already over at ``now`` are left
        out; the last of several bans of one address wins. Overlapping networks are refused.
        """
        commands = self._additions(spec, bans, now, refresh=not self._updates_timeouts())
        if commands:
            self._run(commands, f"ban in jail {spec.name}")
        if self.forget_connections:
            forget_banned(
                sorted({ban.address for ban in bans if ban.end is None or ban.end > now}, key=str)
            )

    def _additions(
        self, spec: BlockSpec, bans: Sequence[Ban], now: float, *, refresh: bool
    ) -> list[Json]:
        """The commands adding ``bans`` (``refresh``: delete first, for kernels before 6.10
        that keep the old timeout of an element added again)."""
        latest: dict[Address, float | None] = {}
        for ban in bans:
            if ban.end is None or ban.end > now:
                latest[ban.address] = ban.end
        groups: dict[_Set, tuple[list[Json | str], list[Json | str]]] = {}
        for raw, end in latest.items():
            address, kind = _classify(raw)
            value = _value(address)
            if end is None or end - now > MAX_TIMEOUT:
                element: Json | str = value
            else:
                element = {"elem": {"val": value, "timeout": max(1, math.ceil(end - now))}}
            plain, timed = groups.setdefault(kind, ([], []))
            plain.append(value)
            timed.append(element)
        commands: list[Json] = []
        for kind, (plain, timed) in groups.items():
            elements = self._elements(spec, kind)
            if refresh:
                commands += [
                    {"add": {"element": {**elements, "elem": plain}}},
                    {"delete": {"element": {**elements, "elem": plain}}},
                ]
            commands.append({"add": {"element": {**elements, "elem": timed}}})
        return commands

    def replace(self, spec: BlockSpec, bans: Sequence[Ban], now: float) -> None:
        """Make the jail's sets hold exactly ``bans``, atomically: the sets are flushed and
        refilled in one transaction, so no packet sees them half done, and nothing needs to
        list a set of a million addresses first."""
        flush: list[Json] = [{"flush": {"set": self._elements(spec, kind)}} for kind in _SETS]
        if not bans:
            self._run(flush, f"restoring jail {spec.name}")
            return
        commands = flush + self._additions(spec, bans, now, refresh=False)
        self._run(commands, f"restoring jail {spec.name}")

    def unban(self, spec: BlockSpec, addresses: Sequence[Address]) -> None:
        """Remove the addresses in one transaction; those not banned are ignored."""
        groups: dict[_Set, dict[Address, Json | str]] = {}
        for raw in addresses:
            address, kind = _classify(raw)
            groups.setdefault(kind, {})[address] = _value(address)
        commands: list[Json] = []
        for kind, values in groups.items():
            elements = {**self._elements(spec, kind), "elem": list(values.values())}
            commands += [{"add": {"element": elements}}, {"delete": {"element": elements}}]
        if commands:
            self._run(commands, f"unban in jail {spec.name}")

    def banned(self, spec: BlockSpec) -> set[Address]:
        """The addresses and networks in the jail's sets now (expired ones are not listed)."""
        found: set[Address] = set()
        for kind in _SETS:
            output = self._run(
                [{"list": {"set": self._elements(spec, kind)}}], f"listing jail {spec.name}"
            )
            for item in json.loads(output)["nftables"]:
                for element in item.get("set", {}).get("elem", ()):
                    found.update(_parse_element(element))
        return found

    # ---- beyond the protocol --------------------------------------------------------------

    def remove_table(self) -> None:
        """Remove the whole table: every jail's chains and sets (``gardien firewall flush``)."""
        self._run(
            [{"add": {"table": self._table()}}, {"delete": {"table": self._table()}}],
            "removing the table",
        )

    def run(self, commands: list[Json]) -> Json:
        """Run raw JSON commands in one transaction; the parsed output (``{}`` when none)."""
        output = self._run(commands, "nft")
        return dict(json.loads(output)) if output.strip() else {}

    # ---- internals --------------------------------------------------------------------------

    def _updates_timeouts(self) -> bool:
        """Whether the kernel gives an element it already holds the timeout of a new ``add``
        (Linux 6.10 and later); if not, a ban deletes and re-adds its addresses. Probed once,
        on a scratch set (its name cannot be a jail's: those end in -v4, -v6, -net4, -net6)."""
        if self._timeout_update is None:
            probe = {"family": "inet", "table": self.table, "name": "timeout-probe"}
            definition = {**probe, "type": "ipv4_addr", "flags": ["timeout"], "size": 1}
            element = {"val": "192.0.2.1", "timeout": 100}
            try:
                self._run(
                    [
                        {"add": {"table": self._table()}},
                        {"add": {"set": definition}},
                        {"flush": {"set": probe}},
                        {"add": {"element": {**probe, "elem": [{"elem": element}]}}},
                    ],
                    "probing timeout updates",
                )
                element["timeout"] = 200
                self._run(
                    [{"add": {"element": {**probe, "elem": [{"elem": element}]}}}],
                    "probing timeout updates",
                )
                listed = json.loads(self._run([{"list": {"set": probe}}], "probing"))
                timeouts = [
                    e["elem"].get("timeout")
                    for item in listed["nftables"]
                    for e in item.get("set", {}).get("elem", ())
                    if isinstance(e, dict)
                ]
            finally:
                self._run(
                    [{"add": {"set": definition}}, {"delete": {"set": probe}}],
                    "probing timeout updates",
                )
            self._timeout_update = timeouts == [200]
        return self._timeout_update

    def _remove_table_if_empty(self) -> None:
        """Delete the table when no chain and no set is left in it. Sets are listed tersely
        (without their elements): listing a set of a million addresses takes a minute."""
        family = {"family": "inet"}
        with self._lock:  # listed and deleted together: no setup comes in between
            listed = self._run_locked(
                [{"list": {"chains": family}}, {"list": {"sets": family}}],
                "listing the table",
                terse=True,
            )
            for document in listed.splitlines():  # one JSON document per command
                for item in json.loads(document)["nftables"] if document.strip() else ():
                    for kind in ("chain", "set"):
                        if kind in item and item[kind].get("table") == self.table:
                            return
            self._run_locked(
                [{"add": {"table": self._table()}}, {"delete": {"table": self._table()}}],
                "removing the empty table",
            )

    def _run(self, commands: list[Json], what: str) -> str:
        with self._lock:
            return self._run_locked(commands, what)

    def _run_locked(self, commands: list[Json], what: str, *, terse: bool = False) -> str:
        """Run ``commands`` in one transaction, ``self._lock`` held; ``terse``: list sets
        without their elements."""
        payload = json.dumps({"nftables": commands}, separators=(",", ":")).encode()
        if self._context is None:
            raise BackendError("the nftables backend is closed")
        if terse:
            self._lib.nft_ctx_output_set_flags(self._context, _NFT_CTX_OUTPUT_JSON | _TERSE)
        try:
            status = self._lib.nft_run_cmd_from_buffer(self._context, payload)
        finally:
            if terse:
                self._lib.nft_ctx_output_set_flags(self._context, _NFT_CTX_OUTPUT_JSON)
        output: bytes = self._lib.nft_ctx_get_output_buffer(self._context) or b""
        error: bytes = self._lib.nft_ctx_get_error_buffer(self._context) or b""
        if status != 0:
            raise BackendError(f"nftables: {what} failed: {_error_text(error)}")
        return output.decode()

    def _hook(self, spec: BlockSpec) -> str:
        _check_name(spec.name)
        if spec.chain == "DOCKER-USER":
            raise BackendError(
                f"jail {spec.name}: chain DOCKER-USER is an iptables chain (Docker's published "
                "ports are filtered there); use the iptables or ipset backend for this jail"
            )
        hook = _HOOKS.get(spec.chain)
        if hook is None:
            raise ConfigError(f"jail {spec.name}: unknown chain {spec.chain!r}", option="chain")
        return hook

    def _table(self) -> Json:
        return {"family": "inet", "name": self.table}

    def _chain(self, spec: BlockSpec, hook: str) -> Json:
        return {
            "family": "inet",
            "table": self.table,
            "name": spec.name,
            "type": "filter",
            "hook": hook,
            "prio": _PRIORITY,
            "policy": "accept",
        }

    def _set(self, spec: BlockSpec, kind: _Set) -> Json:
        flags = ["interval", "timeout"] if kind.networks else ["timeout"]
        return {
            **self._elements(spec, kind),
            "type": kind.type,
            "flags": flags,
            "size": self.set_size,
        }

    def _elements(self, spec: BlockSpec, kind: _Set) -> Json:
        _check_name(spec.name)
        return {"family": "inet", "table": self.table, "name": _set_name(spec, kind)}


# ---- building JSON ---------------------------------------------------------------------


def _ref(definition: Json) -> Json:
    """What names an object (family, table, name) without its definition."""
    return {key: definition[key] for key in ("family", "table", "name")}


def _set_name(spec: BlockSpec, kind: _Set) -> str:
    return f"{spec.name}-{kind.suffix}"


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"jail name {name!r} cannot name nftables objects (letters, digits, _ . -)",
            option="name",
        )


def _address(address: object) -> Address:
    """``address`` as a single address or a proper network; a /32 or /128 is an address."""
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address
    if isinstance(address, ipaddress.IPv4Network | ipaddress.IPv6Network):
        if address.prefixlen == address.max_prefixlen:
            return address.network_address
        return address
    raise BackendError(f"not an IP address or network: {address!r}")


_KINDS: dict[type, _Set] = {
    ipaddress.IPv4Address: _SETS[0],
    ipaddress.IPv6Address: _SETS[1],
    ipaddress.IPv4Network: _SETS[2],
    ipaddress.IPv6Network: _SETS[3],
}


def _classify(address: object) -> tuple[Address, _Set]:
    """``address`` checked (see ``_address``), and the set it goes in."""
    kind = _KINDS.get(type(address))
    if kind is not None and not kind.networks:
        return address, kind  # type: ignore[return-value]
    checked = _address(address)
    networks = isinstance(checked, ipaddress.IPv4Network | ipaddress.IPv6Network)
    return checked, _SETS[(0 if checked.version == 4 else 1) + (2 if networks else 0)]


def _value(address: Address) -> Json | str:
    if isinstance(address, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return {"prefix": {"addr": str(address.network_address), "len": address.prefixlen}}
    return str(address)


def _saddr(kind: _Set, set_name: str) -> Json:
    return _match({"payload": {"protocol": kind.payload, "field": "saddr"}}, f"@{set_name}")


def _match(left: Json, right: object) -> Json:
    return {"match": {"op": "==", "left": left, "right": right}}


def _l4proto(protocols: Sequence[str]) -> Json:
    right: object = protocols[0] if len(protocols) == 1 else {"set": list(protocols)}
    return _match({"meta": {"key": "l4proto"}}, right)


def _rules(spec: BlockSpec) -> list[list[Json]]:
    """For each rule of a set: its matches and, last, its verdict (the saddr match goes
    before the verdict). A reject answers TCP with a reset, anything else with ICMP port
    unreachable, so TCP gets its own rule."""
    protocols = _protocols(spec)
    ports = _ports(spec.ports, protocols)
    if ports is not None and protocols is None:
        protocols = _PORT_PROTOCOLS  # th dport means nothing for ICMP
    th_dport = {"payload": {"protocol": "th", "field": "dport"}}
    dport = [] if ports is None else [_match(th_dport, ports)]
    if spec.blocktype == "drop":
        l4 = [] if protocols is None else [_l4proto(protocols)]
        return [[*l4, *dport, {"drop": None}]]
    if spec.blocktype != "reject":
        raise ConfigError(
            f"jail {spec.name}: blocktype must be drop or reject, not {spec.blocktype!r}",
            option="blocktype",
        )
    icmp: Json = {"reject": {"type": "icmpx", "expr": "port-unreachable"}}
    rules: list[list[Json]] = []
    if protocols is None or "tcp" in protocols:
        rules.append([_l4proto(["tcp"]), *dport, {"reject": {"type": "tcp reset"}}])
    if protocols is None:
        rules.append([*dport, icmp])
    elif others := [p for p in protocols if p != "tcp"]:
        rules.append([_l4proto(others), *dport, icmp])
    return rules


def _protocols(spec: BlockSpec) -> tuple[str, ...] | None:
    """The protocols blocked, ``None`` for all of them."""
    names = [p.strip().lower() for p in spec.protocol.split(",") if p.strip()]
    if not names or "all" in names:
        return None
    for name in names:
        if name not in _PORT_PROTOCOLS:
            raise ConfigError(
                f"jail {spec.name}: unknown protocol {name!r} "
                f"(one of {', '.join(_PORT_PROTOCOLS)}, all)",
                option="protocol",
            )
    return tuple(dict.fromkeys(names))


def _ports(ports: Iterable[str] | None, protocols: Sequence[str] | None) -> Json | None:
    """``{"set": [22, {"range": [5060, 5070]}]}`` for the ports given as numbers, service names
    (``ssh``), ranges (``5060:5070`` or ``5060-5070``) or comma-separated lists of them."""
    if ports is None:
        return None
    values: list[object] = []
    for text in ports:
        for token in (t.strip() for t in str(text).split(",")):
            if not token:
                continue
            if (
                not token.isdigit()
                and (found := _RANGE.fullmatch(token))
                and not _is_service(token)
            ):
                low, high = (_port(found.group(i), protocols) for i in (1, 2))
                if low > high:
                    raise ConfigError(f"empty port range {token!r}", option="port")
                values.append(low if low == high else {"range": [low, high]})
            else:
                values.append(_port(token, protocols))
    if not values:
        return None
    return {"set": values}


def _is_service(name: str) -> bool:
    try:
        socket.getservbyname(name)
    except OSError:
        return False
    return True


def _port(token: str, protocols: Sequence[str] | None) -> int:
    if token.isdigit():
        number = int(token)
    else:
        number = -1
        for protocol in [*(protocols or ()), "tcp", "udp", None]:
            try:
                if protocol is None:
                    number = socket.getservbyname(token)
                elif protocol in ("tcp", "udp"):
                    number = socket.getservbyname(token, protocol)
                else:
                    continue
                break
            except OSError:
                continue
        if number < 0:
            raise ConfigError(f"unknown port or service name {token!r}", option="port")
    if not 1 <= number <= 65535:
        raise ConfigError(f"port {token!r} is out of range (1-65535)", option="port")
    return number


# ---- reading answers -------------------------------------------------------------------


def _parse_element(element: object) -> list[Address]:
    value = element["elem"]["val"] if isinstance(element, dict) and "elem" in element else element
    if isinstance(value, str):
        return [ipaddress.ip_address(value)]
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        return [_address(ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}"))]
    if isinstance(value, dict) and "range" in value:
        low, high = (ipaddress.ip_address(v) for v in value["range"])
        return [_address(n) for n in ipaddress.summarize_address_range(low, high)]
    raise BackendError(f"unexpected set element from nftables: {element!r}")


def _error_text(error: bytes) -> str:
    """nft's message without its ``internal:0:0-0:`` locations (JSON input has no lines)."""
    lines = []
    for raw in error.decode(errors="replace").splitlines():
        line = re.sub(r"^internal:\d+:\d+-\d+:\s*", "", raw).strip()
        if line:
            lines.append(line.removeprefix("Error: "))
    return "; ".join(dict.fromkeys(lines)) or "no message"

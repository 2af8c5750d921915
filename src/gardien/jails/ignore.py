"""Addresses a jail never bans: ``ignoreip`` and ``ignoreself``.

``ignoreip`` lists IPv4 and IPv6 addresses, networks (``127.0.0.1/8``, ``10.0.0.0/255.0.0.0``)
and host names. Host names are resolved through an injected ``resolve(name)`` and the answer is
kept for ``ttl`` seconds of the injected clock, as fail2ban keeps its DNS cache for five
minutes; ``ignoreself`` asks an injected ``own_addresses()`` the same way. This module does no
I/O itself: the daemon passes resolvers that use the network, tests pass plain functions.
An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is the IPv4 address it maps.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gardien.clock import Clock
from gardien.errors import ConfigError
from gardien.model import Address, parse_address
from gardien.settings import JailSettings

__all__ = ["IgnoreList", "OwnAddresses", "Resolver", "normalize_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``resolve(name)``: the addresses a host name stands for (may raise ``OSError``)
Resolver = Callable[[str], Iterable[str | IPAddress]]
#: ``own_addresses()``: this host's addresses (may raise ``OSError``)
OwnAddresses = Callable[[], Iterable[str | IPAddress]]

#: what ``localhost`` is, and so always one's own address (fail2ban resolves "localhost")
LOOPBACK: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)
OWN_ADDRESS = "own address"

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")


def normalize_address(address: Address) -> Address:
    """``address`` as gardien keys it: IPv4-mapped IPv6 as IPv4, a one-address network as
    that address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Network | ipaddress.IPv6Network):
        if isinstance(address, ipaddress.IPv6Network) and address.subnet_of(_MAPPED_V4):
            low_bits = int(address.network_address) & 0xFFFF_FFFF
            address = ipaddress.IPv4Network((low_bits, address.prefixlen - 96))
        if address.prefixlen == address.max_prefixlen:
            return address.network_address
    return address


def _as_network(address: Address) -> Network:
    address = normalize_address(address)
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_network(address)
    return address


def _is_host_name(text: str) -> bool:
    if len(text) > 253 or not _HOST_NAME.fullmatch(text):
        return False
    # a name whose last label is all digits is a mistyped address (300.1.1.1), not a name
    return not text.rstrip(".").rsplit(".", 1)[-1].isdigit()


def _covers(cover: Network | IPAddress, address: Address) -> bool:
    """Whether ``address`` (normalized) is ``cover`` or lies inside it."""
    if cover.version != address.version:
        return False
    if isinstance(cover, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return cover == address
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address in cover
    return address.subnet_of(cover)  # type: ignore[arg-type]  # same version, checked above


@dataclass(frozen=True)
class _Entry:
    """One ``ignoreip`` entry: as written, and as a network or a (lower-case) host name."""

    text: str
    network: Network | None
    host_name: str | None
    #: the network's first and last address as integers (a fast test for one address)
    low: int = 0
    high: int = -1

    @property
    def key(self) -> Network | str:
        return self.network if self.network is not None else self.host_name or ""


def _entry(text: str) -> _Entry:
    address = parse_address(text)
    if address is not None:
        network = _as_network(address)
        return _Entry(
            text, network, None, int(network.network_address), int(network.broadcast_address)
        )
    if _is_host_name(text):
        return _Entry(text, None, text.rstrip(".").lower())
    raise ConfigError(
        f"{text!r} is neither an IP address, a network (CIDR) nor a host name",
        option="ignoreip",
    )


class IgnoreList:
    """The addresses one jail ignores; ``contains(address)`` says why one is ignored.

    ``entries`` are ``ignoreip`` items; each invalid one raises :class:`ConfigError` naming it.
    With ``ignoreself``, the loopback addresses and whatever ``own_addresses()`` returns are
    ignored too. Host names in ``entries`` are looked up with ``resolve``; without a resolver
    they match nothing. Answers of either callable are cached for ``ttl`` seconds of ``clock``;
    an ``OSError`` from them counts as "no addresses" until the next lookup.
    """

    def __init__(
        self,
        entries: Iterable[str] = (),
        *,
        clock: Clock,
        ignoreself: bool = True,
        own_addresses: OwnAddresses | None = None,
        resolve: Resolver | None = None,
        ttl: float = 300.0,
    ) -> None:
        self.ignoreself = ignoreself
        self._clock = clock
        self._own_addresses = own_addresses
        self._resolve = resolve
        self._ttl = ttl
        self._entries: list[_Entry] = []
        #: the own addresses last seen (as ``_cached`` returned them) and their integer keys
        self._own_memo: tuple[tuple[IPAddress, ...] | None, frozenset[tuple[int, int]]] = (
            None,
            frozenset(),
        )
        # name -> (valid until, addresses); None for the host's own addresses
        self._cache: dict[str | None, tuple[float, tuple[IPAddress, ...]]] = {}
        for text in entries:
            self.add(text)

    @classmethod
    def from_settings(
        cls,
        settings: JailSettings,
        *,
        clock: Clock,
        own_addresses: OwnAddresses | None = None,
        resolve: Resolver | None = None,
        ttl: float = 300.0,
    ) -> IgnoreList:
        """The ignore list of a configured jail; errors are located at its ``ignoreip``."""
        try:
            return cls(
                settings.ignoreip,
                clock=clock,
                ignoreself=settings.ignoreself,
                own_addresses=own_addresses,
                resolve=resolve,
                ttl=ttl,
            )
        except ConfigError as error:
            raise error.located(path=settings.path, section=settings.name) from None

    @property
    def entries(self) -> tuple[str, ...]:
        """The ``ignoreip`` entries, as written, in the order they were added."""
        return tuple(entry.text for entry in self._entries)

    def add(self, entry: str) -> bool:
        """Ignore ``entry`` too (fail2ban's ``addignoreip``); ``False`` if already there."""
        text = entry.strip()
        if not text:
            return False
        new = _entry(text)
        if any(old.key == new.key for old in self._entries):
            return False
        self._entries.append(new)
        return True

    def remove(self, entry: str) -> bool:
        """Stop ignoring ``entry`` (fail2ban's ``delignoreip``); ``False`` if it was not there.

        Entries are compared by meaning: ``127.0.0.1/8`` removes ``127.0.0.0/8``.
        """
        key = _entry(entry.strip()).key
        for index, old in enumerate(self._entries):
            if old.key == key:
                del self._entries[index]
                if old.host_name is not None:
                    self._cache.pop(old.host_name, None)
                return True
        return False

    def contains(self, address: Address | str) -> str | None:
        """Why ``address`` is ignored (``"127.0.0.0/8 in ignoreip"``, ``"own address"``), or
        ``None`` when it is not (or is not an address at all)."""
        parsed = parse_address(address) if isinstance(address, str) else address
        if parsed is None:
            return None
        parsed = normalize_address(parsed)
        if isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return self._contains_address(parsed)
        if self.ignoreself and any(_covers(own, parsed) for own in self._own()):
            return OWN_ADDRESS
        for entry in self._entries:
            if entry.network is not None:
                if _covers(entry.network, parsed):
                    return f"{entry.text} in ignoreip"
            elif entry.host_name is not None and any(
                _covers(resolved, parsed) for resolved in self._lookup(entry.host_name)
            ):
                return f"{entry.text} in ignoreip"
        return None

    def _contains_address(self, address: IPAddress) -> str | None:
        """``contains`` for one address, compared as integers: restoring 100,000 bans at start
        asks it 100,000 times."""
        version, value = address.version, int(address)
        if self.ignoreself and (version, value) in self._own_keys():
            return OWN_ADDRESS
        for entry in self._entries:
            network = entry.network
            if network is not None:
                if network.version == version and entry.low <= value <= entry.high:
                    return f"{entry.text} in ignoreip"
            elif entry.host_name is not None and any(
                _covers(resolved, address) for resolved in self._lookup(entry.host_name)
            ):
                return f"{entry.text} in ignoreip"
        return None

    def _own_keys(self) -> frozenset[tuple[int, int]]:
        """``(version, integer)`` of every own address, recomputed when the cache renews."""
        cached = () if self._own_addresses is None else self._cached(None, self._own_addresses)
        if cached is not self._own_memo[0]:
            keys = frozenset((own.version, int(own)) for own in LOOPBACK + cached)
            self._own_memo = (cached, keys)
        return self._own_memo[1]

    def _own(self) -> tuple[IPAddress, ...]:
        if self._own_addresses is None:
            return LOOPBACK
        return LOOPBACK + self._cached(None, self._own_addresses)

    def _lookup(self, name: str) -> tuple[IPAddress, ...]:
        resolve = self._resolve
        if resolve is None:
            return ()
        return self._cached(name, lambda: resolve(name))

    def _cached(
        self, key: str | None, ask: Callable[[], Iterable[str | IPAddress]]
    ) -> tuple[IPAddress, ...]:
        now = self._clock.now()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            answer = list(ask())
        except OSError:
            answer = []
        addresses: list[IPAddress] = []
        for item in answer:
            parsed = parse_address(item) if isinstance(item, str) else normalize_address(item)
            if isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
                addresses.append(parsed)
        result = tuple(addresses)
        self._cache[key] = (now + self._ttl, result)
        return result

    def __repr__(self) -> str:
        return f"IgnoreList({list(self.entries)!r}, ignoreself={self.ignoreself!r})"

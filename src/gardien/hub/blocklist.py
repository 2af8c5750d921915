"""Rendering the hub's blocklist for the tools that consume it: ``plain`` (one address a line),
``cidr`` (aggregated into the fewest CIDR blocks), ``nft`` (a script for ``nft -f``), ``ipset``
(a script for ``ipset restore``) and ``json``.

Pure and fast: a million addresses render in about a second. Addresses are turned into
integers with ``inet_pton`` and aggregated on sorted integers; building a million
``ipaddress`` objects (and ``collapse_addresses``) would take several times longer. Every
renderer yields the text in chunks so that the API can stream it.

The ``nft`` and ``ipset`` scripts can be loaded again and again: each load replaces the sets'
contents in one step (an nft transaction; an ipset ``swap``), and rules that refer to the sets
keep working meanwhile.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "FORMATS",
    "IPSET_MAXELEM",
    "IPSET_SET4",
    "IPSET_SET6",
    "MEDIA_TYPES",
    "NFT_SET4",
    "NFT_SET6",
    "NFT_TABLE",
    "aggregate",
    "render",
    "render_delta",
]

#: the formats ``render`` knows, as the API's ``format`` parameter names them
FORMATS = ("plain", "cidr", "nft", "ipset", "json")
#: the Content-Type of each format
MEDIA_TYPES = {
    "plain": "text/plain; charset=utf-8",
    "cidr": "text/plain; charset=utf-8",
    "nft": "text/plain; charset=utf-8",
    "ipset": "text/plain; charset=utf-8",
    "json": "application/json",
}

NFT_TABLE = "gardien_hub"  # in family inet
NFT_SET4 = "hub4"
NFT_SET6 = "hub6"
IPSET_SET4 = "gardien-hub4"
IPSET_SET6 = "gardien-hub6"
#: ipset's ``maxelem``: fixed, because ``create -exist`` fails on a set that exists with
#: other parameters, so a size that followed the list would break the next load. A large
#: maxelem costs nothing: the kernel grows the hash as elements come.
IPSET_MAXELEM = 1 << 24

_LINES_PER_CHUNK = 8192
_NFT_ELEMENTS_PER_STATEMENT = 1024
_PTON = socket.inet_pton
_NTOP = socket.inet_ntop
_AF4 = socket.AF_INET
_AF6 = socket.AF_INET6


# ---- aggregation -------------------------------------------------------------------------


def _parse(addresses: Iterable[str]) -> tuple[list[int], dict[int, int], list[int], dict[int, int]]:
    """IPv4 and IPv6 addresses as integers; networks as ``start -> end`` maps beside them."""
    singles4: list[int] = []
    singles6: list[int] = []
    spans4: dict[int, int] = {}
    spans6: dict[int, int] = {}
    from_bytes = int.from_bytes
    for text in addresses:
        if "/" in text:
            # Not expected from the store (it lists single addresses), but cheap to honour.
            base, _, length = text.partition("/")
            six = ":" in base
            bits = 128 if six else 32
            start = from_bytes(_PTON(_AF6 if six else _AF4, base))
            size = 1 << (bits - int(length))
            start &= ~(size - 1)
            spans = spans6 if six else spans4
            spans[start] = max(spans.get(start, start), start + size - 1)
        elif ":" in text:
            singles6.append(from_bytes(_PTON(_AF6, text)))
        else:
            singles4.append(from_bytes(_PTON(_AF4, text)))
    return singles4, spans4, singles6, spans6


def _ranges(singles: list[int], spans: dict[int, int]) -> Iterator[tuple[int, int]]:
    """Sorted, merged ``(first, last)`` ranges covering the addresses and networks; ranges that
    touch are merged too, so that their blocks can aggregate."""
    starts = sorted(set(singles).union(spans)) if spans else sorted(set(singles))
    if not starts:
        return
    first = last = -2
    get = spans.get
    for start in starts:
        end = get(start, start) if spans else start
        if start <= last + 1:
            last = max(last, end)
            continue
        if last >= 0:
            yield first, last
        first, last = start, end
    yield first, last


def _blocks(first: int, last: int, bits: int) -> Iterator[tuple[int, int]]:
    """The fewest CIDR blocks ``(network, prefix length)`` that cover ``first..last``."""
    while first <= last:
        # The largest block aligned on ``first`` that does not run past ``last``.
        size = first & -first if first else 1 << bits
        span = last - first + 1
        while size > span:
            size >>= 1
        yield first, bits - size.bit_length() + 1
        first += size


def _aggregated(singles: list[int], spans: dict[int, int], six: bool) -> list[str]:
    bits = 128 if six else 32
    family = _AF6 if six else _AF4
    width = 16 if six else 4
    out: list[str] = []
    append = out.append
    for first, last in _ranges(singles, spans):
        if first == last:  # by far the most common: a lone address
            append(_NTOP(family, first.to_bytes(width, "big")))
            continue
        for network, length in _blocks(first, last, bits):
            text = _NTOP(family, network.to_bytes(width, "big"))
            append(text if length == bits else f"{text}/{length}")
    return out


def aggregate(addresses: Iterable[str]) -> tuple[list[str], list[str]]:
    """The IPv4 and the IPv6 blocks that cover exactly ``addresses`` (canonical addresses, or
    networks in CIDR notation), fewest first-to-last: adjacent and contained entries are
    collapsed; a block of one address is written as the bare address."""
    singles4, spans4, singles6, spans6 = _parse(addresses)
    return _aggregated(singles4, spans4, False), _aggregated(singles6, spans6, True)


# ---- formats -----------------------------------------------------------------------------


def _lines(items: Sequence[str], prefix: str = "", suffix: str = "") -> Iterator[str]:
    """``prefix + item + suffix`` a line, in chunks."""
    for index in range(0, len(items), _LINES_PER_CHUNK):
        chunk = items[index : index + _LINES_PER_CHUNK]
        yield "".join(f"{prefix}{item}{suffix}\n" for item in chunk)


def _plain(addresses: Sequence[str]) -> Iterator[str]:
    for index in range(0, len(addresses), _LINES_PER_CHUNK):
        yield "\n".join(addresses[index : index + _LINES_PER_CHUNK]) + "\n"


def _nft(v4: Sequence[str], v6: Sequence[str], cursor: int) -> Iterator[str]:
    table = f"inet {NFT_TABLE}"
    # Declaring the table and sets creates them when missing and leaves them (and any chain
    # the administrator added to the table) alone otherwise; the flushes and adds that follow
    # replace the contents in the same transaction.
    yield (
        "#!/usr/sbin/nft -f\n"
        f"# gardien hub blocklist: {len(v4)} IPv4 and {len(v6)} IPv6 entries, cursor {cursor}.\n"
        f"# Load with `nft -f FILE`; use the sets in your rules: ip saddr @{NFT_SET4} drop\n"
        f"table {table} {{\n"
        f"\tset {NFT_SET4} {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}}\n"
        f"\tset {NFT_SET6} {{\n\t\ttype ipv6_addr\n\t\tflags interval\n\t}}\n"
        "}\n"
        f"flush set {table} {NFT_SET4}\n"
        f"flush set {table} {NFT_SET6}\n"
    )
    for name, items in ((NFT_SET4, v4), (NFT_SET6, v6)):
        statements: list[str] = []
        for index in range(0, len(items), _NFT_ELEMENTS_PER_STATEMENT):
            elements = ", ".join(items[index : index + _NFT_ELEMENTS_PER_STATEMENT])
            statements.append(f"add element {table} {name} {{ {elements} }}\n")
            if len(statements) == 8:
                yield "".join(statements)
                statements.clear()
        if statements:
            yield "".join(statements)


def _ipset(v4: Sequence[str], v6: Sequence[str], cursor: int) -> Iterator[str]:
    yield f"# gardien hub blocklist: {len(v4)} IPv4 and {len(v6)} IPv6 entries, cursor {cursor}\n"
    for name, family, items in ((IPSET_SET4, "inet", v4), (IPSET_SET6, "inet6", v6)):
        # Fill a new set, then swap it with the live one: rules that match the live set never
        # see it half filled, and the script can be restored again and again.
        new = f"{name}-new"
        maxelem = max(IPSET_MAXELEM, len(items))
        yield (
            f"create {name} hash:net family {family} maxelem {maxelem} -exist\n"
            f"create {new} hash:net family {family} maxelem {maxelem} -exist\n"
            f"flush {new}\n"
        )
        yield from _lines(items, prefix=f"add {new} ")
        yield f"swap {new} {name}\ndestroy {new}\n"


def _json(addresses: Sequence[str], cursor: int) -> Iterator[str]:
    yield f'{{"cursor": {int(cursor)}, "addresses": ['
    for index in range(0, len(addresses), _LINES_PER_CHUNK):
        chunk = json.dumps(list(addresses[index : index + _LINES_PER_CHUNK]))[1:-1]
        yield chunk if index == 0 else ", " + chunk
    yield "]}\n"


def render(fmt: str, addresses: Sequence[str], cursor: int = 0) -> Iterator[str]:
    """``addresses`` (canonical, as the store lists them) in format ``fmt``, in chunks of text.

    ``plain`` and ``json`` give the addresses as they are; ``cidr``, ``nft`` and ``ipset``
    aggregate them first (fewer entries, the same addresses covered; nft interval sets also
    refuse overlapping elements). Raises ``ValueError`` for an unknown format.
    """
    if fmt == "plain":
        return _plain(addresses)
    if fmt == "json":
        return _json(addresses, cursor)
    if fmt not in FORMATS:
        raise ValueError(f"unknown blocklist format {fmt!r}: expected one of {', '.join(FORMATS)}")
    v4, v6 = aggregate(addresses)
    if fmt == "cidr":
        return _lines([*v4, *v6])
    if fmt == "nft":
        return _nft(v4, v6, cursor)
    return _ipset(v4, v6, cursor)


def render_delta(
    added: Sequence[str], removed: Sequence[str], cursor: int, *, reset: bool = False
) -> str:
    """The JSON answer to a delta request: what was listed and unlisted since a cursor; with
    ``reset``, ``added`` is the whole list and the client replaces its set with it."""
    return json.dumps(
        {"cursor": int(cursor), "add": list(added), "remove": list(removed), "reset": reset}
    )

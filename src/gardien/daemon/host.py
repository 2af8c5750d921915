"""What the daemon asks of the host it runs on: its own addresses (``ignoreself``) and the
addresses of host names written in ``ignoreip``."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import itertools
import socket
from pathlib import Path

__all__ = ["own_addresses", "resolve"]

RESOLVE_TIMEOUT = 2.0  # seconds; a slow DNS server must not hold up the daemon for long
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="resolve")


def own_addresses() -> list[str]:
    """This host's addresses: IPv4 ones the kernel routes locally, IPv6 ones on interfaces,
    and those its own name resolves to."""
    found: set[str] = set()
    fib = Path("/proc/net/fib_trie")
    if fib.is_file():
        lines = fib.read_text().splitlines()
        for before, after in itertools.pairwise(lines):
            if "/32 host LOCAL" in after:
                text = before.strip().lstrip("|-+ ").strip()
                if _valid(text):
                    found.add(text)
    inet6 = Path("/proc/net/if_inet6")
    if inet6.is_file():
        for line in inet6.read_text().splitlines():
            raw = line.split()[0] if line.split() else ""
            if len(raw) == 32:
                text = ":".join(raw[i : i + 4] for i in range(0, 32, 4))
                if _valid(text):
                    found.add(str(ipaddress.ip_address(text)))
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(found)


def resolve(name: str) -> list[str]:
    """The addresses of host ``name``; nothing when it does not resolve within the timeout."""
    future = _resolver.submit(socket.getaddrinfo, name, None)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT)
    except (OSError, concurrent.futures.TimeoutError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

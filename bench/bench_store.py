"""Benchmark the SQLite ban store: how fast a restarted daemon gets its bans back.

1. Adds ``--bans`` bans (default 100,000; IPv4 and IPv6, a few jails, three matched lines each)
   to a new store in batches of ``--batch`` through ``add_bans``, and times it.
2. ``--runs`` times (default 3): opens the store anew, reads ``active_bans(now)`` and checks
   that every ban came back, timing the reopening and the reading together.
3. Prints the median of the runs against the target (every ban restored within
   ``--target`` seconds, default 5). Exit status 1 if the median misses it.

Usage::

    python bench/bench_store.py
    python bench/bench_store.py --bans 200000 --batch 500 --dir /var/tmp/bench
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gardien.model import Address, Ban
from gardien.store import SQLiteBanStore

JAILS = ("sshd", "postfix", "dovecot", "asterisk")


def make_bans(count: int, now: float, seed: int = 1) -> list[Ban]:
    """``count`` bans of distinct addresses, still active at ``now``; one in ten permanent."""
    generator = random.Random(seed)
    bans: list[Ban] = []
    seen: set[Address] = set()
    while len(bans) < count:
        address: Address
        if generator.random() < 0.8:
            address = ipaddress.IPv4Address(generator.getrandbits(32))
        else:
            address = ipaddress.IPv6Address((0x2001_0DB8 << 96) | generator.getrandbits(64))
        if address in seen:
            continue
        seen.add(address)
        start = now - generator.uniform(0, 3600)
        permanent = generator.random() < 0.1
        bans.append(
            Ban(
                jail=generator.choice(JAILS),
                address=address,
                start=start,
                end=None if permanent else now + generator.uniform(600, 86_400),
                count=generator.randint(1, 5),
                failures=generator.randint(3, 10),
                matches=tuple(
                    f"Nov 17 10:00:0{i} host sshd[123]: Failed password for root from {address}"
                    for i in range(3)
                ),
            )
        )
    return bans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="bans per add_bans call")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", type=float, default=5.0, help="seconds to restore all")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database")
    arguments = parser.parse_args(argv)

    now = time.time()
    bans = make_bans(arguments.bans, now)
    with tempfile.TemporaryDirectory(dir=arguments.dir) as directory:
        path = Path(directory) / "gardien.sqlite3"

        started = time.perf_counter()
        with SQLiteBanStore(path) as store:
            for first in range(0, len(bans), arguments.batch):
                store.add_bans(bans[first : first + arguments.batch])
            transactions = store.transactions
        adding = time.perf_counter() - started
        size = path.stat().st_size
        print(
            f"add:     {len(bans):,} bans in batches of {arguments.batch:,}: {adding:.2f} s "
            f"({len(bans) / adding:,.0f} bans/s, {transactions:,} transactions, "
            f"{size / 1e6:.1f} MB)"
        )

        timings = []
        for run in range(1, arguments.runs + 1):
            started = time.perf_counter()
            with SQLiteBanStore(path) as store:
                opened = time.perf_counter() - started
                restored = store.active_bans(now)
                reading = time.perf_counter() - started - opened
            total = time.perf_counter() - started
            if len(restored) != len(bans):
                print(f"restore: run {run} got {len(restored):,} bans back, not {len(bans):,}")
                return 1
            timings.append(total)
            print(
                f"restore: run {run}: open {opened * 1000:.0f} ms, "
                f"active_bans {reading:.2f} s, total {total:.2f} s"
            )

    median = statistics.median(timings)
    verdict = "ok" if median <= arguments.target else "MISSED"
    print(
        f"restore: median {median:.2f} s for {len(bans):,} bans "
        f"(target <= {arguments.target:g} s: {verdict})"
    )
    return 0 if median <= arguments.target else 1


if __name__ == "__main__":
    sys.exit(main())

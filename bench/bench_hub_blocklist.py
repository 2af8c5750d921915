"""Benchmark the hub's blocklist rendering: a list of ``--addresses`` (1,000,000) addresses in
every format (plain, cidr, nft, ipset, json), as ``GET /api/v1/blocklist`` renders it.

The addresses are distinct and random: 90% IPv4, 10% IPv6, with ``--runs-share`` of them in
runs of consecutive addresses so that the aggregation has blocks to collapse. Each format is
rendered ``--runs`` (3) times in this process; the report gives the median, the size of the
text and the number of lines, against the target (``--target`` seconds, default 3). Exit
status 1 if a median misses it.

Usage::

    python bench/bench_hub_blocklist.py
    python bench/bench_hub_blocklist.py --addresses 200000 --runs 5 --json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import socket
import statistics
import sys
import time
from typing import Any

from gardien.hub.blocklist import FORMATS, render


def make_addresses(count: int, runs_share: float, seed: int = 1) -> list[str]:
    """``count`` distinct canonical addresses, sorted as text (as the store returns them)."""
    generator = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        if generator.random() < 0.9:
            start = generator.getrandbits(32)
            length = generator.randint(2, 64) if generator.random() < runs_share else 1
            for offset in range(min(length, count - len(found))):
                found.add(socket.inet_ntoa(((start + offset) % (1 << 32)).to_bytes(4, "big")))
        else:
            value = (0x2001_0DB8 << 96) | generator.getrandbits(64)
            found.add(str(ipaddress.IPv6Address(value)))
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runs-share", type=float, default=0.05)
    parser.add_argument("--target", type=float, default=3.0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    started = time.perf_counter()
    addresses = make_addresses(args.addresses, args.runs_share)
    print(
        f"{len(addresses)} addresses generated in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    results: list[dict[str, Any]] = []
    for fmt in FORMATS:
        samples = []
        size = lines = 0
        for _ in range(args.runs):
            begin = time.perf_counter()
            size = lines = 0
            for chunk in render(fmt, addresses, cursor=123):
                data = chunk.encode()  # as the response sends it
                size += len(data)
                lines += data.count(b"\n")
            samples.append(time.perf_counter() - begin)
        median = statistics.median(samples)
        results.append(
            {
                "format": fmt,
                "median_s": round(median, 3),
                "samples_s": [round(s, 3) for s in samples],
                "bytes": size,
                "lines": lines,
                "met": median <= args.target,
            }
        )
    if args.json:
        print(
            json.dumps({"addresses": len(addresses), "target_s": args.target, "results": results})
        )
    else:
        print(f"blocklist of {len(addresses)} addresses, median of {args.runs} runs")
        print(f"{'format':8} {'median':>8} {'MB':>7} {'lines':>9}  target <= {args.target} s")
        for row in results:
            verdict = "MET" if row["met"] else "MISSED"
            print(
                f"{row['format']:8} {row['median_s']:>7.3f}s {row['bytes'] / 1e6:>7.1f}"
                f" {row['lines']:>9}  {verdict}"
            )
    return 0 if all(row["met"] for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())

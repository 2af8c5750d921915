"""Benchmark ``gardien stats`` on a large ban history: one million records by default.

1. Builds a store of ``--records`` ban history records: ``--days`` (30) days ending now,
   ``--addresses`` (200,000) distinct addresses in 20,000 Zipf-weighted /24 networks (5%
   IPv6), each banned a heavy-tailed number of times (Pareto, alpha 1.25, at most 24 per day
   of the range: about half once, a few hundred times the most), in 3 jails (an address
   mostly in one), with more bans at night, on week-ends and towards the end. The schema
   comes from ``SQLiteBanStore`` (it creates the file); the records then go in by direct SQL
   inserts into ``ban_history``, in one transaction: ``add_bans`` would also fill the table
   of current bans, which statistics do not read, and take minutes.
2. ``--runs`` times (default 3) each: ``gardien stats`` (table), ``--json``, ``--plot x.png``
   and ``--jail sshd --since 3d`` (about a sixth of the records), each as a whole process
   (interpreter start-up included), wall clock.
3. Prints the median of each, and of ``compute_stats`` in this process (the SQL aggregates and
   the Python around them), against ``--target`` seconds (default 5).

Usage::

    python bench/bench_stats.py
    python bench/bench_stats.py --records 200000 --addresses 50000 --runs 5
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gardien.stats import StoreReader, compute_stats
from gardien.store import SQLiteBanStore

JAILS = ("sshd", "asterisk", "postfix")
JAIL_WEIGHTS = (0.5, 0.35, 0.15)
NETWORKS = 20_000  # /24 networks the IPv4 attackers come from


def make_addresses(count: int, generator: random.Random) -> list[str]:
    """``count`` distinct addresses: IPv4 in Zipf-distributed /24s, 5% IPv6 (one per /64)."""
    networks = [generator.getrandbits(24) for _ in range(NETWORKS)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(NETWORKS)))
    found: set[str] = set()
    addresses: list[str] = []
    while len(addresses) < count:
        if generator.random() < 0.05:
            text = str(ipaddress.IPv6Address((0x2001_0DB8 << 96) | generator.getrandbits(80)))
        else:
            network = generator.choices(networks, cum_weights=cumulative)[0]
            text = str(ipaddress.IPv4Address((network << 8) | generator.randint(1, 254)))
        if text not in found:
            found.add(text)
            addresses.append(text)
    return addresses


def ban_counts(addresses: int, records: int, cap: int, generator: random.Random) -> list[int]:
    """How many times each address is banned: heavy-tailed, at least 1, summing to ``records``."""
    raw = [min(cap, int(generator.paretovariate(1.25))) for _ in range(addresses)]
    extra = sum(count - 1 for count in raw)
    scale = (records - addresses) / extra if extra else 0.0
    counts = [min(cap, 1 + round((count - 1) * scale)) for count in raw]
    # the rounding leaves a few records over or under: take them from or give them to
    # addresses that stay within 1..cap
    missing = records - sum(counts)
    while missing:
        index = generator.randrange(addresses)
        step = 1 if missing > 0 else -1
        if 1 <= counts[index] + step <= cap:
            counts[index] += step
            missing -= step
    return counts


def weight(epoch: float) -> float:
    """More attacks at night (20:00-08:00 UTC) and on week-ends, as the seed article saw."""
    hour = int(epoch % 86_400 // 3600)
    weekend = (int(epoch // 86_400) + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    return (1.6 if hour >= 20 or hour < 8 else 1.0) * (1.3 if weekend else 1.0)


def build(path: Path, records: int, addresses: int, days: float, seed: int) -> float:
    """Fill a new store at ``path``; returns when its history ends (now, at build time)."""
    generator = random.Random(seed)
    end = time.time()
    start = end - days * 86_400
    span = end - start
    texts = make_addresses(addresses, generator)
    counts = ban_counts(addresses, records, int(days * 24), generator)
    SQLiteBanStore(path).close()  # the schema, as the daemon makes it
    rows = []
    for text, count in zip(texts, counts, strict=True):
        jail = generator.choices(JAILS, JAIL_WEIGHTS)[0]
        # first seen anywhere in the range, more often towards the end (a growing trend)
        first = start + span * generator.random() ** 0.8
        for _ in range(count):
            while True:
                when = first + (end - first) * generator.random()
                if generator.random() * 2.08 < weight(when):
                    break
            other = generator.random() < 0.15
            chosen = generator.choice(JAILS) if other else jail
            rows.append((chosen, text, when, when + 3600, 1, 5))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT OR IGNORE INTO ban_history (jail, address, start_time, end_time, count,"
            " failures) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return end


def time_process(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """The wall clock of running ``argv`` (in UTC, so every run reads the same hours)."""
    started = time.perf_counter()
    environment = {**os.environ, "TZ": "UTC"}
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=environment)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", type=float, default=5.0, help="seconds, for each command")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database")
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=arguments.dir) as directory:
        path = Path(directory) / "gardien.sqlite3"
        started = time.perf_counter()
        build(path, arguments.records, arguments.addresses, arguments.days, arguments.seed)
        building = time.perf_counter() - started
        with sqlite3.connect(path) as connection:
            stored, distinct = connection.execute(
                "SELECT COUNT(*), COUNT(DISTINCT address) FROM ban_history"
            ).fetchone()
        print(
            f"build:   {stored:,} records, {distinct:,} addresses, {arguments.days:g} days, "
            f"{len(JAILS)} jails: {building:.1f} s, {path.stat().st_size / 1e6:.0f} MB",
            file=sys.stderr,
        )

        base = [sys.executable, "-m", "gardien", "stats", "--dbfile", str(path)]
        plot = Path(directory) / "x.png"
        commands = {
            "stats (table)": base,
            "stats --json": [*base, "--json"],
            "stats --plot x.png": [*base, "--plot", str(plot)],
            # a part of the history: the start_time index instead of a scan of every record
            "stats --jail sshd --since 3d": [*base, "--jail", "sshd", "--since", "3d"],
        }
        timings: dict[str, list[float]] = {name: [] for name in commands}
        for run in range(arguments.runs):
            for name, command in commands.items():
                elapsed, result = time_process(command)
                if result.returncode != 0:
                    print(f"{name}: exit {result.returncode}: {result.stderr}", file=sys.stderr)
                    return 1
                timings[name].append(elapsed)
                print(f"run {run + 1}: {name}: {elapsed:.2f} s", file=sys.stderr)
        for _ in range(arguments.runs):
            started = time.perf_counter()
            with StoreReader(path) as reader, reader.snapshot():
                result_stats = compute_stats(reader, until=time.time())
            timings.setdefault("compute_stats (in process)", []).append(
                time.perf_counter() - started
            )
        if result_stats.bans != stored:
            print(f"stats counted {result_stats.bans:,} bans, not {stored:,}", file=sys.stderr)
            return 1
        plot_size = plot.stat().st_size

    print(
        f"gardien stats over {stored:,} ban records ({distinct:,} addresses), median of "
        f"{arguments.runs} runs, wall clock of the whole process:"
    )
    print(f"  {'command':<28} {'median':>8} {'min':>8} {'max':>8}")
    missed = False
    for name, values in timings.items():
        median = statistics.median(values)
        missed |= median > arguments.target
        print(f"  {name:<28} {median:7.2f}s {min(values):7.2f}s {max(values):7.2f}s")
    print(
        f"  (plot: {plot_size / 1e3:.0f} kB PNG; target <= {arguments.target:g} s each: "
        f"{'MISSED' if missed else 'met'})"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

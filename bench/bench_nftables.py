"""Benchmark the nftables backend on the real kernel, in a fresh network namespace.

1. Sustained ban rate: ``--bans`` bans (default 100,000; four in five IPv4, one in five IPv6)
   through ``NftablesFirewall.ban`` in batches of ``--batch`` (default 1,000), into an empty
   jail. Target: at least ``--target-rate`` bans per second (default 10,000).
2. Re-banning the same addresses (each one gets a new timeout), and unbanning them, at the
   same batch size, for information.
3. A large set: ``--load`` addresses (default 1,000,000 IPv4) loaded in batches of
   ``--load-batch`` (default 100,000). Target: within ``--target-load`` seconds (default 10).
   Then how long ``banned()`` takes to list them, for information.

Each measure is taken ``--runs`` times (default 3) on a new jail; the medians are printed.
Exit status 1 if a median misses its target. Needs root and libnftables (Debian package
``libnftables1``); the host's firewall is not touched: the script re-runs itself inside a new
network namespace, deleted afterwards.

Usage::

    sudo .venv/bin/python bench/bench_nftables.py
    sudo .venv/bin/python bench/bench_nftables.py --bans 200000 --batch 500 --runs 5
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from gardien.backends.base import BlockSpec
from gardien.backends.nftables import NftablesFirewall
from gardien.model import Address, Ban


def make_addresses(count: int, ipv6_share: float) -> list[Address]:
    """``count`` distinct addresses, the first ``1 - ipv6_share`` of them IPv4 (10.0.0.0/8),
    the rest IPv6 (2001:db8::/32); documentation and private ranges only."""
    ipv6 = int(count * ipv6_share)
    base4 = ipaddress.IPv4Address("10.0.0.0")
    base6 = ipaddress.IPv6Address("2001:db8::")
    addresses: list[Address] = [base4 + i for i in range(count - ipv6)]
    addresses += [base6 + (i << 16) for i in range(ipv6)]
    return addresses


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def in_batches(
    firewall: NftablesFirewall, spec: BlockSpec, bans: Sequence[Ban], batch: int, now: float
) -> None:
    for start in range(0, len(bans), batch):
        firewall.ban(spec, bans[start : start + batch], now)


def unban_in_batches(
    firewall: NftablesFirewall, spec: BlockSpec, addresses: Sequence[Address], batch: int
) -> None:
    for start in range(0, len(addresses), batch):
        firewall.unban(spec, addresses[start : start + batch])


def inside(options: argparse.Namespace) -> int:
    firewall = NftablesFirewall()
    now = time.time()
    addresses = make_addresses(options.bans, 0.2)
    bans = [Ban("bench", a, now, now + 3600 + i % 600) for i, a in enumerate(addresses)]
    rebans = [Ban("bench", a, now, now + 7200) for a in addresses]
    big = make_addresses(options.load, 0.0)
    big_bans = [Ban("load", a, now, now + 3600) for a in big]

    rates: list[float] = []
    reban_rates: list[float] = []
    unban_rates: list[float] = []
    loads: list[float] = []
    listings: list[float] = []
    for run in range(options.runs):
        spec = BlockSpec(f"bench{run}", ports=("22",))
        firewall.setup(spec)
        seconds = timed(in_batches, firewall, spec, bans, options.batch, now)
        rates.append(len(bans) / seconds)
        seconds = timed(in_batches, firewall, spec, rebans, options.batch, now)
        reban_rates.append(len(rebans) / seconds)
        seconds = timed(unban_in_batches, firewall, spec, addresses, options.batch)
        unban_rates.append(len(addresses) / seconds)
        firewall.teardown(spec)

        load = BlockSpec(f"load{run}", ports=None, protocol="all")
        firewall.setup(load)
        loads.append(timed(in_batches, firewall, load, big_bans, options.load_batch, now))
        started = time.perf_counter()
        found = firewall.banned(load)
        listings.append(time.perf_counter() - started)
        assert len(found) == len(big), (len(found), len(big))
        firewall.teardown(load)
        print(
            f"run {run + 1}: ban {rates[-1]:,.0f}/s, re-ban {reban_rates[-1]:,.0f}/s, "
            f"unban {unban_rates[-1]:,.0f}/s, load {len(big):,} in {loads[-1]:.2f} s, "
            f"list in {listings[-1]:.2f} s",
            flush=True,
        )
    firewall.remove_table()

    rate = statistics.median(rates)
    load_time = statistics.median(loads)
    print(f"\nmedians of {options.runs} runs (batches of {options.batch:,}):")
    print(
        f"  ban rate   {rate:>12,.0f} bans/s   target >= {options.target_rate:,.0f}  "
        f"{'ok' if rate >= options.target_rate else 'MISSED'}"
    )
    print(f"  re-ban     {statistics.median(reban_rates):>12,.0f} bans/s")
    print(f"  unban      {statistics.median(unban_rates):>12,.0f} unbans/s")
    print(
        f"  load {len(big):,} {load_time:>8.2f} s        target <= {options.target_load:.0f} s  "
        f"{'ok' if load_time <= options.target_load else 'MISSED'}"
    )
    print(f"  list {len(big):,} {statistics.median(listings):>8.2f} s")
    return 0 if rate >= options.target_rate and load_time <= options.target_load else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--bans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--load", type=int, default=1_000_000)
    parser.add_argument("--load-batch", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target-rate", type=float, default=10_000)
    parser.add_argument("--target-load", type=float, default=10.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.inside:
        return inside(options)
    if os.geteuid() != 0:
        print("needs root (it creates a network namespace)", file=sys.stderr)
        return 2
    namespace = f"gardien-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        forwarded = sys.argv[1:] if argv is None else argv
        command = [sys.executable, os.path.abspath(__file__), *forwarded, "--inside"]
        return subprocess.run(["ip", "netns", "exec", namespace, *command], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


if __name__ == "__main__":
    sys.exit(main())

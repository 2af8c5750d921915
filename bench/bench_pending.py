"""Benchmark the store of pending failures: its size and cost after a flood of distinct
addresses that each fail once, all within one ``findtime``.

A real :class:`~gardien.jails.Jail` (``maxretry = 3``, ``findtime = 1d``, the default bound of
100,000 pending addresses unless ``--max-pending``) counts ``--addresses`` (1,000,000) failures
of distinct addresses of 10.0.0.0/8, one asterisk-like matched line each, in batches of
``--batch`` (5,000) failures, and after each batch the daemon's step is done as the daemon does
it: ``Jail.take_pending`` and one ``SQLiteBanStore.save_progress`` with a file checkpoint. At
the end the script prints the store's size on disk (the database and its WAL, after a
checkpoint of the WAL), the rows of ``pending_failures``, the failures per second through
jail + store, and the time of the slowest batch. It also reopens the store and times
``pending_failures`` + ``Jail.restore_pending``, what a restart costs.

Usage::

    python bench/bench_pending.py
    python bench/bench_pending.py --addresses 200000 --max-pending 1000000 --json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gardien.clock import FakeClock
from gardien.config.jails import JailSettings
from gardien.config.values import parse_spec
from gardien.jails import Jail
from gardien.jails.jail import DEFAULT_MAX_PENDING
from gardien.model import Checkpoint, Failure
from gardien.store import Progress, SQLiteBanStore

T0 = 1_800_000_000.0


def settings() -> JailSettings:
    return JailSettings(
        name="asterisk",
        enabled=True,
        filter=parse_spec("asterisk"),
        actions=(),
        logpath=("/var/log/asterisk/messages",),
        findtime=86_400,
        maxretry=3,
        bantime=3600,
        maxmatches=5,
        ignoreself=False,
    )


def line(address: str) -> str:
    return (
        '[2026-12-03 21:00:00] NOTICE[2104] chan_sip.c: Registration from \'"1001" '
        f"<sip:1001@192.0.2.10>' failed for '{address}:5060' - Wrong password"
    )


def run(args: argparse.Namespace) -> dict[str, float | int]:
    clock = FakeClock(T0)
    directory = Path(tempfile.mkdtemp(prefix="gardien-bench-pending-"))
    path = directory / "gardien.sqlite3"
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    batches: list[float] = []
    started = time.perf_counter()
    with SQLiteBanStore(path, clock) as store:
        jail = Jail(settings(), clock=clock, max_pending=args.max_pending)
        for first in range(0, args.addresses, args.batch):
            batch_started = time.perf_counter()
            for number in range(first, min(first + args.batch, args.addresses)):
                address = ipaddress.IPv4Address(base + number)
                text = str(address)
                jail.add_failure(Failure(text, T0 + number * 1e-3, 0, lines=(line(text),)))
            pending, settled = jail.take_pending()
            checkpoint = Checkpoint("file:/var/log/asterisk/messages", json.dumps({"o": first}))
            store.save_progress(
                Progress("asterisk", checkpoint=checkpoint, pending=pending, settled=settled)
            )
            batches.append(time.perf_counter() - batch_started)
        elapsed = time.perf_counter() - started
        forgotten = jail.status().forgotten
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (rows,) = connection.execute("SELECT count(*) FROM pending_failures").fetchone()
    connection.close()
    size = sum(p.stat().st_size for p in directory.iterdir())
    restart = time.perf_counter()
    with SQLiteBanStore(path, clock) as store:
        stored = store.pending_failures("asterisk")
        Jail(settings(), clock=clock, max_pending=args.max_pending).restore_pending(stored)
    restart_seconds = time.perf_counter() - restart
    return {
        "addresses": args.addresses,
        "max_pending": args.max_pending,
        "pending_rows": int(rows),
        "forgotten": forgotten,
        "store_bytes": size,
        "failures_per_second": args.addresses / elapsed,
        "batch_median_ms": statistics.median(batches) * 1000,
        "batch_max_ms": max(batches) * 1000,
        "restart_seconds": restart_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--max-pending", type=int, default=DEFAULT_MAX_PENDING)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{result['addresses']:,} distinct addresses failing once within findtime, "
        f"bound {result['max_pending']:,}:\n"
        f"  pending rows stored    {result['pending_rows']:,} "
        f"({result['forgotten']:,} forgotten past the bound)\n"
        f"  store on disk          {result['store_bytes'] / 1e6:.1f} MB\n"
        f"  jail + store           {result['failures_per_second']:,.0f} failures/s "
        f"(batch of {args.batch:,}: median {result['batch_median_ms']:.1f} ms, "
        f"max {result['batch_max_ms']:.1f} ms)\n"
        f"  restart (read + restore) {result['restart_seconds']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

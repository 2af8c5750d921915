"""Benchmark the hub's database: how many reports per second ``HubStore.ingest`` stores.

``--agents`` agents (default 20, each from its own network) report ``--reports`` reports in
total (default 50,000) in batches of ``--batch`` (default 500), about one address in three
reported by several agents, so consensus lists some of them. Runs on a new SQLite file and
on PostgreSQL (``--postgres URL``, else a throw-away cluster with fsync on, when PostgreSQL
is installed), and prints reports/s for each against its target (5,000/s on SQLite, 10,000/s
on PostgreSQL). Exit status 1 if one misses it.

Usage::

    python bench/bench_hub_store.py
    python bench/bench_hub_store.py --reports 100000 --only sqlite
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from gardien.clock import FakeClock
from gardien.hub.model import Consensus, Report
from gardien.hub.store import HubStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.hubdb import PostgresServer

TARGETS = {"sqlite": 5_000.0, "postgresql": 10_000.0}
JAILS = (("sshd", "ssh"), ("asterisk", "sip"), ("postfix-sasl", "smtp-auth"))


def batches(agents: int, reports: int, batch: int, now: float) -> list[tuple[int, list[Report]]]:
    """(agent index, reports) pairs; a third of the addresses come back from other agents."""
    generator = random.Random(7)
    shared = [
        f"{generator.randint(1, 223)}.{generator.randint(0, 255)}.1.{i % 250 + 1}"
        for i in range(reports // 6)
    ]
    out: list[tuple[int, list[Report]]] = []
    for number in range(reports // batch):
        chunk = []
        for _ in range(batch):
            if generator.random() < 0.33:
                ip = generator.choice(shared)
            else:
                ip = f"{generator.randint(1, 223)}.{generator.randint(0, 255)}." + (
                    f"{generator.randint(0, 255)}.{generator.randint(1, 254)}"
                )
            jail, category = generator.choice(JAILS)
            chunk.append(Report(ip, jail, category, now - generator.uniform(0, 3600), 5))
        out.append((number % agents, chunk))
    return out


def run(kind: str, url: str, agents: int, reports: int, batch: int) -> float:
    clock = FakeClock(1_700_000_000.0)
    store = HubStore(url, consensus=Consensus(), clock=clock)
    store.migrate()
    enrolled = [store.add_agent(f"bench{i}", f"203.0.{i}.0/24")[0] for i in range(agents)]
    work = batches(agents, reports, batch, clock.now())
    started = time.perf_counter()
    listed = 0
    for index, chunk in work:
        listed += len(store.ingest(enrolled[index], "192.0.2.1", chunk).listed)
    elapsed = time.perf_counter() - started
    total = len(work) * batch
    rate = total / elapsed
    verdict = "ok" if rate >= TARGETS[kind] else "MISSED"
    print(
        f"{kind:10s} {total} reports in {elapsed:.2f} s: {rate:,.0f} reports/s "
        f"({listed} addresses listed); target {TARGETS[kind]:,.0f}/s: {verdict}"
    )
    store.close()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--reports", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres", metavar="URL", help="an existing PostgreSQL database")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    missed = False
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/hub.sqlite3"
            rate = run("sqlite", url, args.agents, args.reports, args.batch)
            missed |= rate < TARGETS["sqlite"]
    if args.only != "sqlite":
        server = None
        url = args.postgres
        if url is None:
            server = PostgresServer.start(durable=True)
            if server is None:
                print("postgresql: not installed, skipped")
                return int(missed)
            url = server.create_database()
        try:
            rate = run("postgresql", url, args.agents, args.reports, args.batch)
            missed |= rate < TARGETS["postgresql"]
        finally:
            if server is not None:
                server.stop()
    return int(missed)


if __name__ == "__main__":
    sys.exit(main())

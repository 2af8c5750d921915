"""Benchmark a real ``gardien hub serve`` over HTTP: ingestion, lookups, and the blocklist.

The hub runs as its own process (``python -m gardien hub serve --database URL --listen
127.0.0.1:PORT``) on SQLite (a new file) or PostgreSQL (``--postgresql``: a throw-away cluster
started as in the tests, or ``--database URL``). Agents are enrolled with ``gardien hub agent
add`` and the script talks to the hub as agents do, with httpx:

1. **ingest**: ``--reports`` reports (default 200,000) of addresses drawn from a pool of
   ``--pool`` public addresses, posted in batches of ``--batch`` (500) by ``--concurrency``
   (4) agents at once; reports/s is the count divided by the wall-clock time from the first
   request to the last answer. Targets: >= 5,000/s on SQLite, >= 10,000/s on PostgreSQL.
2. **lookup**: ``GET /api/v1/ip/{ip}`` at a fixed ``--rate`` (500 requests/s) for
   ``--seconds`` (10), open loop: each request has a planned start time, and its latency runs
   from that planned time (not from when it was really sent) to the end of the answer, so a
   stalled server is not hidden (no coordinated omission). Addresses are drawn from the
   pool (known) and from outside it (unknown), half each. Target: p99 <= 10 ms.
3. **blocklist**: ``--listed`` (1,000,000) addresses are written straight into the hub's
   ``addresses`` table as listed entries (consensus through 3M reports would take minutes and
   measures ingestion again), then ``GET /api/v1/blocklist?format=F`` is timed for each
   format, whole answer read. Target: <= 3 s.

The client and the server share the machine's two CPUs: the figures include that.

Usage::

    python bench/bench_hub.py                          # SQLite
    python bench/bench_hub.py --postgresql
    python bench/bench_hub.py --only lookup --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.hubserver import hub_server  # noqa: E402 (tests/ on the path first)

FORMATS = ("plain", "cidr", "nft", "ipset", "json")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def gardien(*args: str) -> str:
    """Run ``python -m gardien ARGS`` and return its output; stop on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "gardien", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"gardien {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def public_addresses(count: int, seed: int) -> list[str]:
    """``count`` distinct, globally routable IPv4 addresses (the hub lists no other)."""
    generator = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        address = ipaddress.IPv4Address(generator.getrandbits(32))
        if address.is_global:
            found.add(str(address))
    return sorted(found)


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """The database URL to benchmark on: given, a throw-away PostgreSQL, or a new SQLite."""
    if args.database:
        yield args.database
        return
    if args.postgresql:
        from hubdb import PostgresServer

        server = PostgresServer.start(durable=True)  # fsync on: honest figures
        if server is None:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
        try:
            yield server.create_database()
        finally:
            server.stop()
        return
    with tempfile.TemporaryDirectory(prefix="gardien-hub-bench-") as directory:
        yield f"sqlite:///{directory}/hub.sqlite3"


def enrol(url: str, count: int) -> list[str]:
    """``count`` agents, each in its own network; their tokens."""
    tokens = []
    for index in range(count):
        out = gardien(
            "hub", "agent", "add", f"bench-{index}", "--network", f"10.{index}.0.0/16",
            "--database", url,
        )  # fmt: skip
        tokens.append(out.strip().splitlines()[-1])
    return tokens


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# ---- 1. ingestion --------------------------------------------------------------------------


async def ingest(base: str, tokens: Sequence[str], args: argparse.Namespace) -> dict[str, object]:
    pool = public_addresses(args.pool, args.seed)
    generator = random.Random(args.seed)
    now = time.time()
    batches = []
    for start in range(0, args.reports, args.batch):
        size = min(args.batch, args.reports - start)
        batches.append(
            {
                "reports": [
                    {
                        "ip": generator.choice(pool),
                        "jail": "sshd",
                        "category": "ssh",
                        "time": now - generator.uniform(0, 3600),
                        "failures": 5,
                    }
                    for _ in range(size)
                ]
            }
        )
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    failures: list[str] = []
    latencies: list[float] = []

    async def worker(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            while not queue.empty():
                batch = queue.get_nowait()
                began = time.perf_counter()
                answer = await client.post("/api/v1/reports", json=batch)
                latencies.append(time.perf_counter() - began)
                if answer.status_code != 202:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

    began = time.perf_counter()
    await asyncio.gather(*(worker(tokens[i % len(tokens)]) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "reports": args.reports,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "reports_per_second": args.reports / elapsed,
        "batch_p50_ms": 1000 * statistics.median(latencies),
        "batch_p99_ms": 1000 * percentile(latencies, 0.99),
        "errors": failures[:5],
        "error_count": len(failures),
    }


# ---- 2. lookups ----------------------------------------------------------------------------


async def lookups(base: str, tokens: Sequence[str], args: argparse.Namespace) -> dict[str, object]:
    pool = public_addresses(args.pool, args.seed)
    unknown = public_addresses(args.pool + 1000, args.seed + 1)[-1000:]
    generator = random.Random(args.seed + 2)
    total = int(args.rate * args.seconds)
    targets = [generator.choice(pool if i % 2 else unknown) for i in range(total)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    clients = [
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10, limits=limits
        )
        for token in tokens
    ]

    async def one(index: int, planned: float) -> None:
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        client = clients[index % len(clients)]
        try:
            answer = await client.get(f"/api/v1/ip/{targets[index]}")
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        except httpx.HTTPError:
            statuses[0] = statuses.get(0, 0) + 1
        latencies.append(time.perf_counter() - planned)

    # warm the connections up
    await asyncio.gather(*(client.get("/health") for client in clients))
    start = time.perf_counter() + 0.2
    interval = 1.0 / args.rate
    await asyncio.gather(*(one(i, start + i * interval) for i in range(total)))
    for client in clients:
        await client.aclose()
    return {
        "rate": args.rate,
        "requests": total,
        "p50_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * percentile(latencies, 0.90),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "statuses": statuses,
    }


def lookups_with_hey(
    base: str, tokens: Sequence[str], args: argparse.Namespace
) -> dict[str, object]:
    """The lookups driven by ``hey`` (Debian package ``hey``): a Go load generator costs the
    server's CPUs far less than Python would. ``--streams`` processes run at once, each
    asking for one address (half of them known to the hub, half unknown) at ``rate /
    streams`` requests a second over one connection; every answer's latency is kept (CSV)."""
    pool = public_addresses(args.pool, args.seed)
    unknown = public_addresses(args.pool + 100, args.seed + 1)[-100:]
    streams = args.streams
    processes = []
    for index in range(streams):
        address = pool[index * 7919 % len(pool)] if index % 2 == 0 else unknown[index]
        processes.append(
            subprocess.Popen(
                [
                    "hey",
                    "-z", f"{args.seconds:g}s",
                    "-c", "1",
                    "-q", f"{args.rate / streams:g}",
                    "-o", "csv",
                    "-H", f"Authorization: Bearer {tokens[index % len(tokens)]}",
                    f"{base}/api/v1/ip/{address}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )  # fmt: skip
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for process in processes:
        out, _ = process.communicate(timeout=args.seconds + 120)
        for row in out.splitlines()[1:]:
            fields = row.split(",")
            if len(fields) < 7:
                continue
            latencies.append(float(fields[0]))
            code = int(fields[6])
            statuses[code] = statuses.get(code, 0) + 1
    if not latencies:
        raise SystemExit("hey gave no answers")
    return {
        "generator": f"hey, {streams} streams of one connection",
        "rate": args.rate,
        "achieved_rate": len(latencies) / args.seconds,
        "requests": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * percentile(latencies, 0.90),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "statuses": statuses,
    }


# ---- 3. blocklist --------------------------------------------------------------------------


def fill_listed(url: str, count: int, seed: int, taken: Sequence[str]) -> None:
    """Write ``count`` listed entries straight into the ``addresses`` table, none of them
    in ``taken`` (the addresses the ingestion already wrote)."""
    from sqlalchemy import create_engine, insert

    from gardien.hub import schema
    from gardien.hub.store import database_url

    engine = create_engine(database_url(url))
    try:
        now = time.time()
        generator = random.Random(seed)
        seen: set[int] = {int(ipaddress.IPv4Address(address)) for address in taken}
        rows = []
        while len(rows) < count:
            value = generator.getrandbits(32)
            if value in seen:
                continue
            address = ipaddress.IPv4Address(value)
            if not address.is_global:
                continue
            seen.add(value)
            rows.append(
                {
                    "ip": str(address),
                    "first_seen": now,
                    "last_seen": now,
                    "reports": 3,
                    "score": 3.0,
                    "score_time": now,
                    "categories": '["ssh"]',
                    "listed_since": now,
                    "expires": now + 86400,
                }
            )
        with engine.begin() as connection:
            for start in range(0, len(rows), 50_000):
                connection.execute(insert(schema.addresses), rows[start : start + 50_000])
    finally:
        engine.dispose()


def blocklists(base: str, token: str, args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for name in FORMATS:
            seconds = []
            size = 0
            for _ in range(args.runs):
                began = time.perf_counter()
                answer = client.get("/api/v1/blocklist", params={"format": name})
                body = answer.content
                seconds.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    raise SystemExit(f"blocklist {name}: {answer.status_code} {answer.text[:200]}")
                size = len(body)
            results[name] = {"median_s": statistics.median(seconds), "runs": seconds, "bytes": size}
            log(f"  {name:<6} {statistics.median(seconds):6.2f} s  {size / 1e6:6.1f} MB")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark gardien hub serve over HTTP.")
    parser.add_argument("--database", help="an existing database URL (default: a new SQLite)")
    parser.add_argument("--postgresql", action="store_true", help="a throw-away PostgreSQL")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", choices=("ingest", "lookup", "blocklist"), action="append")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--reports", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=4, help="hey processes for lookups")
    parser.add_argument(
        "--python-generator",
        action="store_true",
        help="drive the lookups from Python (open loop) even if hey is installed",
    )
    parser.add_argument("--listed", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    wanted = set(args.only or ("ingest", "lookup", "blocklist"))
    results: dict[str, object] = {"workers": args.workers}
    with database(args) as url:
        results["database"] = url.split(":", 1)[0]
        gardien("hub", "migrate", "--database", url)
        tokens = enrol(url, args.agents)
        # --rate-limit 0: the server's capacity is measured here, not the per-agent limits
        with hub_server(url, "--workers", str(args.workers), "--rate-limit", "0") as base:
            if "ingest" in wanted:
                log(f"ingest: {args.reports} reports, batches of {args.batch}")
                results["ingest"] = asyncio.run(ingest(base, tokens, args))
                log(json.dumps(results["ingest"]))
            if "lookup" in wanted:
                log(f"lookup: {args.rate:g}/s for {args.seconds:g} s")
                if shutil.which("hey") and not args.python_generator:
                    results["lookup"] = lookups_with_hey(base, tokens, args)
                else:
                    results["lookup"] = asyncio.run(lookups(base, tokens, args))
                log(json.dumps(results["lookup"]))
            if "blocklist" in wanted:
                log(f"blocklist: writing {args.listed} listed entries")
                fill_listed(
                    url, args.listed, args.seed + 1000, public_addresses(args.pool, args.seed)
                )
                results["blocklist"] = blocklists(base, tokens[0], args)
    print(json.dumps(results, indent=2) if args.json else summary(results))
    return 0


def summary(results: dict[str, object]) -> str:
    """The figures against the issue's targets."""
    lines = [f"database: {results['database']}, hub workers: {results['workers']}"]
    target = 10_000 if results["database"].startswith("postgres") else 5_000  # type: ignore[union-attr]
    ingest = results.get("ingest")
    if isinstance(ingest, dict):
        rate = ingest["reports_per_second"]
        lines.append(
            f"ingest    {rate:>9,.0f} reports/s  (target >= {target:,}: "
            f"{'met' if rate >= target else 'MISSED'}; {ingest['error_count']} errors)"
        )
    lookup = results.get("lookup")
    if isinstance(lookup, dict):
        lines.append(
            f"lookup    p50 {lookup['p50_ms']:.2f} ms, p99 {lookup['p99_ms']:.2f} ms at "
            f"{lookup.get('achieved_rate', lookup['rate']):.0f}/s (target p99 <= 10 ms: "
            f"{'met' if lookup['p99_ms'] <= 10 else 'MISSED'}); statuses {lookup['statuses']}"
        )
    listed = results.get("blocklist")
    if isinstance(listed, dict):
        for name, figures in listed.items():
            seconds = figures["median_s"]
            lines.append(
                f"blocklist {name:<6} {seconds:6.2f} s, {figures['bytes'] / 1e6:.1f} MB "
                f"(target <= 3 s: {'met' if seconds <= 3 else 'MISSED'})"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

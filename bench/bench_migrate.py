"""``gardien migrate`` with 100,000 active fail2ban bans: how long the switch takes, and the
longest time a banned address was not dropped during it.

Setting, in network namespaces (tests/support/netns.py), one trial at a time:

- fail2ban 1.0.2 from Debian runs in the server namespace (``fail2ban-server -f -x -c CONF``, a
  copy of /etc/fail2ban with four jails: sshd, nginx-http-auth, postfix-sasl, recidive, with
  ``iptables-multiport``/``iptables-allports``), its socket, database and log in a temporary
  directory;
- the two client addresses are banned in sshd with ``fail2ban-client set sshd banip``, so that
  fail2ban's chains reject them; the other ``--bans`` minus two bans are rows of its database,
  written by fail2ban's own ``Fail2BanDb.addBan`` (under the system's python3, once per run,
  then copied into each trial's database). fail2ban does not put those in the kernel, which is
  the point: restoring them takes it hours (its issue #3088); ``--fail2ban-restore N`` measures
  how long fail2ban takes to restore N bans at its start, for comparison;
- both clients probe the server's TCP port 22 in a loop (each probe waits at most
  ``--probe-timeout-ms``) while ``gardien -c ETC migrate --from CONF`` runs in the server
  namespace; an nftables counter at priority 100 (after fail2ban's and gardien's filter chains)
  counts the clients' packets that no firewall stopped.

Figures: the total time of ``gardien migrate`` (start to exit), the time until gardien ran with
every ban (from its own report), the longest run of probes that got through (0 when none did:
the gap), and the counter. Checked each trial: every ban in gardien's store and its nftables
sets, fail2ban stopped, no ``f2b-`` chain left. Prints the median of ``--trials`` trials.

Usage::

    sudo .venv/bin/python bench/bench_migrate.py
    sudo .venv/bin/python bench/bench_migrate.py --bans 20000 --trials 5 --fail2ban-restore 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.fail2ban_lab import (  # type: ignore[import-not-found]
    make_fail2ban,
    make_gardien_etc,
    write_bans,
)
from support.netns import Lab, netns_available  # type: ignore[import-not-found]

TARGET_SECONDS = 10.0
VERBOSE = False
PROBE_INTERVAL = 0.002
JAILS = ("sshd", "nginx-http-auth", "postfix-sasl", "recidive")


@dataclass
class Trial:
    total: float
    running: float  # until gardien ran with every ban in the kernel
    probes: int
    passed_probes: int
    longest_gap: float
    passed_packets: int


def _template(directory: Path, count: int, now: float) -> Path:
    """A fail2ban database with ``count`` active bans over the four jails, written by
    fail2ban's own code."""
    bans = []
    for index in range(count):
        jail = JAILS[index % len(JAILS)]
        ip = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
        start = int(now) - (index % 1800)
        bans.append(
            {
                "jail": jail,
                "ip": ip,
                "time": start,
                "bantime": 604800 if jail == "recidive" else 3600,
                "count": 1 + index % 3,
                "failures": 5,
                "matches": [f"failure from {ip}"],
            }
        )
    path = directory / "template.sqlite3"
    write_bans(path, bans)
    return path


def _copy_rows(template: Path, database: Path) -> None:
    """Add the template's bans to the live fail2ban database (the rows fail2ban wrote)."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        connection.execute("ATTACH DATABASE ? AS template", (str(template),))
        connection.execute("INSERT OR IGNORE INTO jails SELECT * FROM template.jails")
        connection.execute("INSERT INTO bans SELECT * FROM template.bans")
        connection.execute("INSERT OR REPLACE INTO bips SELECT * FROM template.bips")
        connection.commit()
    finally:
        connection.close()


def _counter(lab: Lab, addresses: list[str]) -> None:
    rules = "\n".join(f"ip saddr {a} tcp dport 22 counter" for a in addresses)
    ruleset = (
        "table inet bench_count {\n chain after_filters {\n"
        "  type filter hook input priority 100; policy accept;\n" + rules + "\n }\n}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", lab.server, "nft", "-f", "-"],
        input=ruleset,
        text=True,
        check=True,
        capture_output=True,
    )


def _passed_packets(lab: Lab) -> int:
    listing = json.loads(
        lab.run(lab.server, "nft", "-j", "list", "table", "inet", "bench_count").stdout
    )
    total = 0
    for item in listing["nftables"]:
        for expression in item.get("rule", {}).get("expr", ()):
            if "counter" in expression:
                total += int(expression["counter"]["packets"])
    return total


def _probe(lab: Lab, client: object, timeout: float, stop: threading.Event, out: list) -> None:
    """Probe every PROBE_INTERVAL seconds (a tight loop would take a core from the switch)."""
    while not stop.is_set():
        started = time.monotonic()
        result = lab.probe(client, "tcp", 22, 4, timeout=timeout)
        out.append((started, time.monotonic(), result))
        time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))


def _longest_gap(records: list[tuple[float, float, str]]) -> float:
    longest, run_start = 0.0, None
    for started, ended, result in records:
        if result == "open":
            run_start = started if run_start is None else run_start
            longest = max(longest, ended - run_start)
        else:
            run_start = None
    return longest


def _trial(template: Path, bans: int, probe_timeout: float) -> Trial:
    with Lab.create(clients=2) as lab, tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        fail2ban = make_fail2ban(root)
        etc = make_gardien_etc(root)
        try:
            fail2ban.start(lab.server)
            addresses = [str(client.ipv4) for client in lab.clients]
            fail2ban.client("set", "sshd", "banip", *addresses, namespace=lab.server)
            for client in lab.clients:
                deadline = time.monotonic() + 30
                while lab.probe(client, "tcp", 22, 4, timeout=1) != "refused":
                    if time.monotonic() > deadline:
                        raise RuntimeError("fail2ban did not ban the clients")
            _copy_rows(template, fail2ban.db)
            _counter(lab, addresses)
            stop = threading.Event()
            records: list[list[tuple[float, float, str]]] = [[] for _ in lab.clients]
            threads = [
                threading.Thread(target=_probe, args=(lab, c, probe_timeout, stop, records[i]))
                for i, c in enumerate(lab.clients)
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.3)
            started = time.monotonic()
            process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    lab.server,
                    sys.executable,
                    "-m",
                    "gardien",
                    "-c",
                    str(etc),
                    "migrate",
                    "--from",
                    str(fail2ban.conf),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each step as it is done
            )
            running = None
            assert process.stdout is not None
            output = []
            for line in process.stdout:
                output.append(f"{time.monotonic() - started:7.2f} {line}")
                if "started gardien" in line:
                    running = time.monotonic() - started
            process.wait()
            total = time.monotonic() - started
            time.sleep(0.3)
            stop.set()
            for thread in threads:
                thread.join()
            if process.returncode != 0:
                raise RuntimeError("gardien migrate failed:\n" + "".join(output))
            if VERBOSE:
                print("".join(output), end="")
            _check(lab, root, bans)
            everything = [r for client in records for r in client]
            return Trial(
                total=total,
                running=running or total,
                probes=len(everything),
                passed_probes=sum(1 for r in everything if r[2] == "open"),
                longest_gap=max(_longest_gap(client) for client in records),
                passed_packets=_passed_packets(lab),
            )
        finally:
            pidfile = root / "gardien.pid"
            if pidfile.exists():
                subprocess.run(
                    [sys.executable, "-m", "gardien", "-c", str(etc), "stop"],
                    capture_output=True,
                    check=False,
                )
            fail2ban.kill()


def _check(lab: Lab, root: Path, bans: int) -> None:
    from gardien.store import SQLiteBanStore

    with SQLiteBanStore(root / "gardien.sqlite3") as store:
        stored = len(store.active_bans(time.time()))
    if stored != bans:
        raise RuntimeError(f"{stored} bans in gardien's store, expected {bans}")
    listing = json.loads(
        lab.run(lab.server, "nft", "-j", "list", "table", "inet", "gardien").stdout
    )
    in_kernel = sum(len(item.get("set", {}).get("elem", ())) for item in listing["nftables"])
    if in_kernel != bans:
        raise RuntimeError(f"{in_kernel} addresses in gardien's sets, expected {bans}")
    if "f2b-" in lab.run(lab.server, "iptables", "-S").stdout:
        raise RuntimeError("fail2ban's chains are still there")


def _fail2ban_restore(count: int) -> float:
    """Seconds fail2ban takes to restore ``count`` bans at its start."""
    now = time.time()
    with Lab.create(clients=1) as lab, tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        fail2ban = make_fail2ban(root)
        bans = [
            {
                "jail": JAILS[i % 4],
                "ip": f"10.9.{(i >> 8) & 255}.{i & 255}",
                "time": int(now),
                "bantime": 3600,
                "count": 1,
                "failures": 5,
                "matches": [],
            }
            for i in range(count)
        ]
        write_bans(fail2ban.db, bans)
        started = time.monotonic()
        try:
            fail2ban.start(lab.server)
            per_jail = {jail: sum(1 for b in bans if b["jail"] == jail) for jail in JAILS}
            fail2ban.wait_restored(lab.server, per_jail, within=3600)
            return time.monotonic() - started
        finally:
            fail2ban.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bans", type=int, default=100_000, help="active bans (default 100000)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--probe-timeout-ms", type=float, default=20.0)
    parser.add_argument(
        "--fail2ban-restore",
        type=int,
        default=2000,
        metavar="N",
        help="also time fail2ban restoring N bans at its start (0: skip)",
    )
    parser.add_argument(
        "--probe-interval-ms", type=float, default=2.0, help="between two probes of a client"
    )
    parser.add_argument("--verbose", action="store_true", help="print migrate's steps, timed")
    args = parser.parse_args()
    global VERBOSE, PROBE_INTERVAL  # noqa: PLW0603 - switches of this script
    VERBOSE = args.verbose
    PROBE_INTERVAL = args.probe_interval_ms / 1000
    ok, why = netns_available()
    if not ok:
        print(f"cannot run: {why}", file=sys.stderr)
        return 1
    if shutil.which("fail2ban-server") is None:
        print("cannot run: fail2ban is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as temporary:
        started = time.monotonic()
        template = _template(Path(temporary), args.bans - 2, time.time())
        print(
            f"fail2ban database with {args.bans - 2} bans written by fail2ban's code in "
            f"{time.monotonic() - started:.1f} s"
        )
        trials = []
        for number in range(args.trials):
            trial = _trial(template, args.bans, args.probe_timeout_ms / 1000)
            trials.append(trial)
            print(
                f"trial {number + 1}: migrate {trial.total:.2f} s (gardien running with every "
                f"ban after {trial.running:.2f} s), {trial.probes} probes, "
                f"{trial.passed_probes} passed, longest gap {trial.longest_gap * 1000:.0f} ms, "
                f"{trial.passed_packets} packets counted past the firewalls"
            )
    total = statistics.median(t.total for t in trials)
    running = statistics.median(t.running for t in trials)
    gap = max(t.longest_gap for t in trials)
    packets = sum(t.passed_packets for t in trials)
    print(
        f"\n{args.bans} bans, median of {len(trials)}: total {total:.2f} s, gardien running "
        f"with every ban after {running:.2f} s; longest gap over all trials {gap * 1000:.0f} ms, "
        f"{packets} packets of banned addresses past the firewalls"
    )
    verdict = total <= TARGET_SECONDS and gap == 0 and packets == 0
    print(f"target (<= {TARGET_SECONDS:g} s, no gap): {'met' if verdict else 'MISSED'}")
    if args.fail2ban_restore:
        seconds = _fail2ban_restore(args.fail2ban_restore)
        print(
            f"fail2ban: restoring {args.fail2ban_restore} bans at its start took {seconds:.1f} s "
            f"({args.fail2ban_restore / seconds:.0f} bans/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

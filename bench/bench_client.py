"""Benchmark ``set JAIL banip`` of many addresses: gardien against fail2ban-client 1.0.2.

1. Writes a configuration in a temporary directory (two jails on empty log files, an action
   that does nothing, so no firewall is touched) and starts, on it, fail2ban's server (with
   ``fail2ban-client start``, its own socket) and gardien's daemon (``gardien run``, its own
   socket and database).
2. ``--runs`` times (default 5): ``fail2ban-client set bench banip`` of ``--addresses``
   (10,000) addresses on one command line, and the same through ``gardien set``, and through
   gardien run as ``fail2ban-client`` (a symbolic link); each a whole process (interpreter
   start-up included), wall clock, and the answer checked (the number banned). The bans are
   lifted between runs (not timed).
3. ``--runs`` times: the same three with one address (a script's loop: start-up dominates).
4. Once or more (``--big-runs``, default 1): gardien with ``--big`` (100,000) addresses read
   from standard input (``set bench banip -``: more than a command line carries, so fail2ban
   has no such run).
5. Prints the medians.

Usage::

    python bench/bench_client.py
    python bench/bench_client.py --addresses 10000 --runs 7 --big 100000 --big-runs 3
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GARDIEN = Path(sys.executable).with_name("gardien")
JAILS = """\
[DEFAULT]
action = log
backend = polling
bantime = 1h
ignoreip = 127.0.0.1

[bench]
enabled = true
filter = bench
logpath = {root}/bench.log
"""


def _configure(root: Path) -> Path:
    etc = root / "etc"
    (etc / "filter.d").mkdir(parents=True)
    (etc / "action.d").mkdir()
    (root / "bench.log").touch()
    (etc / "fail2ban.conf").write_text(
        f"[Definition]\nloglevel = INFO\nlogtarget = {root}/fail2ban.log\n"
        f"socket = {root}/fail2ban.sock\npidfile = {root}/fail2ban.pid\n"
        f"dbfile = {root}/fail2ban.sqlite3\nsyslogsocket = auto\nallowipv6 = auto\n"
    )
    (etc / "jail.conf").write_text(JAILS.format(root=root))
    (etc / "filter.d" / "bench.conf").write_text("[Definition]\nfailregex = ^failed from <HOST>$\n")
    (etc / "action.d" / "log.conf").write_text(
        "[Definition]\nactionstart =\nactionstop =\nactionban =\nactionunban =\n"
    )
    return etc


def _run(command: list[str], stdin: str | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, check=False, timeout=900
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stdout}{done.stderr}")
    return elapsed, done.stdout.strip()


def _wait(command: list[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if subprocess.run(command, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"no answer to {' '.join(command)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--big-runs", type=int, default=1)
    options = parser.parse_args()
    fail2ban_client = shutil.which("fail2ban-client")
    if fail2ban_client is None:
        raise SystemExit("fail2ban-client is not installed")
    base = ipaddress.ip_address("100.64.0.0")
    addresses = [str(base + i) for i in range(options.addresses)]
    big = [str(base + i) for i in range(options.big)]
    lone = ipaddress.ip_address("198.51.100.0")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        etc = _configure(root)
        link = root / "fail2ban-client"
        link.symlink_to(GARDIEN)
        fail2ban = [fail2ban_client, "-c", str(etc), "-s", str(root / "fail2ban.sock")]
        gardien = [str(GARDIEN), "-c", str(etc), "-s", str(root / "gardien.sock")]
        as_client = [str(link), "-c", str(etc), "-s", str(root / "gardien.sock")]
        subprocess.run([*fail2ban, "-x", "start"], capture_output=True, check=True)
        daemon = subprocess.Popen(
            [
                *gardien,
                "run",
                "--dbfile",
                str(root / "gardien.sqlite3"),
                "--pidfile",
                str(root / "gardien.pid"),
                "--logtarget",
                str(root / "gardien.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait([*gardien, "ping"])
            _wait([*fail2ban, "ping"])
            times: dict[str, list[float]] = {}
            for _ in range(options.runs):
                for name, command in (
                    ("fail2ban-client", fail2ban),
                    ("gardien set", gardien),
                    ("gardien as fail2ban-client", as_client),
                ):
                    elapsed, said = _run([*command, "set", "bench", "banip", *addresses])
                    if said != str(len(addresses)):
                        raise SystemExit(f"{name} banned {said}, not {len(addresses)}")
                    times.setdefault(name, []).append(elapsed)
                    _run([*command, "unban", "--all"])
            for index in range(options.runs):  # one address per call, as scripts do
                for name, command in (
                    ("fail2ban-client", fail2ban),
                    ("gardien set", gardien),
                    ("gardien as fail2ban-client", as_client),
                ):
                    elapsed, _ = _run([*command, "set", "bench", "banip", str(lone + index)])
                    times.setdefault(f"{name}, 1 address", []).append(elapsed)
            for _ in range(options.big_runs):
                elapsed, said = _run([*gardien, "set", "bench", "banip", "-"], stdin="\n".join(big))
                if said != str(len(big)):
                    raise SystemExit(f"gardien banned {said}, not {len(big)}")
                times.setdefault(f"gardien set, {len(big):,} from stdin", []).append(elapsed)
                _run([*gardien, "unban", "--all"])
        finally:
            subprocess.run([*fail2ban, "stop"], capture_output=True, check=False)
            subprocess.run([*gardien, "stop"], capture_output=True, check=False)
            daemon.wait(60)
    print(f"set bench banip, {options.addresses:,} addresses unless said (medians):")
    for name, values in times.items():
        print(
            f"  {name:<40} {statistics.median(values):7.2f} s  (runs: "
            + ", ".join(f"{v:.2f}" for v in values)
            + ")"
        )


if __name__ == "__main__":
    main()

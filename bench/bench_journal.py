"""Benchmark the journal source against fail2ban-server on a real systemd-journald journal.

What an administrator of a stock Debian 12 sees: sshd logs to the journal, and the sshd jail
reads it with ``backend = systemd``. The script builds such a journal, then times both daemons
reading it from the start, with the same jail and the same filter file (fail2ban's own
``filter.d/sshd.conf``, copied from the installed package into each configuration):

1. **The journal.** A private ``/lib/systemd/systemd-journald`` runs without systemd as PID 1:
   in a cgroup of its own (``name=systemd`` and the unified hierarchy) entered before
   ``unshare --mount --cgroup``, with a tmpfs on ``/run``, its sockets and
   ``/var/log/journal`` bound to a temporary directory, and a lab ``journald.conf`` (rate
   limiting off, files large enough not to rotate). A writer process named ``sshd``
   (``prctl(PR_SET_NAME)``) in the cgroup ``system.slice/ssh.service`` sends syslog lines to
   ``/run/systemd/journal/dev-log``, so journald gives its entries the trusted fields
   ``_COMM=sshd`` and ``_SYSTEMD_UNIT=ssh.service`` as on a Debian host. The lines are the
   first ``--entries`` (200,000) sshd lines of :mod:`genlogs`' auth.log (500 attackers), made
   so that about 5% of them are failures.
2. **The daemons**, one after the other, each on the finished journal, reading it from its
   first entry (``findtime = 1h``, ``maxretry = 5``, ``bantime = 1d``, no firewall action):
   ``gardien run`` (this interpreter, ``backend = systemd[journalpath=DIR]``) and
   ``fail2ban-server -f`` (Debian's package, same backend). Each is polled (``status``) until
   its ban count has not changed for ``--settle`` seconds; then the time of its last ``Ban``
   record (its own log, millisecond timestamps) minus the time the process was started gives
   the **entries/s to the last ban**: ``--entries`` divided by that time, start-up included
   for both.
3. **The same bans**: the banned addresses of both are compared. (The failure counts are
   printed, not compared: fail2ban's "Total failed" also counts the failures of addresses it
   has banned already.)

``--runs`` (3) repeats step 2 and prints the median of each and their ratio; ``--reader``
chooses gardien's journal reader (``native``, the core's, or ``cysystemd``, the reference).

Usage (as root)::

    python bench/bench_journal.py
    python bench/bench_journal.py --entries 50000 --runs 1 --reader cysystemd
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import genlogs

JOURNALD = "/lib/systemd/systemd-journald"
FAIL2BAN = Path("/etc/fail2ban")
CGROUPS = ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified")
SETTINGS = """\
[Journal]
Storage=persistent
Compress=yes
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
RateLimitIntervalSec=0
RateLimitBurst=0
SystemMaxFileSize=4G
SystemMaxUse=8G
SystemKeepFree=1M
"""
JAIL = """\
[sshd]
enabled = true
filter = sshd
backend = systemd[journalpath={directory}]
maxretry = 5
findtime = 1h
bantime = 1d
action =
"""
# genlogs' auth.log holds about 42% of sshd lines besides its failures: a failure rate of
# 2.16% makes about 5% of the sshd lines failures
FAILURE_RATE = 0.0216
WRITER = r"""
import ctypes, os, socket, sys
ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)  # PR_SET_NAME: journald's _COMM
for hierarchy in sys.argv[2:]:
    with open(os.path.join(hierarchy, "cgroup.procs"), "w") as procs:
        procs.write(str(os.getpid()))
out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
out.connect(sys.argv[1])
for line in sys.stdin.buffer:
    out.send(line.rstrip(b"\n"))
"""
_SYSLOG = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (sshd\[\d+\]: .*)$")
_BAN = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*\[sshd\] Ban (\S+)")


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench_journal] {message}", file=sys.stderr, flush=True)


def sshd_lines(count: int) -> list[str]:
    """The first ``count`` sshd lines of genlogs' auth.log, as syslog sends them (with PRI)."""
    params = genlogs.GenParams(
        kind="sshd", lines=int(count * 2.4), failure_rate=FAILURE_RATE, attackers=500
    )
    found: list[str] = []
    for chunk in genlogs.generate_lines(params):
        for line in chunk:
            matched = _SYSLOG.match(line)
            if matched:
                found.append(f"<38>{line[:15]} {matched[1]}")  # auth.info
                if len(found) == count:
                    return found
    raise BenchError(f"genlogs gave only {len(found)} sshd lines")


class Journald:
    """A private systemd-journald in its own mount and cgroup namespaces (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = root / "run"
        self.var = root / "var"
        self.name = f"gardien-bench-{os.getpid()}"
        self.machine_id = Path("/etc/machine-id").read_text().strip()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> Path:
        return self.var / self.machine_id

    def cgroups(self, *below: str) -> list[str]:
        return [os.path.join(hierarchy, self.name, *below) for hierarchy in CGROUPS]

    def start(self) -> None:
        self.run.mkdir()
        self.var.mkdir()
        (self.run / "flushed").touch()
        for path in self.cgroups("system.slice", "ssh.service"):
            os.makedirs(path, exist_ok=True)
        settings = self.root / "journald.conf"
        settings.write_text(SETTINGS)
        enter = "; ".join(f'echo $$ > "{path}/cgroup.procs"' for path in self.cgroups())
        inner = "\n".join(
            [
                "set -e",
                "mount -t tmpfs tmpfs /run",
                "mkdir -p /run/systemd/journal /run/log/journal",
                'mount --bind "$1" /run/systemd/journal',
                "[ -d /var/log/journal ] || mount -t tmpfs tmpfs /var/log",
                "mkdir -p /var/log/journal",
                'mount --bind "$2" /var/log/journal',
                'mount --bind "$3" /etc/systemd/journald.conf',
                "[ ! -d /etc/systemd/journald.conf.d ] || "
                "mount -t tmpfs tmpfs /etc/systemd/journald.conf.d",
                f"exec {JOURNALD}",
            ]
        )
        script = (
            f"{enter}\nexec unshare --mount --cgroup --propagation private -- "
            f'sh -c \'{inner}\' sh "$1" "$2" "$3"'
        )
        with (self.root / "journald.out").open("wb") as output:
            self.process = subprocess.Popen(
                ["sh", "-c", script, "sh", str(self.run), str(self.var), str(settings)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "SYSTEMD_LOG_TARGET": "console"},
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"systemd-journald exited: {self.output()}")
            if (self.run / "dev-log").exists() and self.sync(check=False):
                return
            time.sleep(0.05)
        raise BenchError(f"systemd-journald did not start: {self.output()}")

    def output(self) -> str:
        return (self.root / "journald.out").read_text(errors="replace")

    def sync(self, *, check: bool = True) -> bool:
        assert self.process is not None
        done = subprocess.run(
            ["nsenter", "--target", str(self.process.pid), "--mount", "--", "journalctl", "--sync"],
            capture_output=True,
            check=check,
        )
        return done.returncode == 0

    def write(self, lines: list[str]) -> None:
        # a script file, not -c: journald keeps the command line (_CMDLINE) of each entry,
        # and one over 512 bytes is compressed, which a real sshd's is not
        script = self.root / "sshd-writer.py"
        script.write_text(WRITER)
        writer = subprocess.run(
            [
                sys.executable,
                str(script),
                str(self.run / "dev-log"),
                *self.cgroups("system.slice", "ssh.service"),
            ],
            input="".join(line + "\n" for line in lines).encode(),
            capture_output=True,
            check=False,
        )
        if writer.returncode:
            raise BenchError(f"the writer failed: {writer.stderr.decode(errors='replace')}")
        self.sync()

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        for path in reversed(
            [
                *self.cgroups("system.slice", "ssh.service"),
                *self.cgroups("system.slice"),
                *self.cgroups(),
            ]
        ):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def count_entries(directory: Path) -> tuple[int, set[str]]:
    """How many entries the sshd journalmatch selects, and their units (as gardien reads)."""
    from gardien.sources.journal import JournalSource

    count = 0
    with JournalSource(
        ["_SYSTEMD_UNIT=sshd.service + _COMM=sshd"], directory=str(directory), since=0
    ) as source:
        while entries := source.read_entries(65536):
            count += len(entries)
    # the units of the entries read, to show journald gave the trusted fields
    listed = subprocess.run(
        ["journalctl", "-D", str(directory), "_COMM=sshd", "-o", "json", "-n", "100",
         "--output-fields=_SYSTEMD_UNIT"],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    units = {json.loads(line).get("_SYSTEMD_UNIT", "") for line in listed.stdout.splitlines()}
    return count, units


class Run:
    """One daemon's run: when it started, its last ban, its bans and failures."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.started = 0.0  # wall clock
        self.last_ban = 0.0
        self.bans: list[str] = []
        self.failed = 0

    @property
    def seconds(self) -> float:
        return self.last_ban - self.started


def last_ban(log_file: Path) -> tuple[float, list[str]]:
    """The time of the last ``[sshd] Ban`` record of a daemon log, and the addresses banned."""
    when = 0.0
    addresses: list[str] = []
    for line in log_file.read_text(errors="replace").splitlines():
        found = _BAN.match(line)
        if found:
            stamp = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            when = max(when, stamp)
            addresses.append(found[2])
    return when, addresses


def settle(
    status: Callable[[], tuple[int, int]], process: subprocess.Popen[bytes], seconds: float
) -> tuple[int, int]:
    """Poll ``status()`` -> (banned, failed) until it has not changed for ``seconds``."""
    last: tuple[int, int] | None = None
    since = time.monotonic()
    deadline = since + 1800
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the daemon exited with status {process.returncode}")
        try:
            now = status()
        except (subprocess.CalledProcessError, ValueError, KeyError):
            now = None
        if now is not None and now != last:
            last, since = now, time.monotonic()
        elif last is not None and last[0] > 0 and time.monotonic() - since >= seconds:
            return last
        time.sleep(0.2)
    raise BenchError("the daemon did not settle within 30 minutes")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(
    run: Run,
    argv: list[str],
    env: dict[str, str],
    status: Callable[[], tuple[int, int]],
    log_file: Path,
    settle_seconds: float,
) -> Run:
    """Start a daemon, wait until ``status()`` (bans, failures) settles, stop it, and read its
    last ban from its log."""
    run.started = time.time()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        _, run.failed = settle(status, process, settle_seconds)
    finally:
        stop(process)
    run.last_ban, run.bans = last_ban(log_file)
    return run


def run_gardien(root: Path, directory: Path, reader: str, settle_seconds: float) -> Run:
    etc = root / "gardien-etc"
    shutil.rmtree(etc, ignore_errors=True)
    (etc / "jail.d").mkdir(parents=True)
    shutil.copytree(FAIL2BAN / "filter.d", etc / "filter.d")
    (etc / "jail.local").write_text(
        JAIL.format(directory=directory).replace("action =\n", "action = log\n")
    )
    sock, log_file, db = root / "gardien.sock", root / "gardien.log", root / "gardien.sqlite3"
    for path in (log_file, db):
        path.unlink(missing_ok=True)
    env = dict(os.environ)
    if reader == "cysystemd":
        env["GARDIEN_NO_NATIVE"] = "1"
    argv = [sys.executable, "-m", "gardien", "-c", str(etc), "-s", str(sock), "run",
            "--dbfile", str(db), "--pidfile", str(root / "gardien.pid"),
            "--logtarget", str(log_file)]  # fmt: skip

    def status() -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-m", "gardien", "-s", str(sock), "status", "--json", "sshd"],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        found = json.loads(out.stdout)
        return int(found["total_banned"]), int(found["total_failed"])

    return measure(Run(f"gardien ({reader} reader)"), argv, env, status, log_file, settle_seconds)


def run_fail2ban(root: Path, directory: Path, settle_seconds: float) -> Run:
    conf = root / "fail2ban-etc"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(FAIL2BAN, conf, ignore=shutil.ignore_patterns("jail.d", "*.local"))
    (conf / "jail.d").mkdir()
    (conf / "jail.local").write_text(JAIL.format(directory=directory))
    sock, log_file, db = root / "f2b.sock", root / "f2b.log", root / "f2b.sqlite3"
    for path in (log_file, db):
        path.unlink(missing_ok=True)
    (conf / "fail2ban.local").write_text(
        f"[Definition]\nlogtarget = {log_file}\nsocket = {sock}\npidfile = {root / 'f2b.pid'}\n"
        f"dbfile = {db}\n"
    )
    argv = ["fail2ban-server", "-f", "-x", "-c", str(conf), "-s", str(sock),
            "-p", str(root / "f2b.pid"), "--logtarget", str(log_file)]  # fmt: skip

    def status() -> tuple[int, int]:
        out = subprocess.run(
            ["fail2ban-client", "-s", str(sock), "status", "sshd"],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        banned = re.search(r"Total banned:\s+(\d+)", out.stdout)
        failed = re.search(r"Total failed:\s+(\d+)", out.stdout)
        if banned is None or failed is None:
            raise ValueError(out.stdout)
        return int(banned[1]), int(failed[1])

    return measure(Run("fail2ban-server"), argv, dict(os.environ), status, log_file, settle_seconds)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reader", choices=("native", "cysystemd"), default="native")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds without a new ban")
    parser.add_argument("--only", choices=("gardien", "fail2ban"), default=None)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the journal and configurations")
    return parser.parse_args(argv)


def checks() -> Iterator[str]:
    if os.geteuid() != 0:
        yield "run as root (journald, namespaces, cgroups)"
    for tool in ("unshare", "nsenter", "journalctl", "fail2ban-server", "fail2ban-client"):
        if shutil.which(tool) is None:
            yield f"{tool} is missing"
    if not os.access(JOURNALD, os.X_OK):
        yield f"{JOURNALD} is missing (apt-get install systemd)"
    if not (FAIL2BAN / "filter.d" / "sshd.conf").is_file():
        yield "fail2ban is not installed (apt-get install fail2ban python3-systemd)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = list(checks())
    if problems:
        log("; ".join(problems))
        return 1
    root = Path(tempfile.mkdtemp(prefix="gardien-bench-journal-", dir=args.work_dir))
    journald = Journald(root / "journald")
    journald.root.mkdir()
    try:
        lines = sshd_lines(args.entries)
        journald.start()
        started = time.perf_counter()
        journald.write(lines)
        log(f"journald wrote {len(lines)} entries in {time.perf_counter() - started:.1f} s")
        count, units = count_entries(journald.directory)
        log(f"the sshd journalmatch selects {count} entries (units {sorted(units)})")
        if count != args.entries:
            raise BenchError(f"expected {args.entries} entries, the journal has {count}")
        runs: dict[str, list[Run]] = {"gardien": [], "fail2ban": []}
        for number in range(args.runs):
            for tool in ("gardien", "fail2ban"):
                if args.only not in (None, tool):
                    continue
                if tool == "gardien":
                    run = run_gardien(root, journald.directory, args.reader, args.settle)
                else:
                    run = run_fail2ban(root, journald.directory, args.settle)
                runs[tool].append(run)
                log(
                    f"run {number + 1}: {run.tool}: {len(run.bans)} bans, {run.failed} "
                    f"failures, last ban after {run.seconds:.2f} s: "
                    f"{count / run.seconds:,.0f} entries/s"
                )
        report: dict[str, object] = {"entries": count, "reader": args.reader}
        for tool, done in runs.items():
            if done:
                median = statistics.median(run.seconds for run in done)
                report[tool] = {
                    "seconds": [round(run.seconds, 3) for run in done],
                    "median_seconds": round(median, 3),
                    "entries_per_second": round(count / median),
                    "bans": len(done[-1].bans),
                    "failures": done[-1].failed,
                }
        if runs["gardien"] and runs["fail2ban"]:
            ours, theirs = runs["gardien"][-1], runs["fail2ban"][-1]
            # "Total failed" differs by design: fail2ban also counts the failures of addresses
            # banned already, gardien does not
            same = sorted(ours.bans) == sorted(theirs.bans)
            g, f = report["gardien"], report["fail2ban"]
            ratio = f["median_seconds"] / g["median_seconds"]  # type: ignore[index]
            report["ratio"] = round(ratio, 2)
            report["identical_bans"] = same
            print(f"entries: {count}; gardien {g['entries_per_second']:,} entries/s, "  # type: ignore[index]
                  f"fail2ban-server {f['entries_per_second']:,} entries/s: {ratio:.1f}x; "  # type: ignore[index]
                  f"identical bans: {same}")  # fmt: skip
        if args.json:
            print(json.dumps(report, indent=2))
        return 0
    except BenchError as error:
        log(str(error))
        return 1
    finally:
        journald.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

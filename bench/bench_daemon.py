"""Benchmark the running daemon from outside: ban latency, a log flood, and restoring bans.

Each benchmark starts the real daemon as a process (``python -m gardien -c ETC -s SOCKET run
--dbfile DB --pidfile PID --logtarget LOG``, with this script's interpreter) on a temporary
configuration with one jail (``filter = asterisk``, ``action = log``, ``findtime = 10m``,
``bantime = 1h``, a log file in the temporary directory), and measures it as an administrator
would see it:

a. **failure -> ban latency** (``maxretry = 1``): one asterisk failure line is appended for a
   new address, and the time until the daemon's own log (its ``logtarget`` file) says
   ``[jail] Ban ADDR`` is measured, ``--bans`` times, one after the other. The daemon log is
   followed with inotify (``--wait inotify``, the default: the script sleeps in ``select``
   until the file is written, then reads it with ``os.pread``) or with a loop of ``os.pread``
   that never sleeps (``--wait spin``, which costs one CPU). The latency is taken from
   ``time.perf_counter`` right after ``os.write`` returned to the moment the read that
   brought the ``Ban`` line returned; the log record's own timestamp (millisecond
   resolution, wall clock) gives a second figure that leaves out the time to write and read
   the record. Prints p50, p95, p99 and max; the target is p99 <= 20 ms.
b. **flood** (``maxretry = 5``): a generator process appends realistic asterisk lines
   (:mod:`genlogs` templates, ~5% failures) at ``--flood-rate`` lines/s (100,000) for
   ``--flood-seconds`` (30), in batches every 10 ms, with the current time. Failures come
   from a window of 2,000 addresses of 198.18.0.0/15 that slides by 200 addresses a second,
   so about 200 addresses a second reach their fifth failure and are banned. Every second
   the script samples the daemon's RSS (``VmRSS`` in ``/proc/PID/status``), its CPU time
   (``/proc/PID/stat``) and its backlog, the bytes written but not read yet, two ways:

   - *bans* (the one shown and judged): the file size minus the end of the last line that
     caused a ban whose ``Ban`` record the daemon had written by then. The generator knows
     which line is each address's fifth failure, so this is a lower bound of the read
     position, late by at most the time between two bans plus the time to store a ban: an
     upper bound of the backlog;
   - *io*: the file size minus ``rchar`` in ``/proc/PID/io`` (bytes the daemon read through
     ``read``/``pread`` since the flood started). It counts every read, not only the log's:
     SQLite's page reads add some 10-15% (seen with ``strace``), so it is only a fallback
     for when no ban comes, and the table shows it as "read MB".

   (``gardien status`` does not give offsets, so the store's checkpoint of the log, stored with
   each batch, is checked at the end only.) After the flood, five failures of a sentinel
   address are written, and the time until it is banned says when the daemon had read
   everything (the drain time). Prints the table per second, the latency of the flood's bans,
   and a verdict: the backlog is not growing over the last 10 seconds of the flood (least-
   squares slope below 1% of the input rate) and the RSS stays bounded (max/min over the flood
   at most ``--rss-ratio``).
c. **restore**: a store with ``--restore-bans`` (100,000) active bans of the jail is made
   with ``SQLiteBanStore.add_bans`` (in batches of 5,000); for each of ``--restore-runs``
   (3) runs a copy of it is given to a new daemon, and the time from starting the process
   until ``ping`` answers and ``status JAIL`` reports every ban is measured (the script
   speaks the control protocol itself, as ``gardien ping`` and ``gardien status --json``
   do, every 10 ms; the last run is checked with the real ``gardien status --json JAIL``).
   The median is compared with the 5 s target. The same start with an empty store, and the
   interpreter with gardien's command line imported, are timed too, to tell what the bans
   cost from what any start costs.

``--profile`` (``auto``: only for a missed target) then measures inside one process, with the
daemon imported (``gardien.daemon.server.Daemon``) and ``cProfile``: for (a) the time from
the write to the daemon's read, to the ban decision, to the stored ban and to the ``Ban``
record, with the in-memory store and with SQLite; for (b) how many flood lines a second the
daemon's pipeline handles at most; for (c) where the start-up time goes. Nothing of the
daemon is changed: the profile only wraps a few of its objects' methods to take times.

Exit status: 0 when every benchmark ran; 1 when one failed (the daemon did not start, a ban
never came); with ``--strict``, 1 also when a target is missed.

Usage::

    python bench/bench_daemon.py                      # (a), (b) and (c)
    python bench/bench_daemon.py --only a --bans 200 --wait spin
    python bench/bench_daemon.py --only b --flood-seconds 10
    python bench/bench_daemon.py --only c --profile always --json > restore.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import ipaddress
import json
import logging
import multiprocessing
import os
import platform
import pstats
import random
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import genlogs
from bench_store import make_bans
from gardien.config.filters import load_filter
from gardien.daemon.control import ControlClient
from gardien.daemon.logs import NOTICE, configure_logging
from gardien.daemon.server import Daemon
from gardien.errors import ControlError
from gardien.jails import Jail
from gardien.matching.filter import Filter
from gardien.model import Ban
from gardien.settings import DaemonSettings
from gardien.store import MemoryBanStore, SQLiteBanStore
from gardien.store.base import BanStore

JAIL = "asterisk-bench"
TARGET_P99_MS = 20.0
TARGET_RESTORE_S = 5.0
LATENCY_NET = int(ipaddress.IPv4Address("198.18.0.0"))  # RFC 2544 benchmarking range
FLOOD_NET = int(ipaddress.IPv4Address("198.18.0.0"))
FLOOD_SPAN = 1 << 17  # 198.18.0.0/15
FLOOD_WINDOW = 2000  # addresses failing at any time
FLOOD_NEW_PER_SECOND = 200  # addresses entering the window each second
FLOOD_MAXRETRY = 5
SENTINEL = "203.0.113.254"
BATCH_SECONDS = 0.01
MARK = "@@HOST@@"
JAIL_TEMPLATE = """\
[{jail}]
enabled  = true
filter   = asterisk
action   = log
logpath  = {logpath}
maxretry = {maxretry}
findtime = 10m
bantime  = 1h
"""
_LIVE: set[subprocess.Popen[bytes]] = set()


class BenchError(Exception):
    """The daemon did not start, died, or never banned what it should have."""


def log(message: str) -> None:
    """Progress output (stderr, so that ``--json`` output stays clean)."""
    print(message, file=sys.stderr, flush=True)


def failure_line(address: str, when: float | None = None) -> bytes:
    """An asterisk chan_sip failed registration from ``address``, dated ``when`` (now)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    return (
        f'[{stamp}] NOTICE[2104] chan_sip.c: Registration from \'"1001" '
        f"<sip:1001@192.0.2.10>' failed for '{address}:5060' - Wrong password\n"
    ).encode()


def percentile(values: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (inclusive method; the value itself for one sample)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def distribution(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of ``values`` (milliseconds), rounded."""
    if not values:
        return {}
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def record_time(line: str) -> float:
    """The wall-clock time of a daemon log record (``2024-05-01 10:00:00,123 ...``)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


# --------------------------------------------------------------------------- the daemon


class Sandbox:
    """A temporary configuration directory with one jail, its log file, store and daemon log.

    The jail's log and the daemon's own log are in different directories, so that the daemon's
    inotify watch on its logpath's directory does not wake it for its own records.
    """

    def __init__(self, root: Path, *, maxretry: int) -> None:
        self.root = root
        self.etc = root / "etc"
        self.logpath = root / "var" / "log" / "asterisk" / "messages"
        self.daemon_log = root / "daemon" / "gardien.log"
        self.output = root / "daemon" / "output.txt"
        self.socket = root / "run" / "gardien.sock"
        self.pidfile = root / "run" / "gardien.pid"
        self.db = root / "lib" / "gardien.sqlite3"
        (self.etc / "jail.d").mkdir(parents=True)
        self.logpath.parent.mkdir(parents=True)
        self.daemon_log.parent.mkdir(parents=True)
        self.logpath.write_bytes(b"")
        # the sshd jail of the bundled defaults is not wanted here
        (self.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
        (self.etc / "jail.d" / "bench.conf").write_text(
            JAIL_TEMPLATE.format(jail=JAIL, logpath=self.logpath, maxretry=maxretry)
        )

    def argv(self) -> list[str]:
        """The daemon's command line."""
        return [
            sys.executable,
            "-m",
            "gardien",
            "-c",
            str(self.etc),
            "-s",
            str(self.socket),
            "run",
            "--dbfile",
            str(self.db),
            "--pidfile",
            str(self.pidfile),
            "--logtarget",
            str(self.daemon_log),
        ]

    def settings(self) -> DaemonSettings:
        """The same settings, for a daemon run inside this process."""
        return DaemonSettings(
            socket=str(self.socket),
            pidfile=str(self.pidfile),
            dbfile=str(self.db),
            logtarget=str(self.daemon_log),
        )


@contextlib.contextmanager
def sandbox(args: argparse.Namespace, name: str, *, maxretry: int) -> Iterator[Sandbox]:
    """A :class:`Sandbox` in a new directory under ``--work-dir``, removed afterwards unless
    ``--keep``."""
    root = Path(tempfile.mkdtemp(prefix=f"gardien-bench-{name}-", dir=args.work_dir))
    try:
        yield Sandbox(root, maxretry=maxretry)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


class DaemonProcess:
    """The daemon of a :class:`Sandbox`, as a child process that is always killed in the end."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> float:
        """Start the process; return the ``perf_counter`` time just before."""
        with self.box.output.open("ab") as output:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                self.box.argv(), stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        _LIVE.add(self.process)
        return self.started

    def client(self, timeout: float = 30.0) -> ControlClient:
        return ControlClient(self.box.socket, timeout=timeout)

    def check_alive(self) -> None:
        """Raise :class:`BenchError` with the daemon's output if it has exited."""
        if self.process is not None and self.process.poll() is not None:
            output = self.box.output.read_text(errors="replace").strip().splitlines()[-10:]
            raise BenchError(
                f"the daemon exited with status {self.process.returncode}:\n" + "\n".join(output)
            )

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.01) -> float:
        """Wait until ``ping`` answers ``pong``; return the ``perf_counter`` time of the answer."""
        deadline = time.perf_counter() + timeout
        client = self.client(timeout=5.0)
        while time.perf_counter() < deadline:
            self.check_alive()
            with contextlib.suppress(ControlError):
                if client.call("ping") == "pong":
                    return time.perf_counter()
            time.sleep(interval)
        raise BenchError(f"the daemon did not answer ping within {timeout:g} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _LIVE.discard(process)


def _kill_live() -> None:
    for process in list(_LIVE):
        if process.poll() is None:
            process.kill()
            process.wait()
    _LIVE.clear()


@dataclass
class ProcSample:
    """What ``/proc`` says about a process at one moment."""

    rss_kb: int
    rchar: int
    cpu_seconds: float


def proc_sample(pid: int) -> ProcSample:
    """RSS (``VmRSS``), bytes read (``rchar``) and CPU time (user + system) of ``pid``."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    rchar = 0
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            rchar = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcSample(rss, rchar, (int(fields[11]) + int(fields[12])) / ticks)


class LogFollower:
    """Reads the daemon's log as it grows and notes each ``[jail] Ban ADDR`` record: when the
    read that brought it returned (``perf_counter``) and the record's own time (wall clock).

    With ``spin`` it reads in a loop that never sleeps; otherwise it sleeps in ``select`` on an
    inotify descriptor watching the file, which wakes it when the daemon writes.
    """

    def __init__(self, path: Path, *, spin: bool = False) -> None:
        self.path = path
        self.bans: dict[str, tuple[float, float]] = {}
        self.records = 0
        self._needle = f"[{JAIL}] Ban ".encode()
        self._fd = os.open(path, os.O_RDONLY)
        self._offset = 0
        self._partial = b""
        self._inotify: Any = None
        if not spin:
            from asyncinotify import InitFlags, Inotify, Mask

            self._inotify = Inotify(flags=InitFlags(os.O_CLOEXEC | os.O_NONBLOCK))
            self._inotify.add_watch(path, Mask.MODIFY)

    def close(self) -> None:
        os.close(self._fd)
        if self._inotify is not None:
            self._inotify.close()

    def poll(self) -> int:
        """Read what was added; return how many ``Ban`` records it held."""
        found = 0
        while True:
            data = os.pread(self._fd, 1 << 20, self._offset)
            if not data:
                return found
            when = time.perf_counter()
            self._offset += len(data)
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            self.records += len(lines)
            for line in lines:
                at = line.find(self._needle)
                if at >= 0:
                    address = line[at + len(self._needle) :].decode()
                    self.bans.setdefault(address, (when, record_time(line.decode())))
                    found += 1

    def wait_for_ban(self, address: str, timeout: float) -> tuple[float, float] | None:
        """The read time and record time of the ban of ``address``; None after ``timeout``."""
        deadline = time.perf_counter() + timeout
        while True:
            self.poll()
            seen = self.bans.get(address)
            if seen is not None:
                return seen
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            if self._inotify is not None:
                fd = self._inotify.fd
                ready, _, _ = select.select([fd], [], [], remaining)
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(fd, 65536):
                            pass


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --------------------------------------------------------------------------- (a) latency


@dataclass
class LatencyResult:
    """Benchmark (a)."""

    bans: int
    warmup: int
    wait: str
    missed: int = 0
    read_ms: list[float] = field(default_factory=list)
    record_ms: list[float] = field(default_factory=list)
    profile: dict[str, Any] | None = None

    @property
    def p99(self) -> float | None:
        return percentile(self.read_ms, 99) if self.read_ms else None

    @property
    def met(self) -> bool:
        return self.missed == 0 and self.p99 is not None and self.p99 <= TARGET_P99_MS

    def as_dict(self) -> dict[str, Any]:
        return {
            "bans": self.bans,
            "warmup": self.warmup,
            "wait": self.wait,
            "missed": self.missed,
            "latency_ms": distribution(self.read_ms),
            "record_latency_ms": distribution(self.record_ms),
            "target_p99_ms": TARGET_P99_MS,
            "met": self.met,
            "profile": self.profile,
        }


def latency_address(index: int) -> str:
    """The ``index``-th address of the latency benchmark (198.18.0.1 onwards)."""
    return str(ipaddress.IPv4Address(LATENCY_NET + 1 + index))


def bench_latency(args: argparse.Namespace) -> LatencyResult:
    """(a): append one failure, wait for its ``Ban`` record; ``--bans`` times."""
    result = LatencyResult(args.bans, args.warmup, args.wait)
    with sandbox(args, "latency", maxretry=1) as box, DaemonProcess(box) as daemon:
        daemon.start()
        daemon.wait_ready()
        follower = LogFollower(box.daemon_log, spin=args.wait == "spin")
        fd = os.open(box.logpath, os.O_WRONLY | os.O_APPEND)
        try:
            total = args.warmup + args.bans
            for index in range(total):
                address = latency_address(index)
                line = failure_line(address)
                wall = time.time()
                write_all(fd, line)
                written = time.perf_counter()
                seen = follower.wait_for_ban(address, args.ban_timeout)
                if seen is None:
                    daemon.check_alive()
                    result.missed += 1
                    log(f"(a) no ban of {address} within {args.ban_timeout:g} s")
                    continue
                if index >= args.warmup:
                    result.read_ms.append((seen[0] - written) * 1000)
                    result.record_ms.append((seen[1] - wall) * 1000)
                if (index + 1) % 200 == 0:
                    log(f"(a) {index + 1}/{total} bans")
                if args.gap_ms:
                    time.sleep(args.gap_ms / 1000)
        finally:
            os.close(fd)
            follower.close()
    return result


# --------------------------------------------------------------------------- (b) flood


class _MarkedGen(genlogs.Gen):
    """genlogs' generator with a placeholder instead of an attacker address."""

    def attacker(self) -> str:
        return MARK


class FloodLines:
    """Realistic asterisk lines, ~``failure_rate`` of them failures, dated with the stamp given.

    Normal lines come from genlogs' templates; failures from its failure templates with the
    address replaced. The ``k``-th failure comes from one of ``FLOOD_WINDOW`` addresses
    starting at ``k * slide``, so that new addresses keep arriving. The class counts failures
    per address and says which line is the ``maxretry``-th failure of an address: the line
    that makes the daemon ban it.
    """

    def __init__(
        self, seed: int, failure_rate: float, slide: float, maxretry: int = FLOOD_MAXRETRY
    ) -> None:
        rng = random.Random(seed)
        gen = _MarkedGen(rng, attackers=1)
        gen.now = int(time.time() - genlogs.START.timestamp())  # EventTV fields near now
        normal = rng.choices(
            [fn for _, fn in genlogs.ASTERISK_NORMAL],
            weights=[w for w, _ in genlogs.ASTERISK_NORMAL],
            k=20_000,
        )
        failures = rng.choices(
            [fn for _, fn in genlogs.ASTERISK_FAILURES],
            weights=[w for w, _ in genlogs.ASTERISK_FAILURES],
            k=2_000,
        )
        self.normal = [(fn(gen) + "\n").encode() for fn in normal]
        self.failures: list[tuple[bytes, bytes]] = []
        for fn in failures:
            before, after = (fn(gen) + "\n").split(MARK)
            self.failures.append((before.encode(), after.encode()))
        self.failure_rate = failure_rate
        self.slide = slide
        self.maxretry = maxretry
        self.offset = 0  # bytes produced so far
        self.failure_count = 0
        self._counts: dict[int, int] = {}
        self._rng = random.Random(seed + 1)

    @staticmethod
    def address(index: int) -> str:
        value = FLOOD_NET + index % FLOOD_SPAN
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"

    def batch(self, count: int, stamp: bytes) -> tuple[bytes, list[tuple[str, int]]]:
        """``count`` lines, and (address, offset after the line) of each ban they cause."""
        rng, rate, normal, failures = (
            self._rng.random,
            self.failure_rate,
            self.normal,
            self.failures,
        )
        parts: list[bytes] = []
        triggers: list[tuple[str, int]] = []
        offset = self.offset
        for _ in range(count):
            if rng() < rate:
                index = int(self.failure_count * self.slide) + int(rng() * FLOOD_WINDOW)
                self.failure_count += 1
                before, after = failures[int(rng() * len(failures))]
                address = self.address(index)
                line = stamp + before + address.encode() + after
                seen = self._counts.get(index % FLOOD_SPAN, 0) + 1
                self._counts[index % FLOOD_SPAN] = seen
                offset += len(line)
                if seen == self.maxretry:
                    triggers.append((address, offset))
            else:
                line = stamp + normal[int(rng() * len(normal))]
                offset += len(line)
            parts.append(line)
        self.offset = offset
        return b"".join(parts), triggers


def stamp_now() -> bytes:
    return time.strftime("[%Y-%m-%d %H:%M:%S] ").encode()


def flood_lines(args: argparse.Namespace) -> FloodLines:
    failures_per_second = args.flood_rate * args.failure_rate
    slide = FLOOD_NEW_PER_SECOND / failures_per_second if failures_per_second else 0.0
    return FloodLines(args.seed, args.failure_rate, slide)


def check_flood_lines(lines: FloodLines, config_dir: Path) -> None:
    """Every failure template gives one failure of the right address dated now, and normal
    lines none, with gardien's own asterisk filter (else the expected bans would be wrong)."""
    matcher = Filter(load_filter("asterisk", config_dir)).matcher()
    now, stamp = time.time(), stamp_now()
    for before, after in lines.failures:
        line = (stamp + before + b"198.18.7.9" + after).decode().rstrip("\n")
        found = matcher.process(line).failures
        if [f.host for f in found] != ["198.18.7.9"] or abs((found[0].time or 0) - now) > 5:
            raise BenchError(f"flood failure line not matched as expected: {line!r} -> {found}")
    for body in lines.normal[:5000]:
        line = (stamp + body).decode().rstrip("\n")
        if matcher.process(line).failures:
            raise BenchError(f"flood normal line matched the filter: {line!r}")


def flood_writer(
    args: argparse.Namespace,
    path: str,
    result_path: str,
    ready: Any,
    go: Any,
) -> None:
    """The generator process: ``--flood-rate`` lines/s into ``path`` for ``--flood-seconds``,
    in batches every 10 ms, then the sentinel's failures; writes what it did as JSON."""
    lines = flood_lines(args)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    triggers: list[tuple[str, int, float]] = []
    ready.set()
    go.wait()
    start_wall, start, cpu = time.time(), time.monotonic(), time.process_time()
    total = int(args.flood_rate * args.flood_seconds)
    written = behind = 0
    tick = 0
    while written < total:
        elapsed = time.monotonic() - start
        due = min(total, int(elapsed * args.flood_rate)) - written
        if due > 0:
            data, caused = lines.batch(due, stamp_now())
            write_all(fd, data)
            now = time.time()
            triggers += [(address, offset, now) for address, offset in caused]
            written += due
        behind = max(behind, int((time.monotonic() - start) * args.flood_rate) - written)
        tick += 1
        pause = start + tick * BATCH_SECONDS - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    end_wall = time.time()
    sentinel = b"".join(failure_line(SENTINEL) for _ in range(FLOOD_MAXRETRY))
    write_all(fd, sentinel)
    sentinel_wall = time.time()
    os.close(fd)
    report = {
        "lines": written,
        "bytes": lines.offset,
        "failures": lines.failure_count,
        "start_wall": start_wall,
        "end_wall": end_wall,
        "seconds": end_wall - start_wall,
        "max_behind_lines": behind,
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "sentinel_wall": sentinel_wall,
        "sentinel_offset": lines.offset + len(sentinel),
        "triggers": triggers,
    }
    Path(result_path).write_text(json.dumps(report))


@dataclass
class FloodSample:
    """One second of benchmark (b)."""

    second: float
    wall: float
    size: int
    read_io: int
    rss_kb: int
    cpu_percent: float
    bans: int
    read_bans: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FloodResult:
    """Benchmark (b)."""

    rate: int
    seconds: float
    samples: list[FloodSample] = field(default_factory=list)
    generator: dict[str, Any] = field(default_factory=dict)
    expected_bans: int = 0
    bans: int = 0
    ban_latency_ms: list[float] = field(default_factory=list)
    drain_seconds: float | None = None
    stored_offset: int | None = None
    final_size: int = 0
    rss_ratio_limit: float = 2.0
    profile: dict[str, Any] | None = None

    def flood_samples(self) -> list[FloodSample]:
        return [s for s in self.samples if s.second <= self.seconds + 1e-6]

    def backlog_slope(self, key: Callable[[FloodSample], int]) -> float | None:
        """Least-squares slope (bytes/s) of the backlog over the last 10 s of the flood."""
        tail = self.flood_samples()[-11:]
        if len(tail) < 3:
            return None
        xs = [s.second for s in tail]
        ys = [float(s.size - key(s)) for s in tail]
        return statistics.linear_regression(xs, ys).slope

    @property
    def input_rate(self) -> float:
        """Bytes written per second during the flood."""
        seconds = self.generator.get("seconds") or self.seconds
        return float(self.generator.get("bytes", 0)) / seconds if seconds else 0.0

    @property
    def verdict_slope(self) -> float | None:
        """The slope the verdict is based on: of the backlog from the bans (an upper bound),
        or, when no ban came in the last 10 s, from rchar (which also counts SQLite's reads)."""
        tail = self.flood_samples()[-11:]
        bans_flowing = len(tail) >= 2 and tail[-1].read_bans > tail[0].read_bans
        return self.backlog_slope(lambda s: s.read_bans if bans_flowing else s.read_io)

    @property
    def backlog_ok(self) -> bool:
        """The backlog did not grow by more than 1% of the input over the last 10 s."""
        slope = self.verdict_slope
        return slope is not None and slope <= 0.01 * self.input_rate

    @property
    def rss_ratio(self) -> float | None:
        rss = [s.rss_kb for s in self.flood_samples() if s.rss_kb]
        return max(rss) / min(rss) if rss else None

    @property
    def met(self) -> bool:
        ratio = self.rss_ratio
        return (
            self.backlog_ok
            and ratio is not None
            and ratio <= self.rss_ratio_limit
            and self.bans == self.expected_bans
        )

    def as_dict(self) -> dict[str, Any]:
        io_slope = self.backlog_slope(lambda s: s.read_io)
        ban_slope = self.backlog_slope(lambda s: s.read_bans)
        generator = {k: v for k, v in self.generator.items() if k != "triggers"}
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "generator": generator,
            "input_bytes_per_second": round(self.input_rate),
            "expected_bans": self.expected_bans,
            "bans": self.bans,
            "ban_latency_ms": distribution(self.ban_latency_ms),
            "drain_seconds": self.drain_seconds,
            "stored_offset": self.stored_offset,
            "final_size": self.final_size,
            "backlog_slope_io_bytes_per_s": round(io_slope) if io_slope is not None else None,
            "backlog_slope_bans_bytes_per_s": round(ban_slope) if ban_slope is not None else None,
            "backlog_ok": self.backlog_ok,
            "rss_ratio": round(self.rss_ratio, 3) if self.rss_ratio else None,
            "rss_ratio_limit": self.rss_ratio_limit,
            "met": self.met,
            "samples": [s.as_dict() for s in self.samples],
            "profile": self.profile,
        }


def stored_offset(db: Path) -> int | None:
    """The read position the daemon last saved for the jail's log (read-only)."""
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return None
    try:
        try:  # a file source's checkpoint (schema 3 on)
            row = connection.execute(
                "SELECT json_extract(state, '$.offset') FROM checkpoints"
                " WHERE jail = ? AND source LIKE 'file:%'",
                (JAIL,),
            ).fetchone()
        except sqlite3.OperationalError:  # a store of an older gardien
            row = connection.execute(
                "SELECT offset FROM file_positions WHERE jail = ?", (JAIL,)
            ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return int(row[0]) if row else None


def bench_flood(args: argparse.Namespace) -> FloodResult:
    """(b): a generator floods the log; the daemon is sampled every second."""
    result = FloodResult(args.flood_rate, args.flood_seconds, rss_ratio_limit=args.rss_ratio)
    context = multiprocessing.get_context("fork")
    with sandbox(args, "flood", maxretry=FLOOD_MAXRETRY) as box, DaemonProcess(box) as daemon:
        check_flood_lines(flood_lines(args), box.etc)
        result_path = box.root / "generator.json"
        ready, go = context.Event(), context.Event()
        writer = context.Process(
            target=flood_writer,
            args=(args, str(box.logpath), str(result_path), ready, go),
            daemon=True,
        )
        daemon.start()
        daemon.wait_ready()
        follower = LogFollower(box.daemon_log, spin=True)  # polled once a second: no waiting
        writer.start()
        try:
            if not ready.wait(60):
                raise BenchError("the flood generator did not get ready")
            time.sleep(0.5)  # let the daemon settle after start
            base = proc_sample(daemon.pid)
            start = time.perf_counter()
            go.set()
            log(f"(b) flooding {args.flood_rate:,} lines/s for {args.flood_seconds:g} s ...")
            result.samples = sample_flood(args, daemon, follower, base, start)
            writer.join(30)
            if writer.exitcode != 0:
                raise BenchError(f"the flood generator failed (exit status {writer.exitcode})")
            result.generator = json.loads(result_path.read_text())
            daemon.stop()  # SIGTERM: the daemon saves its file positions as it stops
            result.stored_offset = stored_offset(box.db)
            result.final_size = box.logpath.stat().st_size
        finally:
            if writer.is_alive():
                writer.kill()
                writer.join()
            follower.close()
    analyse_flood(result, follower)
    return result


def sample_flood(
    args: argparse.Namespace,
    daemon: DaemonProcess,
    follower: LogFollower,
    base: ProcSample,
    start: float,
) -> list[FloodSample]:
    """Sample every second during the flood, then until the sentinel is banned."""
    samples = [FloodSample(0.0, time.time(), 0, 0, base.rss_kb, 0.0, len(follower.bans))]
    previous_cpu, previous_time = base.cpu_seconds, start
    second = 0
    drain_deadline = args.flood_seconds + args.drain_timeout
    while True:
        second += 1
        pause = start + second - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        daemon.check_alive()
        now = time.perf_counter()
        proc = proc_sample(daemon.pid)
        follower.poll()
        cpu = 100 * (proc.cpu_seconds - previous_cpu) / (now - previous_time)
        previous_cpu, previous_time = proc.cpu_seconds, now
        sample = FloodSample(
            second=round(now - start, 3),
            wall=time.time(),
            size=daemon.box.logpath.stat().st_size,
            read_io=proc.rchar - base.rchar,
            rss_kb=proc.rss_kb,
            cpu_percent=round(cpu, 1),
            bans=len(follower.bans),
        )
        samples.append(sample)
        backlog = max(0, sample.size - sample.read_io)
        log(
            f"(b) {second:3d}s  written {sample.size / 1e6:7.1f} MB  backlog(io) "
            f"{backlog / 1e6:6.1f} MB  RSS {proc.rss_kb / 1024:6.1f} MB  CPU {cpu:5.1f}%  "
            f"bans {sample.bans}"
        )
        if SENTINEL in follower.bans or second >= drain_deadline:
            return samples


def analyse_flood(result: FloodResult, follower: LogFollower) -> None:
    """Expected versus logged bans, ban latency, drain time, and the bans-based positions."""
    triggers = result.generator.get("triggers", [])
    result.expected_bans = len(triggers)
    result.bans = sum(1 for address in follower.bans if address != SENTINEL)
    # (record time, offset) of each expected ban that was logged, in time order
    logged: list[tuple[float, int]] = []
    for address, offset, written in triggers:
        seen = follower.bans.get(address)
        if seen is not None:
            logged.append((seen[1], offset))
            result.ban_latency_ms.append(max(0.0, (seen[1] - written) * 1000))
    logged.sort()
    sentinel = follower.bans.get(SENTINEL)
    if sentinel is not None:
        result.drain_seconds = round(sentinel[1] - result.generator["end_wall"], 3)
        logged.append((sentinel[1], result.generator["sentinel_offset"]))
    position, index = 0, 0
    for sample in result.samples:
        while index < len(logged) and logged[index][0] <= sample.wall:
            position = max(position, logged[index][1])
            index += 1
        sample.read_bans = position


# --------------------------------------------------------------------------- (c) restore


@dataclass
class RestoreResult:
    """Benchmark (c)."""

    bans: int
    runs: int
    build_seconds: float = 0.0
    ping_seconds: list[float] = field(default_factory=list)
    ready_seconds: list[float] = field(default_factory=list)
    empty_ping_seconds: float | None = None
    import_seconds: float | None = None
    cli_status_seconds: float | None = None
    profile: dict[str, Any] | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.ready_seconds) if self.ready_seconds else None

    @property
    def met(self) -> bool:
        return self.median is not None and self.median <= TARGET_RESTORE_S

    def as_dict(self) -> dict[str, Any]:
        return {
            "bans": self.bans,
            "runs": self.runs,
            "build_seconds": round(self.build_seconds, 3),
            "ping_seconds": [round(s, 3) for s in self.ping_seconds],
            "ready_seconds": [round(s, 3) for s in self.ready_seconds],
            "median_seconds": round(self.median, 3) if self.median is not None else None,
            "empty_store_ping_seconds": self.empty_ping_seconds,
            "import_seconds": self.import_seconds,
            "cli_status_seconds": self.cli_status_seconds,
            "target_seconds": TARGET_RESTORE_S,
            "met": self.met,
            "profile": self.profile,
        }


def build_store(path: Path, count: int, batch: int = 5000) -> None:
    """A store with ``count`` active bans of the jail (bench_store's bans, IPv4 and IPv6)."""
    bans = [dataclasses.replace(ban, jail=JAIL) for ban in make_bans(count, time.time())]
    with SQLiteBanStore(path) as store:
        for first in range(0, len(bans), batch):
            store.add_bans(bans[first : first + batch])


def time_start(box: Sandbox, template: Path | None, expected: int) -> tuple[float, float]:
    """Start a daemon on a copy of ``template`` (an empty store when None); seconds until ping
    answers and until ``status`` reports ``expected`` bans."""
    box.db.unlink(missing_ok=True)
    if template is not None:
        shutil.copyfile(template, box.db)
    with DaemonProcess(box) as daemon:
        started = daemon.start()
        pinged = daemon.wait_ready(timeout=600)
        client = daemon.client(timeout=60)
        while True:
            status = client.call("status", JAIL)
            if status["currently_banned"] >= expected:
                break
            daemon.check_alive()
            time.sleep(0.01)
        ready = time.perf_counter()
    return pinged - started, ready - started


def bench_restore(args: argparse.Namespace) -> RestoreResult:
    """(c): how soon a daemon started on a store of many bans answers with all of them."""
    result = RestoreResult(args.restore_bans, args.restore_runs)
    with sandbox(args, "restore", maxretry=5) as box:
        template = box.root / "template.sqlite3"
        log(f"(c) building a store of {args.restore_bans:,} bans ...")
        began = time.perf_counter()
        build_store(template, args.restore_bans)
        result.build_seconds = time.perf_counter() - began
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gardien.cli, gardien.cli.run"], check=True)
        result.import_seconds = round(time.perf_counter() - began, 3)
        result.empty_ping_seconds = round(time_start(box, None, 0)[0], 3)
        for run in range(1, args.restore_runs + 1):
            pinged, ready = time_start(box, template, args.restore_bans)
            result.ping_seconds.append(pinged)
            result.ready_seconds.append(ready)
            log(f"(c) run {run}/{args.restore_runs}: ping {pinged:.2f} s, all bans {ready:.2f} s")
        # once through the real command line, as an administrator would ask
        shutil.copyfile(template, box.db)
        with DaemonProcess(box) as daemon:
            daemon.start()
            daemon.wait_ready(timeout=600)
            began = time.perf_counter()
            answer = subprocess.run(
                [*box.argv()[:7], "status", "--json", JAIL],
                capture_output=True,
                check=True,
            )
            result.cli_status_seconds = round(time.perf_counter() - began, 3)
            banned = json.loads(answer.stdout)["currently_banned"]
            if banned != args.restore_bans:
                raise BenchError(f"gardien status reports {banned} bans, not {args.restore_bans}")
        if args.profile == "always" or (args.profile == "auto" and not result.met):
            result.profile = profile_restore(box, template)
    return result


# --------------------------------------------------------------------------- profiles


def _short(filename: str) -> str:
    """``gardien/...`` or ``asyncio/...``, not the whole path."""
    for marker in (
        "/site-packages/",
        "/src/",
        f"/python{sys.version_info[0]}.{sys.version_info[1]}/",
    ):
        filename = filename.rsplit(marker, maxsplit=1)[-1]
    return filename


def profile_summary(profile: cProfile.Profile, count: int = 15) -> dict[str, Any]:
    """The functions with the most own time (name, calls, own and cumulative seconds), and the
    time the event loop spent waiting in ``epoll`` (idle, or waiting for a worker thread:
    ``cProfile`` sees only the thread it runs in, not the store's threads)."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows: list[dict[str, Any]] = []
    waiting = 0.0
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "select.epoll" in name:
            waiting += own
            continue
        short = _short(filename)
        rows.append(
            {
                "function": f"{short}:{line}({name})",
                "calls": calls,
                "own_s": round(own, 4),
                "cumulative_s": round(cumulative, 4),
            }
        )
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return {"waiting_in_epoll_s": round(waiting, 4), "top_functions": rows[:count]}


def cumulative_of(profile: cProfile.Profile, steps: dict[str, str]) -> dict[str, float]:
    """Cumulative seconds of each step: label -> ``file:function`` (e.g. ``jail.py:restore``),
    for the functions that ran."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    wanted = {key: label for label, key in steps.items()}
    found: dict[str, float] = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = wanted.get(f"{_short(filename)}:{name}")
        if label is not None:
            found[label] = round(found.get(label, 0.0) + cumulative, 4)
    return {label: found[label] for label in steps if label in found}


@contextlib.contextmanager
def daemon_logging(box: Sandbox) -> Iterator[None]:
    """The daemon's logging set up in this process, as ``gardien run`` does; undone after."""
    handler = configure_logging(box.settings())
    try:
        yield
    finally:
        logging.getLogger("gardien").removeHandler(handler)
        handler.close()


class BanWatch(logging.Handler):
    """Notes the time of each ``Ban`` record and wakes whoever waits for that address."""

    def __init__(self) -> None:
        super().__init__(NOTICE)
        self.times: dict[str, float] = {}
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "[%s] Ban %s":
            when = time.perf_counter()
            address = str(record.args[1]) if isinstance(record.args, tuple) else ""
            self.times[address] = when
            future = self.waiting.pop(address, None)
            if future is not None and not future.done():
                future.set_result(when)

    async def wait(self, address: str, timeout: float) -> float:
        if address in self.times:
            return self.times[address]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[address] = future
        return await asyncio.wait_for(future, timeout)


def instrument(daemon: Daemon, store: BanStore, marks: dict[str, float]) -> None:
    """Wrap the daemon's file reading, ban decisions and store writes to note when each
    happened first (a profile only: the daemon itself is unchanged)."""
    runtime = daemon.jails[JAIL]

    def first(name: str) -> None:
        marks.setdefault(name, time.perf_counter())

    for tail in runtime.tails.values():
        read_block = tail.read_block

        def reading(max_bytes: int | None = None, read: Any = read_block) -> Any:
            block = read(max_bytes)
            if block:
                first("read")
            return block

        setattr(tail, "read_block", reading)  # noqa: B010 (mypy forbids assigning a method)

    def wrap_jail(jail: Jail) -> None:
        add_failure = jail.add_failure

        def adding(failure: Any) -> Ban | None:
            ban = add_failure(failure)
            if ban is not None:
                first("decided")
            return ban

        setattr(jail, "add_failure", adding)  # noqa: B010

    wrap_jail(runtime.jail)
    add_bans = store.add_bans

    def storing(bans: Any) -> None:
        add_bans(bans)
        first("stored")

    setattr(store, "add_bans", storing)  # noqa: B010


async def _latency_inside(box: Sandbox, store: BanStore, count: int) -> dict[str, Any]:
    watch = BanWatch()
    logging.getLogger("gardien").addHandler(watch)
    daemon = Daemon(box.etc, store, settings=box.settings(), socket_path=str(box.socket))
    await daemon.start()
    running = asyncio.ensure_future(daemon.run())
    marks: dict[str, float] = {}
    instrument(daemon, store, marks)
    phases: dict[str, list[float]] = {"read": [], "decided": [], "stored": [], "logged": []}
    fd = os.open(box.logpath, os.O_WRONLY | os.O_APPEND)
    profile = cProfile.Profile()
    try:
        for index in range(count + 5):
            address = latency_address(50_000 + index)
            line = failure_line(address)
            marks.clear()
            profile.enable()
            write_all(fd, line)
            written = time.perf_counter()
            logged = await watch.wait(address, 10)
            profile.disable()
            if index < 5:
                continue
            for name in ("read", "decided", "stored"):
                phases[name].append((marks.get(name, logged) - written) * 1000)
            phases["logged"].append((logged - written) * 1000)
    finally:
        os.close(fd)
        daemon.request_stop()
        await running
        logging.getLogger("gardien").removeHandler(watch)
    return {
        "bans": count,
        "ms_after_write": {name: distribution(values) for name, values in phases.items()},
        **profile_summary(profile, 12),
    }


def profile_latency(args: argparse.Namespace) -> dict[str, Any]:
    """(a) inside this process: when the daemon reads the line, decides, stores and logs."""
    found: dict[str, Any] = {}
    for name in ("memory", "sqlite"):
        with sandbox(args, f"profile-a-{name}", maxretry=1) as box, daemon_logging(box):
            store: BanStore = MemoryBanStore() if name == "memory" else SQLiteBanStore(box.db)
            log(f"(a) profile in-process, {name} store ...")
            found[name] = asyncio.run(_latency_inside(box, store, args.profile_bans))
            if isinstance(store, SQLiteBanStore):
                store.close()
    return found


async def _flood_inside(box: Sandbox, lines: int, data: bytes, profiled: bool) -> dict[str, Any]:
    watch = BanWatch()
    logging.getLogger("gardien").addHandler(watch)
    store = MemoryBanStore()
    daemon = Daemon(box.etc, store, settings=box.settings(), socket_path=str(box.socket))
    await daemon.start()
    running = asyncio.ensure_future(daemon.run())
    fd = os.open(box.logpath, os.O_WRONLY | os.O_APPEND)
    profile = cProfile.Profile()
    try:
        if profiled:
            profile.enable()
        began = time.perf_counter()
        write_all(fd, data)
        done = await watch.wait(SENTINEL, 600)
        profile.disable()
    finally:
        os.close(fd)
        daemon.request_stop()
        await running
        logging.getLogger("gardien").removeHandler(watch)
    seconds = done - began
    found: dict[str, Any] = {
        "lines": lines,
        "seconds": round(seconds, 3),
        "lines_per_second": round(lines / seconds),
        "bans": len(watch.times),
    }
    if profiled:
        found.update(profile_summary(profile))
    return found


def profile_flood(args: argparse.Namespace) -> dict[str, Any]:
    """(b) inside this process: the most lines a second the daemon's pipeline handles (the
    in-memory store), and where its time goes."""
    count = min(int(args.flood_rate * args.flood_seconds), 1_000_000)
    found: dict[str, Any] = {}
    for profiled in (False, True):
        generator = flood_lines(args)
        data, _ = generator.batch(count, stamp_now())
        data += b"".join(failure_line(SENTINEL) for _ in range(FLOOD_MAXRETRY))
        name = "profiled" if profiled else "plain"
        with (
            sandbox(args, f"profile-b-{name}", maxretry=FLOOD_MAXRETRY) as box,
            daemon_logging(box),
        ):
            log(f"(b) profile in-process ({name}): {count:,} lines at once ...")
            found[name] = asyncio.run(_flood_inside(box, count, data, profiled))
    return found


async def _start_inside(box: Sandbox, store: BanStore) -> float:
    daemon = Daemon(box.etc, store, settings=box.settings(), socket_path=str(box.socket))
    began = time.perf_counter()
    await daemon.start()
    elapsed = time.perf_counter() - began
    await daemon.abort()
    return elapsed


RESTORE_STEPS = {
    "Daemon._build (configuration, filter)": "gardien/daemon/server.py:_build",
    "Daemon._start_jail (all of the jail's start)": "gardien/daemon/server.py:_start_jail",
    "  Jail.restore": "gardien/jails/jail.py:restore",
    "  LogAction.ban (re-applies every ban)": "gardien/actions/log.py:ban",
    "    of which logging.Logger.log": "logging/__init__.py:log",
    "ControlServer.start": "gardien/daemon/control.py:start",
    "FileWatcher.start": "gardien/sources/watch.py:start",
}


def profile_restore(box: Sandbox, template: Path) -> dict[str, Any]:
    """(c) inside this process: the daemon's start on a copy of the store, plain and under
    cProfile, with the cumulative time of its main steps."""
    found: dict[str, Any] = {}
    with daemon_logging(box):
        for profiled in (False, True):
            shutil.copyfile(template, box.db)
            profile = cProfile.Profile()
            began = time.perf_counter()
            if profiled:
                profile.enable()
            store = SQLiteBanStore(box.db)
            opened = time.perf_counter() - began
            started = asyncio.run(_start_inside(box, store))
            store.close()
            profile.disable()
            if not profiled:
                found["open_store_s"] = round(opened, 3)
                found["start_s"] = round(started, 3)
                with SQLiteBanStore(box.db) as store:
                    began = time.perf_counter()
                    store.active_bans(time.time(), JAIL)
                    found["store_active_bans_s"] = round(time.perf_counter() - began, 3)
                continue
            found["profiled_start_s"] = round(started, 3)
            found["steps_cumulative_s"] = cumulative_of(profile, RESTORE_STEPS)
            found.update(profile_summary(profile))
    return found


# --------------------------------------------------------------------------- reporting


def render_latency(result: LatencyResult) -> list[str]:
    rows = [f"(a) failure -> ban latency: {len(result.read_ms)} bans (wait: {result.wait})"]
    for title, values in (("read", result.read_ms), ("record", result.record_ms)):
        d = distribution(values)
        if d:
            rows.append(
                f"    {title:<6} ms  p50 {d['p50']:7.2f}  p95 {d['p95']:7.2f}  "
                f"p99 {d['p99']:7.2f}  max {d['max']:7.2f}  mean {d['mean']:7.2f}"
            )
    if result.missed:
        rows.append(f"    {result.missed} ban(s) never came")
    p99 = result.p99
    verdict = "MET" if result.met else "MISSED"
    rows.append(f"    target p99 <= {TARGET_P99_MS:g} ms: {verdict} (p99 {p99 or 0:.2f} ms)")
    if result.profile:
        rows += render_latency_profile(result.profile)
    return rows


def render_latency_profile(profile: dict[str, Any]) -> list[str]:
    rows = ["    in-process profile, ms after the write (p50 / p99):"]
    for store, found in profile.items():
        cells = []
        for phase in ("read", "decided", "stored", "logged"):
            d = found["ms_after_write"][phase]
            cells.append(f"{phase} {d['p50']:.2f}/{d['p99']:.2f}")
        rows.append(f"      {store:<6}  " + "  ".join(cells))
    sqlite = profile["sqlite"]
    rows.append(
        f"      cProfile (sqlite store, {sqlite['bans']} bans): the loop waited "
        f"{sqlite['waiting_in_epoll_s']:.3f} s in epoll; most own time:"
    )
    rows += [
        f"        {f['own_s']:8.4f} s  {f['calls']:>8}  {f['function']}"
        for f in sqlite["top_functions"][:8]
    ]
    return rows


def render_flood(result: FloodResult) -> list[str]:
    rate = result.input_rate
    generator = result.generator
    rows = [
        f"(b) flood: {generator.get('lines', 0):,} lines ({generator.get('failures', 0):,} "
        f"failures), {generator.get('bytes', 0) / 1e6:.1f} MB in "
        f"{generator.get('seconds', 0):.1f} s ({rate / 1e6:.1f} MB/s; the generator used "
        f"{generator.get('cpu_seconds', 0):.1f} s of CPU and was at most "
        f"{generator.get('max_behind_lines', 0):,} lines behind schedule)",
        "    read = rchar (the log and SQLite's pages); backlog = written - the end of the line "
        "that caused the last ban logged (an upper bound)",
        f"    {'s':>5} {'written MB':>10} {'read MB':>8} {'backlog MB':>10} {'backlog s':>9} "
        f"{'RSS MB':>7} {'CPU %':>6} {'bans':>6}",
    ]
    for s in result.samples:
        backlog = max(0, s.size - s.read_bans)
        rows.append(
            f"    {s.second:5.1f} {s.size / 1e6:10.1f} {s.read_io / 1e6:8.1f} "
            f"{backlog / 1e6:10.2f} {(backlog / rate if rate else 0):9.3f} "
            f"{s.rss_kb / 1024:7.1f} {s.cpu_percent:6.1f} {s.bans:>6}"
        )
    d = distribution(result.ban_latency_ms)
    rows.append(f"    bans: {result.bans:,} logged of {result.expected_bans:,} expected")
    if d:
        rows.append(
            f"    ban latency during the flood (record time - write time) ms: p50 {d['p50']:.0f}"
            f"  p95 {d['p95']:.0f}  p99 {d['p99']:.0f}  max {d['max']:.0f}"
        )
    drain = result.drain_seconds
    drained = f"{drain:.2f} s after the flood ended" if drain is not None else "NOT in time"
    stored = "= the file size" if result.stored_offset == result.final_size else "!= the file size"
    rows.append(
        f"    drain: the sentinel ban says everything was read {drained}; offset saved at stop: "
        f"{result.stored_offset} ({stored})"
    )
    slope = result.verdict_slope
    if slope is not None:
        rows.append(
            f"    backlog slope over the last 10 s of the flood: {slope / 1e6:+.3f} MB/s "
            f"({100 * slope / rate if rate else 0:+.2f}% of the input; growing above +1%)"
        )
    ratio = result.rss_ratio or 0.0
    flood = result.flood_samples()
    grown = (flood[-1].rss_kb - flood[0].rss_kb) / 1024 if flood else 0.0
    per_ban = 1024 * grown / max(1, flood[-1].bans) if flood else 0.0
    rows.append(
        f"    RSS {flood[0].rss_kb / 1024 if flood else 0:.1f} -> "
        f"{flood[-1].rss_kb / 1024 if flood else 0:.1f} MB ({per_ban:.2f} kB per ban made)"
    )
    rows.append(
        f"    verdict: backlog {'not growing' if result.backlog_ok else 'GROWING'}; RSS max/min "
        f"{ratio:.2f} ({'bounded' if ratio <= result.rss_ratio_limit else 'NOT bounded'}, "
        f"limit {result.rss_ratio_limit:g}); every expected ban "
        f"{'made' if result.bans == result.expected_bans else 'NOT made'}: "
        f"{'MET' if result.met else 'MISSED'}"
    )
    if result.profile:
        for name, found in result.profile.items():
            rows.append(
                f"    in-process ({name}, memory store): {found['lines']:,} lines in "
                f"{found['seconds']:.2f} s = {found['lines_per_second']:,} lines/s"
            )
        top = result.profile.get("profiled", {}).get("top_functions", [])
        rows += [f"        {f['own_s']:8.3f} s  {f['calls']:>9}  {f['function']}" for f in top[:10]]
    return rows


def render_restore(result: RestoreResult) -> list[str]:
    median = result.median
    rows = [
        f"(c) restore {result.bans:,} bans (store built in {result.build_seconds:.1f} s)",
        "    ping answered after (s): " + ", ".join(f"{s:.2f}" for s in result.ping_seconds),
        "    all bans reported after (s): " + ", ".join(f"{s:.2f}" for s in result.ready_seconds),
        f"    for comparison: empty store, ping after {result.empty_ping_seconds} s; "
        f"interpreter + gardien CLI import {result.import_seconds} s; "
        f"`gardien status --json` with {result.bans:,} bans {result.cli_status_seconds} s",
        f"    median {median or 0:.2f} s; target <= {TARGET_RESTORE_S:g} s: "
        f"{'MET' if result.met else 'MISSED'}",
    ]
    if result.profile:
        p = result.profile
        rows.append(
            f"    in-process: open store {p['open_store_s']} s, store.active_bans alone "
            f"{p['store_active_bans_s']} s, Daemon.start {p['start_s']} s (under cProfile "
            f"{p['profiled_start_s']} s); cumulative under cProfile (main thread only):"
        )
        rows += [f"        {v:8.3f} s  {k}" for k, v in p["steps_cumulative_s"].items()]
        rows.append(
            f"      waiting in epoll (for the store's thread) {p['waiting_in_epoll_s']:.3f} s; "
            "most own time:"
        )
        rows += [
            f"        {f['own_s']:8.3f} s  {f['calls']:>9}  {f['function']}"
            for f in p["top_functions"][:10]
        ]
    return rows


def environment() -> dict[str, Any]:
    """Where the numbers were measured, and which gardien (the repository's commit)."""
    commit = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit or None,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--only", choices=("a", "b", "c"), action="append", help="repeatable")
    p.add_argument("--bans", type=int, default=1000, help="(a) bans measured")
    p.add_argument("--warmup", type=int, default=20, help="(a) bans made first, not counted")
    p.add_argument("--wait", choices=("inotify", "spin"), default="inotify", help="(a)")
    p.add_argument("--gap-ms", type=float, default=0.0, help="(a) pause between two bans")
    p.add_argument("--ban-timeout", type=float, default=5.0, help="(a) seconds per ban")
    p.add_argument("--flood-rate", type=int, default=100_000, help="(b) lines per second")
    p.add_argument("--flood-seconds", type=float, default=30.0, help="(b)")
    p.add_argument("--failure-rate", type=float, default=0.05, help="(b)")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="(b) seconds")
    p.add_argument("--rss-ratio", type=float, default=2.0, help="(b) max/min RSS allowed")
    p.add_argument("--seed", type=int, default=1, help="(b)")
    p.add_argument("--restore-bans", type=int, default=100_000, help="(c)")
    p.add_argument("--restore-runs", type=int, default=3, help="(c)")
    p.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="in-process profile: for missed targets (auto), always or never",
    )
    p.add_argument("--profile-bans", type=int, default=200, help="(a) bans in the profile")
    p.add_argument("--work-dir", type=Path, default=None, help="parent of temporary dirs")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = p.parse_args(argv)
    args.only = sorted(set(args.only or ("a", "b", "c")))
    if args.bans < 1 or args.restore_bans < 1 or args.restore_runs < 1 or args.flood_rate < 1:
        p.error("--bans, --restore-bans, --restore-runs and --flood-rate must be at least 1")
    if not 0.0 < args.failure_rate <= 1.0:
        p.error("--failure-rate must be within (0, 1]")
    return args


def run_benchmarks(args: argparse.Namespace) -> tuple[dict[str, Any], list[str], bool, bool]:
    """Run the chosen benchmarks; (results, report lines, all ran, all targets met)."""
    results: dict[str, Any] = {}
    report: list[str] = []
    ran = met = True
    for which in args.only:
        try:
            if which == "a":
                latency = bench_latency(args)
                if args.profile == "always" or (args.profile == "auto" and not latency.met):
                    latency.profile = profile_latency(args)
                results["latency"] = latency.as_dict()
                report += render_latency(latency)
                met = met and latency.met
            elif which == "b":
                flood = bench_flood(args)
                if args.profile == "always" or (args.profile == "auto" and not flood.met):
                    flood.profile = profile_flood(args)
                results["flood"] = flood.as_dict()
                report += render_flood(flood)
                met = met and flood.met
            else:
                restore = bench_restore(args)
                results["restore"] = restore.as_dict()
                report += render_restore(restore)
                met = met and restore.met
        except (BenchError, ControlError, OSError, subprocess.CalledProcessError) as error:
            ran = met = False
            results[which] = {"error": str(error)}
            report.append(f"({which}) ERROR: {error}")
            log(f"({which}) ERROR: {error}")
        report.append("")
    return results, report, ran, met


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; see the module docstring for the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` kills daemons
    try:
        results, report, ran, met = run_benchmarks(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        _kill_live()
    if args.json:
        print(json.dumps({"environment": environment(), "results": results}, indent=2))
    else:
        print("\n".join(report).rstrip())
    return 0 if ran and (met or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())

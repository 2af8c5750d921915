"""Find offenders in old logs: what ``gardien scan`` is built on.

Reading and deciding are two steps, so that one pass over the logs answers several
questions::

    found = read_failures(Filter(spec), ["/var/log/auth.log.2.gz", "/var/log/auth.log.1"])
    bans = replay(found, settings)                        # who would have been banned, when
    grid = what_if(found, [3, 5, 10], [600.0, 3600.0])    # how many for other settings

:func:`read_failures` reads the logs oldest first (by modification time: rotated files keep
theirs, ``gzip`` included) and keeps each failure's address and time. :func:`replay` runs them,
in time order, through a real :class:`~gardien.jails.Jail` whose clock follows the log, so
the bans are the daemon's: same window, same ``ignoreip``, and an address banned again only
after its ban ended, with ``bantime.increment``. Nothing here writes anything or reads the
wall clock (the matcher's clock, for year-less dates, is the caller's).
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO, cast

from gardien.clock import Clock, FakeClock
from gardien.config.values import parse_spec
from gardien.errors import ConfigError
from gardien.jails import IgnoreList, Jail
from gardien.matching import native
from gardien.matching.filter import Filter, LineMatcher
from gardien.matching.scan import (
    Prefilter,
    ScanCounts,
    iter_blocks,
    no_cycle_collection,
    scan_lines,
)
from gardien.model import Address, Failure, parse_address
from gardien.settings import JailSettings

__all__ = [
    "FoundFailures",
    "Progress",
    "WhatIfRow",
    "WouldBan",
    "good_addresses",
    "order_logs",
    "read_failures",
    "replay",
    "scan_settings",
    "what_if",
]

#: how much of the start of the first log picks the prefilter's rarest words
SAMPLE_SIZE = 1 << 18
#: forget failures that left the window every this many seconds of log time
PRUNE_EVERY = 3600.0

#: called with the number of bytes read (compressed bytes for ``.gz`` files) since last time
Progress = Callable[[int], None]


@dataclass
class FoundFailures:
    """The failures found in some logs: per address, their times, oldest first."""

    files: list[str] = field(default_factory=list)
    lines: int = 0  # lines that count, as ``gardien regex`` counts them
    failures: int = 0  # failures with an address and a time
    #: failures whose host is not an address (a host name, an id) or that carry no date
    unusable: int = 0
    times: dict[Address, list[float]] = field(default_factory=dict)
    elapsed: float = 0.0

    def in_time_order(self) -> list[tuple[float, Address]]:
        """Every failure as ``(time, address)``, oldest first."""
        merged = [(when, address) for address, times in self.times.items() for when in times]
        merged.sort(key=lambda item: item[0])
        return merged


@dataclass(frozen=True)
class WouldBan:
    """A ban the daemon would have made: of ``address``, at ``time``, after ``failures``
    failures within findtime, until ``end`` (``None``: for ever)."""

    address: Address
    time: float
    failures: int
    end: float | None


@dataclass(frozen=True)
class WhatIfRow:
    """For one ``maxretry`` and ``findtime``: how many addresses reach the threshold, and how
    many of those the jail ignores (never banned) or are known good (would be banned wrongly)."""

    maxretry: int
    findtime: float
    offenders: int
    ignored: int
    good: int

    @property
    def banned(self) -> int:
        """The addresses that would really be banned: offenders not ignored."""
        return self.offenders - self.ignored


def order_logs(paths: Iterable[str]) -> list[str]:
    """``paths`` oldest first: by modification time, which log rotation and ``gzip`` keep,
    whatever order a shell glob gave them in. A missing or unreadable file is an error
    before anything is read."""
    dated: list[tuple[float, int, str]] = []
    for index, path in enumerate(paths):
        try:
            status = os.stat(path)
        except OSError as exc:
            raise ConfigError(f"cannot read log: {exc.strerror}", path=path) from None
        if not os.path.isfile(path):
            raise ConfigError("not a regular file", path=path)
        if not os.access(path, os.R_OK):
            raise ConfigError("cannot read log: permission denied", path=path)
        dated.append((status.st_mtime, index, path))
    return [path for _mtime, _index, path in sorted(dated)]


def _blocks(path: str, progress: Progress | None) -> Iterator[bytes]:
    """The blocks of one log file, plain or gzip, reporting the bytes read."""
    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(open(path, "rb"))
            stream: BinaryIO = raw
            if path.endswith(".gz"):
                stream = cast(BinaryIO, stack.enter_context(gzip.open(raw)))
        except OSError as exc:
            raise ConfigError(f"cannot read log: {exc.strerror}", path=path) from None
        reported = 0
        try:
            for block in iter_blocks(stream):
                if progress is not None:
                    position = raw.tell()
                    progress(position - reported)
                    reported = position
                yield block
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ConfigError(f"cannot read log: {exc}", path=path) from None


def read_failures(
    compiled: Filter,
    logs: Sequence[str],
    *,
    clock: Clock,
    progress: Progress | None = None,
) -> FoundFailures:
    """Every failure ``compiled`` finds in ``logs`` (read oldest first, see :func:`order_logs`).

    ``clock`` dates year-less timestamps (the year is the one that puts them in its past).
    Lines are matched as the daemon matches them; a prefilter skips the lines that cannot
    match when the filter allows it, with the same result.
    """
    started = time.perf_counter()
    found = FoundFailures(files=order_logs(logs))
    matcher = compiled.matcher(clock=clock)
    counts = ScanCounts()
    times = found.times
    with no_cycle_collection():
        _read_all(compiled, found, matcher, counts, progress)
    found.lines = counts.lines
    for failure_times in times.values():
        failure_times.sort()
    found.elapsed = time.perf_counter() - started
    return found


def _read_all(
    compiled: Filter,
    found: FoundFailures,
    matcher: LineMatcher,
    counts: ScanCounts,
    progress: Progress | None,
) -> None:
    prefilter: Prefilter | None = None
    scanner: native.NativeScanner | None = None  # the native core, when it can match
    addresses: dict[str, Address | None] = {}  # parse each host once
    times = found.times
    for path in found.files:
        blocks = _blocks(path, progress)
        if prefilter is None and compiled.spec.maxlines <= 1:
            first = next(blocks, b"")
            prefilter = Prefilter.for_filter(compiled, sample=first[:SAMPLE_SIZE])
            blocks = itertools.chain([first], blocks)
        if scanner is None and compiled.spec.maxlines <= 1:
            scanner = native.scanner_for(matcher, prefilter.words if prefilter else None)
        if scanner is not None:
            before = scanner.lines
            for _line, result in scanner.results(blocks, light=True):
                for failure in result.failures:
                    _keep(failure, addresses, times, found)
            counts.lines += scanner.lines - before
            continue
        for line in scan_lines(blocks, prefilter, counts):
            result = matcher.process(line)
            for failure in result.failures:
                _keep(failure, addresses, times, found)


def _keep(
    failure: Failure,
    addresses: dict[str, Address | None],
    times: dict[Address, list[float]],
    found: FoundFailures,
) -> None:
    host = failure.host
    if host in addresses:
        address = addresses[host]
    else:
        address = addresses[host] = parse_address(host)
    if address is None or failure.time is None:
        found.unusable += 1
        return
    found.failures += 1
    times.setdefault(address, []).append(failure.time)


def scan_settings(
    base: JailSettings | None,
    *,
    findtime: float | None = None,
    maxretry: int | None = None,
    bantime: float | None = None,
    ignoreip: Sequence[str] = (),
) -> JailSettings:
    """The jail settings a scan decides with: those of a configured jail (``base``), else
    fail2ban's defaults (findtime 10m, maxretry 5, bantime 10m, nothing ignored), with the
    values given here in place of theirs."""
    if base is None:
        base = JailSettings(
            name="scan",
            enabled=True,
            filter=parse_spec("scan"),
            actions=(),
            logpath=(),
            ignoreself=False,  # the logs may come from another machine
        )
    changes: dict[str, object] = {}
    if findtime is not None:
        if findtime <= 0:
            raise ConfigError("--findtime must be longer than 0 seconds")
        changes["findtime"] = findtime
    if maxretry is not None:
        if maxretry < 1:
            raise ConfigError("--maxretry must be 1 or more")
        changes["maxretry"] = maxretry
    if bantime is not None:
        changes["bantime"] = bantime
    if ignoreip:
        changes["ignoreip"] = (*base.ignoreip, *ignoreip)
    return replace(base, **changes) if changes else base  # type: ignore[arg-type]


def replay(
    found: FoundFailures,
    settings: JailSettings,
    *,
    ignore: IgnoreList | None = None,
) -> list[WouldBan]:
    """The bans a jail with ``settings`` would have made on these failures, oldest first.

    An address is banned when ``maxretry`` failures fall within ``findtime``; its failures
    while banned do not count, and once its ban is over it can be banned again (for longer,
    with ``bantime.increment``). ``ignore`` defaults to the settings' ``ignoreip``.
    """
    clock = FakeClock()
    if ignore is None:
        ignore = IgnoreList.from_settings(settings, clock=clock)
    jail = Jail(settings, clock=clock, ignore=ignore)
    banned_until: dict[Address, float] = {}
    bans: list[WouldBan] = []
    next_prune = None
    forever = float("inf")
    for when, address in found.in_time_order():
        until = banned_until.get(address)
        if until is not None and when < until:
            continue
        clock.set(when)
        if next_prune is None or when >= next_prune:
            jail.expire(when)
            next_prune = when + PRUNE_EVERY
        ban = jail.add_failure(Failure(str(address), when, 0))
        if ban is None:
            continue
        # the jail forgets the ban at once; this loop knows when it ends
        jail.unban(ban.address)
        banned_until[ban.address] = forever if ban.end is None else ban.end
        bans.append(WouldBan(ban.address, ban.start, ban.failures, ban.end))
    return bans


def _reaches(times: list[float], maxretry: int, findtime: float) -> bool:
    """Whether ``maxretry`` of these sorted times lie within ``findtime`` of each other."""
    if len(times) < maxretry:
        return False
    if maxretry == 1:
        return True
    if times[-1] - times[0] <= findtime:
        return True
    span = maxretry - 1
    return any(times[index + span] - times[index] <= findtime for index in range(len(times) - span))


def what_if(
    found: FoundFailures,
    maxretries: Sequence[int],
    findtimes: Sequence[float],
    *,
    ignore: IgnoreList | None = None,
    good: IgnoreList | None = None,
) -> list[WhatIfRow]:
    """For every ``maxretry`` and ``findtime`` combination: how many addresses would reach the
    threshold at least once, how many of them ``ignore`` covers and how many ``good`` (the
    addresses and networks known to be legitimate, see :func:`good_addresses`) covers."""
    for value in maxretries:
        if value < 1:
            raise ConfigError(f"--what-if: maxretry must be 1 or more, got {value}")
    for seconds in findtimes:
        if seconds <= 0:
            raise ConfigError(f"--what-if: findtime must be longer than 0 seconds, got {seconds:g}")
    ignored = {
        address
        for address in found.times
        if ignore is not None and ignore.contains(address) is not None
    }
    known_good = {address for address in found.times if good is not None and good.contains(address)}
    rows = []
    for maxretry in maxretries:
        for findtime in findtimes:
            offenders = [
                address
                for address, times in found.times.items()
                if _reaches(times, maxretry, findtime)
            ]
            rows.append(
                WhatIfRow(
                    maxretry=maxretry,
                    findtime=findtime,
                    offenders=len(offenders),
                    ignored=sum(1 for address in offenders if address in ignored),
                    good=sum(
                        1
                        for address in offenders
                        if address in known_good and address not in ignored
                    ),
                )
            )
    return rows


def good_addresses(path: str) -> IgnoreList:
    """The addresses and networks listed in ``path`` (one per line; ``#`` comments and blank
    lines skipped), as a list to test addresses against. A line that is not an address or a
    network is an error naming ``path:line``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read --good file: {exc.strerror}", path=path) from None
    found: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        address = parse_address(entry)
        if address is None:
            raise ConfigError(f"not an address or network: {entry!r}", path=path, line=number)
        found.append(str(address))
    return IgnoreList(found, clock=FakeClock(), ignoreself=False)

"""The filter tester behind ``gardien regex``: run a log through a filter and count what matched.

The typed API the CLI is a thin layer over::

    spec = resolve_filter("postfix[mode=auth]", config_dir="/etc/fail2ban")
    report = test_log(Filter(spec), "/var/log/mail.log", clock=FakeClock(now))
    print(report.summary_line())   # Lines: 200000 lines, 0 ignored, 10090 matched, 189910 missed
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import gzip
import io
import itertools
import os
import shlex
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from gardien.clock import Clock, SystemClock
from gardien.config.filters import load_filter, load_filter_file
from gardien.config.values import parse_spec
from gardien.errors import ConfigError, FilterError
from gardien.matching import native
from gardien.matching.filter import Filter, LineMatcher, LineResult
from gardien.matching.scan import (
    Prefilter,
    ScanCounts,
    decode,
    iter_blocks,
    no_cycle_collection,
    scan_lines,
)
from gardien.model import Failure
from gardien.settings import FilterSpec, RegexSource

__all__ = [
    "JournalLog",
    "LineCallback",
    "RegexReport",
    "explained_lines",
    "resolve_filter",
    "test_log",
]

#: lines of a file ``gardien regex --explain`` takes at most
MAX_EXPLAINED_LINES = 1000

#: how much of the start of a log is used to pick the rarest words to look for
SAMPLE_SIZE = 1 << 18

#: called for every line that counts: (line number or 0 when unknown, text, result)
LineCallback = Callable[[int, str, LineResult], None]


@dataclass
class RegexReport:
    """Counts of a filter test, as fail2ban-regex counts them, and the lines asked for.

    A line is *ignored* when an ignoreregex discards it or when a failregex that matched it
    says it is no failure (``<F-NOFAIL>``, ``<F-MLFGAINED>``: ``Accepted``, ``Connection
    closed``, pam_unix's lines...), else *matched* when a failregex matched it, else *missed*.
    Every failregex is tried on every line: ``regex_hits`` counts the hits of each (so their
    sum, fail2ban-regex's "Failregex: N total", may exceed ``matched``), ``ignore_hits`` those
    of each ignoreregex. With ``maxlines > 1``, lines that a later line's match takes from the
    buffer move from missed to matched, as fail2ban-regex moves them.
    """

    filter_name: str
    lines: int = 0
    matched: int = 0
    ignored: int = 0
    regex_hits: list[int] = field(default_factory=list)
    ignore_hits: list[int] = field(default_factory=list)
    prefregex_matched: int = 0
    date_templates: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    matched_lines: list[str] = field(default_factory=list)
    ignored_lines: list[str] = field(default_factory=list)
    missed_lines: list[str] = field(default_factory=list)
    examined: int = 0
    over_budget: int = 0  # lines whose matching spent its step budget (counted as missed)
    elapsed: float = 0.0

    @property
    def missed(self) -> int:
        return self.lines - self.matched - self.ignored

    @property
    def every_line_examined(self) -> bool:
        """Whether every line went through the filter (else the prefilter skipped lines that
        cannot match: ``prefregex_matched`` and ``date_templates`` count examined lines only)."""
        return self.examined == self.lines

    def summary_line(self) -> str:
        return (
            f"Lines: {self.lines} lines, {self.ignored} ignored, {self.matched} matched, "
            f"{self.missed} missed"
        )

    def summary(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "ignored": self.ignored,
            "matched": self.matched,
            "missed": self.missed,
        }


@dataclass(frozen=True)
class JournalLog:
    """A log given as ``systemd-journal[journalfiles=F, journalpath=DIR]``, as fail2ban-regex
    takes it: the system journal, the journal files ``files`` (each a glob pattern), or the
    journal directory ``directory``."""

    files: tuple[str, ...] | None = None
    directory: str | None = None

    @classmethod
    def parse(cls, text: str) -> JournalLog | None:
        """The journal ``text`` names, ``None`` when it names none. :class:`ConfigError` for a
        parameter gardien cannot honour (``journalflags``, ``namespace``) or an unknown one."""
        if text != "systemd-journal" and not text.startswith("systemd-journal["):
            return None
        params = parse_spec(text).params
        unknown = sorted(set(params) - {"journalfiles", "journalpath"})
        if unknown:
            raise ConfigError(
                f"systemd-journal[{', '.join(unknown)}=...]: gardien reads the system journal, "
                "journalfiles or journalpath only",
                path=text,
            )
        files: tuple[str, ...] | None = None
        if params.get("journalfiles"):
            found: set[str] = set()
            for pattern in shlex.split(params["journalfiles"]):
                found.update(glob.glob(pattern))
            if not found:
                raise ConfigError("no journal file matches journalfiles", path=text)
            files = tuple(sorted(found))
        directory = params.get("journalpath") or None
        if files is not None and directory is not None:
            raise ConfigError("give journalfiles or journalpath, not both", path=text)
        return cls(files, directory)


def _looks_like_name(text: str) -> bool:
    head = text.split("[", 1)[0]
    return bool(head) and all(c.isalnum() or c in "-_." for c in head)


def resolve_filter(
    argument: str,
    config_dir: str | os.PathLike[str] | None = None,
    *,
    ignoreregex: str | None = None,
    datepattern: str | None = None,
    maxlines: int | None = None,
    journal: bool = False,
) -> FilterSpec:
    """The filter a user means by ``argument``: a file path, a filter name (both may carry
    ``[param=value]``), or else a raw failregex.

    ``journal`` (the log is the systemd journal) sets the filter's ``logtype`` to ``journal``
    unless ``argument`` sets it, as fail2ban does for ``backend = systemd``: the filters of
    fail2ban's ``common.conf`` then expect the lines the journal gives."""
    head, bracket, _rest = argument.partition("[")
    name_like = _looks_like_name(argument)
    is_file = os.path.isfile(head if bracket else argument)
    with_params = bracket and (is_file or name_like)
    params = parse_spec("x" + argument[len(head) :]).params if with_params else {}
    if journal and "logtype" not in params:
        params = {**params, "logtype": "journal"}
    if is_file:
        spec = load_filter_file(head if bracket else argument, parameters=params)
    elif name_like:
        # a name that is no filter is a mistake, not a regex: load_filter says where it looked
        spec = load_filter(head if bracket else argument, config_dir, parameters=params)
    elif os.sep in argument and not any(c in argument for c in "<^$("):
        raise ConfigError(f"no such filter file: {argument}")
    else:
        spec = FilterSpec(name="command line", failregex=(RegexSource(argument),))
    changes: dict[str, object] = {}
    if ignoreregex:
        changes["ignoreregex"] = (*spec.ignoreregex, RegexSource(ignoreregex))
    if datepattern:
        changes["datepattern"] = datepattern
    if maxlines is not None:
        if maxlines < 1:
            raise ConfigError("--maxlines must be 1 or more")
        changes["maxlines"] = maxlines
    if changes:
        spec = dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
    return spec


def _open_blocks(log: str) -> tuple[Iterator[bytes], Callable[[], None]]:
    if log == "-":
        import sys

        stream = sys.stdin.buffer
        return iter_blocks(stream), lambda: None
    if os.path.exists(log):
        stack = contextlib.ExitStack()
        try:
            handle: BinaryIO = stack.enter_context(open(log, "rb", buffering=0))  # noqa: SIM115
            if log.endswith(".gz"):
                # a gzip stream is not really seekable: read it as a stream
                compressed = cast(BinaryIO, stack.enter_context(gzip.open(handle)))  # noqa: SIM115
                blocks = iter_blocks(cast(BinaryIO, _Unseekable(compressed)))
                return _whole_lines(blocks), stack.close
        except OSError as exc:
            stack.close()
            raise ConfigError(f"cannot read log: {exc.strerror}", path=log) from exc
        return _whole_lines(iter_blocks(handle)), stack.close
    if not any(c.isspace() for c in log.strip()):
        # a log line has spaces; a lone word is a mistyped path
        raise ConfigError(
            "no such log file (give a file, '-' for standard input, or a log line)", path=log
        )
    # not a file: the argument is itself a log line
    return iter_blocks(io.BytesIO(log.encode("utf-8"))), lambda: None


def explained_lines(log: str) -> Iterator[str]:
    """The lines ``gardien regex --explain`` explains: ``log`` itself when it is not a file
    (nor ``-``), else the file's lines that count (not empty, not ``#``), at most
    :data:`MAX_EXPLAINED_LINES`."""
    if log != "-" and not os.path.exists(log):
        yield log.rstrip("\r\n")
        return
    blocks, close = _open_blocks(log)
    count = 0
    try:
        for block in blocks:
            for raw in block.split(b"\n"):
                line = decode(raw)
                if not line or line.startswith("#"):
                    continue
                count += 1
                if count > MAX_EXPLAINED_LINES:
                    raise ConfigError(
                        f"--explain takes at most {MAX_EXPLAINED_LINES} lines", path=log
                    )
                yield line
    finally:
        close()


def _whole_lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The blocks without a last line that has no end-of-line: a line still being written,
    which fail2ban-regex does not count either."""
    for block in blocks:
        if block.endswith(b"\n"):
            yield block
        elif whole := block[: block.rfind(b"\n") + 1]:
            yield whole


class _Unseekable(io.RawIOBase):
    """A stream that says it cannot seek (so blocks are not re-read by seeking back)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)


def test_log(
    compiled: Filter,
    log: str | JournalLog,
    *,
    clock: Clock | None = None,
    keep_matched: bool = False,
    keep_missed: bool = False,
    keep_ignored: bool = False,
    first_lines: int = 0,
    every_line: LineCallback | None = None,
    log_timezone: str | None = None,
    journalmatch: Sequence[str] | None = None,
    check_all: bool = True,
    keep_failures: bool = False,
    examine_all: bool = False,
) -> RegexReport:
    """Run ``log`` (a path, ``-`` for standard input, a log line, or a journal) through
    ``compiled`` and count as fail2ban-regex does (see :class:`RegexReport`).

    ``keep_*`` keep every line of that kind; ``first_lines`` keeps the first lines of the kinds
    not kept in full (fail2ban-regex shows them when there are fewer than 20). Unless every line
    is wanted (``every_line``, ``keep_missed``), only the lines the filter's prefilter selects
    are matched: same counts, much faster. A journal is read from its first entry, through
    ``journalmatch`` (default: the filter's).

    ``check_all=False`` matches as the daemon does (the first failregex that matches wins), as
    fail2ban-regex does for ``--out``; ``keep_failures`` keeps the failures of the matched lines
    in ``report.failures``. ``examine_all`` turns the prefilter off, so that the prefregex and
    date template counts cover every line, as fail2ban-regex's do.
    """
    started = time.perf_counter()
    report = RegexReport(
        compiled.name,
        regex_hits=[0] * (len(compiled.failregex) + len(compiled.failjson)),
        ignore_hits=[0] * (len(compiled.ignoreregex) + len(compiled.ignorejson)),
    )
    matcher = compiled.matcher(
        clock=clock or SystemClock(), log_timezone=log_timezone, check_all=check_all
    )
    tally = _Tally(report, matcher, keep_matched, keep_missed, keep_ignored, first_lines)
    tally.keep_failures = keep_failures
    if isinstance(log, JournalLog):
        match = compiled.spec.journalmatch if journalmatch is None else journalmatch
        _journal(log, match, matcher, tally, every_line)
        report.elapsed = time.perf_counter() - started
        return report
    needs_all = every_line is not None or keep_missed or examine_all
    blocks, close = _open_blocks(log)
    prefilter = None
    if not needs_all:
        first = next(blocks, b"")
        prefilter = Prefilter.for_filter(compiled, sample=first[:SAMPLE_SIZE])
        blocks = itertools.chain([first], blocks)
    counts = ScanCounts()
    # the native core, when there, matches whole blocks (only the prefilter's candidate lines,
    # when there is a prefilter); it cannot call back for every line
    scanner = None
    if every_line is None:
        scanner = native.scanner_for(matcher, prefilter.words if prefilter else None)
    try:
        with no_cycle_collection():
            if scanner is not None:
                missed = _EVERY if keep_missed else first_lines
                skipped = tally.skipped if missed else None
                light = not keep_failures  # counts need no fields
                # nor, when the lines are not kept, the plain failure lines at all
                counted = light and not tally.keep_matched
                for line, result in scanner.results(
                    blocks,
                    missed=missed,
                    skipped=skipped,
                    light=light,
                    tally=counted,
                    ignored=tally.limit_ignored,
                ):
                    tally.line(line, result)
                _add_native(report, scanner)
                counts.lines = scanner.lines
            elif needs_all or prefilter is None:
                _every_line(blocks, matcher, tally, every_line)
                counts.lines = report.lines
            else:
                skipped = tally.skipped if first_lines and not keep_missed else None
                for line in scan_lines(blocks, prefilter, counts, skipped=skipped):
                    tally.line(line, matcher.process(line))
    except UnicodeError as exc:  # pragma: no cover - decode() replaces bad bytes
        raise FilterError(f"cannot decode log: {exc}") from exc
    finally:
        close()
    report.lines = counts.lines
    report.elapsed = time.perf_counter() - started
    return report


#: "all of them", as a count of missed lines the native core is to hand over
_EVERY = 1 << 62


def _add_native(report: RegexReport, scanner: native.NativeScanner) -> None:
    """Add what the native core counted without handing the lines over."""
    counts = scanner.counts
    report.examined += counts.examined
    report.prefregex_matched += counts.prefregex_matched
    report.date_templates.update(counts.date_templates)
    report.matched += counts.matched
    report.ignored += counts.ignored
    for index, hits in counts.regex_hits.items():
        report.regex_hits[index] += hits
    for index, hits in counts.ignore_hits.items():
        report.ignore_hits[index] += hits
    report.hosts.update(counts.hosts)
    report.over_budget += scanner.over_budget


class _Tally:
    """Adds each line's result to a report, with fail2ban-regex's rules."""

    def __init__(
        self,
        report: RegexReport,
        matcher: LineMatcher,
        keep_matched: bool,
        keep_missed: bool,
        keep_ignored: bool,
        first_lines: int,
    ) -> None:
        self.report = report
        self.matcher = matcher
        self.multiline = matcher.filter.spec.maxlines > 1
        self.maxlines = matcher.filter.spec.maxlines
        self.keep_matched = keep_matched
        self.limit_missed = None if keep_missed else first_lines
        self.limit_ignored = None if keep_ignored else first_lines
        self.keep_failures = False

    def skipped(self, line: str) -> bool:
        """A line the prefilter skipped (a missed one): whether more such lines are wanted."""
        report = self.report
        if self.limit_missed is not None and len(report.missed_lines) >= self.limit_missed:
            return False
        report.missed_lines.append(line)
        return True

    def process(self, line: str, shown: str, **date: Any) -> LineResult:
        """Match ``line`` (shown as ``shown``) and count it, with buffered lines a multi-line
        match takes."""
        if not self.multiline:
            result = self.matcher.process(line, **date)
            self.line(shown, result)
            return result
        before = list(self.matcher.buffer)
        result = self.matcher.process(line, **date)
        after = self.matcher.buffer
        report = self.report
        full = len(before) >= self.maxlines
        for parts in before[int(full) :]:
            if parts in after:
                continue
            text = "".join(parts)
            with contextlib.suppress(ValueError):
                report.missed_lines.remove(text)
            if self.keep_matched:
                report.matched_lines.append(text)
            report.matched += 1  # and one less missed (lines - matched - ignored)
        self.line(shown, result)  # after the lines it took, as fail2ban-regex lists them
        return result

    def line(self, line: str, result: LineResult) -> None:
        report = self.report
        report.examined += 1
        if result.date_format:
            report.date_templates[result.date_format] += 1
        if result.prefregex_matched:
            report.prefregex_matched += 1
        for index in result.hits:
            report.regex_hits[index] += 1
        for index in result.ignore_hits:
            report.ignore_hits[index] += 1
        if result.ignored or result.nofail:
            report.ignored += 1
            if self.limit_ignored is None or len(report.ignored_lines) < self.limit_ignored:
                report.ignored_lines.append(line)
        elif result.failures or result.pending:
            report.matched += 1
            for failure in result.failures:
                if failure.fields.get("nofail"):
                    continue  # a line that is no failure by itself, in the daemon's way
                report.hosts[failure.host] += 1
                if self.keep_failures:
                    report.failures.append(failure)
            if self.keep_matched:
                report.matched_lines.append(line)
        elif self.limit_missed is None or len(report.missed_lines) < self.limit_missed:
            report.missed_lines.append(line)


def _every_line(
    blocks: Iterator[bytes],
    matcher: LineMatcher,
    tally: _Tally,
    every_line: LineCallback | None,
) -> None:
    number = 0
    report = tally.report
    for block in blocks:
        for raw in block.split(b"\n")[: -1 if block.endswith(b"\n") else None]:
            number += 1
            line = decode(raw)
            if not line or line.startswith("#"):
                continue
            report.lines += 1
            result = tally.process(line, line)
            if every_line is not None:
                every_line(number, line, result)


def _journal(
    log: JournalLog,
    journalmatch: Sequence[str],
    matcher: LineMatcher,
    tally: _Tally,
    every_line: LineCallback | None,
) -> None:
    # imported here: reading a file needs no journal library
    from gardien.sources.journal import JournalSource

    try:
        source = JournalSource(journalmatch, files=log.files, directory=log.directory, since=0)
    except OSError as exc:
        raise ConfigError(f"cannot open the journal: {exc.strerror or exc}") from None
    report = tally.report
    number = 0
    with source:
        while entries := source.read_entries(4096):
            for entry in entries:
                number += 1
                report.lines += 1
                text = entry.date_text
                result = tally.process(
                    entry.line, text + entry.line, date=entry.time, date_text=text
                )
                if every_line is not None:
                    every_line(number, entry.line, result)

"""The filter tester behind ``gardien regex``: run a log through a filter and count what matched.

The typed API the CLI is a thin layer over::

    spec = resolve_filter("postfix[mode=auth]", config_dir="/etc/fail2ban")
    report = test_log(Filter(spec), "/var/log/mail.log", clock=FakeClock(now))
    print(report.summary_line())   # Lines: 200000 lines, 0 ignored, 10090 matched, 189910 missed
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from gardien.clock import Clock, SystemClock
from gardien.config.filters import (
    FilterSpec,
    RegexSource,
    load_filter,
    load_filter_file,
)
from gardien.config.values import parse_spec
from gardien.errors import ConfigError, FilterError
from gardien.matching.filter import Filter, LineResult
from gardien.matching.scan import Prefilter, ScanCounts, decode, iter_blocks, scan_lines

__all__ = ["LineCallback", "RegexReport", "resolve_filter", "test_log"]

#: how much of the start of a log is used to pick the rarest words to look for
SAMPLE_SIZE = 1 << 18

#: called for every line that counts: (line number or 0 when unknown, text, result)
LineCallback = Callable[[int, str, LineResult], None]


@dataclass
class RegexReport:
    """Counts of a filter test, fail2ban-regex style, and the lines asked for."""

    filter_name: str
    lines: int = 0
    matched: int = 0
    ignored: int = 0
    regex_hits: list[int] = field(default_factory=list)
    date_templates: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    matched_lines: list[str] = field(default_factory=list)
    ignored_lines: list[str] = field(default_factory=list)
    missed_lines: list[str] = field(default_factory=list)
    examined: int = 0
    elapsed: float = 0.0

    @property
    def missed(self) -> int:
        return self.lines - self.matched - self.ignored

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
) -> FilterSpec:
    """The filter a user means by ``argument``: a file path, a filter name (both may carry
    ``[param=value]``), or else a raw failregex."""
    head, bracket, _rest = argument.partition("[")
    name_like = _looks_like_name(argument)
    if os.path.isfile(head if bracket else argument):
        params = parse_spec("x" + argument[len(head) :]).params if bracket else {}
        spec = load_filter_file(head if bracket else argument, parameters=params)
    elif name_like:
        # a name that is no filter is a mistake, not a regex: load_filter says where it looked
        spec = load_filter(argument, config_dir)
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
                return iter_blocks(cast(BinaryIO, _Unseekable(compressed))), stack.close
        except OSError as exc:
            stack.close()
            raise ConfigError(f"cannot read log: {exc.strerror}", path=log) from exc
        return iter_blocks(handle), stack.close
    if not any(c.isspace() for c in log.strip()):
        # a log line has spaces; a lone word is a mistyped path
        raise ConfigError(
            "no such log file (give a file, '-' for standard input, or a log line)", path=log
        )
    # not a file: the argument is itself a log line
    return iter_blocks(io.BytesIO(log.encode("utf-8"))), lambda: None


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
    log: str,
    *,
    clock: Clock | None = None,
    keep_matched: bool = False,
    keep_missed: bool = False,
    keep_ignored: bool = False,
    every_line: LineCallback | None = None,
    log_timezone: str | None = None,
) -> RegexReport:
    """Run ``log`` (a path, ``-`` for standard input, or a log line) through ``compiled``.

    Unless every line is wanted (``every_line``, ``keep_missed``), only the lines the filter's
    prefilter selects are matched: same counts, much faster.
    """
    started = time.perf_counter()
    report = RegexReport(compiled.name, regex_hits=[0] * len(compiled.failregex))
    matcher = compiled.matcher(clock=clock or SystemClock(), log_timezone=log_timezone)
    needs_all = every_line is not None or keep_missed
    blocks, close = _open_blocks(log)
    prefilter = None
    if not needs_all:
        first = next(blocks, b"")
        prefilter = Prefilter.for_filter(compiled, sample=first[:SAMPLE_SIZE])
        blocks = itertools.chain([first], blocks)
    counts = ScanCounts()
    try:
        if needs_all:
            _every_line(
                blocks, matcher.process, report, every_line, keep_matched, keep_missed, keep_ignored
            )
            counts.lines = report.lines
        else:
            for line in scan_lines(blocks, prefilter, counts):
                result = matcher.process(line)
                report.examined += 1
                _tally(report, line, result, keep_matched, False, keep_ignored)
    except UnicodeError as exc:  # pragma: no cover - decode() replaces bad bytes
        raise FilterError(f"cannot decode log: {exc}") from exc
    finally:
        close()
    report.lines = counts.lines
    report.elapsed = time.perf_counter() - started
    return report


def _tally(
    report: RegexReport,
    line: str,
    result: LineResult,
    keep_matched: bool,
    keep_missed: bool,
    keep_ignored: bool,
) -> None:
    if result.date_format:
        report.date_templates[result.date_format] += 1
    if result.ignored:
        report.ignored += 1
        if keep_ignored:
            report.ignored_lines.append(line)
    elif result.failures:
        report.matched += 1
        for failure in result.failures:
            report.regex_hits[failure.regex_index] += 1
            report.hosts[failure.host] += 1
        if keep_matched:
            report.matched_lines.append(line)
    elif keep_missed:
        report.missed_lines.append(line)


def _every_line(
    blocks: Iterator[bytes],
    process: Callable[[str], LineResult],
    report: RegexReport,
    every_line: LineCallback | None,
    keep_matched: bool,
    keep_missed: bool,
    keep_ignored: bool,
) -> None:
    number = 0
    for block in blocks:
        for raw in block.split(b"\n")[: -1 if block.endswith(b"\n") else None]:
            number += 1
            line = decode(raw)
            if not line or line.startswith("#"):
                continue
            report.lines += 1
            report.examined += 1
            result = process(line)
            _tally(report, line, result, keep_matched, keep_missed, keep_ignored)
            if every_line is not None:
                every_line(number, line, result)

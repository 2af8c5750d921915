"""``gardien regex LOG FILTER [IGNOREREGEX]``: test a filter against a log, as fail2ban-regex."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from gardien.cli.regex_output import SHOWN_BY_DEFAULT, RegexRun, out_lines, report_lines
from gardien.clock import Clock, FakeClock, SystemClock
from gardien.errors import ConfigError, GardienError
from gardien.matching.explain import explain_line
from gardien.matching.filter import Filter, LineResult, public_fields
from gardien.settings import FilterSpec
from gardien.tester import JournalLog, RegexReport, explained_lines, resolve_filter, test_log


def parse_now(text: str) -> float:
    """Seconds since the epoch of an ISO time; a time without zone is local time."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--now {text!r} is not an ISO time such as 2026-11-21T12:00:00 or 2026-11-21"
        ) from None
    if moment.tzinfo is None:
        return time.mktime(moment.timetuple()) + moment.microsecond / 1e6
    return moment.timestamp()


def format_time(epoch: float | None) -> str | None:
    """Local time as ``YYYY-MM-DDTHH:MM:SS[.ffffff]``."""
    if epoch is None or not math.isfinite(epoch):
        return None
    try:
        return dt.datetime.fromtimestamp(epoch).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def _json_line(number: int, line: str, result: LineResult) -> dict[str, Any]:
    del line
    failure = result.failures[0] if result.failures else None
    when = failure.time if failure is not None else result.time
    record: dict[str, Any] = {
        "line": number,
        "match": bool(result.failures or result.pending) and not (result.ignored or result.nofail),
        "ignored": result.ignored or result.nofail,
        "host": failure.host if failure is not None else None,
        "time": format_time(when),
        "epoch": when,
    }
    if failure is not None:
        for key, value in public_fields(failure.fields).items():
            record.setdefault(key, value)
    return record


@dataclass(frozen=True)
class RegexOptions:
    """What ``gardien regex`` and ``fail2ban-regex`` were asked to do."""

    log: str
    filter_argument: str
    config_dir: str | None
    ignoreregex: str | None = None
    now: float | None = None
    datepattern: str | None = None
    maxlines: int | None = None
    journalmatch: str | None = None
    timezone: str | None = None
    out: str | None = None
    print_all_matched: bool = False
    print_all_missed: bool = False
    print_all_ignored: bool = False
    print_no_missed: bool = False
    print_no_ignored: bool = False
    threshold: int = SHOWN_BY_DEFAULT
    examine_all: bool = False  # no prefilter: prefregex and date counts of every line
    check_all: bool = True  # every failregex tried on every line (fail2ban-regex's default)
    usedns: str | None = None  # overrides the filter's


@dataclass(frozen=True)
class _Prepared:
    spec: FilterSpec
    compiled: Filter
    log: str | JournalLog
    journalmatch: tuple[str, ...]
    clock: Clock


def _prepare(options: RegexOptions) -> _Prepared:
    """The filter compiled, the log (a journal?) and its journalmatch, the clock."""
    journal = JournalLog.parse(options.log)
    spec = resolve_filter(
        options.filter_argument,
        options.config_dir,
        ignoreregex=options.ignoreregex,
        datepattern=options.datepattern,
        maxlines=options.maxlines,
        journal=journal is not None,
    )
    if options.usedns is not None:
        spec = dataclasses.replace(spec, usedns=options.usedns)
    match = spec.journalmatch
    if options.journalmatch is not None:
        match = tuple(line for line in options.journalmatch.split("\n") if line.strip())
    return _Prepared(
        spec=spec,
        compiled=Filter(spec),
        log=journal if journal is not None else options.log,
        journalmatch=match,
        clock=FakeClock(options.now) if options.now is not None else SystemClock(),
    )


def run_regex(options: RegexOptions, write: Callable[[str], object]) -> RegexReport:
    """Test the filter against the log and ``write`` fail2ban-regex's report (or, with
    ``out``, its ``--out`` lines), one line per call."""
    prepared = _prepare(options)
    spec, compiled, log = prepared.spec, prepared.compiled, prepared.log
    clock, match = prepared.clock, prepared.journalmatch
    if options.out:
        report = test_log(
            compiled,
            log,
            clock=clock,
            log_timezone=options.timezone,
            journalmatch=match,
            check_all=False,
            keep_failures=True,
        )
        for line in out_lines(options.out, report.failures):
            write(line)
        return report
    report = test_log(
        compiled,
        log,
        clock=clock,
        keep_matched=options.print_all_matched,
        keep_missed=options.print_all_missed,
        keep_ignored=options.print_all_ignored,
        first_lines=options.threshold,
        log_timezone=options.timezone,
        journalmatch=match,
        examine_all=options.examine_all,
        check_all=options.check_all,
    )
    run = RegexRun(
        filter_argument=options.filter_argument,
        spec=spec,
        log=log,
        config_dir=options.config_dir,
        ignoreregex=options.ignoreregex,
        maxlines=options.maxlines,
        datepattern=options.datepattern,
        journalmatch=[t for line in match for t in shlex.split(line)]
        if isinstance(log, JournalLog)
        else (),
        threshold=options.threshold,
    )
    for line in report_lines(
        run,
        compiled,
        report,
        all_matched=options.print_all_matched,
        all_missed=options.print_all_missed,
        all_ignored=options.print_all_ignored,
        no_missed=options.print_no_missed,
        no_ignored=options.print_no_ignored,
    ):
        write(line)
    return report


@click.command()
@click.argument("log")
@click.argument("filter_", metavar="FILTER")
@click.argument("ignoreregex", required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='One JSON object per log line, then a {"summary": ...} object.',
)
@click.option(
    "--now",
    "now_text",
    metavar="ISO-TIME",
    help="Reference time for year-less dates (default: now), to replay old logs.",
)
@click.option("--datepattern", metavar="PATTERN", help="Override the filter's datepattern.")
@click.option("--maxlines", type=int, metavar="N", help="Override the filter's maxlines.")
@click.option(
    "-m",
    "--journalmatch",
    metavar="MATCH",
    help="Override the filter's journalmatch (LOG systemd-journal only).",
)
@click.option(
    "-o",
    "--out",
    metavar="TOKEN",
    help="Print only this of each failure: ip, id, msg, row, a capture name, or a template "
    "such as '<ip> <F-USER>'.",
)
@click.option("--print-all-matched", is_flag=True, help="Print every matched line.")
@click.option("--print-all-missed", is_flag=True, help="Print every missed line.")
@click.option("--print-all-ignored", is_flag=True, help="Print every ignored line.")
@click.option("--print-no-missed", is_flag=True, help="Print no missed line.")
@click.option("--print-no-ignored", is_flag=True, help="Print no ignored line.")
@click.option(
    "--explain",
    is_flag=True,
    help="Show stage by stage what FILTER does with LOG (a line, or each line of a small "
    "file): date, prefregex, each failregex, or the JSON fields and rules, and the outcome. "
    "Exit status 0 when a line is a failure, 1 when none is, 2 on an error.",
)
@click.pass_context
def regex(
    ctx: click.Context,
    log: str,
    filter_: str,
    ignoreregex: str | None,
    as_json: bool,
    now_text: str | None,
    datepattern: str | None,
    maxlines: int | None,
    journalmatch: str | None,
    out: str | None,
    print_all_matched: bool,
    print_all_missed: bool,
    print_all_ignored: bool,
    print_no_missed: bool,
    print_no_ignored: bool,
    explain: bool,
) -> None:
    """Test FILTER against LOG and report what it finds, as fail2ban-regex does.

    LOG is a log file (plain or .gz), - for standard input, a log line, or the systemd
    journal: systemd-journal, systemd-journal[journalfiles=FILE] or
    systemd-journal[journalpath=DIR] (read through the filter's journalmatch).
    FILTER is a filter name (sshd, postfix[mode=auth]) looked up in the configuration
    directory's filter.d (then gardien's bundled filters), a filter file path (optionally with
    [parameters]), or a raw failregex such as 'Failed password for .* from <HOST>'.

    \b
    Examples:
      gardien regex /var/log/auth.log sshd
      gardien -c /etc/fail2ban regex /var/log/mail.log 'postfix[mode=auth]'
      gardien regex 'systemd-journal[journalpath=/var/log/journal]' sshd
      gardien regex --json --now 2026-01-31T00:00 /var/log/asterisk/messages asterisk
      gardien regex --explain 'Nov 21 10:00:01 web sshd[42]: Failed password for root from
      192.0.2.7 port 5 ssh2' sshd

    With --explain the exit status says what became of the line(s): 0 when one is a
    failure, 1 when none is (no match, ignored, or no failure by itself), 2 when the filter
    or the line cannot be read (the error is printed).
    """
    obj: dict[str, Any] = ctx.obj
    for first, second in (
        ("missed", print_no_missed and print_all_missed),
        ("ignored", print_no_ignored and print_all_ignored),
    ):
        if second:
            raise ConfigError(f"--print-no-{first} and --print-all-{first} exclude each other")
    options = RegexOptions(
        log=log,
        filter_argument=filter_,
        config_dir=str(obj["config_dir"]),
        ignoreregex=ignoreregex,
        now=parse_now(now_text) if now_text and not explain else None,
        datepattern=datepattern,
        maxlines=maxlines,
        journalmatch=journalmatch,
        out=out,
        print_all_matched=print_all_matched,
        print_all_missed=print_all_missed,
        print_all_ignored=print_all_ignored,
        print_no_missed=print_no_missed,
        print_no_ignored=print_no_ignored,
    )
    if explain:
        try:
            failed = _explain(
                dataclasses.replace(options, now=parse_now(now_text) if now_text else None),
                as_json=as_json,
            )
        except GardienError as error:
            click.echo(f"gardien: error: {error}", err=True)
            ctx.exit(2)
        ctx.exit(0 if failed else 1)
    if as_json:
        _json_report(options)
        return
    run_regex(options, click.echo)


def _explain(options: RegexOptions, *, as_json: bool) -> bool:
    """Explain every line of ``options.log`` (a line, or a file's lines); whether one was a
    failure."""
    prepared = _prepare(options)
    if isinstance(prepared.log, JournalLog):
        raise ConfigError("--explain takes a log line or a file, not the journal")
    matcher = prepared.compiled.matcher(clock=prepared.clock, log_timezone=options.timezone)
    failed = False
    for number, line in enumerate(explained_lines(prepared.log), start=1):
        explanation = explain_line(matcher, line)
        failed = failed or explanation.is_failure
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(explanation), default=str))
            continue
        if number > 1:
            click.echo("")
        for text in explanation.lines():
            click.echo(text)
    return failed


def _json_report(options: RegexOptions) -> None:
    prepared = _prepare(options)
    out = sys.stdout

    def emit(number: int, line: str, result: LineResult) -> None:
        out.write(json.dumps(_json_line(number, line, result)) + "\n")

    report = test_log(
        prepared.compiled,
        prepared.log,
        clock=prepared.clock,
        every_line=emit,
        journalmatch=prepared.journalmatch,
    )
    out.write(json.dumps({"summary": report.summary()}) + "\n")

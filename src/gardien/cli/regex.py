"""``gardien regex LOG FILTER [IGNOREREGEX]``: test a filter against a log, as fail2ban-regex."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from typing import Any

import click

from gardien.clock import FakeClock, SystemClock
from gardien.errors import ConfigError
from gardien.matching.filter import Filter, LineResult, public_fields
from gardien.tester import RegexReport, resolve_filter, test_log

SHOWN_BY_DEFAULT = 20


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
        "match": failure is not None,
        "ignored": result.ignored,
        "host": failure.host if failure is not None else None,
        "time": format_time(when),
        "epoch": when,
    }
    if failure is not None:
        for key, value in public_fields(failure.fields).items():
            record.setdefault(key, value)
    return record


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
@click.option("--print-all-matched", is_flag=True, help="Print every matched line.")
@click.option("--print-all-missed", is_flag=True, help="Print every missed line.")
@click.option("--print-all-ignored", is_flag=True, help="Print every ignored line.")
@click.pass_obj
def regex(
    obj: dict[str, Any],
    log: str,
    filter_: str,
    ignoreregex: str | None,
    as_json: bool,
    now_text: str | None,
    datepattern: str | None,
    maxlines: int | None,
    print_all_matched: bool,
    print_all_missed: bool,
    print_all_ignored: bool,
) -> None:
    """Test FILTER against LOG and report what it finds.

    LOG is a log file (plain or .gz), - for standard input, or a single log line.
    FILTER is a filter name (sshd, postfix[mode=auth]) looked up in the configuration
    directory's filter.d (then gardien's bundled filters), a filter file path (optionally with
    [parameters]), or a raw failregex such as 'Failed password for .* from <HOST>'.

    \b
    Examples:
      gardien regex /var/log/auth.log sshd
      gardien -c /etc/fail2ban regex /var/log/mail.log 'postfix[mode=auth]'
      gardien regex --json --now 2026-01-31T00:00 /var/log/asterisk/messages asterisk
    """
    config_dir = obj["config_dir"]
    spec = resolve_filter(
        filter_, config_dir, ignoreregex=ignoreregex, datepattern=datepattern, maxlines=maxlines
    )
    compiled = Filter(spec)
    clock = FakeClock(parse_now(now_text)) if now_text else SystemClock()
    out = sys.stdout
    if as_json:

        def emit(number: int, line: str, result: LineResult) -> None:
            out.write(json.dumps(_json_line(number, line, result)) + "\n")

        report = test_log(compiled, log, clock=clock, every_line=emit)
        out.write(json.dumps({"summary": report.summary()}) + "\n")
        return
    report = test_log(
        compiled,
        log,
        clock=clock,
        keep_matched=print_all_matched,
        keep_missed=print_all_missed,
        keep_ignored=True,
    )
    _print_report(compiled, log, report, print_all_matched, print_all_missed, print_all_ignored)


def _print_report(
    compiled: Filter,
    log: str,
    report: RegexReport,
    all_matched: bool,
    all_missed: bool,
    all_ignored: bool,
) -> None:
    echo = click.echo
    spec = compiled.spec
    echo("Running tests")
    echo("=============")
    echo("")
    source = spec.path or "command line"
    echo(f"Use      filter : {spec.name} ({source})")
    if spec.parameters:
        echo(
            "Use  parameters : "
            + ", ".join(f"{k}={v}" for k, v in spec.parameters.items() if not k.startswith("__"))
        )
    echo(f"Use    log file : {log}")
    echo("Use    encoding : UTF-8")
    echo("")
    echo("Results")
    echo("=======")
    echo("")
    echo(f"Failregex: {report.matched} total")
    echo("|-  #) [# of hits] regular expression")
    for index, (compiled_regex, hits) in enumerate(
        zip(compiled.failregex, report.regex_hits, strict=True), start=1
    ):
        echo(f"|  {index:2d}) [{hits}] {compiled_regex.source.pattern}")
    echo("`-")
    echo("")
    echo(f"Ignoreregex: {report.ignored} total")
    if compiled.ignoreregex:
        echo("|-  #) regular expression")
        for index, ignore in enumerate(compiled.ignoreregex, start=1):
            echo(f"|  {index:2d}) {ignore.source.pattern}")
        echo("`-")
    echo("")
    if report.hosts:
        echo("Top addresses:")
        echo("|- [# of hits] address")
        for host, hits in report.hosts.most_common(10):
            echo(f"|  [{hits}] {host}")
        echo("`-")
        echo("")
    if report.date_templates:
        scope = "lines examined" if report.examined < report.lines else "all lines"
        echo(f"Date template hits ({scope}):")
        echo("|- [# of hits] date format")
        for name, hits in report.date_templates.most_common():
            echo(f"|  [{hits}] {name}")
        echo("`-")
        echo("")
    echo(report.summary_line())
    echo(f"[processed in {report.elapsed:.2f} sec]")
    _print_lines("Ignored", report.ignored, report.ignored_lines, all_ignored, "ignored")
    if all_matched:
        _print_lines("Matched", report.matched, report.matched_lines, True, "matched")
    if all_missed:
        _print_lines("Missed", report.missed, report.missed_lines, True, "missed")
    elif report.missed:
        click.echo("")
        click.echo(f"Missed line(s): {report.missed}; use --print-all-missed to print them")


def _print_lines(title: str, count: int, lines: list[str], show_all: bool, flag: str) -> None:
    if not count:
        return
    click.echo("")
    if not show_all and count > SHOWN_BY_DEFAULT:
        click.echo(f"{title} line(s): {count}; use --print-all-{flag} to print them")
        return
    click.echo(f"{title} line(s):")
    for line in lines:
        click.echo(f"|  {line}")
    click.echo("`-")

"""What ``gardien regex`` and ``fail2ban-regex`` print: fail2ban-regex 1.0.2's report, line for
line, so that a script reading fail2ban-regex's output reads gardien's.

The report has the blocks fail2ban-regex prints ("Running tests" with its ``Use ...`` lines,
"Results", "Prefregex", "Failregex: N total" with ``|  #) [hits] regex`` rows for the regexes
that hit, "Ignoreregex", "Date template hits", "Lines: ...", then the matched, ignored and
missed lines in the same frames and with the same "too many to print" rule). ``--out TOKEN``
prints one line per failure instead (:func:`out_lines`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from gardien.config.values import parse_spec
from gardien.errors import ConfigError
from gardien.matching.dates import templates_for
from gardien.matching.filter import CompiledRegex, Filter
from gardien.matching.jsonrules import JsonRule
from gardien.model import Failure
from gardien.settings import FilterSpec
from gardien.tester import JournalLog, RegexReport

__all__ = ["SHOWN_BY_DEFAULT", "RegexRun", "date_template_name", "out_lines", "report_lines"]

#: fail2ban-regex shows the ignored and missed lines when there are fewer than this
SHOWN_BY_DEFAULT = 20

# fail2ban's names of strptime fields in "Date template hits" (its strptime.getTimePatternRE)
_FIELD_NAMES = {
    "a": "DAY",
    "A": "DAYNAME",
    "b": "MON",
    "B": "MONTH",
    "d": "Day",
    "H": "24hour",
    "I": "12hour",
    "j": "Yearday",
    "m": "Month",
    "M": "Minute",
    "p": "AMPM",
    "S": "Second",
    "U": "Yearweek",
    "w": "Weekday",
    "W": "Yearweek",
    "y": "Year2",
    "Y": "Year",
    "%": "%",
    "z": "Zone offset",
    "f": "Microseconds",
    "Z": "Zone name",
}
_FIELD = re.compile(r"%(%|Ex[a-zA-Z]|[a-zA-Z])")


def date_template_name(name: str) -> str:
    """fail2ban's name of a date template: ``%b %d`` is written ``MON Day``, ``%ExY``
    ``ExYear``; fields without a name keep their ``%``."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith("Ex"):
            named = _FIELD_NAMES.get(key[2:])
            return "Ex" + named if named else "%" + key
        return _FIELD_NAMES.get(key, "%" + key)

    return _FIELD.sub(replace, name)


def _short(text: str, limit: int = 53) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class RegexRun:
    """What was tested, as the user gave it: the header of the report is made of it."""

    filter_argument: str
    spec: FilterSpec
    log: str | JournalLog
    config_dir: str | None
    ignoreregex: str | None = None
    maxlines: int | None = None  # given on the command line
    datepattern: str | None = None  # given on the command line
    journalmatch: Sequence[str] = ()
    threshold: int = SHOWN_BY_DEFAULT  # fewer lines than this of a kind are shown


def _datepattern_line(pattern: str) -> str:
    templates = templates_for(pattern)
    # fail2ban-regex names one or two templates by the first, more by this
    many = not templates or len(templates) > 2
    name = "Default Detectors" if many else date_template_name(templates[0].name)
    return f"Use      datepattern : {pattern} : {name}"


def _filter_lines(run: RegexRun) -> Iterator[str]:
    spec = run.spec
    argument = run.filter_argument
    head = argument.split("[", 1)[0]
    if spec.path is None:
        yield f"Use   failregex line : {_short(argument)}"
        return
    directory = os.path.dirname(spec.path)
    inside_config = not os.path.isfile(head) or os.path.basename(directory) == "filter.d"
    if inside_config:
        base = os.path.dirname(directory)
        yield f"Use   failregex filter file : {spec.name}, basedir: {base}"
    else:
        yield f"Use   failregex file : {os.path.abspath(head)}"
    if "[" in argument:
        shown = {k: v for k, v in spec.parameters.items() if k in _bracket_keys(argument)}
        yield f"Use   filter options : {shown!r}"


def _bracket_keys(argument: str) -> set[str]:
    try:
        return set(parse_spec("x" + argument[argument.index("[") :]).params)
    except ConfigError:  # the argument was not a filter name with parameters
        return set()


def header_lines(run: RegexRun) -> Iterator[str]:
    """From "Running tests" to the blank line before "Results"."""
    yield ""
    yield "Running tests"
    yield "============="
    yield ""
    spec = run.spec
    if run.maxlines is not None:
        yield f"Use         maxlines : {run.maxlines}"
    if run.datepattern is not None:
        yield _datepattern_line(run.datepattern)
    yield from _filter_lines(run)
    if run.ignoreregex:
        yield f"Use ignoreregex line : {_short(run.ignoreregex)}"
    if run.maxlines is None and "maxlines" in spec.options_set:
        yield f"Use         maxlines : {spec.maxlines}"
    if run.datepattern is None and spec.datepattern is not None:
        yield _datepattern_line(spec.datepattern)
    log = run.log
    if isinstance(log, JournalLog):
        yield "Use         systemd journal"
        yield "Use         encoding : UTF-8"
        if run.journalmatch:
            yield f"Use    journal match : {' '.join(run.journalmatch)}"
    elif log == "-" or os.path.isfile(log):
        yield f"Use         log file : {log}"
        yield "Use         encoding : UTF-8"
    elif spec.maxlines <= 1 and "\n" not in log:
        yield f"Use      single line : {_short(log)}"
    else:
        lines = log.split("\n")
        yield f"Use      multi line : {len(lines)} line(s)"
        for number, line in enumerate(lines[:5], start=1):
            yield f"| {str(number)[:2]:>2}: {_short(line)}"
        if len(lines) > 5:
            yield "| ..."
        yield "`-"
    yield ""


def _framed(rows: Sequence[str], header: str | None = None) -> Iterator[str]:
    """fail2ban-regex's list frame; nothing at all for no rows."""
    if not rows:
        return
    if header:
        yield f"|- {header}"
    for row in rows:
        yield f"|  {row}"
    yield "`-"


def results_lines(compiled: Filter, report: RegexReport) -> Iterator[str]:
    """From "Results" to "[processed in ...]" and the blank line after it."""
    yield ""
    yield "Results"
    yield "======="
    if compiled.prefregex is not None:
        yield ""
        yield f"Prefregex: {report.prefregex_matched} total"
        yield from _framed([compiled.prefregex.pattern])
    fail, ignore = len(compiled.failregex), len(compiled.ignoreregex)
    blocks: list[tuple[str, Sequence[CompiledRegex | JsonRule], list[int]]] = [
        ("Failregex", compiled.failregex, report.regex_hits[:fail]),
        ("Ignoreregex", compiled.ignoreregex, report.ignore_hits[:ignore]),
    ]
    # gardien's JSON rules, in blocks of their own (a filter without them prints none)
    if compiled.failjson:
        blocks.insert(1, ("Failjson", compiled.failjson, report.regex_hits[fail:]))
    if compiled.ignorejson:
        blocks.append(("Ignorejson", compiled.ignorejson, report.ignore_hits[ignore:]))
    for title, regexes, hits in blocks:
        yield ""
        yield f"{title}: {sum(hits)} total"
        rows = [
            f"{index:2d}) [{count}] {regex.source.pattern}"
            for index, (regex, count) in enumerate(zip(regexes, hits, strict=True), start=1)
            if count
        ]
        yield from _framed(rows, " #) [# of hits] regular expression")
    yield ""
    yield "Date template hits:"
    rows = [
        f"[{count}] {date_template_name(name)}"
        for name, count in report.date_templates.most_common()
    ]
    yield from _framed(rows, "[# of hits] date format")
    yield ""
    yield report.summary_line()
    if report.over_budget:
        # gardien's own line (fail2ban-regex has no budget): only when there is something
        yield (
            f"Missed: {report.over_budget} lines over the step budget "
            "(a regex that backtracks without end on them)"
        )
    yield f"[processed in {report.elapsed:.2f} sec]"
    yield ""


def lines_blocks(
    report: RegexReport,
    *,
    threshold: int,
    all_matched: bool,
    all_missed: bool,
    all_ignored: bool,
    no_missed: bool = False,
    no_ignored: bool = False,
) -> Iterator[str]:
    """The matched (when asked for), ignored and missed lines."""
    kinds: list[tuple[str, int, list[str], bool]] = []
    if all_matched:
        kinds.append(("matched", report.matched, report.matched_lines, True))
    if not no_ignored:
        kinds.append(("ignored", report.ignored, report.ignored_lines, all_ignored))
    if not no_missed:
        kinds.append(("missed", report.missed, report.missed_lines, all_missed))
    for kind, count, lines, show_all in kinds:
        if not count:
            continue
        header = f"{kind.capitalize()} line(s):"
        if count < threshold or show_all:
            yield from _framed([line.rstrip() for line in lines], header)
        else:
            yield (
                f"{header} too many to print.  Use --print-all-{kind} to print all {count} lines"
            )


def report_lines(
    run: RegexRun,
    compiled: Filter,
    report: RegexReport,
    *,
    all_matched: bool = False,
    all_missed: bool = False,
    all_ignored: bool = False,
    no_missed: bool = False,
    no_ignored: bool = False,
) -> Iterator[str]:
    """The whole report, as fail2ban-regex prints it."""
    yield from header_lines(run)
    yield from results_lines(compiled, report)
    yield from lines_blocks(
        report,
        threshold=run.threshold,
        all_matched=all_matched,
        all_missed=all_missed,
        all_ignored=all_ignored,
        no_missed=no_missed,
        no_ignored=no_ignored,
    )


# ---- --out ------------------------------------------------------------------------------

_TAG = re.compile(r"<([A-Za-z][\w-]*)>")


def _field_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)


def out_lines(what: str, failures: Sequence[Failure]) -> Iterator[str]:
    """fail2ban-regex's ``--out TOKEN`` lines for ``failures``: ``ip`` (the address), ``id``
    or ``fid`` (the failure id), ``msg`` (the log lines of each failure), ``row`` (a Python
    literal of id, time and captures), a capture's name (``user``, ``ip4``...; ``None`` when
    absent), or a template with tags (``<ip> <F-USER> <time> <msg>``)."""
    render: Callable[[Failure], Iterator[str]]
    if what in ("id", "fid"):

        def render(failure: Failure) -> Iterator[str]:
            yield failure.host

    elif what == "ip":

        def render(failure: Failure) -> Iterator[str]:
            yield str(failure.fields.get("ip", failure.host))

    elif what == "msg":

        def render(failure: Failure) -> Iterator[str]:
            yield from failure.lines

    elif what == "row":

        def render(failure: Failure) -> Iterator[str]:
            fields = {k: v for k, v in failure.fields.items() if k != "matches"}
            yield f"[{failure.host!r},\t{failure.time!r},\t{fields!r}],"

    elif "<" not in what:

        def render(failure: Failure) -> Iterator[str]:
            yield str(failure.fields.get(what))

    else:

        def render(failure: Failure) -> Iterator[str]:
            values = _tag_values(failure)
            if "<msg>" in what and len(failure.lines) > 1:
                # one output line per log line of the failure, as fail2ban-regex wraps them
                for line in failure.lines:
                    one = {**values, "msg": line}
                    yield _TAG.sub(lambda m, one=one: _tag(m, one), what)  # type: ignore[misc]
                return
            yield _TAG.sub(lambda m: _tag(m, values), what)

    for failure in failures:
        yield from render(failure)


def _tag_values(failure: Failure) -> Mapping[str, object]:
    values: dict[str, object] = {
        k: v for k, v in failure.fields.items() if v is not None and k != "matches"
    }
    values.update(
        ip=failure.fields.get("ip", failure.host),
        fid=failure.host,
        time=failure.time,
        matches="\n".join(failure.lines),
        msg="\n".join(failure.lines),
    )
    return values


def _tag(match: re.Match[str], values: Mapping[str, object]) -> str:
    name = match.group(1)
    key = name[2:].lower() if name.startswith("F-") else name
    if key in values:
        return _field_text(values[key])
    # a capture this failure lacks is empty; another tag stays as written
    return "" if name.startswith("F-") else match.group(0)

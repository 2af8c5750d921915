"""Run annotated sample logs through gardien's engine and compare with their expectations.

Two annotation dialects are read:

* fail2ban's sample logs (``# failJSON: {...}`` before a line, ``# filterOptions: ...``,
  ``# fileOptions: ...``, ``# addFILE: "name"``), read from the installed ``fail2ban`` package
  at test time: they are never copied into this repository;
* gardien's own samples under ``src/gardien/data/samples`` (``# expect: {...}``,
  ``# options: ...``).

A line without an expectation must not match. Keys compared: ``match``, ``host``, ``time``
(local time; when the expectation has no fraction of a second, gardien's sub-second precision is
dropped before comparing, since fail2ban keeps whole seconds), and any other key against the
captured fields (``user``, ``users``, ``attempts`` = number of lines that make the failure...).

``python tests/support/samples.py [--config-dir DIR] [FILTER...]`` prints the pass rate and failures.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import glob
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gardien.clock import FakeClock
from gardien.config.filters import bundled_config_dir, load_filter
from gardien.errors import GardienError
from gardien.matching.dates import DateDetector
from gardien.matching.filter import Filter, LineMatcher, LineResult
from gardien.matching.native import NativeScanner, scanner_for
from gardien.model import parse_address

TEST_TZ = "CET-01CEST-02,M3.5.0,M10.5.0"
FAIL2BAN_NOW = 1124013600.0  # 2005-08-14 12:00 CEST, the reference time of fail2ban's samples
#: one sshd failure of 192.0.2.7, in the syslog format
SSHD_FAILURE = (
    "Nov 21 10:00:01 web sshd[4242]: Failed password for root from 192.0.2.7 port 52000 ssh2"
)
GARDIEN_NOW = "2026-11-21T12:00:00"
_DIRECTIVE = re.compile(r"^#+ ?(failJSON|expect|(?:file|filter)Options|options|addFILE):(.+)$")
_EXPECT = {"failJSON", "expect"}
_OPTIONS = {"filterOptions", "options"}


def fail2ban_samples_dir() -> Path | None:
    """Where the installed fail2ban package keeps its sample logs, if it is installed."""
    configured = os.environ.get("GARDIEN_FAIL2BAN_SAMPLES")
    if configured:
        return Path(configured)
    for candidate in sorted(glob.glob("/usr/lib/python3*/dist-packages/fail2ban/tests/files/logs")):
        return Path(candidate)
    return None


def gardien_samples_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "src" / "gardien" / "data" / "samples"


@dataclass
class Outcome:
    """Results of one sample file (all its option sets)."""

    filter_name: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    native: int = 0  # lines the native core matched
    #: per option set: the failregexes of the filter and the indexes that matched some line
    coverage: dict[str, tuple[tuple[str, ...], set[int]]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.passed + len(self.failures)


def safe_eval(expression: str, name: str, opts: dict[str, Any]) -> bool:
    """Evaluate a sample-log condition such as ``opts.get('mode') != 'aggressive'`` without
    ``eval``: comparisons, ``and``/``or``/``not``, constants, ``name`` and ``opts.get(...)``."""
    tree = ast.parse(expression, mode="eval").body

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(value(e) for e in node.elts)
        if isinstance(node, ast.Name) and node.id == "name":
            return name
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "opts"
            and node.func.attr == "get"
        ):
            return opts.get(*[value(a) for a in node.args])
        if isinstance(node, ast.BoolOp):
            values = [value(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not value(node.operand)
        if isinstance(node, ast.Compare):
            left = value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = value(right_node)
                ok = {
                    ast.Eq: lambda a, b: a == b,
                    ast.NotEq: lambda a, b: a != b,
                    ast.In: lambda a, b: a in b,
                    ast.NotIn: lambda a, b: a not in b,
                }[type(op)](left, right)
                if not ok:
                    return False
                left = right
            return True
        raise ValueError(f"unsupported expression in sample condition: {expression!r}")

    return bool(value(tree))


def _local_epoch(text: str) -> float:
    try:
        moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f")
    return time.mktime(moment.timetuple()) + moment.microsecond / 1e6


def _lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as handle:
        for raw in handle:
            yield raw.decode("utf-8", "replace").rstrip("\r\n")


@dataclass
class _Variant:
    label: str
    options: dict[str, Any]
    matcher: LineMatcher | None
    error: str | None = None
    #: the native core matching for ``matcher`` (engine "native" and a filter it takes)
    scanner: NativeScanner | None = None


def run_sample(
    sample: Path,
    filter_name: str,
    config_dir: str | os.PathLike[str] | None,
    now: float,
    *,
    engine: str = "python",
) -> Outcome:
    """Check every expectation of ``sample`` (and the files it adds) with filter_name.

    ``engine="native"`` matches the lines of a log file through the native core (for the
    filters it takes; the others, and journal lines, go through Python as in gardien);
    :attr:`Outcome.native` then counts the lines it matched."""
    outcome = Outcome(filter_name)
    clock = FakeClock(now)
    variants: list[_Variant] = []
    common: dict[str, Any] = {}
    cache: dict[str, _Variant] = {}

    def variant(options: dict[str, Any]) -> _Variant:
        params = {k: str(v) for k, v in options.items() if not k.startswith("test.")}
        key = json.dumps(params, sort_keys=True)
        if key not in cache:
            label = filter_name + (key if params else "")
            try:
                spec = load_filter(
                    filter_name, config_dir, parameters=params, fallback_to_bundled=False
                )
                matcher = Filter(spec).matcher(clock=clock)
                scanner = scanner_for(matcher, None) if engine == "native" else None
                cache[key] = _Variant(label, options, matcher, scanner=scanner)
            except GardienError as error:
                cache[key] = _Variant(label, options, None, str(error))
        found = cache[key]
        return _Variant(found.label, options, found.matcher, found.error, found.scanner)

    files = [sample]
    index = 0
    while index < len(files):
        path = files[index]
        index += 1
        ignore_block = False
        pending: dict[str, Any] | None = None
        for number, line in enumerate(_lines(path), start=1):
            directive = _DIRECTIVE.match(line)
            if directive:
                kind, payload = directive.group(1), json.loads(directive.group(2))
                if kind in _EXPECT:
                    pending = payload
                elif kind == "fileOptions":
                    common = payload
                elif kind in _OPTIONS:
                    variants = []
                    ignore_block = False
                    for options in payload if isinstance(payload, list) else [payload]:
                        merged = {**common, **options}
                        condition = merged.get("test.condition")
                        if condition and not safe_eval(condition, filter_name, merged):
                            ignore_block = True
                            continue
                        ignore_block = False
                        variants.append(variant(merged))
                elif kind == "addFILE":
                    files.append(path.parent / payload)
                continue
            if not line or line.startswith("#"):
                continue
            expected = pending if pending is not None else {}
            pending = None
            if ignore_block:
                continue
            if not variants:
                variants = [variant(dict(common))]
            for current in variants:
                where = f"{path.name}:{number} [{current.label}]"
                if current.matcher is None:
                    outcome.failures.append(f"{where}: filter error: {current.error}")
                    continue
                constraint = expected.get("constraint")
                if constraint and not safe_eval(constraint, filter_name, current.options):
                    continue
                problem = _check(current, line, expected, outcome)
                if problem:
                    outcome.failures.append(f"{where}: {problem}\n    line: {line}")
                else:
                    outcome.passed += 1
    return outcome


def _check(current: _Variant, line: str, expected: dict[str, Any], outcome: Outcome) -> str | None:
    assert current.matcher is not None
    options = current.options
    if options.get("logtype") == "journal":
        line = options.get("test.prefix-line", "") + line
        result = current.matcher.process(
            line,
            date=FAIL2BAN_NOW,
            date_text=dt.datetime.fromtimestamp(FAIL2BAN_NOW, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        )
    elif current.scanner is not None:
        outcome.native += 1
        given = list(current.scanner.results([line.encode() + b"\n"]))
        assert len(given) <= 1, given
        result = given[0][1] if given else LineResult()
    else:
        result = current.matcher.process(line)
    failures = result.failures
    flt = current.matcher.filter
    regexes = tuple(r.source.pattern for r in (*flt.failregex, *flt.failjson))
    hit = outcome.coverage.setdefault(current.label, (regexes, set()))[1]
    hit.update(f.regex_index for f in failures)
    if result.nofail and not failures:
        hit.update(_nofail_index(current, line, options))
    if not failures:
        return "expected a match, got none" if expected.get("match") else None
    if not expected.get("match"):
        return f"matched (host {failures[0].host}) but should not"
    failure = failures[0]
    for key, want in expected.items():
        if key in ("time", "match", "desc", "constraint"):
            continue
        if key == "host":
            got: Any = failure.fields.get("host", failure.host)
        elif key == "attempts":
            got = len(failure.fields.get("matches") or ())
        else:
            got = failure.fields.get(key)
        if key == "host" and isinstance(got, str) and isinstance(want, str):
            same = parse_address(got) is not None and parse_address(got) == parse_address(want)
            if got == want or same:
                continue
        if isinstance(got, (set, list, tuple)):
            if sorted(got) != sorted(want if isinstance(want, list) else [want]):
                return f"{key}: expected {want!r}, got {sorted(got)!r}"
            continue
        if got != want:
            return f"{key}: expected {want!r}, got {got!r}"
    want_time = expected.get("time")
    if want_time is not None:
        want_epoch = _local_epoch(want_time)
        got_time = failure.time
        if got_time is None:
            return f"time: expected {want_time}, got none"
        if "." not in want_time:
            got_time = float(int(got_time))
        if abs(got_time - want_epoch) > 1e-6:
            shown = dt.datetime.fromtimestamp(failure.time or 0).isoformat()
            return f"time: expected {want_time}, got {shown}"
    return None


def _nofail_index(current: _Variant, line: str, options: dict[str, Any]) -> list[int]:
    """Which failregex recognised a line that is not a failure by itself (``<F-NOFAIL>``)."""
    assert current.matcher is not None
    flt = current.matcher.filter
    text = line
    if options.get("logtype") != "journal":  # as the matcher does: the date is cut out first
        found = DateDetector(flt.date_templates).find(line)
        if found is not None:
            start, end = found[0].span(1)
            text = line[:start] + line[end:]
    if flt.prefregex is not None:
        pre = flt.prefregex.regex.search(text + "\n")
        if pre is None or not pre.groupdict().get("content"):
            return []
        text = pre.group("content")
    for index, regex in enumerate(flt.failregex):
        if regex.regex.search(text + "\n"):
            return [index]
    return []


def set_test_timezone() -> str | None:
    """Switch this process to the samples' time zone; returns the previous TZ."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = TEST_TZ
    time.tzset()
    return previous


def restore_timezone(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


def fail2ban_filter_names(config_dir: Path, samples: Path) -> list[str]:
    """Filters of ``config_dir`` that have a sample log (common.conf excluded)."""
    names = []
    for conf in sorted((config_dir / "filter.d").glob("*.conf")):
        name = conf.stem
        if name == "common" or name.startswith("."):
            continue
        if (samples / name).is_file():
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-dir", default="/etc/fail2ban")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    parser.add_argument("filters", nargs="*")
    args = parser.parse_args(argv)
    samples = fail2ban_samples_dir()
    if samples is None:
        print("fail2ban's sample logs are not installed (apt-get install fail2ban)")
        return 2
    set_test_timezone()
    config_dir = Path(args.config_dir)
    names = args.filters or fail2ban_filter_names(config_dir, samples)
    passed = total = 0
    for name in names:
        outcome = run_sample(samples / name, name, config_dir, FAIL2BAN_NOW)
        passed += outcome.passed
        total += outcome.total
        status = "ok" if not outcome.failures else f"{len(outcome.failures)} failed"
        print(f"{name:28s} {outcome.passed:4d}/{outcome.total:<4d} {status}")
        if not args.quiet:
            for failure in outcome.failures:
                print("    " + failure)
    rate = 100.0 * passed / total if total else 0.0
    print(f"pass rate: {passed}/{total} = {rate:.2f}%")
    return 0


#: filters, not building blocks: a file that only other filters include has no failregex
SHIPPED = sorted(
    p.stem
    for p in (bundled_config_dir() / "filter.d").glob("*.conf")
    if "\nfailregex" in p.read_text() or "\nfailjson" in p.read_text()
)


if __name__ == "__main__":
    sys.exit(main())

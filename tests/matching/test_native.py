"""The native matching core against the pure-Python engine, the reference: the same results on
fail2ban's sample corpus, gardien's samples, whole logs and mutated lines; and a time bound on
lines that make a regex backtrack without end."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gardien import tester
from gardien.clock import FakeClock
from gardien.config.filters import bundled_config_dir, load_filter
from gardien.matching import native
from gardien.matching.filter import Filter
from gardien.matching.scan import Prefilter
from gardien.matching.translate import Untranslatable, gate, translate
from gardien.offenders import read_failures
from gardien.tester import RegexReport
from support.cli import gardien
from support.samples import FAIL2BAN_NOW, fail2ban_filter_names, run_sample

pytestmark = pytest.mark.usefixtures("native_core")


def _fields(fields: Any) -> str:
    """A failure's fields as text to compare: a set (a connection's users) as its sorted
    members, whatever order its table happens to hold them in."""
    return repr(sorted((k, sorted(v) if isinstance(v, set) else v) for k, v in fields.items()))


def _engine(name: str) -> None:
    """Use the native core (``native``) or the Python engine only (``python``)."""
    native._reset_for_tests(None if name == "python" else True)


def _digest(report: RegexReport) -> dict[str, Any]:
    return {
        "summary": report.summary(),
        "regex_hits": report.regex_hits,
        "ignore_hits": report.ignore_hits,
        "prefregex": report.prefregex_matched,
        "dates": dict(report.date_templates),
        "hosts": dict(report.hosts),
        "failures": [
            (f.host, f.time, f.regex_index, _fields(f.fields), f.lines) for f in report.failures
        ],
        "matched": report.matched_lines,
        "ignored": report.ignored_lines,
        "missed": report.missed_lines,
    }


def _both(
    compiled_of: Any, log: str, *, keep_failures: bool = True, **options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    found = []
    for engine in ("python", "native"):
        _engine(engine)
        report = tester.test_log(
            compiled_of(),
            log,
            clock=FakeClock(FAIL2BAN_NOW),
            keep_failures=keep_failures,
            **options,
        )
        found.append(_digest(report))
    return found[0], found[1]


# ---- the sample corpora through the core ------------------------------------------------


@pytest.mark.conformance
@pytest.mark.parametrize("where", ["fail2ban", "gardien"])
def test_the_corpus_at_100_percent_through_the_native_core(
    where: str, fail2ban_samples: Path, fail2ban_config: Path, samples_timezone: None
) -> None:
    config = fail2ban_config if where == "fail2ban" else bundled_config_dir()
    passed = total = through_core = 0
    failures: list[str] = []
    for name in fail2ban_filter_names(config, fail2ban_samples):
        outcome = run_sample(fail2ban_samples / name, name, config, FAIL2BAN_NOW, engine="native")
        passed += outcome.passed
        total += outcome.total
        through_core += outcome.native
        failures += outcome.failures
    assert total > 1000
    assert not failures, "\n".join(failures[:30])
    # most lines go through the core (journal-only, JSON and multi-line filters do not)
    assert through_core > 0.75 * total, (through_core, total)


def _sample_logs(fail2ban_samples: Path, config: Path) -> list[tuple[str, Path]]:
    return [(n, fail2ban_samples / n) for n in fail2ban_filter_names(config, fail2ban_samples)]


def _core_samples(samples: Path, fail2ban_config: Path) -> Iterator[tuple[str, Path, Any]]:
    """``(where, sample log, filter spec)`` for each sample log of fail2ban's filters and of
    gardien's that the core takes (``where``: the filter file, for messages)."""
    for config in (fail2ban_config, bundled_config_dir()):
        for name, path in _sample_logs(samples, config):
            spec = load_filter(name, config, fallback_to_bundled=False)
            if native.unsupported(Filter(spec)) is None:
                yield f"{config}/filter.d/{name}.conf", path, spec


@pytest.mark.conformance
@pytest.mark.parametrize(
    ("check_all", "keep_failures"),
    [(True, True), (False, True), (True, False), (False, False)],
    ids=["regex", "daemon", "regex-counts", "daemon-counts"],
)
def test_whole_sample_logs_give_the_same_reports(
    check_all: bool,
    keep_failures: bool,
    fail2ban_samples: Path,
    fail2ban_config: Path,
    samples_timezone: None,
) -> None:
    """Every sample file as one log (dates carried from line to line, connections kept,
    candidate words), fail2ban's filters and gardien's, both ways of counting; with the
    failures kept, and with counts only (the core's light results: hosts, no fields)."""
    compared = 0
    for where, path, spec in _core_samples(fail2ban_samples, fail2ban_config):
        python, core = _both(
            lambda spec=spec: Filter(spec),
            str(path),
            check_all=check_all,
            first_lines=20,
            keep_failures=keep_failures,
        )
        assert core == python, f"{where} on {path}"
        compared += 1
    assert compared > 100


def _failures(results: Any) -> list[tuple[Any, ...]]:
    return [
        (f.host, f.time, f.regex_index, _fields(f.fields), f.lines)
        for r in results
        for f in r.failures
    ]


def _daemon_both(
    spec: Any, lines: list[str], journal: bool, words: bool = True
) -> tuple[list[Any], list[Any]]:
    """The failures of ``lines`` matched as the daemon matches a batch: line by line in Python,
    and through :meth:`NativeScanner.process` (with the journal's given times, ``journal``)."""
    clock = FakeClock(FAIL2BAN_NOW)
    times = [FAIL2BAN_NOW - 3600 + i for i in range(len(lines))]

    def text(i: int) -> str:
        return f"2005-01-01T00:00:{i % 60:02d} "

    found = []
    for engine in ("python", "native", "native-block"):
        if journal and engine == "native-block":
            continue
        _engine("python" if engine == "python" else "native")
        matcher = Filter(spec).matcher(clock=clock)
        if engine == "python":
            if journal:
                results = [
                    matcher.process(line, date=times[i], date_text=text(i))
                    for i, line in enumerate(lines)
                ]
            else:
                results = [matcher.process(line) for line in lines]
        else:
            prefilter = Prefilter.for_filter(Filter(spec)) if words else None
            scanner = native.scanner_for(matcher, prefilter.words if prefilter else None)
            assert scanner is not None
            half = len(lines) // 2  # two batches: state carried from one to the next
            results = []
            for first, stop in ((0, half), (half, len(lines))):
                part = lines[first:stop]
                if journal:
                    results += scanner.process(
                        part, times[first:stop], lambda i, first=first: text(first + i)
                    )
                elif engine == "native-block":  # raw bytes, as the daemon reads a file
                    results += scanner.process_block("".join(f"{x}\n" for x in part).encode())
                else:
                    results += scanner.process(part)
        found.append(_failures(results))
    if not journal and not any(line.endswith("\r") for line in lines):
        # (a file's lines come without their carriage returns, the block's are cut off)
        assert found[2] == found[1], "a block of raw lines differs from the same lines"
    return found[0], found[1]


@pytest.mark.conformance
@pytest.mark.parametrize("words", [True, False], ids=["words", "every-line"])
@pytest.mark.parametrize("journal", [False, True], ids=["files", "journal"])
def test_the_daemon_matches_batches_through_the_core_as_line_by_line(
    journal: bool,
    words: bool,
    fail2ban_samples: Path,
    fail2ban_config: Path,
    samples_timezone: None,
) -> None:
    """Every sample log as one stream of batches, as the daemon reads a file or the journal:
    every line (comments, empty lines and lines that are not ASCII too) goes in, the same
    failures come out, with the same times, fields and matched lines."""
    compared = 0
    for where, path, spec in _core_samples(fail2ban_samples, fail2ban_config):
        lines = [
            line.rstrip("\r\n")
            for line in path.read_text(encoding="utf-8", errors="replace").split("\n")
        ]
        python, core = _daemon_both(spec, lines, journal, words)
        assert core == python, f"{where} on {path}"
        compared += bool(python)
    # a journal line has no date of its own: filters anchored before a date find none there
    assert compared > (15 if journal else 100)


# ---- mutated lines --------------------------------------------------------------------------

_MUTATED_FILTERS = ("sshd", "asterisk", "postfix", "dovecot", "nginx-http-auth", "exim")
_ALPHABET = "abcXYZ019 .:-[]()<>=@/\\'\"\t#*+?|{}$^\r"
# and what Python's classes and case folding see otherwise than Rust's: letters that fold onto
# ASCII ones, digits and spaces of other scripts, separators that are \s only in Python
_UNICODE = "é\u0130\u0131\u017f\u212a\u0663\u2003\x1c\x85ü\u00df\u2126\U0001f600"


def _sample_lines(samples: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in _MUTATED_FILTERS:
        lines = [
            line
            for line in (samples / name).read_text(errors="replace").splitlines()
            if line and not line.startswith("#")
        ]
        found[name] = lines
    return found


def _mutate(line: str, rng: random.Random) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(chars) + 1)
        kind = rng.randrange(5)
        if kind == 0:
            chars.insert(where, rng.choice(_ALPHABET if rng.random() < 0.7 else _UNICODE))
        elif kind == 1 and chars:
            del chars[min(where, len(chars) - 1)]
        elif kind == 2 and chars:
            start = rng.randrange(len(chars))
            chars[where:where] = chars[start : start + rng.randint(1, 12)]
        elif kind == 3 and chars:
            index = min(where, len(chars) - 1)
            if chars[index].isdigit():
                chars[index] = str(rng.randrange(10))
            elif chars[index].isalpha():
                chars[index] = chars[index].swapcase()
        else:
            chars[where:where] = list(f" from 192.0.2.{rng.randrange(256)} port 22")
    return "".join(chars)


@pytest.fixture
def mutation_base(fail2ban_samples: Path) -> dict[str, list[str]]:
    return _sample_lines(fail2ban_samples)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(_MUTATED_FILTERS),
    seed=st.integers(0, 2**32 - 1),
    check_all=st.booleans(),
)
def test_mutated_lines_give_the_same_results(
    name: str,
    seed: int,
    check_all: bool,
    mutation_base: dict[str, list[str]],
    tmp_path_factory: pytest.TempPathFactory,
    samples_timezone: None,
) -> None:
    rng = random.Random(seed)
    base = mutation_base[name]
    lines = [
        _mutate(rng.choice(base), rng) if rng.random() < 0.8 else rng.choice(base)
        for _ in range(200)
    ]
    log = tmp_path_factory.mktemp("mutated") / f"{name}.log"
    log.write_text("\n".join(lines) + "\n")
    spec = load_filter(name, bundled_config_dir())
    python, core = _both(lambda: Filter(spec), str(log), check_all=check_all, first_lines=20)
    assert core == python


# ---- the time bound -----------------------------------------------------------------------

_NESTED = "login failed for (?:\\w+\\s?)+ from <HOST>$"


def test_a_nested_quantifier_cannot_stall_gardien_regex(tmp_path: Path) -> None:
    """Three crafted lines make Python's engine backtrack for minutes; the core decides them
    in linear time (the pattern's gate, without its lookarounds, cannot match them: no
    backtracking at all), counts them missed, and still matches the legitimate line."""
    crafted = "login failed for " + " ".join(["aaaa"] * 14) + " xxxxx from nowhere!"
    lines = [f"Nov 17 10:00:0{i} host app: {crafted}" for i in range(3)]
    lines.insert(1, "Nov 17 10:00:05 host app: login failed for bob from 192.0.2.9")
    log = tmp_path / "crafted.log"
    log.write_text("\n".join(lines) + "\n")
    filter_file = tmp_path / "nested.conf"
    filter_file.write_text(f"[Definition]\nfailregex = {_NESTED}\n")
    started = time.monotonic()
    result = gardien("regex", str(log), str(filter_file))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 2.0
    assert "Lines: 4 lines, 0 ignored, 1 matched, 3 missed" in result.stdout
    hosts = gardien("regex", "--out", "ip", str(log), str(filter_file))
    assert hosts.stdout.split() == ["192.0.2.9"]


def test_a_line_over_the_step_budget_is_missed_and_counted(tmp_path: Path) -> None:
    """A back-reference after a nested quantifier: the gate lets the crafted lines through
    (it cannot check the back-reference), the backtracking machine gives up on each after its
    step budget; they are counted missed and said to be over budget, the legitimate line is
    matched, and all of it in well under the seconds Python's engine would spend on one."""
    crafted = "login failed for " + " ".join(["aaaa"] * 14) + " from 192.0.2.1 zzzz"
    lines = [f"Nov 17 10:00:0{i} host app: {crafted}" for i in range(3)]
    lines.insert(1, "Nov 17 10:00:05 host app: login failed for bob from 192.0.2.9 bob")
    log = tmp_path / "crafted.log"
    log.write_text("\n".join(lines) + "\n")
    filter_file = tmp_path / "backref.conf"
    filter_file.write_text(
        "[Definition]\nfailregex = login failed for ((?:\\w+\\s?)+) from <HOST> \\1$\n"
    )
    started = time.monotonic()
    result = gardien("regex", str(log), str(filter_file))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 2.0
    assert "Lines: 4 lines, 0 ignored, 1 matched, 3 missed" in result.stdout
    assert "Missed: 3 lines over the step budget" in result.stdout
    hosts = gardien("regex", "--out", "ip", str(log), str(filter_file))
    assert hosts.stdout.split() == ["192.0.2.9"]


# ---- the rewrite of Python's syntax ---------------------------------------------------------


def test_a_word_where_a_date_has_its_zone_is_no_date_not_an_error(
    tmp_path: Path, fail2ban_config: Path, samples_timezone: None
) -> None:
    """Found by the fuzzer: ``Jun Jun 21 ...`` matched sshd's date template with ``Jun`` as
    its zone name, and reading that zone raised, which stopped ``gardien regex`` (and a
    daemon's matching) on one line of a log. As in fail2ban-regex, the line is matched and has
    no time; both engines agree."""
    log = tmp_path / "auth.log"
    log.write_text(
        "Jun Jun 21 16:47:48 host sshd[13709]: error: PAM: Authentication failure for bob "
        "from 192.0.2.6\n"
    )
    spec = load_filter("sshd", fail2ban_config, fallback_to_bundled=False)
    python, core = _both(lambda: Filter(spec), str(log))
    assert core == python
    assert python["hosts"] == {"192.0.2.6": 1}
    assert [failure[1] for failure in python["failures"]] == [None]


def test_a_back_reference_to_a_group_without_letters_is_kept_case_insensitive() -> None:
    assert "\\1" in translate("(?i)(?P<sep>[-/])x(?P=sep)")
    with pytest.raises(Untranslatable, match="case-insensitive back-reference"):
        translate("(?i)(?P<word>[a-z]+) (?P=word)")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [("caf\u00e9", "non-ASCII"), ("(", "not a valid regex"), ("(?i)[a-\u0200]", "past ASCII")],
)
def test_patterns_the_core_cannot_match_exactly_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        translate(pattern)


def test_a_filter_the_core_refuses_names_the_regex_and_its_place(tmp_path: Path) -> None:
    conf = tmp_path / "filter.d" / "umlaut.conf"
    conf.parent.mkdir()
    conf.write_text("[Definition]\nfailregex = (?i)^F\u00fcr <HOST>$\n")
    spec = load_filter("umlaut", tmp_path, fallback_to_bundled=False)
    reason = native.unsupported(Filter(spec))
    assert reason is not None
    assert f"{conf}:2" in reason and "case-insensitive non-ASCII" in reason


def test_a_filter_with_a_non_ascii_letter_is_matched_by_the_core(tmp_path: Path) -> None:
    """Written for any text (Python's Unicode classes spelled out), the filter needs no
    Python engine, and matches as Python does, on ASCII lines and others."""
    conf = tmp_path / "filter.d" / "umlaut.conf"
    conf.parent.mkdir()
    conf.write_text("[Definition]\nfailregex = app: F\u00fcr \\w+ von <HOST>$\n")
    spec = load_filter("umlaut", tmp_path, fallback_to_bundled=False)
    assert native.unsupported(Filter(spec)) is None
    log = tmp_path / "app.log"
    log.write_text(
        "Nov 17 10:00:01 host app: F\u00fcr J\u00fcrgen von 192.0.2.1\n"
        "Nov 17 10:00:02 host app: F\u00fcr bob von 192.0.2.2\n"
        "Nov 17 10:00:03 host app: F\u00fcr \u2003 von 192.0.2.3\n"  # an em space is no \w
        "Nov 17 10:00:04 host app: Fur bob von 192.0.2.4\n"
    )
    python, core = _both(lambda: Filter(spec), str(log))
    assert core == python
    assert python["hosts"] == {"192.0.2.1": 1, "192.0.2.2": 1}


def test_config_check_names_the_jails_the_core_leaves_to_python(tmp_path: Path) -> None:
    (tmp_path / "filter.d").mkdir()
    (tmp_path / "filter.d" / "umlaut.conf").write_text(
        "[Definition]\nfailregex = (?i)^F\u00fcr <HOST>$\n"
    )
    (tmp_path / "filter.d" / "plain.conf").write_text("[Definition]\nfailregex = ^bad <HOST>$\n")
    log = tmp_path / "app.log"
    log.touch()
    (tmp_path / "jail.conf").write_text(
        f"[umlaut]\nenabled = true\nlogpath = {log}\n\n[plain]\nenabled = true\nlogpath = {log}\n"
    )
    result = gardien("-c", str(tmp_path), "config", "check")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "jail umlaut" in notes[0] and f"{tmp_path}/filter.d/umlaut.conf:2" in notes[0]


# ---- dates read a minute at a time ----------------------------------------------------------


def _one_minute_log(path: Path, first: float, stamp: Any) -> None:
    path.write_text(
        "".join(f"{stamp(first + s)} host app: fail from 192.0.2.{s + 1}\n" for s in range(60))
    )


def test_dates_read_by_the_minute_keep_the_year_flip_inside_a_minute(tmp_path: Path) -> None:
    """A year-less date more than a day ahead of now is last year's: with now chosen so that
    this limit falls inside one minute, the seconds before it and after it get different
    years, in the core as in Python (the core cannot add seconds to the minute's reading)."""
    now = 1_764_000_030.0  # half a minute past a minute
    first = (now + 86400) // 60 * 60  # the minute that holds the limit, a day ahead
    log = tmp_path / "flip.log"
    _one_minute_log(log, first, lambda t: time.strftime("%b %e %H:%M:%S", time.localtime(t)))
    spec_file = tmp_path / "app.conf"
    spec_file.write_text("[Definition]\nfailregex = app: fail from <HOST>$\n")
    found = []
    for engine in ("python", "native"):
        _engine(engine)
        report = tester.test_log(
            Filter(tester.resolve_filter(str(spec_file))),
            str(log),
            clock=FakeClock(now),
            keep_failures=True,
        )
        found.append(sorted((f.host, f.time) for f in report.failures))
    python, core = found
    assert core == python
    years = {time.localtime(t).tm_year for _, t in python}
    assert len(years) == 2  # the flip is inside the log's minute


def test_dates_with_a_fraction_read_by_the_minute_are_exact(tmp_path: Path) -> None:
    now = 1_764_000_000.0
    log = tmp_path / "fraction.log"
    log.write_text(
        "".join(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - 100 + s))
            + f".{(s * 7919) % 1_000_000:06d} host app: fail from 192.0.2.{s + 1}\n"
            for s in range(120)
        )
    )
    spec_file = tmp_path / "app.conf"
    spec_file.write_text("[Definition]\nfailregex = app: fail from <HOST>$\n")
    python, core = _both(lambda: Filter(tester.resolve_filter(str(spec_file))), str(log))
    assert core == python
    assert len(python["failures"]) == 120


def test_only_patterns_that_need_backtracking_get_a_gate() -> None:
    assert gate(r"from (\d+\.\d+\.\d+\.\d+)$") is None
    assert gate(r"(?<!\d)(\d+)(?=\s)") is not None
    assert gate(r"(?P<sep>[-/])x(?P=sep)") is not None
    assert gate(r"(a)?(?(1)b|c)") is not None


@pytest.mark.conformance
def test_scan_finds_the_same_failures_through_the_core(
    fail2ban_samples: Path, fail2ban_config: Path, samples_timezone: None
) -> None:
    """``gardien scan``'s reading (the core's light results: host and time of each failure)
    against the Python engine's, on every sample log of the filters the core takes."""
    compared = 0
    for where, path, spec in _core_samples(fail2ban_samples, fail2ban_config):
        found = []
        for engine in ("python", "native"):
            _engine(engine)
            result = read_failures(Filter(spec), [str(path)], clock=FakeClock(FAIL2BAN_NOW))
            found.append((result.lines, result.failures, result.unusable, dict(result.times)))
        assert found[1] == found[0], f"{where} on {path}"
        compared += bool(found[0][1])
    assert compared > 100


def test_lines_the_word_search_leaves_out_still_date_the_undated_lines_after_them(
    tmp_path: Path,
) -> None:
    """As the daemon matches (every line, in Python's engine), an undated failure takes the
    date of the last dated line before it, whatever that line is; the core, which skips the
    lines without the filter's words, reads that date back when it needs it, across
    batches too."""
    spec_file = tmp_path / "app.conf"
    spec_file.write_text("[Definition]\nfailregex = app: fail(?:ed)? from <HOST>$\n")
    spec = tester.resolve_filter(str(spec_file))
    now = FAIL2BAN_NOW
    first = now - 40  # an undated line takes a date less than a minute old

    def stamp(second: int) -> str:
        return time.strftime("%b %d %H:%M:%S", time.localtime(first + second))

    lines = [
        f"{stamp(1)} host app: failed from 192.0.2.1",  # dated failure
        f"{stamp(7)} host other: hello",  # dated, no word: skipped, dates the next
        "app: fail from 192.0.2.2",  # undated failure: 7
        "host other: undated and skipped",
        "app: fail from 192.0.2.3",  # still 7
        f"{stamp(9)} host other: hello again",
        f"{stamp(11)} host other: and again",  # the last dated one before the next
        "app: fail from 192.0.2.4",  # 11
        f"{stamp(13)} host other: the batch ends here",
    ]
    batches = [lines[:3], lines[3:8], lines[8:], ["app: fail from 192.0.2.5"]]  # 13
    clock = FakeClock(now)
    found = []
    for engine in ("python", "native"):
        _engine(engine)
        compiled = Filter(spec)
        matcher = compiled.matcher(clock=clock)
        if engine == "python":
            results = [matcher.process(line) for batch in batches for line in batch]
        else:
            prefilter = Prefilter.for_filter(compiled)
            assert prefilter is not None
            scanner = native.scanner_for(matcher, prefilter.words)
            assert scanner is not None
            results = [r for batch in batches for r in scanner.process(batch)]
        found.append(sorted((f.host, f.time) for r in results for f in r.failures))
    python, core = found
    assert core == python
    assert [t - first for _, t in python] == [1, 7, 7, 11, 13]


def test_a_lookbehind_that_always_holds_is_left_out() -> None:
    """<HOST>'s IPv6 part checks ``(?<=:)`` after a repetition that can only end with ':':
    always true there, so it is not written, and the failregex needs no backtracking."""
    host = r"(?:[0-9a-f]{1,4}:{1,2}|::){1,7}(?:[0-9a-f]{1,4}|(?<=:):)"
    assert "(?<=" not in translate(host)
    assert gate(host) is None
    # where the previous character may be another one, the lookbehind stays
    assert "(?<=" in translate(r"(?:[0-9a-f]{1,4}:?){1,7}(?:[0-9a-f]|(?<=:):)")
    assert "(?<=" in translate(r"x?(?<=:):")
    assert "(?<!" not in translate(r"ab(?<![:])c")


# ---- connections across both engines ------------------------------------------------------


def test_a_connection_carries_across_lines_the_core_hands_to_python(
    fail2ban_samples: Path, fail2ban_config: Path, samples_timezone: None
) -> None:
    """The core holds the connections of ``<F-MLFID>``; a line it cannot match itself (here
    one ending in a carriage return) is matched in Python and concluded with the same
    connections: every sshd sample line, one in three so, gives the failures Python alone
    gives, and some failures are made of lines from both engines."""
    spec = load_filter("sshd", fail2ban_config, fallback_to_bundled=False)
    lines = [
        line + ("\r" if i % 3 == 1 else "")
        for i, line in enumerate(
            (fail2ban_samples / "sshd").read_text(errors="replace").splitlines()
        )
    ]
    python, core = _daemon_both(spec, lines, journal=False)
    assert core == python
    mixed = [f for f in python if len({line.endswith("\r") for line in f[4]}) == 2]
    assert len(mixed) >= 3, python


@pytest.mark.parametrize(
    ("check_all", "keep_failures"),
    [(True, True), (False, True), (True, False), (False, False)],
    ids=["regex", "daemon", "regex-counts", "daemon-counts"],
)
def test_connections_across_both_engines_give_the_same_report(
    check_all: bool,
    keep_failures: bool,
    tmp_path: Path,
    fail2ban_samples: Path,
    fail2ban_config: Path,
    samples_timezone: None,
) -> None:
    """fail2ban's sshd sample log four times over (more ignored lines than are shown, so the
    core counts the rest itself), with a byte that is not UTF-8 in the user's name of one
    line in three that name one: those lines go to Python's engine, in the middle of their
    connections. The same report, failures and counts."""
    raw = (fail2ban_samples / "sshd").read_bytes().split(b"\n")
    odd = 0
    for i, line in enumerate(raw):
        if b" for " in line and i % 3 == 0:
            raw[i] = line.replace(b" for ", b" for \xff", 1)
            odd += 1
    log = tmp_path / "mixed.log"
    log.write_bytes(b"\n".join(raw * 4))
    spec = load_filter("sshd", fail2ban_config, fallback_to_bundled=False)
    python, core = _both(
        lambda: Filter(spec),
        str(log),
        check_all=check_all,
        first_lines=20,
        keep_failures=keep_failures,
    )
    assert core == python
    summary = python["summary"]
    assert odd > 20 and summary["ignored"] > 40 and summary["matched"] > 100, summary

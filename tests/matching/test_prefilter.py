"""The fast scan: required words of a regex, and exactness of the prefiltered log scan."""

from __future__ import annotations

import glob
import importlib.util
import io
import os
import random
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.clock import FakeClock
from gardien.config.filters import load_filter
from gardien.errors import GardienError
from gardien.matching.filter import Filter
from gardien.matching.literals import first_characters, required_words
from gardien.matching.scan import Prefilter, ScanCounts, iter_blocks, scan_lines
from gardien.settings import FilterSpec, RegexSource
from gardien.tester import RegexReport
from gardien.tester import test_log as run_log

FAIL2BAN_CONFIG = "/etc/fail2ban"
FAIL2BAN_LOGS = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs"
FAIL2BAN_NOW = 1124013600.0  # 2005-08-14 12:00 CEST, the reference time of fail2ban's samples
TEST_TZ = "CET-01CEST-02,M3.5.0,M10.5.0"
HAVE_HYPERSCAN = importlib.util.find_spec("hyperscan") is not None


@pytest.fixture(autouse=True)
def log_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", TEST_TZ)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# ---- required_words --------------------------------------------------------------------------

WORD_PATTERNS = [
    r"Failed password for \S+ from \d+\.\d+",
    r"(?:invalid|illegal) user \w+ from",
    r"^(?:error|warning): auth(?:entication)? failure; rhost=\S+",
    r"(?:abc)?def(?:gh|ij)+",
    r"colou?r [a-f]{2,4}x",
    r"(?:foo|bar)baz|qux(?:quux)?",
    r"a{0}bc\d{2}(?=z)z",
    r"(?i:SKIP)keep\b",
    r"[ab]cd+(?P<name>ef)",
    r"(?:x(?:y(?:zz))) ",
]


@pytest.mark.parametrize("pattern", WORD_PATTERNS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_match_contains_a_required_word(pattern: str, data: st.DataObject) -> None:
    words = required_words(pattern)
    assert words, pattern
    text = data.draw(st.from_regex(pattern, fullmatch=data.draw(st.booleans())))
    match = re.search(pattern, text)
    assert match is not None
    assert any(word in match.group() for word in words), (words, match.group())


def test_required_words_examples() -> None:
    assert required_words(r"Failed password for \S+ from") == {"password"}
    assert required_words(r"(?:invalid|illegal) user") in (
        {"invalid", "illegal"},
        {"nvalid", "llegal"},
    )
    assert required_words(r"foo|bar") == {"foo", "bar"}
    assert required_words(re.compile(r"error: (?P<x>auth)entication")) is not None


@pytest.mark.parametrize(
    "pattern",
    [
        r".*",
        r"\d+\.\d+",
        r"foo|.*",
        r"(?:foo)?",
        r"(?i)failed password",
        re.compile(r"failed password", re.IGNORECASE),
        r"[a-z]+ [0-9]+",
        r"é",
    ],
)
def test_required_words_none_when_no_word_is_certain(pattern: str | re.Pattern[str]) -> None:
    assert required_words(pattern) is None


FIRST_PATTERNS = [
    (r"^abc", {"a"}),
    (r"^(?:a|b)c", {"a", "b"}),
    (r"^[a-c]x", {"a", "b", "c"}),
    (r"^(?:Failed|Invalid) \w+", {"F", "I"}),
    (r"^\[(?:\d+)\]", {"["}),
    (r"^x+y", {"x"}),
]


@pytest.mark.parametrize(("pattern", "chars"), FIRST_PATTERNS)
def test_first_characters(pattern: str, chars: set[str]) -> None:
    assert first_characters(re.compile(pattern)) == chars


@pytest.mark.parametrize(
    "pattern",
    [
        r"abc",
        r"^\d+",
        r"^\s*x",
        r"^x?y",
        r"^(?:foo)?bar",
        r"(?m)^abc",
        r"(?i)^abc",
        r"^.x",
        r"^[^a]",
        r"^(?:a|)b",
        r"^(?=a)a",
        r"\Aabc",
    ],
)
def test_first_characters_unknown(pattern: str) -> None:
    assert first_characters(re.compile(pattern)) is None


@pytest.mark.parametrize(("pattern", "chars"), FIRST_PATTERNS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_matches_start_with_a_first_character(
    pattern: str, chars: set[str], data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(pattern))
    assert re.search(pattern, text) is not None
    assert text[:1] in chars


# ---- exactness of the prefiltered scan -------------------------------------------------------


def fail2ban_filters() -> list[str]:
    names = []
    for path in sorted(glob.glob(os.path.join(FAIL2BAN_CONFIG, "filter.d", "*.conf"))):
        name = os.path.basename(path)[: -len(".conf")]
        if os.path.isfile(os.path.join(FAIL2BAN_LOGS, name)):
            names.append(name)
    return names


def summary(report: RegexReport) -> tuple[int, int, int, list[int], dict[str, int]]:
    return (report.lines, report.matched, report.ignored, report.regex_hits, dict(report.hosts))


def both_ways(
    compiled: Filter, log: str, monkeypatch: pytest.MonkeyPatch, engine: str
) -> tuple[RegexReport, RegexReport]:
    """(every line matched, prefiltered scan) reports of ``log``."""
    full = run_log(compiled, log, clock=FakeClock(FAIL2BAN_NOW), every_line=lambda *_: None)
    if engine == "python":
        monkeypatch.setenv("GARDIEN_NO_HYPERSCAN", "1")
    else:
        monkeypatch.delenv("GARDIEN_NO_HYPERSCAN", raising=False)
    fast = run_log(compiled, log, clock=FakeClock(FAIL2BAN_NOW))
    return full, fast


ENGINES = [
    "python",
    pytest.param(
        "hyperscan",
        marks=pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan is not installed"),
    ),
]


@pytest.mark.conformance
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", fail2ban_filters())
def test_prefilter_is_exact_on_fail2ban_samples(
    name: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        compiled = Filter(load_filter(name, FAIL2BAN_CONFIG, fallback_to_bundled=False))
    except GardienError as error:
        pytest.skip(f"filter does not load: {error}")
    full, fast = both_ways(compiled, os.path.join(FAIL2BAN_LOGS, name), monkeypatch, engine)
    assert full.lines > 0
    assert summary(fast) == summary(full)
    assert fast.examined <= full.examined


@pytest.mark.conformance
def test_prefilter_is_used_for_most_fail2ban_filters() -> None:
    """Guard: the comparison above exercises the fast path, not only the slow one twice."""
    names = fail2ban_filters()
    if not names:
        pytest.skip("fail2ban is not installed")
    with_prefilter = 0
    for name in names:
        try:
            compiled = Filter(load_filter(name, FAIL2BAN_CONFIG, fallback_to_bundled=False))
        except GardienError:
            continue
        if Prefilter.for_filter(compiled) is not None:
            with_prefilter += 1
    assert with_prefilter >= len(names) // 2


SYNTH_FILTER = r"""
[Definition]
prefregex = ^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]:\s+<F-CONTENT>.+</F-CONTENT>$
failregex = ^Failed password for (?:invalid user )?<F-USER>\S+</F-USER> from <HOST> port \d+
            ^Invalid user <F-USER>\S*</F-USER> from <HOST>
            ^<F-NOFAIL>Connection from</F-NOFAIL> <HOST> port \d+
            ^Failed keyboard-interactive for <F-USER>\S+</F-USER>$
            ^Bad protocol version identification .* from <HOST>
ignoreregex = from 10\.0\.0\.\d+ port
datepattern = {^LN-BEG}
"""

_USERS = ["root", "admin", "oracle", "test", "ubuntu", "pi", "git", "x" * 40]
_NOISE = [
    "pam_unix(cron:session): session opened for user root",
    "Failed to start Daily apt download activities.",
    "Accepted password for alice from 198.51.100.4 port 50022 ssh2",
    "Received disconnect from 203.0.113.9 port 4711:11: Bye Bye",
    "password changed for bob",
    "Connection closed by 192.0.2.200 port 2200 [preauth]",
    "Invalid",
    "from",
    "port",
]


def _address(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.7:
        return (
            f"{rng.choice([192, 198, 203, 45])}.{rng.randrange(256)}.{rng.randrange(256)}."
            f"{rng.randrange(1, 255)}"
        )
    if kind < 0.8:
        return f"10.0.0.{rng.randrange(256)}"  # ignored
    if kind < 0.9:
        return f"2001:DB8::{rng.randrange(1 << 16):X}"
    return f"::ffff:192.0.2.{rng.randrange(256)}"


def synthetic_log(path: Path, count: int = 50_000, seed: int = 2026) -> None:
    """A mixed sshd/syslog log with the traps a line scanner can fall into."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(count):
        stamp = f"Aug {1 + i * 13 // count:2d} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
        pid = rng.randrange(100, 140)
        user = rng.choice(_USERS)
        address = _address(rng)
        port = rng.randrange(1024, 65536)
        kind = rng.randrange(20)
        if kind < 6:
            line = (
                f"{stamp} host {rng.choice(['cron', 'systemd', 'su', 'sshd'])}[{pid}]: "
                f"{rng.choice(_NOISE)}"
            )
        elif kind < 9:
            invalid = "invalid user " if rng.random() < 0.3 else ""
            line = (
                f"{stamp} host sshd[{pid}]: Failed password for {invalid}{user} from "
                f"{address} port {port} ssh2"
            )
        elif kind == 9:
            line = f"{stamp} host sshd[{pid}]: Invalid user {user} from {address}"
        elif kind == 10:
            line = (
                f"{stamp} host sshd[{pid}]: Connection from {address} port {port} on "
                f"10.1.1.1 port 22"
            )
        elif kind == 11:
            line = f"{stamp} host sshd[{pid}]: Failed keyboard-interactive for {user}"
        elif kind == 12:
            line = (
                f"{stamp} host sshd[{pid}]: Bad protocol version identification "
                f"'\\x16\\x03' from {address} port {port}"
            )
        elif kind == 13:
            # the words, but not the shape: another daemon, or no address
            line = rng.choice(
                [
                    f"{stamp} host other[{pid}]: Failed password for {user} from {address} port 1",
                    f"{stamp} host sshd[{pid}]: Failed password for {user} from nowhere port 1",
                    f"{stamp} host sshd[{pid}]: message repeated 2 times: [ Failed password for "
                    f"{user} from {address} port {port} ssh2]",
                ]
            )
        elif kind == 14:
            # no date: the previous line's date is used
            line = f"sshd[{pid}]: Failed password for {user} from {address} port {port}"
        elif kind == 15:
            line = rng.choice(["", "# Failed password for root from 192.0.2.1 port 1", "   "])
        elif kind == 16:
            line = (
                f"{stamp} host sshd[{pid}]: Failed password for {user} from {address} port {port}\r"
            )
        elif kind == 17:
            line = f"{stamp} host sshd[{pid}]: Invalid user \udcff\udcfe{user} from {address}"
        elif kind == 18:
            line = (
                f"{stamp} host sshd[{pid}]: Failed password for a\x00b from {address} port {port}"
            )
        else:
            line = f"{stamp} host kernel: [UFW BLOCK] IN=eth0 SRC={address} DST=10.1.1.1"
        out.append(line.encode("utf-8", "surrogateescape"))
    path.write_bytes(b"\n".join(out) + b"\n")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("synthetic")
    log = directory / "auth.log"
    synthetic_log(log)
    (directory / "filter.d").mkdir()
    (directory / "filter.d" / "synth.conf").write_text(
        textwrap.dedent(SYNTH_FILTER).lstrip(), encoding="utf-8"
    )
    return directory, log


@pytest.mark.parametrize("engine", ENGINES)
def test_prefilter_is_exact_on_a_synthetic_log(
    synthetic: tuple[Path, Path], engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, log = synthetic
    compiled = Filter(load_filter("synth", directory, fallback_to_bundled=False))
    assert Prefilter.for_filter(compiled) is not None
    full, fast = both_ways(compiled, str(log), monkeypatch, engine)
    assert full.lines > 45_000
    assert full.matched > 10_000
    assert full.ignored > 500
    assert len(full.hosts) > 1_000
    assert summary(fast) == summary(full)
    assert fast.examined < full.examined


@pytest.mark.parametrize("engine", ENGINES)
def test_prefilter_is_exact_with_fail2ban_sshd_on_a_synthetic_log(
    synthetic: tuple[Path, Path], engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.path.isfile(os.path.join(FAIL2BAN_CONFIG, "filter.d", "sshd.conf")):
        pytest.skip("fail2ban is not installed")
    _, log = synthetic
    compiled = Filter(
        load_filter("sshd[mode=aggressive]", FAIL2BAN_CONFIG, fallback_to_bundled=False)
    )
    assert Prefilter.for_filter(compiled) is not None
    full, fast = both_ways(compiled, str(log), monkeypatch, engine)
    assert full.matched > 10_000
    assert summary(fast) == summary(full)


@pytest.mark.parametrize("block_size", [1, 97, 4096])
def test_scan_lines_is_exact_across_block_boundaries(
    synthetic: tuple[Path, Path], block_size: int
) -> None:
    directory, log = synthetic
    compiled = Filter(load_filter("synth", directory, fallback_to_bundled=False))
    prefilter = Prefilter.for_filter(compiled)
    assert prefilter is not None
    data = log.read_bytes()[: 200_000 if block_size == 1 else None]
    every = ScanCounts()
    all_lines = list(scan_lines(iter_blocks(io.BytesIO(data), block_size), None, every))
    counts = ScanCounts()
    selected = list(scan_lines(iter_blocks(io.BytesIO(data), block_size), prefilter, counts))
    assert counts.lines == every.lines == len(all_lines)
    assert len(selected) < len(all_lines)

    def results(lines: list[str]) -> list[tuple[str, str]]:
        matcher = compiled.matcher(clock=FakeClock(FAIL2BAN_NOW))
        out = []
        for line in lines:
            result = matcher.process(line)
            out += [(line, f.host) for f in result.failures]
            if result.ignored:
                out.append((line, "ignored"))
        return out

    assert results(selected) == results(all_lines)


def test_prefilter_is_exact_when_the_date_format_changes(tmp_path: Path) -> None:
    # '01-02-2005 10:00:00.500' is read as dd-mm-yyyy (without the fraction) after a
    # dd-mm-yyyy line, and as mm-dd-yyyy (with it) after a mm-dd-yyyy line
    log = tmp_path / "mixed.log"
    log.write_text(
        "12-25-2005 10:00:00 fail from 192.0.2.1\n"
        "13-01-2005 10:00:00 noise\n"
        "01-02-2005 10:00:00.500 fail from 192.0.2.2\n",
        encoding="utf-8",
    )
    compiled = Filter(
        FilterSpec(
            name="mixed",
            failregex=(RegexSource(r"^\s*fail from <HOST>$"),),
            datepattern="{^LN-BEG}",
        )
    )
    assert Prefilter.for_filter(compiled) is not None
    full = run_log(compiled, str(log), clock=FakeClock(FAIL2BAN_NOW), every_line=lambda *_: None)
    fast = run_log(compiled, str(log), clock=FakeClock(FAIL2BAN_NOW))
    assert summary(fast) == summary(full)

"""Regexes at risk of catastrophic backtracking: the shapes found, the shapes left alone, the
shipped filters, and ``gardien config check``'s warning naming file:line."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from gardien.config.filters import bundled_config_dir, load_filter
from gardien.matching.filter import Filter
from gardien.matching.risk import ambiguous_repeat
from support.cli import gardien
from support.samples import fail2ban_filter_names

AT_RISK = [
    r"^login failed for (?:\w+\s?)+ from (?P<host>\S+)$",  # the filter
    r"^smtp: (?:[^\[]+ )*x$",  # the separator is one of the inner repetition's characters
    r"^(\d+)+$",
    r"^(?:.+ )*x$",
    r'"(?:"+[^"]*(?="))*?"',  # only optional parts besides the inner repetition
    r"(?i)^(?:[a-z]+[A-Z]?)+!$",
    r"^(?:(?:\w+\s?)+)?x$",  # nested deeper
]
SAFE = [
    r"^(?:\w+\s)+x$",  # a separator the inner repetition cannot match
    r"^(?:[^,]+,)*x$",
    r"^(?:\w|\d)+$",  # one class once parsed
    r"^(?:a+)++$",  # possessive
    r"^(?>(?:\w+\s?)+)$",  # atomic
    r"^(?:\w+\s?)?x$",  # not repeated
    r"^(?:\S+ ){0,1}x$",
    r"^user (?P<user>\S+) from (?P<host>\S+) port \d+$",
]


@pytest.mark.parametrize("pattern", AT_RISK)
def test_repetitions_that_split_a_text_many_ways_are_at_risk(pattern: str) -> None:
    assert ambiguous_repeat(pattern) is not None


@pytest.mark.parametrize("pattern", SAFE)
def test_repetitions_with_one_way_to_split_a_text_are_not(pattern: str) -> None:
    assert ambiguous_repeat(pattern) is None


def test_a_pattern_found_at_risk_does_take_exponential_time_in_python() -> None:
    """The warning is about something real: one more token doubles Python's time or so."""
    pattern = re.compile(AT_RISK[1])

    def seconds(tokens: int) -> float:
        started = time.perf_counter()
        pattern.search("smtp: " + "a " * tokens + "!")
        return time.perf_counter() - started

    assert seconds(22) > 3 * seconds(20) > 0


def _shipped(directory: Path | None, names: list[str]) -> list[str]:
    flagged = []
    for name in names:
        compiled = Filter(load_filter(name, directory, fallback_to_bundled=False))
        regexes = [*compiled.failregex, *compiled.ignoreregex]
        regexes += [compiled.prefregex] if compiled.prefregex else []
        flagged += [
            f"{name}:{regex.source.line}"
            for regex in regexes
            if ambiguous_repeat(regex.regex.pattern, regex.regex.flags)
        ]
    return flagged


def test_few_shipped_patterns_are_at_risk(fail2ban_samples: Path) -> None:
    """Of fail2ban's filters, two patterns have the shape (domino-smtp's ``(?:[^\\[]+ )*``
    and exim's ``(?:"+[^"]*(?="))*?``); of gardien's own, none."""
    etc = Path("/etc/fail2ban")
    fail2ban = _shipped(etc, fail2ban_filter_names(etc, fail2ban_samples))
    assert len(fail2ban) <= 4, fail2ban
    assert any(found.startswith("domino-smtp:") for found in fail2ban)
    ours = sorted(
        path.stem
        for path in (bundled_config_dir() / "filter.d").glob("*.conf")
        # not the files only included by others
        if re.search(r"^fail(?:regex|json)\s*=", path.read_text(), re.MULTILINE)
    )
    assert len(ours) > 40
    assert _shipped(bundled_config_dir(), ours) == []


def test_config_check_warns_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "filter.d").mkdir()
    (tmp_path / "filter.d" / "nested.conf").write_text(
        "[Definition]\n\nfailregex = ^ok <HOST>$\n"
        "            ^login failed for (?:\\w+\\s?)+ from <HOST>$\n"
    )
    log = tmp_path / "app.log"
    log.touch()
    (tmp_path / "jail.conf").write_text(
        f"[nested]\nenabled = true\nlogpath = {log}\n\n"
        f"[again]\nenabled = true\nfilter = nested\nlogpath = {log}\n"
    )
    result = gardien("-c", str(tmp_path), "config", "check")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stdout  # once for the regex, naming both jails
    assert f"{tmp_path}/filter.d/nested.conf:4: failregex of jail nested, again" in warnings[0]
    assert "catastrophic backtracking" in warnings[0]

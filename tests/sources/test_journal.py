"""The systemd journal as a source: journalmatch, fail2ban's line format, reading real journal
files (written by systemd-journal-remote from the journal export format), resuming, waiting."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gardien import _native
from gardien.errors import ConfigError
from gardien.sources.journal import (
    MAX_CLAUSES,
    Fields,
    JournalLine,
    JournalMatch,
    JournalSource,
    format_entry,
)
from support.ci import require
from support.journal import SSHD, T0, Writer, cron, entry, sshd

pytestmark = pytest.mark.usefixtures("journal_reader")


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Lines carry local times: tests run in UTC unless they set another zone."""

    def set_zone(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    set_zone("UTC")
    yield set_zone
    monkeypatch.undo()
    time.tzset()


# journalmatch


def test_terms_separated_by_spaces_must_all_hold_and_plus_separates_alternatives() -> None:
    match = JournalMatch.parse([SSHD])
    assert match.groups == ((("_SYSTEMD_UNIT", "sshd.service"),), (("_COMM", "sshd"),))
    both = JournalMatch.parse(["_SYSTEMD_UNIT=fail2ban.service PRIORITY=5"])
    assert both.groups == ((("_SYSTEMD_UNIT", "fail2ban.service"), ("PRIORITY", "5")),)
    assert str(match) == SSHD


def test_each_line_is_one_more_alternative_and_values_may_be_quoted() -> None:
    match = JournalMatch.parse(["_COMM=sshd", 'MESSAGE="two words" _UID=0', "", "+"])
    assert match.groups == (
        (("_COMM", "sshd"),),
        (("MESSAGE", "two words"), ("_UID", "0")),
    )
    assert JournalMatch.parse("_COMM=sshd").groups == ((("_COMM", "sshd"),),)


def test_a_plus_with_nothing_on_one_side_is_ignored_as_fail2ban_does() -> None:
    assert JournalMatch.parse(["+ _COMM=sshd + + _COMM=su +"]).groups == (
        (("_COMM", "sshd"),),
        (("_COMM", "su"),),
    )
    assert JournalMatch.parse([]).groups == ()


@pytest.mark.parametrize(
    "term",
    [
        "_systemd_unit=sshd.service",
        "sshd.service",
        "=sshd",
        "1FIELD=x",
        "FIELD-NAME=x",
        "F" * 65 + "=x",
        "MESSAGE=a\0b",
    ],
)
def test_a_bad_term_is_a_config_error_naming_it(term: str) -> None:
    with pytest.raises(ConfigError) as caught:
        JournalMatch.parse([f"_COMM=sshd {term} + _COMM=su"])
    assert repr(term) in str(caught.value)
    assert caught.value.option == "journalmatch"


def test_an_unbalanced_quote_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match='MESSAGE="open'):
        JournalMatch.parse(['MESSAGE="open'])


def test_clauses_give_the_journal_the_same_choice_as_a_conjunction() -> None:
    def clauses(text: str) -> tuple[tuple[str, ...], ...]:
        return JournalMatch.parse([text]).clauses()

    assert clauses(SSHD) == (("_SYSTEMD_UNIT=sshd.service", "_COMM=sshd"),)
    assert clauses("A=1 B=2") == (("A=1",), ("B=2",))
    assert clauses("A=1 B=2 + C=3") == (("A=1", "C=3"), ("B=2", "C=3"))
    # one field twice in a group: either value, as journalctl
    assert clauses("A=1 A=2") == (("A=1", "A=2"),)
    # (A and B) or A is A
    assert clauses("A=1 B=2 + A=1") == (("A=1",),)
    assert JournalMatch().clauses() == ()


def test_too_many_alternatives_to_distribute_are_a_config_error() -> None:
    groups = " + ".join(f"A=1 B=2 C{n}=3" for n in range(6))  # 3**6 clauses
    assert MAX_CLAUSES < 3**6
    with pytest.raises(ConfigError, match="too many alternatives"):
        JournalMatch.parse([groups]).clauses()


_FIELDS = st.sampled_from(["A", "B", "C"])
_VALUES = st.sampled_from(["1", "2", ""])


def _holds(clauses: tuple[tuple[str, ...], ...], fields: Fields) -> bool:
    """What libsystemd does with the clauses: all hold, each by any of its terms."""
    return all(
        any(JournalMatch.parse([term]).matches(fields) for term in clause) for clause in clauses
    )


@given(
    st.lists(st.lists(st.tuples(_FIELDS, _VALUES), min_size=1, max_size=3), max_size=3),
    st.dictionaries(_FIELDS, st.one_of(_VALUES, st.lists(_VALUES, min_size=1, max_size=2))),
)
def test_clauses_choose_the_entries_the_alternatives_choose(
    groups: list[list[tuple[str, str]]], fields: dict[str, str | list[str]]
) -> None:
    match = JournalMatch(tuple(tuple(group) for group in groups))
    assert _holds(match.clauses(), fields) == match.matches(fields)


# fail2ban's line


def line_of(fields: Mapping[str, str | list[str]], monotonic_usec: int = 0) -> str:
    return format_entry(fields, realtime_usec=T0 * 1_000_000, monotonic_usec=monotonic_usec).line


def test_an_entry_reads_as_a_syslog_line() -> None:
    fields = {
        "_HOSTNAME": "web1",
        "SYSLOG_IDENTIFIER": "sshd",
        "SYSLOG_PID": "812",
        "_PID": "813",
        "_COMM": "sshd-session",
        "MESSAGE": "Failed password for root from 192.0.2.7 port 22 ssh2",
    }
    entry = format_entry(fields, realtime_usec=T0 * 1_000_000 + 250_000, cursor="s=1")
    assert entry == JournalLine(
        "web1 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2",
        T0 + 0.25,
        "s=1",
    )
    assert entry.date_text == "2023-11-14T22:13:20.250000+00:00 "


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"_COMM": "sshd", "_PID": "7", "MESSAGE": "m"}, "sshd[7]: m"),
        ({"_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "su", "MESSAGE": "m"}, "h su: m"),
        ({"_HOSTNAME": "h", "MESSAGE": "just this"}, "h just this"),
        ({"MESSAGE": "just this"}, "just this"),
        ({"_HOSTNAME": "h", "_COMM": "x", "_PID": "1"}, "h x[1]: "),
        ({"_COMM": "x", "SYSLOG_PID": "0x1f", "MESSAGE": "m"}, "x[31]: m"),
        ({"_COMM": "x", "SYSLOG_PID": "0", "_PID": "9", "MESSAGE": "m"}, "x[9]: m"),
        ({"_COMM": "x", "SYSLOG_PID": "worker", "MESSAGE": "m"}, "x[worker]: m"),
        ({"_COMM": "x", "SYSLOG_IDENTIFIER": "", "MESSAGE": "m"}, "x: m"),
        ({"_COMM": "x", "MESSAGE": ["one", "two"]}, "x: one two"),
        ({"_COMM": "x", "MESSAGE": "one\ntwo\n"}, "x: one\\ntwo\\n"),
        (
            {
                "SYSLOG_IDENTIFIER": "kernel",
                "_SOURCE_MONOTONIC_TIMESTAMP": "12345678",
                "MESSAGE": "m",
            },
            "kernel: [   12.345678] m",
        ),
        ({"SYSLOG_IDENTIFIER": "kernel", "MESSAGE": "m"}, "kernel: [    3.000001] m"),
        ({"SYSLOG_IDENTIFIER": "kernel", "_PID": "4", "MESSAGE": "m"}, "kernel[4]: m"),
    ],
)
def test_lines_are_formatted_as_fail2ban_formats_them(fields: Fields, line: str) -> None:
    assert line_of(fields, monotonic_usec=3_000_001) == line


def test_the_senders_time_is_preferred_to_the_journals() -> None:
    sent = {"_SOURCE_REALTIME_TIMESTAMP": str((T0 - 5) * 1_000_000), "MESSAGE": "m"}
    assert format_entry(sent, realtime_usec=T0 * 1_000_000).time == T0 - 5
    unreadable = {"_SOURCE_REALTIME_TIMESTAMP": "soon", "MESSAGE": "m"}
    assert format_entry(unreadable, realtime_usec=T0 * 1_000_000).time == T0


def test_the_date_text_is_local_time(utc: Callable[[str], None]) -> None:
    utc("Asia/Kolkata")
    assert JournalLine("x", T0, "").date_text == "2023-11-15T03:43:20+05:30 "


@given(
    when=st.one_of(
        st.floats(min_value=-1e9, max_value=4e9),
        st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999995),
        st.integers(0, 4_000_000_000).map(float),
    ),
    zone=st.sampled_from(["UTC", "Asia/Kolkata", "Europe/Paris", "America/St_Johns"]),
)
def test_the_date_text_is_the_one_datetime_makes(when: float, zone: str) -> None:
    """Worked out once a second, the text is still datetime's, to the microsecond and across
    a change of zone (the seconds are cached per zone)."""
    os.environ["TZ"] = zone
    time.tzset()
    expected = datetime.fromtimestamp(when, UTC).astimezone().isoformat() + " "
    assert JournalLine("x", when).date_text == expected


def test_without_cysystemd_the_source_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cysystemd.reader", None)
    _native.reset_for_tests(None)  # without the native core's reader either
    with pytest.raises(ConfigError, match=r"cysystemd package, a dependency of gardien.*reinstall"):
        JournalSource([SSHD], files=["/nonexistent.journal"])


def test_a_bad_journalmatch_is_reported_before_the_journal_is_opened() -> None:
    with pytest.raises(ConfigError, match="'sshd'"):
        JournalSource(["_COMM=sshd sshd"], files=["/nonexistent.journal"])


# real journal files


def lines(source: JournalSource, max_entries: int | None = None) -> list[str]:
    return [found.line for found in source.read_entries(max_entries)]


def test_entries_matching_the_journalmatch_come_out_as_lines_with_their_times(
    tmp_path: Path, write_journal: Writer
) -> None:
    journal = tmp_path / "system.journal"
    write_journal(
        journal,
        [
            sshd(0, "Failed password for root from 192.0.2.7 port 22 ssh2"),
            cron(1, "(root) CMD (run-parts /etc/cron.hourly)"),
            sshd(2.5, "Invalid user admin from 192.0.2.8 port 4711"),
        ],
    )
    with JournalSource([SSHD], files=[str(journal)], since=0) as source:
        read = source.read_entries()
        assert [(found.line, found.time) for found in read] == [
            ("web1 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2", T0),
            ("web1 sshd[812]: Invalid user admin from 192.0.2.8 port 4711", T0 + 2.5),
        ]
        assert read[1].date_text == "2023-11-14T22:13:22.500000+00:00 "
        assert source.cursor() == read[1].cursor
        assert source.read_entries() == []


def test_any_alternative_selects_an_entry(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    entries = [
        sshd(0, "by unit"),
        entry(1, "by command", _SYSTEMD_UNIT="session-1.scope", _COMM="sshd"),
        cron(2, "neither"),
        entry(3, "notice", _SYSTEMD_UNIT="fail2ban.service", PRIORITY="5"),
        entry(4, "debug", _SYSTEMD_UNIT="fail2ban.service", PRIORITY="7"),
        entry(5, "other unit", _SYSTEMD_UNIT="postfix.service", PRIORITY="5"),
        entry(6, "multiple", _SYSTEMD_UNIT="dovecot.service", PRIORITY="3"),
    ]
    write_journal(journal, entries)

    def read(*match: str) -> list[str]:
        with JournalSource(match, files=[str(journal)], since=0) as source:
            return [
                found.line.rpartition(": ")[2].removeprefix("web1 ")
                for found in source.read_entries()
            ]

    assert read(SSHD) == ["by unit", "by command"]
    assert read("_COMM=sshd", "_SYSTEMD_UNIT=sshd.service") == ["by unit", "by command"]
    assert read("_SYSTEMD_UNIT=fail2ban.service PRIORITY=5") == ["notice"]
    assert read("_SYSTEMD_UNIT=fail2ban.service PRIORITY=5 + _SYSTEMD_UNIT=cron.service") == [
        "neither",
        "notice",
    ]
    # one field twice: either value (AND with another field still holds)
    assert read("_SYSTEMD_UNIT=fail2ban.service _SYSTEMD_UNIT=dovecot.service PRIORITY=3") == [
        "multiple"
    ]
    assert read("PRIORITY=5 PRIORITY=7 _SYSTEMD_UNIT=fail2ban.service + _COMM=cron") == [
        "neither",
        "notice",
        "debug",
    ]
    assert len(read()) == len(entries)


def test_the_journal_chooses_what_journalmatch_matches_says(
    tmp_path: Path, write_journal: Writer
) -> None:
    journal = tmp_path / "system.journal"
    values = ["1", "2"]
    entries = [
        entry(n, f"entry {n}", A=values[n % 2], B=values[n // 2 % 2], C=values[n // 4 % 2])
        for n in range(8)
    ]
    write_journal(journal, entries)
    for text in ["A=1 B=2 + C=1", "A=1 + B=1 + C=2", "A=1 A=2 C=2", "A=2 B=2 C=2 + A=1 B=1"]:
        match = JournalMatch.parse([text])
        expected = [f"web1 entry {n}" for n, fields in enumerate(entries) if match.matches(fields)]
        with JournalSource([text], files=[str(journal)], since=0) as source:
            assert lines(source) == expected, text


def test_since_starts_at_that_time(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(n, f"entry {n}") for n in range(4)])
    with JournalSource([SSHD], files=[str(journal)], since=T0 + 1.5) as source:
        assert lines(source) == ["web1 sshd[812]: entry 2", "web1 sshd[812]: entry 3"]


@pytest.mark.parametrize("present", [0, 1, 3])
def test_by_default_only_entries_added_later_are_read(
    tmp_path: Path, write_journal: Writer, present: int
) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [cron(0, "cron"), *[sshd(n + 1, f"old {n}") for n in range(present)]])
    with JournalSource([SSHD], files=[str(journal)]) as source:
        assert source.read_entries() == []
        write_journal(journal, [sshd(10, "new"), cron(11, "cron"), sshd(12, "newer")])
        assert lines(source) == ["web1 sshd[812]: new", "web1 sshd[812]: newer"]


def test_a_saved_cursor_resumes_after_its_entry(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(n, f"entry {n}") for n in range(4)])
    with JournalSource([SSHD], files=[str(journal)], since=0) as source:
        assert lines(source, max_entries=2) == [
            "web1 sshd[812]: entry 0",
            "web1 sshd[812]: entry 1",
        ]
        saved = source.cursor()
    assert saved is not None
    with JournalSource([SSHD], files=[str(journal)], cursor=saved, since=0) as source:
        assert source.cursor() == saved  # nothing read yet: the same place
        assert lines(source) == ["web1 sshd[812]: entry 2", "web1 sshd[812]: entry 3"]
        saved = source.cursor()
    write_journal(journal, [sshd(5, "after the restart")])
    with JournalSource([SSHD], files=[str(journal)], cursor=saved) as source:
        assert lines(source) == ["web1 sshd[812]: after the restart"]


def test_the_cursor_after_starting_at_the_end_resumes_there(
    tmp_path: Path, write_journal: Writer
) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, "old"), cron(1, "cron")])
    with JournalSource([SSHD], files=[str(journal)]) as source:
        saved = source.cursor()
    assert saved is not None
    write_journal(journal, [sshd(2, "while stopped")])
    with JournalSource([SSHD], files=[str(journal)], cursor=saved) as source:
        assert lines(source) == ["web1 sshd[812]: while stopped"]


def test_a_text_that_is_not_a_cursor_is_ignored(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, "old"), sshd(5, "recent")])
    with JournalSource([SSHD], files=[str(journal)], cursor="not a cursor", since=T0 + 1) as source:
        assert lines(source) == ["web1 sshd[812]: recent"]


def test_lines_times_and_dates_are_those_fail2ban_makes_of_the_same_journal(
    tmp_path: Path, write_journal: Writer, utc: Callable[[str], None]
) -> None:
    """The same journal file, read by fail2ban (with python3-systemd) and by gardien."""
    python = "/usr/bin/python3"
    probe = (
        subprocess.run(
            [python, "-c", "import systemd.journal, fail2ban.server.filtersystemd"],
            capture_output=True,
            check=False,
        )
        if os.access(python, os.X_OK)
        else None
    )
    require(
        probe is not None and probe.returncode == 0,
        "fail2ban's systemd backend needs python3-systemd (apt-get install python3-systemd)",
    )
    journal = tmp_path / "system.journal"
    write_journal(
        journal,
        [
            sshd(0, "Failed password for root from 192.0.2.7 port 22 ssh2"),
            sshd(0.123456, "pid zero", pid="0"),
            entry(1, "no pid", SYSLOG_IDENTIFIER="su"),
            entry(2, "from comm", _COMM="dovecot", _PID="77"),
            entry(
                3,
                "syslog pid",
                _COMM="postfix",
                SYSLOG_IDENTIFIER="postfix/smtpd",
                SYSLOG_PID="0x10",
            ),
            entry(4, "first line\nsecond line", _COMM="asterisk", _PID="3"),
            {**entry(5, "", _COMM="multi"), "MESSAGE": ["one", "two"]},
            entry(
                6,
                "sent earlier",
                _COMM="app",
                _SOURCE_REALTIME_TIMESTAMP=str((T0 - 60) * 1_000_000),
            ),
            entry(
                7,
                "kernel source",
                SYSLOG_IDENTIFIER="kernel",
                _SOURCE_MONOTONIC_TIMESTAMP="98765432",
            ),
            entry(8, "kernel boot", SYSLOG_IDENTIFIER="kernel"),
            {k: v for k, v in entry(9, "no host", _COMM="x").items() if k != "_HOSTNAME"},
        ],
    )
    script = (
        "import json, sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from systemd import journal\n"
        "from fail2ban.server.filtersystemd import FilterSystemd\n"
        "class Jail:\n"
        "    jailName = 'test'\n"
        "    getJrnEntTime = FilterSystemd.getJrnEntTime\n"
        "    def getLogEncoding(self): return 'UTF-8'\n"
        "found = []\n"
        "for logentry in journal.Reader(files=sys.argv[1:]):\n"
        "    (_, date_text, line), when = FilterSystemd.formatJournalEntry(Jail(), logentry)\n"
        "    found.append([line, date_text, when])\n"
        "print(json.dumps(found))\n"
    )
    for zone in ("UTC", "Asia/Kolkata"):
        utc(zone)
        fail2ban = subprocess.run(
            [python, "-c", script, str(journal)],
            capture_output=True,
            check=True,
            text=True,
            env={**os.environ, "TZ": zone},
        )
        expected = [tuple(found) for found in json.loads(fail2ban.stdout)]
        with JournalSource([], files=[str(journal)], since=0) as source:
            read = source.read_entries()
        assert [(found.line, found.date_text, found.time) for found in read] == expected
        assert len(expected) == 11


def test_wait_returns_when_entries_are_added(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, "old")])
    with JournalSource([SSHD], files=[str(journal)]) as source:
        assert source.poll_timeout() is None
        assert source.wait(0) is False
        write_journal(journal, [sshd(1, "new")])
        assert select.select([source.fileno()], [], [], 5)[0]
        assert source.wait(5) is True
        assert not select.select([source.fileno()], [], [], 0)[0]  # the notification was taken
        assert lines(source) == ["web1 sshd[812]: new"]


def test_wait_async_returns_when_entries_are_added(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, "old")])

    async def follow(source: JournalSource) -> list[str]:
        assert await source.wait_async(0.05) is False
        waiting = asyncio.create_task(source.wait_async(10))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await asyncio.to_thread(write_journal, journal, [sshd(1, "new")])
        assert await waiting is True
        return lines(source)

    with JournalSource([SSHD], files=[str(journal)]) as source:
        assert asyncio.run(follow(source)) == ["web1 sshd[812]: new"]


def test_journal_files_added_to_the_directory_are_read_once(
    tmp_path: Path, write_journal: Writer
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    write_journal(directory / "system@1.journal", [sshd(0, "one"), sshd(1, "two")])
    with JournalSource([SSHD], directory=str(directory), since=0) as source:
        assert lines(source) == ["web1 sshd[812]: one", "web1 sshd[812]: two"]
        source.fileno()
        write_journal(directory / "system.journal", [sshd(2, "three")])
        assert source.wait(5) is True
        assert lines(source) == ["web1 sshd[812]: three"]
        (directory / "system@1.journal").unlink()  # vacuumed
        source.wait(1)
        write_journal(directory / "system.journal", [sshd(3, "four")])
        source.wait(5)
        assert lines(source) == ["web1 sshd[812]: four"]


def test_a_missing_journal_file_is_an_os_error(journal_remote: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.journal"):
        JournalSource([SSHD], files=[str(tmp_path / "missing.journal")])
    with pytest.raises(FileNotFoundError):
        JournalSource([SSHD], directory=str(tmp_path / "missing"))


def test_a_closed_source_cannot_be_read(tmp_path: Path, write_journal: Writer) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, "old")])
    source = JournalSource([SSHD], files=[str(journal)], since=0)
    source.close()
    with pytest.raises(ValueError, match="closed"):
        source.read_entries()
    assert source.cursor() is None


def test_files_and_directory_exclude_each_other(journal_remote: str) -> None:
    with pytest.raises(ValueError, match="not both"):
        JournalSource([SSHD], files=["a.journal"], directory="/var/log/journal")
    with pytest.raises(ValueError, match="non-empty"):
        JournalSource([SSHD], files=[])

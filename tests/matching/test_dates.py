"""Finding and reading the timestamp of a log line (:mod:`gardien.matching.dates`)."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterator

import pytest

from gardien.errors import FilterError
from gardien.matching.dates import (
    DateContext,
    DateDetector,
    compile_datepattern,
    templates_for,
    zone_offset,
)

CET = "CET-01CEST-02,M3.5.0,M10.5.0"


@pytest.fixture
def set_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the process time zone for a test; the previous one is back afterwards."""

    def set_zone(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def utc(set_tz: Callable[[str], None]) -> None:
    set_tz("UTC")


def utc_epoch(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)[:6]))


NOW = utc_epoch(2026, 11, 21, 12, 0, 0)


def read(
    line: str, now: float = NOW, datepattern: str | None = None, default_offset: int | None = None
) -> tuple[str, float | None] | None:
    """(date text, seconds) of ``line``, or None when no date is found."""
    found = DateDetector(templates_for(datepattern)).find(line)
    if found is None:
        return None
    match, template = found
    return match.group(1), template.read(match, DateContext(now=now, default_offset=default_offset))


# ---- default formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "text", "expected"),
    [
        ("Nov 21 10:00:01 host sshd[1]: x", "Nov 21 10:00:01", utc_epoch(2026, 11, 21, 10, 0, 1)),
        ("Nov  1 10:00:01 host x", "Nov  1 10:00:01", utc_epoch(2026, 11, 1, 10, 0, 1)),
        (
            "Sat Nov 21 10:00:01 2026 x",
            "Sat Nov 21 10:00:01 2026",
            utc_epoch(2026, 11, 21, 10, 0, 1),
        ),
        ("2026-11-21 10:00:01 x", "2026-11-21 10:00:01", utc_epoch(2026, 11, 21, 10, 0, 1)),
        ("2026/11/21 10:00:01 x", "2026/11/21 10:00:01", utc_epoch(2026, 11, 21, 10, 0, 1)),
        ("2026-11-21 10:00:01Z x", "2026-11-21 10:00:01Z", utc_epoch(2026, 11, 21, 10, 0, 1)),
        ("21-11-2026 10:00:01 x", "21-11-2026 10:00:01", utc_epoch(2026, 11, 21, 10, 0, 1)),
        (
            '192.0.2.1 - - [21/Nov/2026:10:00:01 +0100] "GET / HTTP/1.1"',
            "21/Nov/2026:10:00:01 +0100",
            utc_epoch(2026, 11, 21, 9, 0, 1),
        ),
        (
            "[21/Nov/2026:10:00:01 -0530] x",
            "21/Nov/2026:10:00:01 -0530",
            utc_epoch(2026, 11, 21, 15, 30, 1),
        ),
        ("10:00:01 x", "10:00:01", utc_epoch(2026, 11, 21, 10, 0, 1)),
    ],
)
def test_default_formats(line: str, text: str, expected: float) -> None:
    assert read(line) == (text, expected)


def test_iso_with_zone_and_fraction() -> None:
    text, seconds = read("2026-11-21T10:00:01.123456+02:00 sshd: x") or ("", None)
    assert text == "2026-11-21T10:00:01.123456+02:00"
    assert seconds == pytest.approx(utc_epoch(2026, 11, 21, 8, 0, 1) + 0.123456, abs=1e-6)
    assert read("2026-11-21 10:00:01,5 x") == (
        "2026-11-21 10:00:01,5",
        utc_epoch(2026, 11, 21, 10, 0, 1) + 0.5,
    )
    assert read("Nov 21 10:00:01.250 x") == (
        "Nov 21 10:00:01.250",
        utc_epoch(2026, 11, 21, 10, 0, 1) + 0.25,
    )


def test_syslog_year_is_taken_from_now() -> None:
    assert read("Nov 22 11:00:00 x") == ("Nov 22 11:00:00", utc_epoch(2026, 11, 22, 11, 0, 0))
    assert read("Jan  5 11:00:00 x", now=utc_epoch(2031, 3, 1, 0, 0, 0)) == (
        "Jan  5 11:00:00",
        utc_epoch(2031, 1, 5, 11, 0, 0),
    )


def test_syslog_date_more_than_a_day_ahead_is_last_year() -> None:
    # a log read on 2 January still dates its December lines right
    now = utc_epoch(2026, 1, 2, 0, 0, 0)
    assert read("Dec 31 23:59:59 host x", now=now) == (
        "Dec 31 23:59:59",
        utc_epoch(2025, 12, 31, 23, 59, 59),
    )
    # 25 hours ahead: last year; 23 hours ahead: this year
    assert read("Nov 22 13:00:00 x") == ("Nov 22 13:00:00", utc_epoch(2025, 11, 22, 13, 0, 0))
    assert read("Nov 22 11:00:00 x") == ("Nov 22 11:00:00", utc_epoch(2026, 11, 22, 11, 0, 0))


def test_year_less_february_29_goes_back_to_a_leap_year() -> None:
    assert read("Feb 29 10:00:00 x") == ("Feb 29 10:00:00", utc_epoch(2024, 2, 29, 10, 0, 0))


def test_syslog_dates_are_local_time(set_tz: Callable[[str], None]) -> None:
    set_tz(CET)
    now = 1124013600.0  # 2005-08-14 12:00 CEST
    assert read("Aug 14 11:59:59 x", now=now) == ("Aug 14 11:59:59", now - 1)
    assert read("Jan 10 12:00:00 x", now=now) == (
        "Jan 10 12:00:00",
        utc_epoch(2005, 1, 10, 11, 0, 0),
    )
    # an explicit zone wins over the local one
    assert read("2005-08-14 10:00:00+00:00 x", now=now) == ("2005-08-14 10:00:00+00:00", now)


def test_default_offset_is_used_for_dates_without_zone() -> None:
    assert read("Nov 21 10:00:01 x", default_offset=60) == (
        "Nov 21 10:00:01",
        utc_epoch(2026, 11, 21, 9, 0, 1),
    )
    assert read("2026-11-21 10:00:01 -0100 x", default_offset=60) == (
        "2026-11-21 10:00:01 -0100",
        utc_epoch(2026, 11, 21, 11, 0, 1),
    )


@pytest.mark.parametrize(
    "line",
    [
        "2026-02-30 10:00:00 x",
        "Feb 30 10:00:00 x",
        "Apr 31 10:00:00 x",
        "2027-02-29 10:00:00 x",
    ],
)
def test_impossible_date_reads_as_none(line: str) -> None:
    found = read(line)
    assert found is not None
    assert found[1] is None


def test_february_29_of_a_leap_year_is_possible() -> None:
    assert read("2028-02-29 10:00:00 x") == (
        "2028-02-29 10:00:00",
        utc_epoch(2028, 2, 29, 10, 0, 0),
    )


def test_hour_24_is_impossible() -> None:
    found = read("Nov 21 24:00:00 x")
    assert found is not None
    assert found[1] is None


def test_no_date_at_all() -> None:
    assert read("no date in this line") is None
    assert read("") is None


# ---- numeric formats -------------------------------------------------------------------------


def test_epoch() -> None:
    assert read("1795255201 x", datepattern="EPOCH") == ("1795255201", 1795255201.0)
    assert read("1795255201.500 x", datepattern="EPOCH") == ("1795255201.500", 1795255201.5)
    assert read("[1795255201] x", datepattern="EPOCH") == ("1795255201", 1795255201.0)
    assert read("type=USER_AUTH msg=audit(1795255201.123:42): x", datepattern="EPOCH") == (
        "1795255201.123",
        1795255201.123,
    )
    # fail2ban's EPOCH takes 3 to 6 decimals; a shorter fraction is not part of the date
    found = read("1795255201.5 x", datepattern="EPOCH")
    assert found is not None
    assert found[1] == pytest.approx(1795255201.5, abs=1)
    # not at the start of the line (nor in '[...]' or 'audit(...)'): not a date
    assert read("id 1795255201 x", datepattern="EPOCH") is None


def test_long_epoch() -> None:
    assert read("1795255201500 x", datepattern="LEPOCH") == ("1795255201500", 1795255201.5)
    assert read("1795255201500000 x", datepattern="LEPOCH") == ("1795255201500000", 1795255201.5)


def test_tai64n() -> None:
    seconds = 1795255201
    label = f"@{(1 << 62) + seconds:016x}0a2b3c4d"
    assert read(f"{label} x", datepattern="TAI64N") == (label, float(seconds))
    assert read(f"{label} sshd: x") == (label, float(seconds))


# ---- datepattern -----------------------------------------------------------------------------


def test_line_begin_anchor() -> None:
    pattern = "{^LN-BEG}%Y-%m-%d %H:%M:%S"
    assert read("2026-11-21 10:00:01 x", datepattern=pattern) == (
        "2026-11-21 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )
    # a couple of punctuation characters may come first
    assert read("[2026-11-21 10:00:01] x", datepattern=pattern) == (
        "2026-11-21 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )
    # a date in the middle of the line is not taken
    assert read("user 2026-11-21 10:00:01 x", datepattern=pattern) is None
    assert read("host: x 2026-11-21 10:00:01", datepattern=pattern) is None
    # without the anchor it is
    assert read("user 2026-11-21 10:00:01 x", datepattern="%Y-%m-%d %H:%M:%S") == (
        "2026-11-21 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )


def test_line_begin_alone_selects_anchored_defaults() -> None:
    templates = templates_for("{^LN-BEG}")
    assert templates
    assert all(t.anchored for t in templates)
    assert read("Nov 21 10:00:01 x", datepattern="{^LN-BEG}") == (
        "Nov 21 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )
    assert read("x Nov 21 10:00:01", datepattern="{^LN-BEG}") is None
    # but the default set finds it anywhere
    assert read("x Nov 21 10:00:01") == ("Nov 21 10:00:01", utc_epoch(2026, 11, 21, 10, 0, 1))


def test_none_means_no_date() -> None:
    templates = templates_for("{NONE}")
    assert [t.name for t in templates] == ["{NONE}"]
    assert read("Nov 21 10:00:01 x", datepattern="{NONE}") == ("", None)


def test_custom_datepattern_with_ex_year() -> None:
    pattern = "%d.%m.%ExY %H:%M:%S"
    assert read("at 21.11.2026 10:00:01 x", datepattern=pattern) == (
        "21.11.2026 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )
    # %ExY only takes plausible years (20xx)
    assert read("at 21.11.1926 10:00:01 x", datepattern=pattern) is None
    assert read("at 21.11.1926 10:00:01 x", datepattern="%d.%m.%Y %H:%M:%S") == (
        "21.11.1926 10:00:01",
        utc_epoch(1926, 11, 21, 10, 0, 1),
    )


def test_custom_datepattern_compact_ex_fields() -> None:
    assert read("x 261121 100001 y", datepattern="%Exy%Exm%Exd %ExH%ExM%ExS") == (
        "261121 100001",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )


def test_custom_datepattern_twelve_hour_clock_and_literal_percent() -> None:
    assert read("Nov 21, 2026 10:00:01 PM x", datepattern="%b %d, %Y %I:%M:%S %p") == (
        "Nov 21, 2026 10:00:01 PM",
        utc_epoch(2026, 11, 21, 22, 0, 1),
    )
    assert read("Nov 21, 2026 12:00:01 AM x", datepattern="%b %d, %Y %I:%M:%S %p") == (
        "Nov 21, 2026 12:00:01 AM",
        utc_epoch(2026, 11, 21, 0, 0, 1),
    )
    assert read("100% 2026-11-21 10:00:01", datepattern="100%% %Y-%m-%d %H:%M:%S") == (
        "100% 2026-11-21 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )


def test_several_datepatterns_one_per_line() -> None:
    templates = templates_for("EPOCH\n\n  %Y-%m-%d %H:%M:%S  \n")
    assert len(templates) == 2
    assert read("x 2026-11-21 10:00:01", datepattern="EPOCH\n%Y-%m-%d %H:%M:%S") == (
        "2026-11-21 10:00:01",
        utc_epoch(2026, 11, 21, 10, 0, 1),
    )


def test_unsupported_directive_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="%Q"):
        compile_datepattern("%Q %Y-%m-%d")


def test_templates_are_shared() -> None:
    assert compile_datepattern("%Y-%m-%d %H:%M:%S") is compile_datepattern("%Y-%m-%d %H:%M:%S")


# ---- the detector ----------------------------------------------------------------------------


def test_detector_follows_a_log_that_changes_format() -> None:
    detector = DateDetector(templates_for(None))
    context = DateContext(now=NOW)
    lines = [
        ("Nov 21 10:00:01 a", utc_epoch(2026, 11, 21, 10, 0, 1)),
        ("Nov 21 10:00:02 b", utc_epoch(2026, 11, 21, 10, 0, 2)),
        ("2026-11-21 10:00:03 c", utc_epoch(2026, 11, 21, 10, 0, 3)),
        ("Nov 21 10:00:04 d", utc_epoch(2026, 11, 21, 10, 0, 4)),
        ("x [21/Nov/2026:10:00:05 +0000] e", utc_epoch(2026, 11, 21, 10, 0, 5)),
        ("xy [21/Nov/2026:10:00:06 +0000] f", utc_epoch(2026, 11, 21, 10, 0, 6)),
    ]
    for line, expected in lines:
        found = detector.find(line)
        assert found is not None, line
        match, template = found
        assert template.read(match, context) == expected, line


def test_detector_takes_the_earliest_date_of_the_line() -> None:
    detector = DateDetector(templates_for(None))
    found = detector.find("x 2026-11-21 10:00:01 then Nov 22 10:00:02 then 1795255201")
    assert found is not None
    assert found[0].group(1) == "2026-11-21 10:00:01"


def test_detector_needs_templates() -> None:
    with pytest.raises(FilterError):
        DateDetector([])


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("Z", 0),
        ("UTC", 0),
        ("+0200", 120),
        ("-05:00", -300),
        ("+01", 60),
        ("CEST", 120),
        ("CET+0100", 120),
        ("EST", -300),
        ("A", 60),
        ("N", -60),
    ],
)
def test_zone_offset(text: str, minutes: int) -> None:
    assert zone_offset(text) == minutes


def test_unknown_zone_is_an_error() -> None:
    with pytest.raises(FilterError, match="XYZQ"):
        zone_offset("XYZQ")

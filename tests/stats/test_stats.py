"""``gardien stats``: the numbers a user reads, computed by hand on constructed ban histories,
from memory and from a real SQLite store; then the command as a real process (table, JSON,
CSV, plots, errors), also while a daemon-like writer keeps writing."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gardien.errors import ConfigError, StoreError
from gardien.model import Ban, parse_address
from gardien.stats import (
    AttackStats,
    BansSource,
    StoreReader,
    compute_stats,
    linear_trend,
    network_of,
    parse_when,
)
from gardien.store import SQLiteBanStore, migrations
from support.cli import gardien, gardien_process

UTC = dt.UTC
MONDAY = dt.datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # Monday 2 November 2026, 00:00 UTC
HOUR = 3600.0
DAY = 86400.0


def ban(host: str, start: float, jail: str = "sshd") -> Ban:
    address = parse_address(host)
    assert address is not None
    return Ban(jail, address, start, start + 600)


def stats_of(bans: list[Ban], since: float | None, until: float, **options: object) -> AttackStats:
    return compute_stats(
        BansSource(bans),
        since=since,
        until=until,
        tz=options.pop("tz", UTC),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


# ---- the pure computation ---------------------------------------------------------------


def test_trend_is_the_least_squares_line() -> None:
    rising = linear_trend([1, 2, 3, 4])
    assert (rising.slope_per_hour, rising.intercept) == pytest.approx((1.0, 1.0))
    assert rising.slope_per_day == pytest.approx(24.0)
    # x = 0, 1, 2; mean (1, 2); covariance (-1)(-2) + 0 + (1)(4) = 6; spread 2: slope 3
    steep = linear_trend([0, 0, 6])
    assert (steep.slope_per_hour, steep.intercept) == pytest.approx((3.0, -1.0))
    assert steep.at(2) == pytest.approx(5.0)
    falling = linear_trend([5, 3, 1, 0])
    assert falling.slope_per_hour < 0
    assert linear_trend([2, 2, 2]).slope_per_hour == 0
    assert (linear_trend([7]).slope_per_hour, linear_trend([7]).intercept) == (0.0, 7.0)
    assert linear_trend([]).intercept == 0.0


def test_networks_are_slash_24_and_slash_64() -> None:
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2:aaaa::5") == "2001:db8:1:2::/64"
    assert network_of("198.51.100.128/25") == "198.51.100.0/24"  # a banned range, narrower
    assert network_of("10.0.0.0/8") == "10.0.0.0/8"  # wider: its own network
    assert network_of("2001:db8::/32") == "2001:db8::/32"


def test_bans_per_hour_include_empty_hours_with_mean_and_median() -> None:
    bans = [
        ban("192.0.2.1", MONDAY + 10),
        ban("192.0.2.2", MONDAY + 3599),
        ban("192.0.2.1", MONDAY + 2 * HOUR + 5),
        ban("192.0.2.3", MONDAY + 5 * HOUR),
    ]
    stats = stats_of(bans, MONDAY, MONDAY + 6 * HOUR)
    assert stats.bans_per_hour == (2, 0, 1, 0, 0, 1)
    assert stats.cumulative_unique == (2, 2, 2, 2, 2, 3)  # 192.0.2.1 again is not new
    assert (stats.bans, stats.unique_addresses, stats.hours) == (4, 3, 6)
    assert stats.mean_per_hour == pytest.approx(4 / 6)
    assert stats.median_per_hour == 0.5  # 0 0 0 1 1 2
    assert stats.peak_hour == 0
    # the bans dwindle, the unique addresses grow
    assert stats.bans_trend.slope_per_hour < 0 < stats.unique_trend.slope_per_hour


def test_range_is_widened_to_whole_hours() -> None:
    bans = [ban("192.0.2.1", MONDAY + 60), ban("192.0.2.2", MONDAY + 3 * HOUR + 10)]
    stats = stats_of(bans, MONDAY + 1800, MONDAY + 3 * HOUR + 1)
    assert (stats.since, stats.until) == (MONDAY, MONDAY + 4 * HOUR)
    assert stats.bans_per_hour == (1, 0, 0, 1)


def test_since_defaults_to_the_first_ban() -> None:
    bans = [ban("192.0.2.1", MONDAY + 2 * HOUR + 300), ban("192.0.2.2", MONDAY + 4 * HOUR)]
    stats = stats_of(bans, None, MONDAY + 5 * HOUR)
    assert stats.since == MONDAY + 2 * HOUR
    assert stats.bans_per_hour == (1, 0, 1)


def test_night_is_20_to_8_local_time() -> None:
    bans = [
        ban("192.0.2.1", MONDAY + 8 * HOUR - 1),  # 07:59:59 night
        ban("192.0.2.2", MONDAY + 8 * HOUR),  # 08:00 day
        ban("192.0.2.3", MONDAY + 20 * HOUR - 1),  # 19:59:59 day
        ban("192.0.2.4", MONDAY + 20 * HOUR),  # 20:00 night
        ban("192.0.2.5", MONDAY + 23 * HOUR),  # night
    ]
    stats = stats_of(bans, MONDAY, MONDAY + DAY)
    assert (stats.night.hours, stats.night.bans) == (12, 3)
    assert (stats.day.hours, stats.day.bans) == (12, 2)
    assert stats.night.mean_per_hour == pytest.approx(0.25)
    assert stats.night.share == pytest.approx(0.6)
    # the same instants in Paris (UTC+1 in November) are an hour later: 08:59:59 is day
    paris = stats_of(bans, MONDAY, MONDAY + DAY, tz=ZoneInfo("Europe/Paris"))
    assert (paris.night.bans, paris.day.bans) == (3, 2)  # 07:59Z -> 08:59 day, 19:59Z -> night


def test_daylight_saving_day_has_25_hours() -> None:
    paris = ZoneInfo("Europe/Paris")
    start = dt.datetime(2026, 10, 25, tzinfo=paris).timestamp()  # clocks go back at 03:00
    end = dt.datetime(2026, 10, 26, tzinfo=paris).timestamp()
    stats = stats_of([ban("192.0.2.1", start + 2.5 * HOUR)], start, end, tz=paris)
    assert stats.hours == 25
    assert (stats.night.hours, stats.day.hours) == (13, 12)  # 00-08 is 9 hours that night
    assert stats.local(stats.hour_start(3)).strftime("%H:%M %Z") == "02:00 CET"


def test_weekdays_against_week_end_per_hour() -> None:
    friday = MONDAY + 4 * DAY
    bans = [ban(f"192.0.2.{n}", friday + n * HOUR) for n in range(3)]
    bans += [ban(f"198.51.100.{n}", friday + DAY + n * 3 * HOUR) for n in range(12)]
    stats = stats_of(bans, friday, friday + 3 * DAY)
    assert (stats.weekdays.hours, stats.weekdays.bans) == (24, 3)
    assert (stats.weekend.hours, stats.weekend.bans) == (48, 12)
    assert stats.weekdays.mean_per_hour == pytest.approx(0.125)
    assert stats.weekend.mean_per_hour == pytest.approx(0.25)
    assert stats.weekend.share == pytest.approx(0.8)


@pytest.fixture
def kolkata() -> Iterator[None]:
    """The machine's time zone is India's (UTC+05:30: hours start at :30 UTC)."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


@pytest.mark.usefixtures("kolkata")
def test_local_time_is_the_machines_time_zone() -> None:
    bans = [ban("192.0.2.1", MONDAY + 10), ban("192.0.2.2", MONDAY + 2 * HOUR + 1)]  # 05:30
    stats = compute_stats(BansSource(bans), since=MONDAY, until=MONDAY + 3 * HOUR)  # tz=None
    assert stats.since == MONDAY - 1800  # 05:00 local
    assert stats.local(stats.since).strftime("%H:%M %z") == "05:00 +0530"
    assert stats.bans_per_hour == (1, 0, 1, 0)
    assert parse_when("2026-11-02T05:30", 0, None) == MONDAY


def constructed() -> list[Ban]:
    """5 addresses of 203.0.113.0/24, one of 198.51.100.0/24 and an IPv6 one, in two jails."""
    bans = [ban("203.0.113.1", MONDAY + n * HOUR) for n in range(4)]  # 4 bans, sshd
    bans += [ban("203.0.113.1", MONDAY + 30, "asterisk")]  # and one in asterisk
    bans += [ban(f"203.0.113.{n}", MONDAY + 100 + n, "asterisk") for n in (2, 3, 4, 5)]
    bans += [ban("203.0.113.2", MONDAY + 2 * HOUR, "asterisk")]
    bans += [ban("198.51.100.9", MONDAY + 3 * HOUR + 1)]
    bans += [ban("2001:db8:1:2::5", MONDAY + 50), ban("2001:db8:1:2::6", MONDAY + 60)]
    return bans


def test_per_jail_top_addresses_networks_and_repeat_offenders() -> None:
    stats = stats_of(constructed(), MONDAY, MONDAY + 4 * HOUR, top=2)
    assert stats.bans == 13 and stats.unique_addresses == 8
    assert [(j.jail, j.bans, j.addresses) for j in stats.per_jail] == [
        ("sshd", 7, 4),
        ("asterisk", 6, 5),
    ]
    first, second = stats.top_addresses
    assert (first.address, first.bans, first.jails) == ("203.0.113.1", 5, ("asterisk", "sshd"))
    assert (first.first, first.last) == (MONDAY, MONDAY + 3 * HOUR)
    assert (second.address, second.bans) == ("203.0.113.2", 2)
    assert [(n.network, n.bans, n.addresses) for n in stats.top_networks] == [
        ("203.0.113.0/24", 10, 5),
        ("2001:db8:1:2::/64", 2, 2),
    ]
    repeat = stats.repeat_offenders
    assert (repeat.addresses, repeat.bans) == (2, 7)
    assert repeat.share == pytest.approx(2 / 8)
    assert repeat.bans_share == pytest.approx(7 / 13)
    assert dict(repeat.distribution) == {"1": 6, "2": 1, "3-5": 1, "6-10": 0, "11+": 0}
    assert [a.address for a in repeat.top] == ["203.0.113.1", "203.0.113.2"]


def test_jail_filter() -> None:
    stats = stats_of(constructed(), MONDAY, MONDAY + 4 * HOUR, jails=["asterisk"])
    assert (stats.bans, stats.unique_addresses, stats.jails) == (6, 5, ("asterisk",))
    assert stats.repeat_offenders.addresses == 1  # 203.0.113.2, twice in asterisk
    assert stats_of(constructed(), MONDAY, MONDAY + 4 * HOUR, jails=["nope"]).bans == 0


def test_empty_range_gives_zeros() -> None:
    stats = stats_of(constructed(), MONDAY + DAY, MONDAY + DAY + 2 * HOUR)
    assert stats.bans_per_hour == (0, 0) and stats.cumulative_unique == (0, 0)
    assert stats.peak_hour is None and stats.top_addresses == ()
    assert stats.night.share == 0 and stats.repeat_offenders.share == 0
    nothing = stats_of([], None, MONDAY)  # empty store, no --since: no hours at all
    assert (nothing.hours, nothing.bans, nothing.mean_per_hour) == (0, 0, 0.0)


def test_when_is_an_iso_time_or_a_duration_back_from_now() -> None:
    now = MONDAY + 12 * HOUR
    assert parse_when("2026-11-02", now, UTC) == MONDAY
    assert parse_when("2026-11-02T08:30", now, UTC) == MONDAY + 8.5 * HOUR
    assert parse_when("2026-11-02T08:00+01:00", now, UTC) == MONDAY + 7 * HOUR
    assert parse_when("2026-11-02", now, ZoneInfo("Europe/Paris")) == MONDAY - HOUR
    assert parse_when("15d", now, UTC) == now - 15 * DAY
    assert parse_when("12h", now, UTC) == MONDAY
    for wrong in ("yesterday", "-1", "2026-13-01", ""):
        with pytest.raises(ConfigError, match="--until"):
            parse_when(wrong, now, UTC, "--until")


# ---- the SQLite store, read-only ---------------------------------------------------------


def random_bans(count: int, seed: int = 3) -> list[Ban]:
    generator = random.Random(seed)
    bans = []
    for _ in range(count):
        host = (
            f"2001:db8:{generator.randint(0, 3):x}::{generator.randint(1, 9):x}"
            if generator.random() < 0.1
            else f"203.0.{generator.randint(0, 5)}.{generator.randint(1, 20)}"
        )
        start = MONDAY + generator.uniform(0, 3 * DAY)
        bans.append(ban(host, start, generator.choice(["sshd", "asterisk", "postfix"])))
    return bans


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "gardien.sqlite3"


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (MONDAY + 5 * HOUR, MONDAY + 2 * DAY),  # most of the history: the index read in full
        (MONDAY + 5 * HOUR, MONDAY + 9 * HOUR),  # a part: the start_time index
    ],
)
def test_store_reader_agrees_with_the_bans_in_memory(
    store_path: Path, since: float, until: float
) -> None:
    bans = random_bans(800)
    with SQLiteBanStore(store_path) as store:
        store.add_bans(bans)
    for jails in ((), ("sshd",), ("asterisk", "postfix")):
        expected = stats_of(bans, since, until, jails=jails, top=5)
        with StoreReader(store_path) as reader, reader.snapshot():
            found = compute_stats(reader, since=since, until=until, jails=jails, tz=UTC, top=5)
        assert found == expected
        assert found.bans > 0


def test_reader_never_migrates_nor_writes(store_path: Path) -> None:
    # a store of schema version 1, as an older gardien left it
    connection = sqlite3.connect(store_path, isolation_level=None)
    migrations.MIGRATIONS[0](connection)
    connection.execute("PRAGMA user_version = 1")
    connection.execute(
        "INSERT INTO ban_history (jail, address, start_time, end_time, count, failures)"
        " VALUES ('sshd', '192.0.2.1', ?, NULL, 1, 3)",
        (MONDAY,),
    )
    connection.close()
    before = store_path.read_bytes()
    with StoreReader(store_path) as reader:
        stats = compute_stats(reader, since=MONDAY, until=MONDAY + HOUR, tz=UTC)
    assert stats.bans == 1
    assert store_path.read_bytes() == before
    with sqlite3.connect(store_path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 1


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    with pytest.raises(StoreError, match=f"{missing}: no ban store here \\(no such file"):
        StoreReader(missing)
    with pytest.raises(StoreError, match=r"no ban store here \(not a file"):
        StoreReader(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 100)
    with pytest.raises(StoreError, match=f"{text}: cannot read the ban store"):
        StoreReader(text)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE fail2banDb (version INTEGER)")
    with pytest.raises(StoreError, match=f"{other}: a fail2ban database"):
        StoreReader(other)
    newer = tmp_path / "newer.sqlite3"
    SQLiteBanStore(newer).close()
    with sqlite3.connect(newer) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        StoreReader(newer)


def test_reading_while_the_daemon_writes(store_path: Path) -> None:
    writer = SQLiteBanStore(store_path)
    writer.add_bans(random_bans(300))
    stop = threading.Event()

    def keep_writing() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            writer.add_bans(
                [ban(f"10.{number % 250}.{n}.1", MONDAY + number + n / 100) for n in range(20)]
            )

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        for _ in range(5):
            with StoreReader(store_path) as reader, reader.snapshot():
                stats = compute_stats(reader, since=MONDAY, until=MONDAY + 4 * DAY, tz=UTC)
            # one snapshot: the hourly counts and the per-jail counts add up alike
            assert sum(j.bans for j in stats.per_jail) == stats.bans >= 300
        result = gardien("stats", "--dbfile", str(store_path), "--json", "--since", "2026-11-02")
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bans"] >= 300


# ---- the command, as a real process ------------------------------------------------------


@pytest.fixture
def store(store_path: Path) -> Iterator[Path]:
    with SQLiteBanStore(store_path) as opened:
        opened.add_bans(constructed())
    yield store_path


RANGE = ("--since", "2026-11-02", "--until", "2026-11-02T04:00")


def test_table(store: Path) -> None:
    result = gardien("stats", "--dbfile", str(store), *RANGE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Bans between 2026-11-02 00:00 and 2026-11-02 04:00 (UTC), every jail" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["bans", "13"] in lines and ["hours", "4"] in lines
    assert ["unique", "addresses", "8"] in lines
    assert ["sshd", "7", "53.8%", "4"] in lines
    assert ["203.0.113.1", "5", "11-02", "00:00", "11-02", "03:00", "asterisk,sshd"] in lines
    assert ["203.0.113.0/24", "10", "5"] in lines
    assert ["night", "(20:00-08:00)", "4", "13", "100.0%", "3.25"] in lines
    assert ["2", "of", "8", "addresses", "(25.0%),", "7", "bans", "(53.8%", "of", "all)"] in lines
    assert max(len(line) for line in out.splitlines()) <= 80


def test_json_and_png_plot(store: Path, tmp_path: Path) -> None:
    image = tmp_path / "bans.png"
    result = gardien(
        "stats",
        "--dbfile",
        str(store),
        *RANGE,
        "--jail",
        "asterisk",
        "--json",
        "--plot",
        str(image),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["since"], data["until"], data["timezone"]) == (
        "2026-11-02T00:00:00+00:00",
        "2026-11-02T04:00:00+00:00",
        "UTC",
    )
    assert (data["jails"], data["hours"], data["bans"], data["unique_addresses"]) == (
        ["asterisk"],
        4,
        6,
        5,
    )
    assert data["hourly"] == [
        {"hour": "2026-11-02T00:00:00+00:00", "bans": 5, "cumulative_unique": 5},
        {"hour": "2026-11-02T01:00:00+00:00", "bans": 0, "cumulative_unique": 5},
        {"hour": "2026-11-02T02:00:00+00:00", "bans": 1, "cumulative_unique": 5},
        {"hour": "2026-11-02T03:00:00+00:00", "bans": 0, "cumulative_unique": 5},
    ]
    assert data["bans_per_hour"]["mean"] == 1.5 and data["bans_per_hour"]["median"] == 0.5
    assert data["bans_per_hour"]["peak"] == {"hour": "2026-11-02T00:00:00+00:00", "bans": 5}
    assert data["bans_per_hour"]["trend"]["slope_per_hour"] == pytest.approx(-1.4)
    assert data["unique_addresses_trend"]["slope_per_day"] == 0
    assert data["night"]["bans"] == 6 and data["day"]["hours"] == 0
    assert data["weekdays"]["mean_per_hour"] == 1.5 and data["weekend"]["hours"] == 0
    assert data["per_jail"] == [{"jail": "asterisk", "bans": 6, "addresses": 5, "share": 1.0}]
    assert data["top_addresses"][0] == {
        "address": "203.0.113.2",
        "bans": 2,
        "jails": ["asterisk"],
        "first": "2026-11-02T00:01:42+00:00",
        "last": "2026-11-02T02:00:00+00:00",
    }
    assert data["top_networks"] == [{"network": "203.0.113.0/24", "bans": 6, "addresses": 5}]
    assert data["repeat_offenders"]["addresses"] == 1
    assert data["repeat_offenders"]["distribution"][0] == {"times": "1", "addresses": 4}
    png = image.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png[-12:]
    assert len(png) > 20_000  # two panels of axes, labels and data, not an empty canvas
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bans.png")]  # no leftovers


def test_csv_and_svg_plot(store: Path, tmp_path: Path) -> None:
    image = tmp_path / "bans.svg"
    result = gardien("stats", "--dbfile", str(store), *RANGE, "--csv", "--plot", str(image))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "hour,bans,cumulative_unique",
        "2026-11-02T00:00:00+00:00,8,7",
        "2026-11-02T01:00:00+00:00,1,7",
        "2026-11-02T02:00:00+00:00,2,7",
        "2026-11-02T03:00:00+00:00,2,8",
    ]
    svg = image.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert "Bans per hour (13 in all)" in svg and "Unique banned addresses" in svg


def test_local_time_or_utc(store: Path) -> None:
    paris = gardien("stats", "--dbfile", str(store), *RANGE, "--csv", env={"TZ": "Europe/Paris"})
    assert paris.returncode == 0, paris.stderr
    # 2026-11-02 00:00 in Paris is 23:00 UTC the day before: the bans come an hour later
    assert paris.stdout.splitlines()[1:] == [
        "2026-11-02T00:00:00+01:00,0,0",
        "2026-11-02T01:00:00+01:00,8,7",
        "2026-11-02T02:00:00+01:00,1,7",
        "2026-11-02T03:00:00+01:00,2,7",
    ]
    utc = gardien(
        "stats", "--dbfile", str(store), *RANGE, "--utc", "--json", env={"TZ": "Europe/Paris"}
    )
    data = json.loads(utc.stdout)
    assert (data["since"], data["timezone"], data["bans"]) == (
        "2026-11-02T00:00:00+00:00",
        "UTC",
        13,
    )


def test_since_as_a_duration_back_from_now(store_path: Path) -> None:
    now = time.time()
    with SQLiteBanStore(store_path) as opened:
        opened.add_bans([ban("192.0.2.1", now - 2 * HOUR), ban("192.0.2.2", now - 3 * DAY)])
    result = gardien("stats", "--dbfile", str(store_path), "--since", "1d", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bans"] == 1
    everything = gardien("stats", "--dbfile", str(store_path), "--json")  # from the first ban
    assert json.loads(everything.stdout)["bans"] == 2


def test_empty_range_is_no_error(store: Path) -> None:
    args = ("stats", "--dbfile", str(store), "--since", "2026-12-01", "--until", "2026-12-02")
    result = gardien(*args)
    assert result.returncode == 0, result.stderr
    assert "No bans between 2026-12-01 00:00 and 2026-12-02 00:00 (UTC)" in result.stdout
    data = json.loads(gardien(*args, "--json").stdout)
    assert (data["bans"], data["hours"], data["unique_addresses"]) == (0, 24, 0)
    assert data["bans_per_hour"]["peak"] is None


def test_dbfile_from_the_configuration(store: Path, tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "gardien.conf").write_text(f"[Definition]\ndbfile = {store}\n")
    result = gardien("-c", str(etc), "stats", *RANGE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bans"] == 13


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--plot", "out.gif"), "unknown image format '.gif'; name the file .png or .svg"),
        (("--since", "yesterday"), "--since: 'yesterday' is neither an ISO date"),
        (("--since", "2026-11-03", "--until", "2026-11-02"), "is not before '2026-11-02'"),
    ],
)
def test_bad_input_is_one_error_line_before_any_work(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    # the store does not even exist: these mistakes are found before it is opened
    args = tuple(str(tmp_path / arg) if arg.endswith(".gif") else arg for arg in args)
    result = gardien("stats", "--dbfile", str(tmp_path / "none.sqlite3"), *args)
    assert result.returncode == 1
    assert result.stderr.startswith("gardien: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "gardien.sqlite3"
    result = gardien("stats", "--dbfile", str(missing), "--plot", str(tmp_path / "x.png"))
    assert result.returncode == 1
    assert result.stderr == (
        f"gardien: error: {missing}: no ban store here (no such file; see dbfile in "
        "gardien.conf, or --dbfile)\n"
    )
    assert list(tmp_path.iterdir()) == []  # neither a store nor an image


def test_plot_without_matplotlib(store: Path, tmp_path: Path) -> None:
    # a matplotlib that cannot be found, as on a machine without the [plot] extra
    hiding = tmp_path / "hiding"
    hiding.mkdir()
    (hiding / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    env = {"PYTHONPATH": os.pathsep.join([str(hiding), *sys.path])}
    image = tmp_path / "x.png"
    result = gardien_process("stats", "--dbfile", str(store), *RANGE, "--plot", str(image), env=env)
    assert result.returncode == 1
    assert "pip install 'gardien[plot]'" in result.stderr and not image.exists()
    without_plot = gardien_process("stats", "--dbfile", str(store), *RANGE, "--json", env=env)
    assert without_plot.returncode == 0, without_plot.stderr


def test_json_and_csv_together_is_a_usage_error(store: Path) -> None:
    result = gardien("stats", "--dbfile", str(store), "--json", "--csv")
    assert result.returncode == 2 and "--json and --csv" in result.stderr


def test_addresses_in_the_store_are_canonical() -> None:
    # IPv4-mapped IPv6 is stored (and so counted) as the IPv4 address
    mapped = Ban("sshd", ipaddress.ip_address("::ffff:192.0.2.1"), MONDAY, None)
    stats = stats_of([mapped, ban("192.0.2.1", MONDAY + 5)], MONDAY, MONDAY + HOUR)
    assert stats.unique_addresses == 1 and stats.top_networks[0].network == "192.0.2.0/24"


FAIL2BAN_WRITER = """
import sys
from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import FailTicket

class Actions:
    def getBanTime(self):
        return 600

class Jail:
    def __init__(self, name):
        self.name, self.actions = name, Actions()

db = Fail2BanDb(sys.argv[1])
jails = {}
for record in sys.argv[2:]:
    jail, ip, when = record.split(",")
    if jail not in jails:
        jails[jail] = Jail(jail)
        db.addJail(jails[jail])
    ticket = FailTicket(ip, float(when))
    ticket.setBanTime(600)
    db.addBan(jails[jail], ticket)
"""


def test_stats_read_a_fail2ban_database(tmp_path: Path) -> None:
    # written by fail2ban's own code (Debian's python3 with the fail2ban package)
    from support.ci import require

    fail2ban_code = Path("/usr/lib/python3/dist-packages/fail2ban/server/database.py")
    require(fail2ban_code.is_file(), "fail2ban is not installed (apt-get install fail2ban)")
    database = tmp_path / "fail2ban.sqlite3"
    base = dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()
    records = [
        f"sshd,192.0.2.1,{base + 60}",
        f"sshd,192.0.2.2,{base + 3600 + 60}",
        f"asterisk,192.0.2.1,{base + 7200 + 60}",
        f"asterisk,2001:db8::7,{base + 7200 + 120}",
    ]
    written = subprocess.run(
        ["/usr/bin/python3", "-c", FAIL2BAN_WRITER, str(database), *records],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    result = gardien("stats", "--dbfile", str(database), *RANGE, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bans"] == 4 and report["unique_addresses"] == 3
    assert [hour["bans"] for hour in report["hourly"][:3]] == [1, 1, 2]
    assert {j["jail"]: j["bans"] for j in report["per_jail"]} == {"sshd": 2, "asterisk": 2}
    assert report["top_addresses"][0]["address"] == "192.0.2.1"
    assert report["top_addresses"][0]["jails"] == ["asterisk", "sshd"]

"""``gardien scan``: offenders found in old logs, what-if grids, and banning them through a
running daemon. The replay is checked in-process on hand-made failures; the command is run as
a real process on real (plain and gzip) log files, and ``--ban`` against a real daemon."""

from __future__ import annotations

import calendar
import gzip
import json
import os
import time
from pathlib import Path

import pytest

from gardien.clock import FakeClock
from gardien.errors import ConfigError
from gardien.jails import IgnoreList
from gardien.matching.filter import Filter
from gardien.model import parse_address
from gardien.offenders import (
    FoundFailures,
    good_addresses,
    order_logs,
    read_failures,
    replay,
    scan_settings,
    what_if,
)
from gardien.tester import resolve_filter
from support.cli import gardien
from support.daemon import Running, banned

T0 = calendar.timegm((2026, 10, 1, 12, 0, 0))  # 2026-10-01 12:00:00 UTC


def line(address: str, when: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
    return (
        f'[{stamp}] NOTICE[2104] chan_sip.c: Registration from \'"1001" '
        f"<sip:1001@192.0.2.10>' failed for '{address}:5060' - Wrong password\n"
    )


def noise(when: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
    return f"[{stamp}] VERBOSE[2104] pbx.c: Executing [100@default:1] Answer\n"


def found(**times: list[float]) -> FoundFailures:
    """Failures of addresses given as keyword names: a_192_0_2_1=[...] is 192.0.2.1."""
    result = FoundFailures()
    for name, when in times.items():
        address = parse_address(name.removeprefix("a_").replace("_", "."))
        assert address is not None
        result.times[address] = sorted(when)
        result.failures += len(when)
    return result


# ---- replay: the daemon's decisions on old failures ----------------------------------------


def test_a_ban_needs_maxretry_failures_within_findtime() -> None:
    failures = found(
        a_192_0_2_1=[0, 100, 200, 300, 400],  # 5 within 10 minutes: banned at the 5th
        a_192_0_2_2=[0, 200, 400, 600, 800],  # 5, but over 800 s: never 5 within 600 s
        a_192_0_2_3=[0, 1, 2, 3],  # 4 only
    )
    bans = replay(failures, scan_settings(None))
    assert [(str(b.address), b.time, b.failures) for b in bans] == [("192.0.2.1", 400, 5)]
    assert bans[0].end == 400 + 600  # the default bantime, 10 minutes


def test_failures_while_banned_do_not_count_and_a_second_ban_comes_after_the_first() -> None:
    settings = scan_settings(None, maxretry=3, findtime=600, bantime=1000)
    failures = found(
        # banned at 20 until 1020: 30..900 are dropped; 1100, 1110, 1120 ban again
        a_198_51_100_7=[0, 10, 20, 30, 40, 500, 900, 1100, 1110, 1120],
    )
    bans = replay(failures, settings)
    assert [(b.time, b.end) for b in bans] == [(20, 1020), (1120, 2120)]


def test_bantime_increment_lengthens_repeated_bans() -> None:
    base = scan_settings(None, maxretry=2, findtime=60, bantime=100)
    from dataclasses import replace

    from gardien.settings import BanTimeIncrement

    settings = replace(base, increment=BanTimeIncrement(enabled=True))
    bans = replay(found(a_203_0_113_9=[0, 1, 200, 201, 1000, 1001]), settings)
    lengths = [b.end - b.time for b in bans if b.end is not None]
    assert len(bans) == 3 and lengths[0] < lengths[1] < lengths[2]


def test_ignored_addresses_are_never_banned() -> None:
    settings = scan_settings(None, maxretry=2, ignoreip=["192.0.2.0/24"])
    bans = replay(found(a_192_0_2_1=[0, 1], a_198_51_100_1=[0, 1]), settings)
    assert [str(b.address) for b in bans] == ["198.51.100.1"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--maxretry"):
        scan_settings(None, maxretry=0)
    with pytest.raises(ConfigError, match="--findtime"):
        scan_settings(None, findtime=0)


# ---- what-if --------------------------------------------------------------------------------


def test_what_if_counts_offenders_ignored_and_good_per_combination(tmp_path: Path) -> None:
    failures = found(
        a_192_0_2_1=[0, 60, 120],  # 3 within 2 minutes
        a_192_0_2_2=[0, 1000, 2000, 3000, 3001],  # 5 within 1 hour only
        a_10_0_0_5=[0, 1, 2, 3, 4, 5],  # ignored (private range ignored below)
        a_198_51_100_20=[0, 10, 20],  # a known good partner
    )
    good_file = tmp_path / "good.txt"
    good_file.write_text("# partners\n198.51.100.0/24\n\n2001:db8::1  # office\n")
    ignore = IgnoreList(["10.0.0.0/8"], clock=FakeClock(), ignoreself=False)
    rows = what_if(
        failures, [3, 5], [600.0, 3600.0], ignore=ignore, good=good_addresses(str(good_file))
    )
    table = {(r.maxretry, r.findtime): (r.offenders, r.ignored, r.good, r.banned) for r in rows}
    assert table == {
        (3, 600.0): (3, 1, 1, 2),  # .1, 10.0.0.5, .20 (.2 has 3 only within 3001 s)
        (3, 3600.0): (4, 1, 1, 3),
        (5, 600.0): (1, 1, 0, 0),  # only 10.0.0.5, ignored
        (5, 3600.0): (2, 1, 0, 1),  # and .2
    }


def test_good_file_errors_name_the_line(tmp_path: Path) -> None:
    good_file = tmp_path / "good.txt"
    good_file.write_text("192.0.2.1\nnot-an-address\n")
    with pytest.raises(ConfigError) as caught:
        good_addresses(str(good_file))
    assert str(caught.value).startswith(f"{good_file}:2: ")


# ---- reading logs ---------------------------------------------------------------------------


def write_logs(tmp_path: Path) -> tuple[Path, Path]:
    """An old gzip log and the current one; 192.0.2.50's five failures straddle the two."""
    older = tmp_path / "messages.1.gz"
    newer = tmp_path / "messages"
    old_lines = [noise(T0)] + [line("192.0.2.50", T0 + 10 * i) for i in range(3)]
    old_lines += [line("203.0.113.4", T0 + 100 + i) for i in range(5)]
    with gzip.open(older, "wt") as handle:
        handle.writelines(old_lines)
    new_lines = [line("192.0.2.50", T0 + 40 + 10 * i) for i in range(2)]
    new_lines += [noise(T0 + 100), line("198.51.100.3", T0 + 200)]
    newer.write_text("".join(new_lines))
    os.utime(older, (T0, T0 + 150))
    os.utime(newer, (T0, T0 + 300))
    return older, newer


def test_logs_are_read_oldest_first_whatever_the_order_given(tmp_path: Path) -> None:
    older, newer = write_logs(tmp_path)
    assert order_logs([str(newer), str(older)]) == [str(older), str(newer)]
    compiled = Filter(resolve_filter("asterisk"))
    result = read_failures(compiled, [str(newer), str(older)], clock=FakeClock(T0 + 86400))
    assert result.files == [str(older), str(newer)]
    assert result.lines == 13 and result.failures == 11
    bans = replay(result, scan_settings(None))
    assert {str(b.address): b.time for b in bans} == {
        "203.0.113.4": T0 + 104,
        "192.0.2.50": T0 + 50,
    }


def test_order_logs_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        order_logs([str(tmp_path / "missing.log")])


# ---- the command ----------------------------------------------------------------------------


def test_scan_json_reports_bans_and_lines(tmp_path: Path) -> None:
    older, newer = write_logs(tmp_path)
    out = gardien("scan", str(newer), str(older), "--filter", "asterisk", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["lines"] == 13
    assert report["files"] == [str(older), str(newer)]
    assert [(b["ip"], b["failures"]) for b in report["bans"]] == [
        ("192.0.2.50", 5),
        ("203.0.113.4", 5),
    ]
    assert report["bans"][0]["time"] == "2026-10-01T12:00:50+00:00"
    assert report["bans"][0]["epoch"] == T0 + 50


def test_scan_table_and_what_if_grid(tmp_path: Path) -> None:
    older, newer = write_logs(tmp_path)
    out = gardien("scan", str(older), str(newer), "--filter", "asterisk")
    assert out.returncode == 0, out.stderr
    assert "Would have banned 2 addresses (2 bans" in out.stdout
    assert "192.0.2.50" in out.stdout and "198.51.100.3" not in out.stdout
    good = tmp_path / "good.txt"
    good.write_text("203.0.113.4\n")
    out = gardien(
        "scan",
        str(older),
        str(newer),
        "--filter",
        "asterisk",
        "--good",
        str(good),
        "--what-if",
        "maxretry=1,5",
        "findtime=10m",
    )
    assert out.returncode == 0, out.stderr
    rows = [r.split() for r in out.stdout.splitlines() if r[:2] in ("1 ", "5 ")]
    assert rows == [["1", "10m", "3", "0", "1", "3"], ["5", "10m", "2", "0", "1", "2"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "asterisk", "--what-if", "maxretry=0"], "maxretry must be a whole number"),
        (["--filter", "asterisk", "--what-if", "bantime=1h"], "expected maxretry="),
        (["--filter", "asterisk", "--findtime", "soon"], "--findtime 'soon'"),
        (["--filter", "asterisk", "--good", "good.txt"], "--good is used with --what-if"),
        ([], "give the filter to use"),
        (["--jail", "nosuchjail"], "no jail 'nosuchjail'"),
        (["--filter", "nosuchfilter"], "nosuchfilter"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    _older, newer = write_logs(tmp_path)
    out = gardien("scan", str(newer), *args)
    assert out.returncode == 1
    assert out.stderr.startswith("gardien: error: ") and message in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_missing_log_is_an_error(tmp_path: Path) -> None:
    out = gardien("scan", str(tmp_path / "nope.log"), "--filter", "asterisk")
    assert out.returncode == 1
    assert "nope.log: cannot read log: No such file or directory" in out.stderr


# ---- --ban: through the running daemon -----------------------------------------------------


def test_ban_offenders_through_the_daemon(daemon: Running, tmp_path: Path) -> None:
    # the jail (asterisk-provya: maxretry 3, findtime 10m, ignoreip 1.2.3.4) is the daemon's
    old = tmp_path / "messages.1"
    now = time.time()
    start = now - 86400  # yesterday: old failures, which the daemon never saw
    offenders = ["192.0.2.61", "192.0.2.62", "192.0.2.63", "1.2.3.4"]
    old.write_text(
        "".join(
            line(address, start + 60 * n + i)
            for n, address in enumerate(offenders)
            for i in range(3)
        )
    )
    daemon.start()
    assert daemon.cli("set", "asterisk-provya", "banip", "192.0.2.61").returncode == 0
    # an address the daemon was told at run time to ignore: the scan cannot know it
    assert daemon.cli("set", "asterisk-provya", "addignoreip", "192.0.2.63").returncode == 0
    out = daemon.cli("scan", str(old), "--ban", "asterisk-provya", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # 1.2.3.4 is in the jail's ignoreip: never an offender
    assert [b["ip"] for b in report["bans"]] == ["192.0.2.61", "192.0.2.62", "192.0.2.63"]
    assert report["ban"]["banned"] == ["192.0.2.62"]
    assert report["ban"]["already"] == ["192.0.2.61"]
    assert [r["ip"] for r in report["ban"]["refused"]] == ["192.0.2.63"]
    assert "ignored" in report["ban"]["refused"][0]["reason"]
    assert sorted(banned(daemon)) == ["192.0.2.61", "192.0.2.62"]
    # a second run finds nothing new to ban
    out = daemon.cli("scan", str(old), "--ban", "asterisk-provya")
    assert out.returncode == 0, out.stderr
    assert "Banned in asterisk-provya: 0 new, 2 banned already, 1 refused" in out.stdout


def test_ban_without_a_daemon_fails_before_reading(daemon: Running, tmp_path: Path) -> None:
    old = tmp_path / "messages.1"
    old.write_text(line("192.0.2.70", T0))
    out = daemon.cli("scan", str(old), "--ban", "asterisk-provya")
    assert out.returncode == 1
    assert "gardien is not running" in out.stderr and out.stdout == ""


def test_progress_reports_every_byte_read(tmp_path: Path) -> None:
    older, newer = write_logs(tmp_path)
    seen: list[int] = []
    compiled = Filter(resolve_filter("asterisk"))
    read_failures(compiled, [str(older), str(newer)], clock=FakeClock(T0), progress=seen.append)
    assert sum(seen) == older.stat().st_size + newer.stat().st_size
    assert all(step >= 0 for step in seen)

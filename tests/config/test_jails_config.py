"""Jails and daemon settings, as a system administrator writes them."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from gardien.clock import FakeClock
from gardien.config.daemon import load_daemon_settings
from gardien.config.filters import bundled_config_dir, load_filter
from gardien.config.jails import jail_filter, load_jails
from gardien.errors import ConfigError
from gardien.matching.filter import Filter, LineMatcher
from support.cli import gardien

SEED_JAIL = """\
[asterisk-provya]
enabled  = true
ignoreip = 127.0.0.1 1.2.3.4
filter   = asterisk
action   = iptables-allports[name=asterisk, protocol=all]
logpath  = /var/log/asterisk/fail2ban
findtime  = 10m
maxretry = 3
bantime  = 360m
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """gardien's bundled configuration, copied so that a test can add to it."""
    target = tmp_path / "etc"
    shutil.copytree(bundled_config_dir(), target, ignore=shutil.ignore_patterns("samples"))
    return target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_the_seed_articles_jail_works_unchanged(config_dir: Path) -> None:
    write(config_dir / "jail.d" / "provya.conf", SEED_JAIL)
    jail = {j.name: j for j in load_jails(config_dir)}["asterisk-provya"]
    assert jail.enabled
    assert str(jail.filter) == "asterisk"
    assert [str(a) for a in jail.actions] == ["iptables-allports[name=asterisk, protocol=all]"]
    assert jail.logpath == ("/var/log/asterisk/fail2ban",)
    assert (jail.findtime, jail.maxretry, jail.bantime) == (600, 3, 21600)
    assert jail.ignoreip == ("127.0.0.1", "1.2.3.4")
    result = gardien("-c", str(config_dir), "config", "show", "--json", "asterisk-provya")
    record = json.loads(result.stdout)["jails"][0]
    assert record["bantime"] == 21600
    assert record["filter_file"] == str(config_dir / "filter.d" / "asterisk.conf")
    assert "OK:" in gardien("-c", str(config_dir), "config", "check").stdout


def test_local_overrides_conf_and_defaults_fill_in(config_dir: Path) -> None:
    write(
        config_dir / "jail.local",
        """\
        [DEFAULT]
        bantime = 1h
        [sshd]
        maxretry = 2
        """,
    )
    write(config_dir / "jail.d" / "mine.local", "[sshd]\nfindtime = 1d\n")
    sshd = {j.name: j for j in load_jails(config_dir)}["sshd"]
    assert (sshd.maxretry, sshd.findtime, sshd.bantime) == (2, 86400, 3600)
    assert sshd.enabled  # from jail.conf, untouched


def test_only_enabled(config_dir: Path) -> None:
    names = [j.name for j in load_jails(config_dir, only_enabled=True)]
    assert names == ["sshd"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("bantime", "ten minutes", "is not a duration"),
        ("maxretry", "three", "expected a whole number"),
        ("maxretry", "0", "maxretry must be 1 or more"),
        ("enabled", "perhaps", "is not a boolean"),
        ("usedns", "maybe", "usedns must be"),
        ("action", "iptables[name=x", "missing ']'"),
        ("bantime.multipliers", "1 2 x", "whole numbers"),
    ],
)
def test_bad_values_name_file_line_jail_and_option(
    config_dir: Path, option: str, value: str, message: str
) -> None:
    local = write(config_dir / "jail.local", f"[sshd]\nport = ssh\n{option} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_jails(config_dir)
    text = str(caught.value)
    assert text.startswith(f"{local}:3: [sshd] {option}: ")
    assert message in text
    result = gardien("-c", str(config_dir), "config", "check")
    assert result.returncode == 1
    assert f"{local}:3:" in result.stderr and "Traceback" not in result.stderr


def test_check_reports_a_filter_that_does_not_compile(config_dir: Path) -> None:
    write(config_dir / "filter.d" / "broken.conf", "[Definition]\nfailregex = ^x (<HOST>\n")
    write(config_dir / "jail.d" / "broken.local", "[broken]\nenabled = true\n")
    result = gardien("-c", str(config_dir), "config", "check")
    assert result.returncode == 1
    assert f"{config_dir / 'filter.d' / 'broken.conf'}:2:" in result.stderr
    assert "[broken]" in result.stderr or "broken" in result.stderr


def test_show_unknown_jail_is_an_error(config_dir: Path) -> None:
    result = gardien("-c", str(config_dir), "config", "show", "nope")
    assert result.returncode == 1
    assert "no jail named 'nope'" in result.stderr


def test_explicit_missing_config_dir_is_an_error(tmp_path: Path) -> None:
    result = gardien("-c", str(tmp_path / "missing"), "config", "check")
    assert result.returncode == 1
    assert "no such configuration directory" in result.stderr


def test_a_fail2ban_directory_is_read_as_it_is(fail2ban_config: Path) -> None:
    jails = load_jails(fail2ban_config)
    assert len(jails) > 50
    by_name = {j.name: j for j in jails}
    assert by_name["sshd"].logpath  # from paths-debian.conf through [INCLUDES]
    assert str(by_name["asterisk"].filter).startswith("asterisk")
    assert len(by_name["asterisk"].actions) == 2
    result = gardien("-c", str(fail2ban_config), "config", "check")
    assert result.returncode == 0, result.stderr
    assert "filters compiled" in result.stdout
    # every jail, enabled or not: only fail2ban's pass2allow trick (a ban that allows) is
    # beyond gardien, and it is said so with the place
    every = gardien("-c", str(fail2ban_config), "config", "check", "--all")
    problems = [line for line in every.stderr.splitlines() if line.startswith("gardien: error")]
    assert len(problems) == 1, every.stderr
    assert "[pass2allow-ftp] action:" in problems[0] and "pass2allow trick" in problems[0]


def test_daemon_settings(config_dir: Path, fail2ban_config: Path) -> None:
    settings = load_daemon_settings(config_dir)
    assert settings.socket == "/run/gardien/gardien.sock"
    assert settings.dbpurgeage == 86400
    write(config_dir / "gardien.local", "[Definition]\ndbpurgeage = 2w\nloglevel = debug\n")
    settings = load_daemon_settings(config_dir)
    assert (settings.dbpurgeage, settings.loglevel) == (14 * 86400, "DEBUG")
    fail2ban = load_daemon_settings(fail2ban_config)
    assert fail2ban.dbfile.endswith("fail2ban.sqlite3")
    write(config_dir / "gardien.local", "[Definition]\nloglevel = chatty\n")
    with pytest.raises(ConfigError, match=r"gardien.local:2: \[Definition\] loglevel: unknown"):
        load_daemon_settings(config_dir)


def test_bantime_factor_may_be_arithmetic_and_bantime_zero_stays_zero(config_dir: Path) -> None:
    write(
        config_dir / "jail.local",
        """\
        [sshd]
        bantime.factor = 2.0 / 2.885385
        bantime = 0
        """,
    )
    sshd = {j.name: j for j in load_jails(config_dir)}["sshd"]
    assert sshd.increment.factor == pytest.approx(2.0 / 2.885385)
    assert sshd.bantime == 0
    write(config_dir / "jail.local", "[sshd]\nbantime.factor = __import__('os')\n")
    with pytest.raises(ConfigError, match="expected a number"):
        load_jails(config_dir)


def test_filter_options_set_in_a_jail_apply_to_its_filter(config_dir: Path) -> None:
    # fail2ban lets a jail set its filter's options: datepattern, maxlines, journalmatch and
    # usedns replace the filter's, failregex and ignoreregex lines are added to its own
    write(
        config_dir / "jail.d" / "custom.local",
        """\
        [asterisk-provya]
        enabled     = true
        filter      = asterisk
        logpath     = /var/log/asterisk/messages
        datepattern = %%Y-%%m-%%d %%H:%%M:%%S
        maxlines    = 2
        usedns      = no
        journalmatch = _SYSTEMD_UNIT=asterisk.service
        failregex   = ^custom\\.c: login failure from <HOST>$
        ignoreregex = from 192\\.0\\.2\\.99
        """,
    )
    (jail,) = [j for j in load_jails(config_dir) if j.name == "asterisk-provya"]
    own = load_filter("asterisk", config_dir)
    spec = jail_filter(jail, config_dir)
    assert spec.datepattern == "%Y-%m-%d %H:%M:%S" != own.datepattern
    assert (spec.maxlines, spec.usedns) == (2, "no")
    assert spec.journalmatch == ("_SYSTEMD_UNIT=asterisk.service",)
    assert spec.failregex[: len(own.failregex)] == own.failregex
    assert [r.pattern for r in spec.failregex[len(own.failregex) :]] == [
        r"^custom\.c: login failure from <HOST>$"
    ]
    assert spec.ignoreregex[-1].pattern == r"from 192\.0\.2\.99"
    # and the compiled filter uses them
    matcher = LineMatcher(Filter(spec), clock=FakeClock(1_795_000_000.0))
    result = matcher.process(
        "[2026-11-30 10:00:00] NOTICE[7] custom.c: login failure from 203.0.113.5"
    )
    assert [f.host for f in result.failures] == ["203.0.113.5"]


def test_a_bad_maxlines_in_a_jail_names_the_jail(config_dir: Path) -> None:
    write(
        config_dir / "jail.d" / "custom.local",
        "[asterisk-provya]\nenabled = true\nfilter = asterisk\nlogpath = /x\nmaxlines = many\n",
    )
    (jail,) = [j for j in load_jails(config_dir) if j.name == "asterisk-provya"]
    with pytest.raises(ConfigError, match="maxlines must be a whole number, got 'many'") as info:
        jail_filter(jail, config_dir)
    assert "asterisk-provya" in str(info.value) and "custom.local" in str(info.value)


def test_logtimezone_dates_the_jails_lines_and_a_bad_one_is_located(config_dir: Path) -> None:
    custom = write(
        config_dir / "jail.d" / "custom.local",
        "[asterisk-provya]\nenabled = true\nfilter = asterisk\nlogpath = /x\nlogtimezone = +0200\n",
    )
    (jail,) = [j for j in load_jails(config_dir) if j.name == "asterisk-provya"]
    assert jail.logtimezone == "+0200"
    custom.write_text(custom.read_text().replace("+0200", "Mars/Olympus"))
    with pytest.raises(ConfigError, match="logtimezone") as info:
        load_jails(config_dir)
    assert "custom.local" in str(info.value) and "Mars/Olympus" in str(info.value)


def test_maxpending_bounds_the_addresses_a_jail_counts(config_dir: Path) -> None:
    write(
        config_dir / "jail.local",
        """\
        [sshd]
        enabled = true
        maxpending = 2
        """,
    )
    (sshd,) = load_jails(config_dir, only_enabled=True)
    assert sshd.maxpending == 2
    from gardien.jails import Jail
    from gardien.model import Failure

    jail = Jail(sshd, clock=FakeClock(1_700_000_000.0))
    for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        jail.add_failure(Failure(host, 1_700_000_000.0, 0, lines=("x",)))
    assert jail.status().currently_failed == 2 and jail.status().forgotten == 1
    write(config_dir / "jail.local", "[sshd]\nenabled = true\nmaxpending = 0\n")
    with pytest.raises(ConfigError, match=r"jail.local:3: .*maxpending must be 1 or more"):
        load_jails(config_dir, only_enabled=True)

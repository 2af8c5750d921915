"""fail2ban-client's commands side by side: the real fail2ban 1.0.2 (its server in a network
namespace with its own socket, a do-nothing action written here, so no firewall is touched) and a real gardien daemon
on the same configuration; the same commands sent to both, through fail2ban-client, through
gardien's verbs and through gardien run as ``fail2ban-client`` (a symbolic link), and their
outputs compared once times and the two daemons' own file names are normalised.

:data:`INTENDED` lists where gardien differs on purpose (the README's "Control commands"
section says the same); the test checks that each still differs, so the list stays true.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.ci import require
from support.netns import netns_available

FAIL2BAN_CLIENT = "/usr/bin/fail2ban-client"
GARDIEN = Path(sys.executable).with_name("gardien")

JAILS = """\
[DEFAULT]
action   = log
backend  = polling
bantime  = 10m
findtime = 10m
maxretry = 3
maxmatches = 5
ignoreip = 127.0.0.1 ::1 192.0.2.250

[sshd]
enabled = true
filter  = demo
logpath = {root}/log/auth.log

[web]
enabled = true
filter  = demo
logpath = {root}/log/web.log
          {root}/log/web2.log
"""
DEMO_FILTER = "[Definition]\nfailregex = ^\\S+ \\S+ login failed from <HOST>$\nignoreregex =\n"
#: fail2ban needs an action file for `action = log`; gardien's log action is built in
QUIET_ACTION = "[Definition]\n" + "".join(
    f"{name} =\n"
    for name in ("actionstart", "actionstop", "actioncheck", "actionban", "actionunban")
)

#: sent in this order to fail2ban and to gardien; every output must be the same
SAME: list[list[str]] = [
    ["ping"],
    ["status"],
    ["status", "sshd"],
    ["status", "sshd", "basic"],
    ["status", "sshd", "short"],
    ["set", "sshd", "banip", "203.0.113.1", "203.0.113.2", "198.51.100.3"],
    ["get", "sshd", "banned"],
    ["get", "sshd", "banned", "203.0.113.1", "198.51.100.99"],
    ["get", "sshd", "banned", "203.0.113.1"],
    ["banned"],
    ["banned", "203.0.113.1", "198.51.100.99"],
    ["get", "sshd", "banip"],
    ["get", "sshd", "banip", ","],
    ["get", "sshd", "banip", "--with-time"],
    ["status", "sshd"],
    ["set", "sshd", "banip", "203.0.113.1"],  # banned already: 0 (fail2ban prolongs it)
    ["get", "sshd", "logpath"],
    ["get", "web", "logpath"],
    ["get", "sshd", "ignoreip"],
    ["get", "sshd", "maxretry"],
    ["get", "sshd", "findtime"],
    ["get", "sshd", "bantime"],
    ["get", "sshd", "maxmatches"],
    ["get", "sshd", "actions"],
    ["get", "sshd", "ignoreregex"],
    ["get", "sshd", "datepattern"],
    ["get", "sshd", "usedns"],
    ["get", "sshd", "logencoding"],
    ["get", "sshd", "journalmatch"],
    ["get", "sshd", "ignoreself"],
    ["get", "sshd", "ignorecommand"],
    ["get", "sshd", "maxlines"],
    ["get", "loglevel"],
    ["get", "logtarget"],
    ["get", "syslogsocket"],
    ["get", "dbfile"],
    ["get", "dbpurgeage"],
    ["set", "sshd", "addignoreip", "10.1.1.1"],
    ["set", "sshd", "delignoreip", "10.1.1.1"],
    ["set", "sshd", "bantime", "1h"],
    ["set", "sshd", "findtime", "5m"],
    ["set", "sshd", "maxretry", "5"],
    ["set", "sshd", "maxmatches", "3"],
    ["set", "sshd", "addlogpath", "{root}/log/new.log", "tail"],
    ["get", "sshd", "logpath"],
    ["set", "sshd", "dellogpath", "{root}/log/new.log"],
    ["set", "sshd", "dellogpath", "{root}/log/never.log"],
    ["set", "loglevel", "DEBUG"],
    ["get", "loglevel"],
    ["set", "loglevel", "INFO"],
    ["set", "dbpurgeage", "2d"],
    ["set", "sshd", "unbanip", "203.0.113.2", "198.51.100.99"],
    ["unban", "203.0.113.1", "198.51.100.98"],
    ["banned"],
    ["unban", "--all"],
    ["flushlogs"],
    ["get", "nope", "bantime"],
    ["status", "nope"],
    ["set", "nope", "banip", "203.0.113.9"],
    ["bogus"],
    ["reload"],
    ["reload", "sshd"],
    ["reload", "--restart", "sshd"],
    ["restart", "sshd"],
    ["reload", "--unban", "--all"],
    ["stop", "web"],
    ["status"],
    ["reload"],
    ["status"],
    ["echo", "a", "b"],
    ["-t"],
    ["--str2sec", "1h30m"],
    ["-V"],
]

#: where gardien differs on purpose (the README lists the same), and why
INTENDED: dict[tuple[str, ...], str] = {
    ("version",): "gardien's own version",
    ("--version",): "says it is gardien, following fail2ban-client 1.0.2",
    ("set", "sshd", "banip", "192.0.2.250"): "an address of ignoreip is not banned by hand",
    ("set", "sshd", "banip", "not-an-address"): "only IP addresses are banned",
    ("status", "sshd", "cymru"): "no whois lookups at Team Cymru",
    ("get", "sshd", "failregex"): "gardien's regexes, <HOST> not expanded",
    ("get", "sshd", "actionproperties", "log"): "gardien's actions are built in",
    ("get", "dbmaxmatches"): "each jail's maxmatches lines are kept with its bans",
    ("set", "sshd", "usedns", "no"): "compiled at start: change the configuration, reload",
    ("set", "sshd", "maxretry", "x"): "gardien's own wording of a bad value",
    ("set", "sshd", "addlogpath", "{root}/log/missing.log"): "gardien's wording",
    ("set", "sshd", "unbanip", "--report-absent", "198.51.100.97"): "gardien's wording",
    ("add", "extra", "polling"): "jails come from the configuration",
    ("status", "--all"): "fail2ban 1.1's status --all (1.0.2 has none)",
    ("stats",): "fail2ban 1.1's stats table (1.0.2 has none)",
    ("-h",): "gardien's help text",
}

_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_LOG_PREFIX = re.compile(r"^\S+ \S+ fail2ban(\.\S+)?\s+\[\d+\]: ", re.MULTILINE)


@dataclass
class Side:
    """One daemon and the command that talks to it."""

    name: str
    command: list[str]
    dbfile: Path
    logfile: Path

    def run(self, words: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        done = subprocess.run(
            [*self.command, *words],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    def normalised(self, words: Sequence[str]) -> tuple[int, str, str]:
        status, out, err = self.run(words)
        err = _LOG_PREFIX.sub("<LOG> ", err)
        out, err = (
            _TIME.sub("<TIME>", text)
            .replace(str(self.dbfile), "<DBFILE>")
            .replace(str(self.logfile), "<LOGFILE>")
            for text in (out, err)
        )
        if any(word.endswith("ignoreip") for word in words):
            # fail2ban keeps single addresses in a set: their order is its hash order
            title, *items = out.splitlines()
            out = "\n".join([title, *sorted(item[3:] for item in items)])
        # fail2ban-client warns about settings its own fail2ban.conf lacks: not an answer
        err = "".join(line for line in err.splitlines(True) if "WARNING" not in line)
        return status, out, err


@dataclass
class Pair:
    root: Path
    etc: Path
    fail2ban: Side
    gardien_link: Side  # gardien run as fail2ban-client
    gardien_verbs: Side  # gardien's own command line

    def words(self, words: Sequence[str]) -> list[str]:
        return [word.format(root=self.root) for word in words]


def _wait(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _write_config(root: Path) -> Path:
    """A fail2ban configuration both daemons run on, in ``root``; its directory."""
    etc = root / "etc"
    for sub in ("filter.d", "action.d"):
        (etc / sub).mkdir(parents=True)
    (root / "log").mkdir()
    for name in ("auth.log", "web.log", "web2.log", "new.log"):
        (root / "log" / name).touch()
    (etc / "fail2ban.conf").write_text(
        "[Definition]\nloglevel = INFO\n"
        f"logtarget = {root}/fail2ban.log\nsocket = {root}/fail2ban.sock\n"
        f"pidfile = {root}/fail2ban.pid\ndbfile = {root}/fail2ban.sqlite3\n"
        "dbpurgeage = 1d\nsyslogsocket = auto\nallowipv6 = auto\n"
    )
    (etc / "jail.conf").write_text(JAILS.format(root=root))
    (etc / "filter.d" / "demo.conf").write_text(DEMO_FILTER)
    (etc / "action.d" / "log.conf").write_text(QUIET_ACTION)
    return etc


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("side-by-side")
    etc = _write_config(root)
    link = root / "bin" / "fail2ban-client"
    link.parent.mkdir()
    link.symlink_to(GARDIEN)
    f2b_sock, g_sock = root / "fail2ban.sock", root / "gardien.sock"
    fail2ban = Side(
        "fail2ban",
        [FAIL2BAN_CLIENT, "-c", str(etc), "-s", str(f2b_sock)],
        root / "fail2ban.sqlite3",
        root / "fail2ban.log",
    )
    # both servers run in a network namespace of their own (their firewalls apart from the
    # host's); their control sockets are files, reached from here
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    namespace = f"gardien-cmp-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    in_namespace = ["ip", "netns", "exec", namespace]
    started = subprocess.run(
        [*in_namespace, *fail2ban.command, "-p", str(root / "fail2ban.pid"), "-x", "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    daemon = subprocess.Popen(
        [
            *in_namespace,
            str(GARDIEN),
            "-c",
            str(etc),
            "-s",
            str(g_sock),
            "run",
            "--dbfile",
            str(root / "gardien.sqlite3"),
            "--pidfile",
            str(root / "gardien.pid"),
            "--logtarget",
            str(root / "gardien.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    link_side = Side(
        "gardien as fail2ban-client",
        [str(link), "-c", str(etc), "-s", str(g_sock)],
        root / "gardien.sqlite3",
        root / "gardien.log",
    )
    verbs = Side(
        "gardien",
        [str(GARDIEN), "-c", str(etc), "-s", str(g_sock)],
        root / "gardien.sqlite3",
        root / "gardien.log",
    )
    try:
        _wait(lambda: link_side.run(["ping"])[0] == 0, "gardien's daemon")
        _wait(lambda: fail2ban.run(["ping"])[0] == 0, "fail2ban's server")
        yield Pair(root, etc, fail2ban, link_side, verbs)
    finally:
        fail2ban.run(["stop"])
        verbs.run(["stop"])
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_the_same_commands_print_the_same(pair: Pair) -> None:
    differences = []
    for command in SAME:
        words = pair.words(command)
        expected = pair.fail2ban.normalised(words)
        got = pair.gardien_link.normalised(words)
        if got != expected:
            differences.append(f"{' '.join(command)}:\n  fail2ban: {expected}\n  gardien:  {got}")
    assert not differences, "\n".join(differences)


def test_the_intended_differences_still_differ(pair: Pair) -> None:
    for command, why in INTENDED.items():
        words = pair.words(command)
        expected = pair.fail2ban.normalised(words)
        status, out, err = pair.gardien_link.normalised(words)
        assert (status, out, err) != expected, f"{command} no longer differs ({why})"
        assert "Traceback" not in out + err
        if status != 0:  # a refusal has fail2ban-client's shape: a line, its NOK, 255
            assert status == 255, (command, status, out, err)
            assert err.startswith("<LOG> ERROR   "), (command, err)
    pair.fail2ban.run(["stop", "extra"])  # the jail fail2ban's `add` made


def test_gardien_verbs_print_what_fail2ban_client_prints(pair: Pair) -> None:
    """The gardien verbs print the same answers; a refusal is gardien's one line, exit 1."""
    pair.gardien_link.run(["unban", "--all"])
    pair.fail2ban.run(["unban", "--all"])
    commands = [
        ["set", "sshd", "banip", "203.0.113.11", "203.0.113.12"],
        ["banned"],
        ["banned", "203.0.113.11"],
        ["get", "sshd", "banip", "--with-time"],
        ["get", "sshd", "banned", "203.0.113.12"],
        ["get", "sshd", "ignoreip"],
        ["get", "web", "logpath"],
        ["get", "dbpurgeage"],
        ["set", "sshd", "unbanip", "203.0.113.11"],
        ["unban", "--all"],
        ["ping"],
        ["reload", "sshd"],
        ["flushlogs"],
    ]
    for command in commands:
        expected = pair.fail2ban.normalised(command)
        assert pair.gardien_verbs.normalised(command) == expected, command
    status, out, err = pair.gardien_verbs.run(["status", "nope"])
    assert (status, out) == (1, "")
    assert err.startswith("gardien: error: unknown jail 'nope'")


def _addresses(count: int, first: str = "100.64.0.0") -> list[str]:
    base = ipaddress.ip_address(first)
    return [str(base + index) for index in range(count)]


def _banned_count(side: Side, jail: str) -> int:
    status, out, _ = side.run(["status", jail, "short"])
    assert status == 0, out
    match = re.search(r"Currently banned:\t(\d+)", out)
    assert match is not None, out
    return int(match.group(1))


def test_ten_thousand_addresses_on_one_command_line(pair: Pair) -> None:
    addresses = _addresses(10_000)
    for side in (pair.fail2ban, pair.gardien_link):
        side.run(["unban", "--all"])
        assert side.run(["set", "web", "banip", *addresses]) == (0, "10000\n", "")
        assert _banned_count(side, "web") == 10_000
        assert side.run(["set", "web", "banip", *addresses[:5000]]) == (0, "0\n", "")
    assert pair.gardien_verbs.run(["set", "web", "unbanip", *addresses])[:2] == (0, "10000\n")
    assert _banned_count(pair.gardien_link, "web") == 0


def test_a_hundred_thousand_addresses(pair: Pair) -> None:
    """More than a command line can carry: gardien reads them from stdin (`-`), in batches."""
    addresses = _addresses(100_000, "100.80.0.0")
    started = time.monotonic()
    result = pair.gardien_link.run(["set", "web", "banip", "-"], stdin="\n".join(addresses))
    elapsed = time.monotonic() - started
    assert result == (0, "100000\n", ""), result[2][-500:]
    assert _banned_count(pair.gardien_link, "web") == 100_000
    assert pair.gardien_verbs.run(["get", "web", "banned", addresses[-1]])[:2] == (0, "1\n")
    assert elapsed < 120, f"{elapsed:.1f} s for 100,000 bans"
    result = pair.gardien_verbs.run(["set", "web", "unbanip", "-"], stdin=" ".join(addresses))
    assert result[:2] == (0, "100000\n")
    assert _banned_count(pair.gardien_link, "web") == 0


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("203.0.113.300", "'203.0.113.300' is not an IP address (address 15000 of 20000)"),
        ("192.0.2.250", "192.0.2.250 is not banned: it is ignored"),
    ],
)
def test_one_bad_address_among_many_bans_none(pair: Pair, bad: str, why: str) -> None:
    """The list needs several requests; the bad address is in a later one: nothing is banned."""
    addresses = _addresses(20_000, "100.96.0.0")
    addresses[14_999] = bad
    for side, status in ((pair.gardien_link, 255), (pair.gardien_verbs, 1)):
        result = side.run(["set", "sshd", "banip", *addresses])
        assert result[0] == status
        assert why in result[1] + result[2]
        assert "Traceback" not in result[2]
        assert _banned_count(pair.gardien_link, "sshd") == 0


def test_an_unknown_jail_with_many_addresses_bans_none(pair: Pair) -> None:
    addresses = _addresses(20_000, "100.112.0.0")
    result = pair.gardien_link.run(["set", "nojail", "banip", *addresses])
    assert result[:2] == (255, "Sorry but the jail 'nojail' does not exist\n")
    assert result[2].rstrip().endswith("ERROR   NOK: ('nojail',)")
    result = pair.gardien_verbs.run(["set", "nojail", "banip", *addresses])
    assert result[0] == 1 and "unknown jail 'nojail'" in result[2]
    assert _banned_count(pair.gardien_link, "sshd") == 0
    assert _banned_count(pair.gardien_link, "web") == 0


def test_not_running_is_said_as_fail2ban_client_says_it(pair: Pair, tmp_path: Path) -> None:
    gone = tmp_path / "none.sock"
    for side in (pair.fail2ban, pair.gardien_link):
        status, out, err = side.run(["-s", str(gone), "status"])
        assert (status, out) == (255, "")
        assert f"Failed to access socket path: {gone}. Is fail2ban running?" in err


def test_start_and_stop_a_jail(pair: Pair) -> None:
    """gardien's `start JAIL` starts a jail of the configuration (fail2ban needs `add` first)."""
    link = pair.gardien_link
    assert link.run(["stop", "web"])[:2] == (0, "Jail stopped\n")
    assert "web" not in link.run(["status"])[1]
    assert link.run(["start", "web"])[:2] == (0, "Jail started\n")
    assert "Jail list:\tsshd, web" in link.run(["status"])[1]


def test_status_all_and_stats_in_fail2ban_1_1_format(pair: Pair) -> None:
    link = pair.gardien_link
    status, out, _ = link.run(["status", "--all", "short"])
    assert status == 0
    lines = out.splitlines()
    assert lines[:4] == [
        "Status",
        "|- Number of jail:\t2",
        "|- Jail list:\tsshd, web",
        "`- Status for the jails:",
    ]
    assert lines[4] == "   |- Jail: sshd"
    assert "   `- Jail: web" in lines
    assert "Banned IP list" not in out  # short
    status, out, _ = link.run(["stats"])
    assert status == 0
    rows = out.splitlines()
    assert len(rows) == 7  # 3 heading lines, a rule, 2 jails, a rule
    assert rows[4].split()[:2] == ["sshd", "\u2551"] or rows[4].split()[:2] == ["sshd", "|"]


def test_reload_if_exists_and_bad_reload(pair: Pair) -> None:
    link = pair.gardien_link
    assert link.run(["reload", "--if-exists", "nojail"])[:2] == (0, "OK\n")
    status, out, err = link.run(["reload", "nojail"])
    assert (status, out) == (255, "")
    assert "ERROR   Failed during configuration: " in err and "nojail" in err


def test_regex_hook_without_the_regex_drop_in(tmp_path: Path) -> None:
    """Run as fail2ban-regex, gardien hands over to its fail2ban-regex drop-in."""
    link = tmp_path / "fail2ban-regex"
    link.symlink_to(GARDIEN)
    done = subprocess.run(
        [str(link), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in done.stderr
    try:
        import gardien.cli.regex_compat  # noqa: F401
    except ImportError:
        assert done.returncode == 255 and "use `gardien regex`" in done.stderr
    else:
        assert done.returncode == 0


def test_start_restart_and_stop_the_daemon(tmp_path: Path) -> None:
    """``start`` runs gardien's daemon in the background on the configuration's socket."""
    etc = _write_config(tmp_path)
    link = tmp_path / "fail2ban-client"
    link.symlink_to(GARDIEN)
    client = [str(link), "-c", str(etc)]  # the socket: fail2ban.conf's

    def run(*words: str) -> tuple[int, str, str]:
        done = subprocess.run(
            [*client, *words], capture_output=True, text=True, timeout=120, check=False
        )
        return done.returncode, done.stdout, done.stderr

    try:
        assert run("start")[:2] == (0, "Server ready\n")
        assert run("ping")[:2] == (0, "Server replied: pong\n")
        status, out, err = run("start")
        assert (status, out) == (255, "") and "ERROR   Server already running" in err
        assert run("restart")[:2] == (0, "Shutdown successful\nServer ready\n")
        assert run("stop")[:2] == (0, "Shutdown successful\n")
        assert not (tmp_path / "fail2ban.sock").exists()
    finally:
        run("stop")

"""The assembly (:mod:`gardien.daemon.assembly`): from a configuration directory to the jails'
plans and every problem, as the daemon and ``gardien config check`` both use it."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import gardien.daemon
from gardien.actions import FirewallAction, LogAction
from gardien.backends import MemoryFirewall
from gardien.cli import cli
from gardien.clock import FakeClock
from gardien.config.daemon import DaemonSettings
from gardien.config.jails import JailSettings
from gardien.config.values import Spec
from gardien.daemon.assembly import (
    FeedPlan,
    FilesPlan,
    JournalPlan,
    LogPath,
    assemble,
    pretend_firewalls,
)
from gardien.daemon.commands import Commands
from gardien.daemon.control import Request
from gardien.daemon.jailsources import JournalOptions
from gardien.daemon.metrics import jail_samples
from gardien.daemon.server import Daemon, JailRuntime
from gardien.errors import ConfigError, UnknownJailError
from gardien.jails import Jail
from gardien.model import Address, Ban
from gardien.store.memory import MemoryBanStore

#: two jails, each broken in its own way: a value that is not one (met reading the jails) and an
#: action gardien does not know (met building it); a third one is right
TWO_BROKEN = """\
[counted]
enabled  = true
filter   = sshd
action   = log
maxretry = three

[unknown-action]
enabled = true
filter  = sshd
action  = no-such-action
logpath = /var/log/auth.log

[right]
enabled = true
filter  = sshd
action  = log
logpath = /var/log/auth.log
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def check(config_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-c", str(config_dir), "config", "check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_each_kind_of_source_is_planned(tmp_path: Path) -> None:
    token = tmp_path / "hub.token"
    token.write_text("agent-token\n")
    token.chmod(0o600)
    journal = tmp_path / "system.journal"
    jail_conf = write(
        tmp_path,
        "etc/jail.conf",
        f"""\
        [files]
        enabled = true
        filter  = sshd
        action  = log
                  nftables-multiport[name=files, port=ssh]
        logpath = {tmp_path}/logs/*.log tail
                  {tmp_path}/auth.log

        [journal]
        enabled = true
        filter  = sshd
        action  = log
        backend = systemd[journalfiles={journal}]

        [feed]
        enabled = true
        backend = hub[url=https://hub.example.org, token_file={token}, every=10s]
        action  = log

        [off]
        filter = no-such-filter
        """,
    )
    firewall = MemoryFirewall()
    assembly = assemble(jail_conf.parent, firewalls=lambda _backend: firewall)
    assert assembly.problems == ()
    assert [jail.name for jail in assembly.jails] == ["files", "journal", "feed", "off"]
    assert list(assembly.plans) == ["files", "journal", "feed"]  # only the enabled ones

    files = assembly.plans["files"]
    assert files.filter is not None and files.filter.spec.name == "sshd"
    assert files.source == FilesPlan(
        (LogPath(f"{tmp_path}/logs/*.log", "tail"), LogPath(f"{tmp_path}/auth.log", "head"))
    )
    assert [path.glob for path in files.source.paths] == [True, False]
    assert [type(action) for action in files.actions] == [LogAction, FirewallAction]

    planned = assembly.plans["journal"]
    assert isinstance(planned.source, JournalPlan)
    assert planned.source.options == JournalOptions(files=(str(journal),))
    assert planned.source.journalmatch == planned.journalmatch != ()  # the filter's

    feed = assembly.plans["feed"]
    assert feed.filter is None and feed.journalmatch == ()
    assert isinstance(feed.source, FeedPlan)
    assert feed.source.options.url == "https://hub.example.org" and feed.source.options.every == 10
    assert feed.source.feed.jail == "feed"
    # built, not started: the firewall was given nothing to set up
    assert firewall.jails == {} and firewall.elements == {} and firewall.transactions == 0


def test_one_broken_jail_does_not_hide_another(tmp_path: Path) -> None:
    local = write(tmp_path, "etc/jail.local", TWO_BROKEN)
    assembly = assemble(local.parent, firewalls=pretend_firewalls())
    texts = [str(problem) for problem in assembly.problems]
    assert len(texts) == 2
    assert texts[0] == f"{local}:5: [counted] maxretry: expected a whole number, got 'three'"
    assert texts[1].startswith(f"{local}:7: [unknown-action] action: unknown action 'no-such")
    assert list(assembly.plans) == ["right"]


def test_a_filter_problem_is_located_in_its_file_or_at_the_jail(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    broken = write(etc, "filter.d/broken.conf", "[Definition]\nfailregex = ^x (<HOST>\n")
    local = write(
        etc,
        "jail.local",
        """\
        [missing]
        enabled = true
        filter  = no-such-filter
        action  = log

        [broken]
        enabled = true
        action  = log
        """,
    )
    missing, wrong = assemble(etc, firewalls=pretend_firewalls()).problems
    assert str(missing).startswith(f"{local}:1: [missing] filter: no filter named 'no-such")
    assert str(wrong).startswith(f"{broken}:2: [broken] failregex: not a valid regular")


def test_config_check_prints_every_problem_with_its_place(tmp_path: Path) -> None:
    local = write(tmp_path, "etc/jail.local", TWO_BROKEN)
    status, stdout, stderr = check(local.parent)
    assert status == 1 and stdout == ""
    lines = stderr.splitlines()
    assert lines[0].startswith(f"gardien: error: {local}:5: [counted] maxretry: ")
    assert lines[1].startswith(f"gardien: error: {local}:7: [unknown-action] action: ")
    assert lines[2:] == [f"2 problem(s) in {local.parent}"]


def test_config_check_counts_what_it_checked(tmp_path: Path) -> None:
    local = write(
        tmp_path,
        "etc/jail.local",
        """\
        [on]
        enabled = true
        filter  = sshd
        action  = log
        logpath = /var/log/auth.log

        [off]
        filter = sshd
        action = no-such-action
        """,
    )
    assert check(local.parent) == (
        0,
        f"OK: {local.parent}: 2 jails (1 enabled), 1 filters compiled\n",
        "",
    )
    status, _stdout, stderr = check(local.parent, "--all")  # the disabled one too
    assert status == 1 and f"{local}:7: [off] action: unknown action" in stderr


def test_a_broken_gardien_conf_is_one_more_problem(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    write(etc, "jail.local", TWO_BROKEN)
    conf = write(etc, "gardien.conf", "[mail]\ntls = sometimes\n")
    status, _stdout, stderr = check(etc)
    assert status == 1
    assert f"{conf}:2: [mail] tls: 'sometimes' is not one of" in stderr  # the relay's problem
    assert stderr.splitlines()[-1] == f"3 problem(s) in {etc}"


def test_the_daemon_raises_the_first_problem_config_check_prints(tmp_path: Path) -> None:
    local = write(tmp_path, "etc/jail.local", TWO_BROKEN)
    daemon = Daemon(local.parent, MemoryBanStore(), socket_path=str(tmp_path / "sock"))
    with pytest.raises(ConfigError) as caught:
        asyncio.run(daemon.start())
    assert not (tmp_path / "sock").exists()  # refused before the socket was opened
    _status, _stdout, stderr = check(local.parent)
    assert stderr.splitlines()[0] == f"gardien: error: {caught.value}"


# ---- the daemon's control interface -----------------------------------------------------------
#: the modules on the control side of the daemon, which see it through DaemonControl only
CONTROL_SIDE = ("commands.py", "options.py", "metrics.py")


@pytest.mark.parametrize("module", CONTROL_SIDE)
def test_the_control_side_uses_no_private_member_of_the_daemon(module: str) -> None:
    """No ``something._name`` but on ``self``: the daemon (``daemon``, ``self._daemon``) is
    reached through its public control interface only."""
    path = Path(gardien.daemon.__file__).parent / module
    tree = ast.parse(path.read_text(), str(path))
    private = [
        f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert private == []


class FakeDaemon:
    """A small :class:`DaemonControl` with real jails: the bans and unbans the commands ask
    for are recorded (when there is one) instead of stored and acted upon."""

    def __init__(self, config_dir: Path, *names: str) -> None:
        self.config_dir = config_dir
        self.settings = DaemonSettings()
        self.socket_path = str(config_dir / "sock")
        self.clock = FakeClock(1_000_000.0)
        self.jails = {name: self._runtime(name, maxretry=3) for name in names}
        self.failed = {"offline": "cannot read /var/log/offline.log: permission denied"}
        self.lock = asyncio.Lock()
        self.calls: list[tuple[Any, ...]] = []
        self.files = {name: [f"/var/log/{name}.log"] for name in names}

    def _runtime(self, name: str, **options: Any) -> JailRuntime:
        settings = JailSettings(name, True, Spec("sshd"), (), (), **options)
        return JailRuntime(settings, Jail(settings, clock=self.clock), None, [])

    def log_files(self, name: str) -> list[str]:
        return self.files[name]

    def log_sources(self, name: str) -> int:
        return len(self.files[name])

    async def until_started(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def changes(self) -> AsyncIterator[None]:
        async with self.lock:
            yield

    def request_stop(self) -> None:
        self.calls.append(("stop",))

    async def ban_addresses(self, name: str, addresses: Sequence[Address]) -> list[Ban]:
        assert self.lock.locked()
        if addresses:
            self.calls.append(("ban", name, *map(str, addresses)))
        return [self.jails[name].jail.ban(address) for address in addresses]

    async def unban_addresses(
        self, name: str, addresses: Sequence[Address], *, reason: str = "manual"
    ) -> int:
        assert self.lock.locked()
        lifted = [a for a in addresses if self.jails[name].jail.unban(a) is not None]
        if lifted:
            self.calls.append(("unban", name, reason, *map(str, lifted)))
        return len(lifted)

    async def reconfigure(self, only: str | None) -> str:
        assert self.lock.locked()
        if only is not None and only not in self.jails:
            raise ConfigError(f"unknown jail {only!r} in the new configuration")
        self.calls.append(("reload", only))
        return "OK"

    async def stop_jail(self, name: str) -> None:
        self.calls.append(("stop_jail", name))
        del self.jails[name]

    def retune_jail(self, name: str, settings: JailSettings) -> None:
        assert self.lock.locked()
        self.calls.append(("retune", name, settings.maxretry))
        self.jails[name].settings = settings

    def add_logpath(self, name: str, path: str, from_tail: bool) -> list[str]:
        self.files[name].append(path)
        return self.files[name]

    def remove_logpath(self, name: str, path: str) -> list[str]:
        self.files[name].remove(path)
        return self.files[name]

    def set_loglevel(self, level: str) -> str:
        return level.upper()

    def set_logtarget(self, target: str) -> str:
        return target

    def set_dbpurgeage(self, seconds: float) -> float:
        self.settings = replace(self.settings, dbpurgeage=seconds)
        return seconds


def test_commands_work_through_the_control_interface(tmp_path: Path) -> None:
    daemon = FakeDaemon(tmp_path, "sshd", "postfix")
    commands = Commands(daemon)

    def ask(command: str, *args: str) -> Any:
        return asyncio.run(commands.handle(Request(command, args)))

    assert ask("set", "sshd", "banip", "203.0.113.7", "203.0.113.8") == 2
    assert ask("set", "sshd", "banip", "203.0.113.7") == 0  # banned already
    assert ask("set", "postfix", "banip", "203.0.113.7") == 1
    assert ask("status", "sshd")["files"] == ["/var/log/sshd.log"]
    assert ask("get", "sshd", "logpath") == ["/var/log/sshd.log"]
    assert ask("status")["not_started"] == daemon.failed
    assert ask("set", "sshd", "unbanip", "203.0.113.8", "198.51.100.1") == 1
    assert ask("unban", "203.0.113.7") == 2  # in both jails
    assert ask("set", "sshd", "maxretry", "7") == 7
    assert ask("set", "dbpurgeage", "2d") == 172800 == daemon.settings.dbpurgeage
    assert ask("set", "sshd", "banip", "192.0.2.1") == 1
    assert ask("reload", "--unban", "sshd") == "OK"
    assert ask("stop", "postfix") is None and list(daemon.jails) == ["sshd"]
    assert daemon.calls == [
        ("ban", "sshd", "203.0.113.7", "203.0.113.8"),
        ("ban", "postfix", "203.0.113.7"),
        ("unban", "sshd", "manual", "203.0.113.8"),
        ("unban", "sshd", "manual", "203.0.113.7"),
        ("unban", "postfix", "manual", "203.0.113.7"),
        ("retune", "sshd", 7),
        ("ban", "sshd", "192.0.2.1"),
        ("unban", "sshd", "manual", "192.0.2.1"),
        ("reload", "sshd"),
        ("stop_jail", "postfix"),
    ]
    with pytest.raises(UnknownJailError):
        ask("start", "nojail")


def test_metrics_read_the_control_interface(tmp_path: Path) -> None:
    daemon = FakeDaemon(tmp_path, "sshd")
    daemon.files["sshd"].append("/var/log/other.log")
    daemon.jails["sshd"].jail.ban("203.0.113.9")
    daemon.jails["sshd"].lines_read = 12
    (sample,) = jail_samples(daemon)
    assert (sample.jail, sample.lines_read, sample.banned, sample.files) == ("sshd", 12, 1, 2)

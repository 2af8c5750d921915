"""The assembly (:mod:`gardien.daemon.assembly`): from a configuration directory to the jails'
plans and every problem, as the daemon and ``gardien config check`` both use it."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from gardien.actions import FirewallAction, LogAction
from gardien.backends import MemoryFirewall
from gardien.cli import cli
from gardien.daemon.assembly import (
    FeedPlan,
    FilesPlan,
    JournalPlan,
    LogPath,
    assemble,
    pretend_firewalls,
)
from gardien.daemon.jailsources import JournalOptions
from gardien.daemon.server import Daemon
from gardien.errors import ConfigError
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

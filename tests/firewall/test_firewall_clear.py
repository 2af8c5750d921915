"""``gardien firewall clear`` on the real kernel, in a network namespace: what the jails' firewall
actions left (bans kept on purpose with ``keepbans = yes``, or a daemon killed) is removed,
nothing else is touched, and it refuses while the daemon runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gardien.actions.firewall import block_spec
from gardien.config.values import parse_spec
from gardien.model import Ban
from support.ci import require
from support.netns import Lab, assert_dropped, assert_open, netns_available

JAILS = """\
[DEFAULT]
banaction = nftables-multiport

[web]
enabled = true
filter = sshd
logpath = {log}
port = 22
action = nftables-multiport[name=web, port="22", protocol=tcp, blocktype=DROP]
         iptables-ipset-proto6[name=web6, port="22", protocol=tcp, blocktype=DROP]

[old]
# disabled since, but its set may still be there
enabled = false
filter = sshd
logpath = {log}
action = nftables-allports[name=old, protocol=all, blocktype=DROP]
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    require(shutil.which("ipset") is not None, "needs ipset")
    with Lab.create(clients=1) as built:
        yield built


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir()
    log = tmp_path / "auth.log"
    log.write_text("")
    (directory / "jail.conf").write_text(JAILS.format(log=log))
    (directory / "gardien.conf").write_text(
        f"[Definition]\nsocket = {tmp_path / 'gardien.sock'}\n"
        f"dbfile = {tmp_path / 'gardien.sqlite3'}\npidfile = {tmp_path / 'gardien.pid'}\n"
    )
    return directory


def _gardien(lab: Lab, conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return lab.run(lab.server, sys.executable, "-m", "gardien", "-c", str(conf), *argv, check=False)


def _ruleset(lab: Lab) -> list[dict[str, object]]:
    items = json.loads(lab.run(lab.server, "nft", "-j", "-s", "list", "ruleset").stdout)["nftables"]
    return [item for item in items if "metainfo" not in item]


def _ipsets(lab: Lab) -> list[str]:
    return lab.run(lab.server, "ipset", "list", "-n").stdout.split()


def _ban_everywhere(lab: Lab) -> None:
    """What a daemon stopped with keepbans = yes leaves: the sets, rules and bans of web (both
    of its actions) and of old."""
    address = lab.clients[0].ipv4
    now = time.time()
    for backend, spec in (
        (
            "nftables:NftablesFirewall",
            'nftables-multiport[name=web, port="22", protocol=tcp, blocktype=DROP]',
        ),
        (
            "ipset:IpsetFirewall",
            'iptables-ipset-proto6[name=web6, port="22", protocol=tcp, blocktype=DROP]',
        ),
        ("nftables:NftablesFirewall", "nftables-allports[name=old, protocol=all, blocktype=DROP]"),
    ):
        block = block_spec(parse_spec(spec), "web")
        firewall = lab.server_python.new(f"gardien.backends.{backend}")
        firewall.setup(block)
        firewall.ban(block, [Ban("web", address, now, now + 600)], now)


def test_clear_removes_every_jail_object_and_its_bans(lab: Lab, conf: Path) -> None:
    _ban_everywhere(lab)
    client = lab.clients[0]
    assert_dropped(lab, client, ("tcp", 22), 4)
    assert {"gardien-web6", "gardien6-web6"} <= set(_ipsets(lab))

    result = _gardien(lab, conf, "firewall", "clear")

    assert result.returncode == 0, result.stderr
    assert "cleared [web] nftables web" in result.stdout
    assert "cleared [web] ipset web6" in result.stdout
    assert "cleared [old] nftables old" in result.stdout
    tables = [item["table"]["name"] for item in _ruleset(lab) if "table" in item]
    assert not [name for name in tables if "gardien" in str(name)], "not even an empty one"
    assert not any("web6" in name for name in _ipsets(lab))
    assert "gardien" not in lab.run(lab.server, "iptables-save").stdout
    assert_open(lab, client, ("tcp", 22), 4)


def test_clear_on_a_clean_firewall_changes_nothing(lab: Lab, conf: Path) -> None:
    lab.run(lab.server, "nft", "add", "table", "inet", "admin")
    before = _ruleset(lab)
    result = _gardien(lab, conf, "firewall", "clear")
    assert result.returncode == 0, result.stderr
    assert _ruleset(lab) == before
    lab.run(lab.server, "nft", "delete", "table", "inet", "admin")


def test_clear_is_refused_while_the_daemon_runs(lab: Lab, conf: Path, tmp_path: Path) -> None:
    output = tmp_path / "daemon.log"
    with output.open("wb") as sink:
        daemon = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.server,
                sys.executable,
                "-m",
                "gardien",
                "-c",
                str(conf),
                "run",
                "--logtarget",
                "STDERR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while _gardien(lab, conf, "ping").returncode != 0:
            assert daemon.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)
        tables = _ruleset(lab)

        result = _gardien(lab, conf, "firewall", "clear")

        assert result.returncode == 1
        assert "stop it first" in result.stderr
        assert _ruleset(lab) == tables
    finally:
        _gardien(lab, conf, "stop")
        daemon.wait(timeout=30)

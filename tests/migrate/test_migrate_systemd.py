"""``gardien migrate`` where systemd runs both: a stock Debian 12 (booted with its own systemd in
a network namespace) with Debian's fail2ban as a service holding bans it restored itself, and
gardien's package installed. ``gardien migrate``, plain, as an administrator types it, must
``systemctl enable --now gardien``, ``systemctl disable --now fail2ban``, and leave the plain
client commands talking to the migrated daemon, with no packet of a banned address through."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import SUPPORT
from support.ci import require
from support.debroot import Container, archive_needs, fresh_root, setup
from support.netns import Lab, netns_available

TESTS = SUPPORT
BANS = 200
JAIL_LOCAL = """\
[DEFAULT]
banaction = iptables-multiport
bantime = 1h

[sshd]
enabled = true
backend = systemd
maxretry = 3
"""


@dataclass
class Box:
    lab: Lab
    box: Container


def _tools() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "dpkg-buildpackage"):
        if shutil.which(tool) is None:
            return False, f"needs {tool}"
    return netns_available()


@pytest.fixture(scope="module")
def debian(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Box]:
    available, why = _tools()
    require(available, f"the systemd migration test: {why}")
    deb: Path = request.getfixturevalue("current_deb")
    root = fresh_root(tmp_path_factory.mktemp("debian") / "root")
    needs = archive_needs(deb)
    setup(root, "apt-get", "update", "-qq")
    setup(
        root,
        "apt-get",
        "install",
        "-y",
        "-qq",
        *needs,
        "openssh-server",
        "fail2ban",
        "python3-systemd",
        "iptables",
        "nftables",
    )
    (root / "etc/fail2ban/jail.local").write_text(JAIL_LOCAL)
    with (
        Lab.create(clients=1, listen=False) as lab,
        Container.boot(root, netns=lab.server, binds={deb.parent: "/debs", TESTS: "/tests"}) as box,
    ):
        box.run("apt-get", "install", "-y", "-qq", f"/debs/{deb.name}", timeout=600)
        yield Box(lab, box)


def _fail2ban_bans(attacker: str) -> list[dict[str, object]]:
    now = int(time.time())
    addresses = [attacker] + [f"10.1.{i >> 8}.{i & 255}" for i in range(1, BANS)]
    return [
        {
            "jail": "sshd",
            "ip": ip,
            "time": now - 60 - i,
            "bantime": 3600,
            "count": 1 + i % 3,
            "failures": 3,
            "matches": [f"Invalid user x from {ip}"],
        }
        for i, ip in enumerate(addresses)
    ]


def test_migrate_under_systemd(debian: Box) -> None:
    lab, box = debian.lab, debian.box
    attacker = lab.clients[0]
    # fail2ban, its database written by its own code, restores its bans at start; gardien's
    # package started gardien, which is stopped here so that migrate starts its unit
    box.run("systemctl", "disable", "--now", "gardien")
    box.run("systemctl", "stop", "fail2ban")
    box.run("rm", "-f", "/var/lib/fail2ban/fail2ban.sqlite3")
    box.run(
        "python3",
        "/tests/fail2ban_writer.py",
        "/var/lib/fail2ban/fail2ban.sqlite3",
        input=json.dumps(_fail2ban_bans(str(attacker.ipv4))),
    )
    box.run("systemctl", "start", "fail2ban")
    deadline = time.monotonic() + 300
    while (
        f"Currently banned:\t{BANS}"
        not in box.run("fail2ban-client", "status", "sshd", check=False).stdout
    ):
        assert time.monotonic() < deadline, box.run("fail2ban-client", "status", "sshd").stdout
        time.sleep(0.5)
    assert lab.probe(attacker, "tcp", 22, 4, timeout=1) == "refused"

    subprocess.run(
        ["ip", "netns", "exec", lab.server, "nft", "-f", "-"],
        input="table inet probe_count {\n chain after_filters {\n"
        "  type filter hook input priority 100; policy accept;\n"
        f"  ip saddr {attacker.ipv4} tcp dport 22 counter\n }}\n}}\n",
        text=True,
        check=True,
    )
    stop = threading.Event()
    results: list[str] = []

    def probe() -> None:
        while not stop.is_set():
            results.append(lab.probe(attacker, "tcp", 22, 4, timeout=0.3))
            time.sleep(0.002)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        result = box.run("gardien", "migrate", check=False, timeout=600)
    finally:
        stop.set()
        prober.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "systemctl enable --now gardien" in result.stdout
    assert "systemctl disable --now fail2ban" in result.stdout
    counted = json.loads(
        lab.run(lab.server, "nft", "-j", "list", "table", "inet", "probe_count").stdout
    )
    passed = [
        e["counter"]["packets"]
        for item in counted["nftables"]
        for e in item.get("rule", {}).get("expr", ())
        if "counter" in e
    ]
    assert passed == [0], "packets of the banned address got through"
    assert "open" not in results and results.count("refused") > 10

    assert box.run("systemctl", "is-active", "gardien").stdout.strip() == "active"
    assert box.run("systemctl", "is-enabled", "gardien").stdout.strip() == "enabled"
    assert box.run("systemctl", "is-active", "fail2ban", check=False).stdout.strip() != "active"
    assert box.run("systemctl", "is-enabled", "fail2ban", check=False).stdout.strip() == "disabled"
    assert "f2b-" not in box.run("iptables", "-S").stdout
    # the plain commands talk to the migrated daemon
    assert "sshd" in box.run("gardien", "status").stdout
    banned = box.run("gardien", "get", "sshd", "banip").stdout.split()
    assert len(banned) == BANS and str(attacker.ipv4) in banned
    assert box.run("gardien", "config", "check").returncode == 0
    again = box.run("gardien", "migrate")
    assert "nothing to do" in again.stdout

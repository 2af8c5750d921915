"""fail2ban's ``ufw`` action (Ubuntu's default banaction) with a real, active ufw, and its
``firewallcmd-*`` actions (RHEL's) with a real firewalld: gardien starts instead of refusing,
says once that it bans in its own nftables table, the attacker's packets drop on what the
action blocks while the manager's own rules keep working, and a stop leaves the manager's
ruleset as it was.

ufw runs in the lab's server namespace, with its configuration in a copy of /etc/ufw bound
over /etc/ufw in a private mount namespace (so the host's ufw is never enabled); the daemon
runs in that same mount namespace, so it reads the copy's application profiles. firewalld runs
without systemd: its own D-Bus system bus in a private mount namespace (a tmpfs on /run/dbus),
in the server's network namespace; firewall-cmd reaches it through nsenter."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ci import require
from support.daemon import failure_line
from support.e2e import Setup, eventually
from support.netns import Lab, netns_available

#: a ufw application profile, as packages drop them in /etc/ufw/applications.d
PROFILE = """\
[GardienSIP]
title=SIP
description=SIP signalling
ports=5060/udp
"""
#: run argv in ``etc_ufw`` bound over /etc/ufw (positional parameters: never interpolated)
IN_UFW_MOUNT = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/ufw && exec "$@"']


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    for tool in ("ufw", "firewalld", "dbus-daemon"):
        require(shutil.which(tool) is not None, f"{tool} is missing (apt-get install {tool})")
    with Lab.create(clients=2) as built:
        yield built


class UfwServer(Setup):
    """ufw enabled in the lab's server namespace (deny incoming, SSH and SIP allowed)."""

    def __init__(self, lab: Lab, root: Path, action: str) -> None:
        super().__init__(lab, root, action)
        self.lab = lab
        self.ufw_etc = root / "ufw"
        shutil.copytree("/etc/ufw", self.ufw_etc, symlinks=True)
        (self.ufw_etc / "applications.d" / "gardien-sip").write_text(PROFILE)
        for command in ("--force enable", "allow 22/tcp", "allow 5060/udp"):
            self.ufw(*command.split())
        # the daemon too, so that it reads the copy's application profiles
        self.argv = self.wrap(*self.argv[4:])  # the end-to-end argv less its `ip netns exec NS`

    def wrap(self, *argv: str) -> list[str]:
        """``argv`` in the server namespace, with the copy of /etc/ufw over /etc/ufw."""
        return ["ip", "netns", "exec", self.lab.server, *IN_UFW_MOUNT, str(self.ufw_etc), *argv]

    def ufw(self, *args: str) -> str:
        result = subprocess.run(self.wrap("ufw", *args), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def ruleset(self) -> str:
        return self.lab.run(self.lab.server, "iptables-save").stdout

    def close(self) -> None:
        """ufw disabled: its chains gone, the policies back to accept, for the next test."""
        self.ufw("--force", "disable")


def ufw_rules(ruleset: str) -> list[str]:
    """ufw's own chains and rules in an iptables-save output (counters left out)."""
    return [line for line in ruleset.splitlines() if "ufw" in line and not line.startswith("#")]


def test_the_ufw_action_bans_beside_an_active_ufw(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = UfwServer(lab, tmp_path, "ufw")
    request.addfinalizer(server.close)
    attacker, friend = lab.clients
    before = ufw_rules(server.ruleset())
    assert before and "Status: active" in server.ufw("status")
    assert lab.reachable(attacker, "udp", 5060, 4) and lab.reachable(attacker, "tcp", 22, 4)
    daemon = server.start()
    try:
        address = str(attacker.address(4))
        with server.log.open("a") as handle:
            handle.write(failure_line(address) * 3)
        try:
            eventually(lambda: not lab.reachable(attacker, "udp", 5060, 4), "the attacker's drop")
        except AssertionError:
            print(server.cli("status", "asterisk-provya").stdout)
            print(lab.run(lab.server, "nft", "list", "ruleset").stdout)
            raise
        # fail2ban's ufw action denies the offender "to any": every port
        assert not lab.reachable(attacker, "tcp", 22, 4)
        assert lab.reachable(friend, "udp", 5060, 4) and lab.reachable(friend, "tcp", 22, 4)
        # ufw keeps its rules and keeps working: a port it does not allow stays closed
        assert ufw_rules(server.ruleset()) == before
        assert lab.probe(friend, "tcp", 8080, 4) == "timeout"
        assert "table inet gardien" in lab.run(lab.server, "nft", "list", "tables").stdout
    finally:
        output = server.stop(daemon)
    assert daemon.returncode == 0, output
    notices = [line for line in output.splitlines() if "action ufw" in line]
    assert len(notices) == 1, output
    assert "its own nftables table (inet gardien)" in notices[0]
    assert lab.reachable(attacker, "udp", 5060, 4)  # the stop lifted gardien's ban
    assert ufw_rules(server.ruleset()) == before


def test_a_ufw_application_limits_the_ban_to_its_ports(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = UfwServer(lab, tmp_path, "ufw[application=GardienSIP, blocktype=deny]")
    request.addfinalizer(server.close)
    attacker = lab.clients[0]
    daemon = server.start()
    try:
        address = str(attacker.address(4))
        assert server.cli("set", "asterisk-provya", "banip", address).returncode == 0
        eventually(lambda: not lab.reachable(attacker, "udp", 5060, 4), "the SIP drop")
        assert lab.reachable(attacker, "tcp", 22, 4)  # outside the profile's ports
        ruleset = lab.run(lab.server, "nft", "list", "table", "inet", "gardien").stdout
        assert "5060" in ruleset and " drop" in ruleset
    finally:
        output = server.stop(daemon)
    assert daemon.returncode == 0, output


#: firewalld with a D-Bus system bus of its own (a tmpfs on /run/dbus, in a mount namespace)
FIREWALLD = "mount -t tmpfs tmpfs /run/dbus && dbus-daemon --system --fork && exec firewalld --nofork --nopid"


class Firewalld:
    """A real firewalld running in the lab's server namespace (default zone: public, which
    lets SSH in and rejects the rest), plus 5060/udp opened."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", lab.server, "unshare", "--mount", "sh", "-c", FIREWALLD],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        eventually(lambda: self.cmd("--state", check=False) == "running", "firewalld", 60)
        self.cmd("--add-port=5060/udp")

    def cmd(self, *args: str, check: bool = True) -> str:
        """firewall-cmd, in firewalld's mount namespace (where its bus is)."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.process.pid), "-m", "-n", "firewall-cmd", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert not check or result.returncode == 0, result.stderr
        return result.stdout.strip()

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):  # the bus, forked into the session
            os.killpg(self.process.pid, signal.SIGKILL)
        self.lab.run(self.lab.server, "nft", "delete", "table", "inet", "firewalld", check=False)


def test_firewallcmd_actions_ban_beside_a_running_firewalld(lab: Lab, tmp_path: Path) -> None:
    firewalld = Firewalld(lab)
    try:
        setup = Setup(lab, tmp_path, "firewallcmd-ipset[port=5060, protocol=udp]")
        attacker, friend = lab.clients
        tables = lab.run(lab.server, "nft", "list", "tables").stdout
        assert "table inet firewalld" in tables
        assert lab.reachable(attacker, "udp", 5060, 4) and lab.reachable(attacker, "tcp", 22, 4)
        daemon = setup.start()
        try:
            address = str(attacker.address(4))
            with setup.log.open("a") as handle:
                handle.write(failure_line(address) * 3)
            eventually(lambda: not lab.reachable(attacker, "udp", 5060, 4), "the SIP drop")
            assert lab.reachable(attacker, "tcp", 22, 4)  # the action's port only
            assert lab.reachable(friend, "udp", 5060, 4)
            # firewalld keeps working (8080 is not open in the public zone) ...
            assert lab.probe(friend, "tcp", 8080, 4) in ("refused", "timeout")
            # ... and its reload rebuilds its own table only: gardien's ban holds
            firewalld.cmd("--reload")
            assert "5060/udp" not in firewalld.cmd("--list-ports")
            firewalld.cmd("--add-port=5060/udp")
            assert not lab.reachable(attacker, "udp", 5060, 4)
            assert lab.reachable(friend, "udp", 5060, 4)
        finally:
            output = setup.stop(daemon)
        assert daemon.returncode == 0, output
        assert sum("action firewallcmd-ipset" in line for line in output.splitlines()) == 1
        assert lab.reachable(attacker, "udp", 5060, 4)
        assert "table inet firewalld" in lab.run(lab.server, "nft", "list", "tables").stdout
    finally:
        firewalld.close()

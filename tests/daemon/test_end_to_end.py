"""The seed article's setup, word for word, on a real kernel: the daemon runs inside a network
namespace (its own firewall), failure lines appended to the jail's log make the attacker's next
packets drop while another client keeps talking, and the CLI lifts the ban."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ci import require
from support.cli import gardien
from support.daemon import failure_line
from support.e2e import Setup, eventually
from support.netns import Lab, netns_available


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    for tool in ("iptables", "nft"):
        require(shutil.which(tool) is not None, f"{tool} is missing")
    with Lab.create(clients=2) as built:
        yield built


@pytest.mark.parametrize(
    "action",
    [
        "iptables-allports[name=asterisk, protocol=all]",  # the seed article's, word for word
        "nftables-allports[name=asterisk, protocol=all]",
    ],
)
def test_attacker_is_dropped_and_the_other_client_keeps_talking(
    lab: Lab, tmp_path: Path, action: str
) -> None:
    setup = Setup(lab, tmp_path, action)
    log, sock = setup.log, setup.sock
    attacker, friend = lab.clients
    daemon = setup.start()
    try:
        for family in (4, 6):
            assert lab.reachable(attacker, "udp", 5060, family)
            assert lab.reachable(attacker, "tcp", 22, family)
        address = str(attacker.address(4))
        with log.open("a") as handle:
            handle.write(failure_line(address) * 3)
        try:
            eventually(
                lambda: not lab.reachable(attacker, "udp", 5060, 4),
                "the attacker's packets to drop",
            )
        except AssertionError:
            print(gardien("-s", str(sock), "status", "asterisk-provya").stdout)
            print(lab.run(lab.server, "iptables-save").stdout)
            print(lab.run(lab.server, "nft", "list", "ruleset").stdout)
            raise
        assert not lab.reachable(attacker, "tcp", 22, 4)  # every port, as asked
        assert lab.reachable(friend, "udp", 5060, 4)  # the other client talks on
        assert lab.reachable(friend, "tcp", 22, 4)
        status = gardien("-s", str(sock), "status", "asterisk-provya").stdout
        assert f"Banned IP list:\t{address}" in status
        unban = gardien("-s", str(sock), "set", "asterisk-provya", "unbanip", address)
        assert unban.returncode == 0, unban.stderr
        eventually(
            lambda: lab.reachable(attacker, "udp", 5060, 4),
            "the attacker to pass again after unban",
        )
        ipv6 = str(attacker.address(6))
        assert gardien("-s", str(sock), "set", "asterisk-provya", "banip", ipv6).returncode == 0
        eventually(lambda: not lab.reachable(attacker, "tcp", 22, 6), "the IPv6 ban")
        assert lab.reachable(friend, "tcp", 22, 6)
    finally:
        output = setup.stop(daemon)
    assert daemon.returncode == 0, output
    # stopped without keepbans: the jail's rules are gone, the attacker passes
    assert lab.reachable(attacker, "tcp", 22, 6)


def test_restart_after_kill_reconciles_the_firewall_with_the_store(
    lab: Lab, tmp_path: Path
) -> None:
    setup = Setup(lab, tmp_path, "nftables-allports[name=asterisk, protocol=all]")
    log = setup.log
    attacker, friend = lab.clients
    start = setup.start

    daemon = start()
    try:
        address = str(attacker.address(4))
        with log.open("a") as handle:
            handle.write(failure_line(address) * 3)
        eventually(lambda: not lab.reachable(attacker, "tcp", 22, 4), "the ban")
        daemon.kill()  # no clean stop: the kernel keeps the set, the store keeps the ban
        daemon.communicate(timeout=10)
        assert not lab.reachable(attacker, "tcp", 22, 4)
        # meanwhile somebody left an element the store knows nothing about
        friend_address = str(friend.address(4))
        lab.run(
            lab.server,
            "nft",
            "add",
            "element",
            "inet",
            "gardien",
            "asterisk-v4",
            "{",
            friend_address,
            "}",
        )
        assert not lab.reachable(friend, "tcp", 22, 4)
        daemon = start()
        eventually(lambda: lab.reachable(friend, "tcp", 22, 4), "the leftover to be removed")
        assert not lab.reachable(attacker, "tcp", 22, 4)  # the stored ban holds
    finally:
        setup.stop(daemon)

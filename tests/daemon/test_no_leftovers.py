"""No firewall state is left behind: after a clean stop, and after a start that fails half way
(a second jail's action refused after the first one made the nftables table, a control socket
that cannot be made, a store that cannot be opened), the network namespace the daemon ran in
has no ``table inet gardien``, no gardien ipset set and no gardien iptables chain -- unless
``keepbans = yes``, which keeps the bans in the kernel on purpose. The daemon runs as a process
in a namespace of tests/support/netns.py, driven through the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ci import require
from support.daemon import failure_line
from support.e2e import Setup, eventually
from support.netns import Lab, netns_available

NFT = "nftables-allports[name=asterisk, protocol=all]"
IPSET = "iptables-ipset-proto6-allports[name=asterisk, protocol=all]"
IPTABLES = "iptables-allports[name=asterisk, protocol=all]"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    for tool in ("nft", "iptables", "ipset"):
        require(shutil.which(tool) is not None, f"{tool} is missing")
    with Lab.create(clients=1) as built:
        yield built


def firewall_state(lab: Lab) -> str:
    """What of gardien's is in the server namespace's firewall ("" when nothing)."""
    found = []
    nft = lab.run(lab.server, "nft", "list", "tables").stdout
    found += [line for line in nft.splitlines() if "gardien" in line]
    found += lab.run(lab.server, "ipset", "list", "-n").stdout.split()
    for tool in ("iptables-save", "ip6tables-save"):
        rules = lab.run(lab.server, tool).stdout.splitlines()
        found += [line for line in rules if "gardien" in line or "f2b-" in line]
    return "\n".join(found)


def run_until_exit(setup: Setup, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*setup.argv, *extra], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("action", [NFT, IPSET, IPTABLES], ids=["nftables", "ipset", "iptables"])
def test_a_stop_leaves_nothing(lab: Lab, tmp_path: Path, action: str) -> None:
    setup = Setup(lab, tmp_path, action)
    attacker = lab.clients[0]
    daemon = setup.start()
    try:
        with setup.log.open("a") as log:
            log.write(failure_line(str(attacker.address(4))) * 3)
        eventually(lambda: not lab.reachable(attacker, "tcp", 22, 4), "the ban")
        assert firewall_state(lab) != ""
    finally:
        output = setup.stop(daemon)
    assert daemon.returncode == 0, output
    assert firewall_state(lab) == ""
    if action == NFT:  # (iptables-nft keeps its own empty filter tables in nft's ruleset)
        assert lab.run(lab.server, "nft", "list", "ruleset").stdout.strip() == ""
    assert lab.reachable(attacker, "tcp", 22, 4)


def test_keepbans_keeps_the_bans_in_the_kernel(lab: Lab, tmp_path: Path) -> None:
    setup = Setup(lab, tmp_path, NFT)
    (setup.etc / "gardien.local").write_text("[Definition]\nkeepbans = yes\n")
    attacker = lab.clients[0]
    address = str(attacker.address(4))
    daemon = setup.start()
    try:
        assert setup.cli("set", "asterisk-provya", "banip", address).returncode == 0
    finally:
        output = setup.stop(daemon)
    assert daemon.returncode == 0, output
    try:
        kept = lab.run(lab.server, "nft", "list", "set", "inet", "gardien", "asterisk-v4")
        assert address in kept.stdout  # the ban stays in the kernel, with its timeout
        table = lab.run(lab.server, "nft", "list", "table", "inet", "gardien").stdout
        assert "chain" not in table  # nothing hooks the sets until the next start
    finally:
        lab.run(lab.server, "nft", "delete", "table", "inet", "gardien", check=False)


@pytest.mark.parametrize(
    "second_action",
    [
        # refused by the nftables backend when the jail starts, after the first jail's table
        "nftables-multiport[name=second, port=80, chain=DOCKER-USER]",
        "nftables-multiport[name=second, port=no-such-service]",
        "iptables-multiport[name=second, port=no-such-service]",
    ],
    ids=["docker-user", "nft-unknown-port", "iptables-unknown-port"],
)
def test_a_start_failing_at_a_second_jail_leaves_nothing(
    lab: Lab, tmp_path: Path, second_action: str
) -> None:
    setup = Setup(lab, tmp_path, NFT)
    second_log = tmp_path / "second.log"
    second_log.write_text("")
    # jail.d files are read in name order: the seed jail (provya.conf) starts first
    (setup.etc / "jail.d" / "zz-second.conf").write_text(
        f"[second]\nenabled = true\nfilter = asterisk\nlogpath = {second_log}\n"
        f"action = {second_action}\n"
    )
    result = run_until_exit(setup)
    assert result.returncode == 1, result.stderr
    assert "[second]" in result.stderr and "Traceback" not in result.stderr
    assert firewall_state(lab) == ""
    assert not setup.sock.exists()


def test_a_control_socket_that_cannot_be_made_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    setup = Setup(lab, tmp_path, NFT)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    setup.argv[setup.argv.index("-s") + 1] = str(blocker / "gardien.sock")
    result = run_until_exit(setup)
    assert result.returncode == 1
    assert "control socket" in result.stderr and "Traceback" not in result.stderr
    assert firewall_state(lab) == ""


def test_a_store_that_cannot_be_opened_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    setup = Setup(lab, tmp_path, NFT)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = run_until_exit(setup, "--dbfile", str(blocker / "gardien.sqlite3"))
    assert result.returncode == 1
    assert "gardien: error:" in result.stderr and "Traceback" not in result.stderr
    assert firewall_state(lab) == ""


def test_a_second_daemon_leaves_the_first_ones_firewall_alone(lab: Lab, tmp_path: Path) -> None:
    setup = Setup(lab, tmp_path, NFT)
    attacker = lab.clients[0]
    daemon = setup.start()
    try:
        assert (
            setup.cli("set", "asterisk-provya", "banip", str(attacker.address(4))).returncode == 0
        )
        eventually(lambda: not lab.reachable(attacker, "tcp", 22, 4), "the ban")
        second = run_until_exit(setup, "--dbfile", str(tmp_path / "other.sqlite3"))
        assert second.returncode == 1
        assert "another gardien daemon is running" in second.stderr
        assert not lab.reachable(attacker, "tcp", 22, 4)  # the first one's ban still holds
        assert setup.cli("ping").stdout == "Server replied: pong\n"
    finally:
        output = setup.stop(daemon)
    assert daemon.returncode == 0, output
    assert firewall_state(lab) == ""

"""``gardien firewall apply`` and ``confirm`` on the real kernel, in a network namespace: rules
applied, rolled back unless confirmed, and the SSH guard."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gardien.firewall.apply import ssh_allowed
from gardien.firewall.policy import parse_policy
from support.ci import require
from support.netns import Lab, netns_available


def _policy(client_ip: str) -> str:
    return f"""
[[service]]
preset = "ssh"
sources = ["{client_ip}"]

[[service]]
name = "sip"
protocol = "udp"
ports = ["5060"]
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, reason = netns_available()
    require(available, reason)
    require(shutil.which("nft") is not None, "nft is missing (apt-get install nftables)")
    with Lab.create(clients=2) as built:
        yield built


@pytest.fixture
def setup(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, Path, Path]]:
    lab.run(lab.server, "nft", "flush", "ruleset")
    policy = tmp_path / "policy.toml"
    policy.write_text(_policy(str(lab.clients[0].address(4))))
    yield lab, policy, tmp_path / "state"
    lab.run(lab.server, "nft", "flush", "ruleset")


def _gardien(lab: Lab, *args: str, ssh: str | None = None) -> tuple[int, str, str]:
    env = ["env", "-u", "SSH_CONNECTION"] if ssh is None else ["env", f"SSH_CONNECTION={ssh}"]
    result = lab.run(lab.server, *env, sys.executable, "-m", "gardien", *args, check=False)
    return result.returncode, result.stdout, result.stderr


def _policy_in_force(lab: Lab) -> bool:
    return "gardien_policy" in lab.run(lab.server, "nft", "list", "ruleset").stdout


def test_ssh_guard_logic() -> None:
    policy = parse_policy(_policy("192.0.2.2"))
    assert ssh_allowed(policy, None)
    assert ssh_allowed(policy, "192.0.2.2 50000 192.0.2.1 22")
    assert not ssh_allowed(policy, "198.51.100.2 50000 198.51.100.1 22")
    assert not ssh_allowed(policy, "192.0.2.2 50000 192.0.2.1 2222")
    assert not ssh_allowed(policy, "198.51.100.2 50000 198.51.100.1 5060")
    assert ssh_allowed(parse_policy("[defaults]\ninbound = 'accept'\n"), "1.2.3.4 1 5.6.7.8 22")


def test_apply_without_rollback(setup: tuple[Lab, Path, Path]) -> None:
    lab, policy, state = setup
    one, two = lab.clients
    code, out, err = _gardien(
        lab, "firewall", "apply", str(policy), "--confirm", "0", "--state-dir", str(state)
    )
    assert code == 0, err
    assert "no rollback" in out
    assert lab.reachable(one, "tcp", 22, 4)
    assert not lab.reachable(two, "tcp", 22, 4)
    assert lab.reachable(one, "udp", 5060, 4) and lab.reachable(two, "udp", 5060, 4)
    assert lab.reachable(two, "udp", 5060, 6)
    assert (state / "ruleset.nft").is_file()
    assert os.stat(state).st_mode & 0o777 == 0o700


def test_rolled_back_unless_confirmed(setup: tuple[Lab, Path, Path]) -> None:
    lab, policy, state = setup
    two = lab.clients[1]
    code, out, err = _gardien(
        lab, "firewall", "apply", str(policy), "--confirm", "2", "--state-dir", str(state)
    )
    assert code == 0, err
    assert "gardien firewall confirm --state-dir" in out
    assert not lab.reachable(two, "tcp", 22, 4)
    time.sleep(3.5)
    assert lab.run(lab.server, "nft", "list", "ruleset").stdout.strip() == ""
    assert lab.reachable(two, "tcp", 22, 4)
    code, _, err = _gardien(lab, "firewall", "confirm", "--state-dir", str(state))
    assert code == 1 and err.startswith("gardien: error: no rollback is pending")


def test_confirmed_in_time(setup: tuple[Lab, Path, Path]) -> None:
    lab, policy, state = setup
    two = lab.clients[1]
    code, _, err = _gardien(
        lab, "firewall", "apply", str(policy), "--confirm", "2", "--state-dir", str(state)
    )
    assert code == 0, err
    code, out, err = _gardien(lab, "firewall", "confirm", "--state-dir", str(state))
    assert code == 0, err
    assert "confirmed" in out
    time.sleep(3.5)
    assert _policy_in_force(lab)
    assert not lab.reachable(two, "tcp", 22, 4)


def test_ssh_guard_refuses(setup: tuple[Lab, Path, Path]) -> None:
    lab, policy, state = setup
    two = lab.clients[1]
    ssh = f"{two.address(4)} 50000 {two.server_address(4)} 22"
    code, _, err = _gardien(
        lab, "firewall", "apply", str(policy), "--confirm", "0", "--state-dir", str(state), ssh=ssh
    )
    assert code == 1
    assert err.startswith("gardien: error: the policy would cut this SSH session")
    assert err.count("\n") == 1
    assert not _policy_in_force(lab)
    assert lab.reachable(two, "tcp", 22, 4)
    code, _, err = _gardien(
        lab,
        "firewall",
        "apply",
        str(policy),
        "--confirm",
        "0",
        "--force",
        "--state-dir",
        str(state),
        ssh=ssh,
    )
    assert code == 0, err
    assert _policy_in_force(lab)


def test_nft_failure_leaves_the_saved_ruleset(setup: tuple[Lab, Path, Path]) -> None:
    lab, policy, state = setup
    lab.run(lab.server, "nft", "add", "table", "inet", "keep")
    # a port nft refuses at load time cannot be written in a policy: fake nft failing instead
    fake = policy.parent / "bin"
    fake.mkdir()
    (fake / "nft").write_text(
        '#!/bin/sh\nif [ "$1" = "-f" ]; then echo "Error: boom" >&2; exit 1; fi\n'
        'exec /usr/sbin/nft "$@"\n'
    )
    (fake / "nft").chmod(0o755)
    result = lab.run(
        lab.server,
        "env",
        f"PATH={fake}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        sys.executable,
        "-m",
        "gardien",
        "firewall",
        "apply",
        str(policy),
        "--state-dir",
        str(state),
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == "gardien: error: nft failed: Error: boom\n"
    ruleset = lab.run(lab.server, "nft", "list", "ruleset").stdout
    assert "table inet keep" in ruleset and "gardien_policy" not in ruleset
    assert not (state / "token").exists()


def test_iptables_backend_applies_and_rolls_back(setup: tuple[Lab, Path, Path]) -> None:
    lab, policy, state = setup
    require(shutil.which("iptables-restore") is not None, "iptables is missing")
    one, two = lab.clients
    code, _out, err = _gardien(
        lab,
        "firewall",
        "apply",
        str(policy),
        "--backend",
        "iptables",
        "--confirm",
        "2",
        "--state-dir",
        str(state),
    )
    try:
        assert code == 0, err
        assert lab.reachable(one, "tcp", 22, 4)
        assert not lab.reachable(two, "tcp", 22, 4)
        assert lab.reachable(two, "udp", 5060, 4)
        assert not lab.reachable(two, "tcp", 22, 6)
        time.sleep(3.5)  # not confirmed: the rules before apply come back
        assert lab.reachable(two, "tcp", 22, 4)
        assert lab.reachable(two, "tcp", 22, 6)
    finally:
        for tool in ("iptables", "ip6tables"):
            lab.run(lab.server, tool, "-P", "INPUT", "ACCEPT", check=False)
            lab.run(lab.server, tool, "-F", check=False)
            lab.run(lab.server, tool, "-X", check=False)

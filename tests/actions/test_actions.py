"""Action specifications -> actions; the log action as a dry run."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from pathlib import Path

import pytest

from gardien.actions import (
    FirewallRegistry,
    LogAction,
    block_spec,
    build_action,
    build_actions,
    managers,
)
from gardien.actions.firewall import FirewallAction
from gardien.backends import BlockSpec, MemoryFirewall
from gardien.clock import FakeClock
from gardien.config.values import parse_spec
from gardien.errors import ConfigError
from gardien.model import Ban, Unban


def test_log_action_logs_each_ban_once_and_unban(caplog: pytest.LogCaptureFixture) -> None:
    action = build_action(parse_spec("log[level=info]"), "asterisk-provya")
    assert isinstance(action, LogAction)
    address = ipaddress.ip_address("203.0.113.7")
    ban = Ban("asterisk-provya", address, 1000.0, 1000.0 + 21600, count=1, failures=3)
    with caplog.at_level(logging.INFO, logger="gardien.actions.log"):
        asyncio.run(action.start())
        asyncio.run(action.ban([ban, ban]))
        asyncio.run(action.unban([Unban("asterisk-provya", address, "manual")]))
        asyncio.run(action.unban([Unban("asterisk-provya", address, "manual")]))
    messages = [r.getMessage() for r in caplog.records]
    assert (
        messages.count("[asterisk-provya] would ban 203.0.113.7 for 21600 s (3 failures, ban #1)")
        == 1
    )
    assert messages.count("[asterisk-provya] would unban 203.0.113.7 (manual)") == 1


def test_permanent_ban_is_said_so(caplog: pytest.LogCaptureFixture) -> None:
    action = build_action(parse_spec("log"), "sshd")
    with caplog.at_level(logging.WARNING, logger="gardien.actions.log"):
        asyncio.run(action.ban([Ban("sshd", ipaddress.ip_address("2001:db8::1"), 0.0, None)]))
    assert "would ban 2001:db8::1 for ever" in caplog.text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("shorewall", "the Shorewall firewall manager"),
        ("ufw[blocktype=allow]", "blocktype 'allow' is not one gardien carries out"),
        ("xarf-login-attack", "unknown action 'xarf-login-attack'"),
        ("sendmail-whois", "needs dest=ADDRESS"),
        ("log[colour=red]", "no parameter 'colour'"),
        ("log[level=loud]", "unknown level 'loud'"),
        ("iptables-multiport[name=x]", "needs port="),
        ("iptables-allports[protocol=icmp]", "protocol 'icmp' is not one of"),
        ("nftables-allports[chain=OUTPUT]", "chain 'OUTPUT' is not one of"),
        ("iptables-allports[blocktype=ACCEPT]", "blocktype 'ACCEPT' is not DROP or REJECT"),
        ("iptables-xt_recent-echo", "'recent' module"),
    ],
)
def test_unavailable_or_wrong_actions_fail_clearly(spec: str, message: str) -> None:
    firewalls = FirewallRegistry({"iptables": MemoryFirewall, "nftables": MemoryFirewall})
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_actions([parse_spec("log"), parse_spec(spec)], "jail", firewalls=firewalls)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # ufw denies "from IP to any": every port, every protocol
        ("ufw", BlockSpec(name="sshd", ports=None, protocol="all", blocktype="reject")),
        (
            "ufw[application=OpenSSH, blocktype=deny, comment=x]",
            BlockSpec(name="sshd", ports=("22",), protocol="tcp", blocktype="drop"),
        ),
        # a profile gardien cannot find: every port, as fail2ban's action falls back to
        ("ufw[application=Nothing]", BlockSpec("sshd", None, "all", "reject")),
        (
            "firewallcmd-multiport[port=ssh, protocol=tcp, zone=public, chain=INPUT_direct]",
            BlockSpec(name="sshd", ports=("ssh",), protocol="tcp", blocktype="reject"),
        ),
        (
            "firewallcmd-rich-rules[port=5060, protocol=udp, name=sip]",
            BlockSpec(name="sip", ports=("5060",), protocol="udp", blocktype="reject"),
        ),
        (
            "firewallcmd-ipset[port=ssh, actiontype=<allports>]",
            BlockSpec(name="sshd", ports=None, protocol="tcp", blocktype="reject"),
        ),
        ("firewallcmd-allports", BlockSpec("sshd", None, "tcp", "reject")),
        (
            "firewallcmd-new[port=ssh, blocktype=REJECT --reject-with icmp-port-unreachable]",
            BlockSpec(name="sshd", ports=("ssh",), protocol="tcp", blocktype="reject"),
        ),
    ],
)
def test_firewall_manager_actions_ban_in_gardiens_table(
    spec: str, expected: BlockSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "openssh-server").write_text("[OpenSSH]\ntitle=x\nports=22/tcp\n")
    monkeypatch.setattr(managers, "UFW_APPLICATIONS", tmp_path)
    firewalls = FirewallRegistry({"nftables": MemoryFirewall})
    action = build_action(parse_spec(spec), "sshd", firewalls=firewalls)
    assert isinstance(action, FirewallAction)
    assert action.spec == expected
    assert action.name == parse_spec(spec).name  # status and logs name the jail's action


def test_one_notice_per_manager_and_start(caplog: pytest.LogCaptureFixture) -> None:
    firewalls = FirewallRegistry({"nftables": MemoryFirewall})
    with caplog.at_level(logging.WARNING, logger="gardien.actions"):
        for jail in ("sshd", "postfix", "dovecot"):
            build_actions([parse_spec("ufw")], jail, firewalls=firewalls)
        build_actions([parse_spec("firewallcmd-ipset[port=ssh]")], "sshd", firewalls=firewalls)
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 2, notices
    assert "action ufw" in notices[0] and "inet gardien" in notices[0]
    assert "action firewallcmd-ipset" in notices[1] and "firewalld" in notices[1]


def test_fail2ban_action_names_map_to_what_they_block() -> None:
    seed = block_spec(parse_spec("iptables-allports[name=asterisk, protocol=all]"), "provya")
    assert seed == BlockSpec(name="asterisk", ports=None, protocol="all", blocktype="reject")
    multi = block_spec(
        parse_spec(
            'nftables-multiport[port="5060,5061", protocol=udp, chain="<known/chain>", '
            "blocktype=REJECT --reject-with icmp-port-unreachable]"
        ),
        "asterisk",
    )
    assert multi == BlockSpec(
        name="asterisk", ports=("5060", "5061"), protocol="udp", blocktype="reject", chain="INPUT"
    )
    ipset = block_spec(parse_spec("iptables-ipset-proto6-allports[name=sshd]"), "x")
    assert ipset.ports is None and ipset.name == "sshd"


def test_firewall_action_reconciles_bans_and_unbans() -> None:
    firewall = MemoryFirewall()
    firewalls = FirewallRegistry({"nftables": lambda: firewall})
    action = build_action(
        parse_spec("nftables-allports[name=sip]"),
        "asterisk",
        firewalls=firewalls,
        clock=FakeClock(1000.0),
    )
    spec = BlockSpec(name="sip", ports=None, protocol="tcp")
    leftover = ipaddress.ip_address("192.0.2.99")
    kept = ipaddress.ip_address("192.0.2.1")
    firewall.setup(spec)
    firewall.ban(spec, [Ban("asterisk", leftover, 0.0, None)], 1000.0)
    asyncio.run(action.start())
    asyncio.run(action.restore([Ban("asterisk", kept, 900.0, 2000.0)]))
    assert firewall.banned(spec) == {kept}  # leftover removed, missing one added
    new = ipaddress.ip_address("2001:db8::7")
    asyncio.run(action.ban([Ban("asterisk", new, 1000.0, 1060.0)]))
    assert firewall.banned(spec) == {kept, new}
    asyncio.run(action.unban([Unban("asterisk", kept, "manual")]))
    assert firewall.banned(spec) == {new}
    asyncio.run(action.stop())
    assert firewall.banned(spec) == set()


def test_a_large_restore_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    action = build_action(parse_spec("log"), "sshd")
    bans = [
        Ban("sshd", ipaddress.ip_address(f"10.0.{i // 250}.{i % 250 + 1}"), 0.0, 60.0)
        for i in range(1000)
    ]
    with caplog.at_level(logging.WARNING, logger="gardien.actions.log"):
        asyncio.run(action.ban(bans))
    assert len(caplog.records) == 1
    assert "would ban 1000 addresses (10.0.0.1, 10.0.0.2" in caplog.text


def test_parameters_gardien_does_not_use_are_accepted(caplog: pytest.LogCaptureFixture) -> None:
    """fail2ban's jail.conf passes parameters such as actionrepair_on_unban: a stock
    configuration must load; the user is told they have no effect."""
    with caplog.at_level(logging.WARNING, logger="gardien.actions.firewall"):
        spec = block_spec(
            parse_spec("iptables-multiport[port=ftp, actionrepair_on_unban=x]"), "pass2allow-ftp"
        )
    assert spec.ports == ("ftp",)
    assert "actionrepair_on_unban" in caplog.text and "have no effect" in caplog.text

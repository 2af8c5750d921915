"""Action specifications -> actions; the log action as a dry run."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import pytest

from gardien.actions import LogAction, build_action, build_actions
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
        ("iptables-allports[name=asterisk, protocol=all]", "firewall action"),
        ("nftables-multiport[port=ssh]", "use action = log for a dry run"),
        ("sendmail-whois", "unknown action 'sendmail-whois'"),
        ("log[colour=red]", "no parameter 'colour'"),
        ("log[level=loud]", "unknown level 'loud'"),
    ],
)
def test_unavailable_or_wrong_actions_fail_clearly(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        build_actions([parse_spec("log"), parse_spec(spec)], "jail")


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

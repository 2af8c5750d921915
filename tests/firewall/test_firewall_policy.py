"""``gardien firewall render``: policies read and checked, rendered, and lint-clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from gardien.errors import ConfigError
from gardien.firewall import lint
from gardien.firewall.policy import load_policy, parse_policy
from gardien.firewall.render import render
from support.cli import gardien

#: the seed article's firewall, written as a policy (its mistakes cannot be written here)
ARTICLE = """
[defaults]
inbound = "drop"
icmp = true

[[service]]
name = "sip"
protocol = "udp"
ports = ["5060"]
sources = ["203.0.113.0/24"]
jails = ["asterisk-provya"]

[[service]]
preset = "ssh"
sources = ["198.51.100.7"]
jails = ["sshd"]

[[service]]
name = "rtp"
protocol = "udp"
ports = ["10000-20000"]
"""


def test_article_policy_loads() -> None:
    policy = parse_policy(ARTICLE)
    assert [s.name for s in policy.services] == ["sip", "ssh", "rtp"]
    ssh = policy.services[1]
    assert ssh.protocols == ("tcp",) and ssh.ports == ((22, 22),) and ssh.jails == ("sshd",)
    assert policy.services[2].addresses == ()  # any
    assert policy.inbound == "drop" and policy.established


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[defaults]\ninbound = 'reject'\n", "[defaults] inbound:"),
        ("[defaults]\nicmp = 'yes'\n", "[defaults] icmp:"),
        ("[defaults]\nbogus = 1\n", "[defaults] bogus: unknown key"),
        ("colour = 1\n", "colour: unknown key"),
        ("[[service]]\nname='a'\nprotocol='sctp'\nports=['1']\n", "[service #1] protocol:"),
        ("[[service]]\nname='a'\nprotocol='tcp'\nports=['70000']\n", "[service #1] ports:"),
        ("[[service]]\nname='a'\nprotocol='tcp'\nports=['0']\n", "[service #1] ports:"),
        ("[[service]]\nname='a'\nprotocol='tcp'\nports=['20-10']\n", "[service #1] ports:"),
        ("[[service]]\nname='a'\nprotocol='tcp'\nports=['nosuch']\n", "[service #1] ports:"),
        ("[[service]]\nname='a'\nprotocol='tcp'\n", "[service #1] ports: missing"),
        ("[[service]]\npreset='ftp'\n", "[service #1] preset: unknown preset"),
        ("[[service]]\npreset='ssh'\nports=['2222']\n", "[service #1] ports:"),
        ("[[service]]\npreset='ssh'\ncolour='red'\n", "[service #1] colour: unknown key"),
        ("[[service]]\npreset='ssh'\nsources=['300.1.1.1']\n", "[service #1] sources:"),
        ("[[service]]\npreset='ssh'\nsources=['any', '10.0.0.1']\n", "[service #1] sources:"),
        ("[[service]]\npreset='ssh'\njails=['a b']\n", "[service #1] jails:"),
        ("[[service]]\nprotocol='tcp'\nports=['1']\n", "[service #1] name:"),
        ("[[outbound]]\nprotocol='udp'\nports=['53']\n", "[defaults] outbound:"),
        ("[[service]]\npreset='ssh'\n[[service]]\npreset='ssh'\n", "service: two services"),
    ],
)
def test_bad_policies_name_the_key(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, source="p.toml")
    assert str(caught.value).startswith(f"p.toml: {where}"), str(caught.value)


def test_host_with_mask_is_refused_with_the_fix() -> None:
    text = "[[service]]\npreset='ssh'\nsources=['188.10.11.12/24']\n"
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, source="p.toml")
    message = str(caught.value)
    assert "[service #1] sources:" in message
    assert "write 188.10.11.12/32 (or 188.10.11.12) for the one host" in message


def test_toml_syntax_error_keeps_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[defaults]\ninbound = \n")
    with pytest.raises(ConfigError, match=r"p\.toml: invalid TOML: .*line 2"):
        load_policy(path)


def test_asterisk_preset_reads_asterisk_configuration(tmp_path: Path) -> None:
    (tmp_path / "sip.conf").write_text("[general]\nbindport=5070\n")
    (tmp_path / "rtp.conf").write_text("[general]\nrtpstart=12000\nrtpend=14000\n")
    policy = parse_policy("[[service]]\npreset='asterisk'\n", asterisk_dir=tmp_path)
    assert policy.services[0].ports == ((5070, 5070), (12000, 14000))
    assert parse_policy("[[service]]\npreset='asterisk'\n").services[0].ports == (
        (5060, 5060),
        (10000, 20000),
    )


def test_nftables_rendering() -> None:
    script = render(parse_policy(ARTICLE), "nftables")
    lines = [line.strip() for line in script.splitlines()]
    assert lines.index("delete table inet gardien_policy") < lines.index(
        "type filter hook input priority filter; policy drop;"
    )
    order = [
        "ct state established,related accept",
        "ct state invalid drop",
        'iif "lo" accept',
        "icmp type echo-request accept",
        "ip saddr 203.0.113.0/24 udp dport 5060 accept",
        "ip saddr 198.51.100.7/32 tcp dport 22 accept",
        "udp dport 10000-20000 accept",
    ]
    assert [lines.index(line) for line in order] == sorted(lines.index(line) for line in order)
    assert any("@asterisk-provya-v4" in line and line.startswith("#") for line in lines)
    assert "chain output {" not in lines


def test_nftables_outbound_drop() -> None:
    text = (
        "[defaults]\noutbound='drop'\n"
        "[[outbound]]\nname='dns'\nprotocol='both'\nports=['53']\ndestinations=['192.0.2.53']\n"
    )
    lines = [line.strip() for line in render(parse_policy(text)).splitlines()]
    assert "type filter hook output priority filter; policy drop;" in lines
    assert "ip daddr 192.0.2.53/32 udp dport 53 accept" in lines
    assert "ip daddr 192.0.2.53/32 tcp dport 53 accept" in lines


def test_iptables_rendering_puts_the_bans_before_the_accept() -> None:
    lines = render(parse_policy(ARTICLE), "iptables", family="4").splitlines()
    assert ":INPUT DROP [0:0]" in lines
    jump = lines.index("-A INPUT -p udp -m udp --dport 5060 -j gardien-asterisk-provya")
    accept = lines.index("-A INPUT -s 203.0.113.0/24 -p udp -m udp --dport 5060 -j ACCEPT")
    assert jump < accept
    assert "-A gardien-asterisk-provya -m set --match-set gardien-asterisk-provya src -j DROP" in (
        lines
    )
    assert lines.index("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT") < jump
    assert "-A INPUT -p udp -m udp --dport 10000:20000 -j ACCEPT" in lines
    assert lines[-1] == "COMMIT"


def test_iptables_multiport_and_both_families() -> None:
    text = "[[service]]\npreset='https'\n"
    output = render(parse_policy(text), "iptables")
    assert output.count("*filter") == 2
    assert "-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT" in output.splitlines()
    six = output[output.index("ip6tables-restore") :]
    assert "--icmpv6-type neighbour-solicitation" in six


@pytest.mark.parametrize(
    ("backend", "family"), [("nftables", "both"), ("iptables", "4"), ("iptables", "6")]
)
def test_rendered_article_is_lint_clean(backend: str, family: str) -> None:
    findings = lint(render(parse_policy(ARTICLE), backend, family=family))
    assert [f for f in findings if f.severity == "error"] == []


def test_cli_render(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(ARTICLE)
    result = gardien("firewall", "render", str(path), "--backend", "iptables", "--family", "4")
    assert result.returncode == 0, result.stderr
    assert "-A INPUT -s 198.51.100.7/32 -p tcp -m tcp --dport 22 -j ACCEPT" in result.stdout
    checked = gardien("firewall", "lint", "--fail-on", "error", "-", stdin=result.stdout)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("[defaults\n", "invalid TOML")],
)
def test_cli_render_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "policy.toml"
    if content is not None:
        path.write_text(content)
    result = gardien("firewall", "render", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"gardien: error: {path}: {message}")

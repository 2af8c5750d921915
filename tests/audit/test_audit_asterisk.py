"""``gardien audit asterisk``: a hardened tree passes, a careless one is reported line by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gardien.audit import Finding, render_json, render_text
from gardien.audit.asterisk import audit_asterisk, parse_asterisk_file
from gardien.config.jails import load_jails
from gardien.errors import ConfigError
from support.cli import gardien

GOOD_SECRET = "Vq8#tR2!mZ6@wL9$pX4%kN7"  # noqa: S105 - a strong example
BAD_SECRET = "hunter2"  # noqa: S105 - a weak secret that must never be printed

GOOD = {
    "sip.conf": """\
[general]
allowguest = no          ; no anonymous calls
alwaysauthreject = yes
bindport = 5871
#include sip_accounts.conf
""",
    "sip_accounts.conf": f"""\
[phone-template](!)
type = friend
host = dynamic
deny = 0.0.0.0/0.0.0.0
permit = 192.168.1.0/255.255.255.0

[k7Hq2xW9a](phone-template)
secret = {GOOD_SECRET}
""",
    "pjsip.conf": f"""\
;-- a block comment
[anonymous]
type = endpoint --;
[transport-udp]
type = transport
protocol = udp
bind = 0.0.0.0:5871

[endpoint-tpl](!)
type = endpoint
context = office
permit = 192.168.1.0/24
deny = 0.0.0.0/0

[Pz4mRt8vQ](endpoint-tpl)
auth = Pz4mRt8vQ-auth

[Pz4mRt8vQ-auth]
type = auth
auth_type = userpass
username = Pz4mRt8vQ
password = {GOOD_SECRET}\\;x
""",
    "extensions.conf": """\
[office]
exten => 201,1,Dial(PJSIP/Pz4mRt8vQ,30)
 same => n,Hangup()
exten => 202,1,Dial(SIP/k7Hq2xW9a)
""",
    "logger.conf": """\
[general]
[logfiles]
console => notice,warning,error
security_log => notice,security
""",
}

BAD = {
    "sip.conf": f"""\
[general]
alwaysauthreject = no
context = default

[100]
type = friend
secret = {BAD_SECRET}
host = dynamic

[bob]
type = friend
secret = bob
""",
    "extensions.conf": """\
[default]
exten => 100,1,Dial(SIP/100)
exten => bob,1,Dial(SIP/${EXTEN})
""",
    "logger.conf": """\
[logfiles]
messages => notice,warning,error
""",
}

JAIL = """\
[asterisk]
enabled = true
filter = asterisk
logpath = {logpath}
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def at_least_warning(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in ("error", "warning")]


def where(findings: list[Finding]) -> set[tuple[str, str, int]]:
    return {(f.id, Path(f.file).name, f.line) for f in findings}


@pytest.fixture
def jail_dir(tmp_path: Path) -> Path:
    conf = tmp_path / "gardien"
    conf.mkdir()
    (conf / "jail.conf").write_text(JAIL.format(logpath="/var/log/asterisk/security_log"))
    return conf


def test_hardened_tree_has_no_warning(tmp_path: Path, jail_dir: Path) -> None:
    directory = write(tmp_path / "asterisk", GOOD)
    # the [anonymous] endpoint sits inside a ;-- --; block comment: not an endpoint
    findings = audit_asterisk(directory, jails=load_jails(jail_dir))
    assert at_least_warning(findings) == [], render_text(findings, "good")


def test_without_a_jail_on_the_security_log(tmp_path: Path) -> None:
    directory = write(tmp_path / "asterisk", GOOD)
    findings = audit_asterisk(directory, jails=[])
    assert where(findings) == {("asterisk-no-jail", "logger.conf", 4)}
    assert audit_asterisk(directory) == []  # no jails given: that check is skipped


def test_careless_tree_every_finding_located(tmp_path: Path) -> None:
    directory = write(tmp_path / "asterisk", BAD)
    findings = audit_asterisk(directory, jails=[])
    assert where(findings) == {
        ("asterisk-allowguest", "sip.conf", 1),  # missing: the [general] header
        ("asterisk-alwaysauthreject", "sip.conf", 2),
        ("asterisk-sip-port-5060", "sip.conf", 1),
        ("asterisk-account-no-acl", "sip.conf", 5),
        ("asterisk-account-no-acl", "sip.conf", 10),
        ("asterisk-weak-identifier", "sip.conf", 5),
        ("asterisk-weak-identifier", "sip.conf", 10),
        ("asterisk-weak-secret", "sip.conf", 7),
        ("asterisk-weak-secret", "sip.conf", 12),
        ("asterisk-identifier-is-extension", "extensions.conf", 2),
        ("asterisk-identifier-is-extension", "extensions.conf", 3),
        ("asterisk-logger-security", "logger.conf", 1),
    }
    by_id = {(f.id, f.line): f for f in findings}
    assert by_id["asterisk-allowguest", 1].severity == "error"
    assert by_id["asterisk-weak-secret", 12].severity == "error"
    assert "identifier" in by_id["asterisk-weak-secret", 12].message
    assert "digits only" in by_id["asterisk-weak-identifier", 5].message
    assert "extension" in by_id["asterisk-weak-identifier", 5].message
    for text in (render_text(findings, "bad"), render_json(findings)):
        assert BAD_SECRET not in text
        assert "bob" not in text  # [bob] has secret = bob: the identifier is redacted too


def test_pjsip_templates_includes_and_weak_accounts(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "asterisk",
        {
            "pjsip.conf": "[transport-udp]\ntype = transport\nbind = [::]\n#include accounts.conf\n",
            "accounts.conf": (
                "[tpl](!)\ntype = endpoint\ncontext = office\n\n"
                "[demo](tpl)\nauth = demo-auth\n\n"
                "[demo-auth]\ntype = auth\nusername = demo\npassword = demo1234\n\n"
                "[anonymous]\ntype = endpoint\n"
            ),
        },
    )
    findings = audit_asterisk(directory)
    assert where(findings) == {
        ("asterisk-sip-port-5060", "pjsip.conf", 3),
        ("asterisk-account-no-acl", "accounts.conf", 5),
        ("asterisk-weak-identifier", "accounts.conf", 5),
        ("asterisk-weak-secret", "accounts.conf", 11),
        ("asterisk-pjsip-anonymous", "accounts.conf", 13),
        ("asterisk-logger-security", "logger.conf", 0),
    }
    assert "demo1234" not in render_json(findings)


def test_parser_templates_additions_and_escapes(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text("[t](!)\na = 1\n[s](t)\nb => 2\\;3 ; comment\n[s](+)\nc = 4\n")
    sections, problems = parse_asterisk_file(conf, tmp_path)
    assert problems == []
    s = next(x for x in sections if x.name == "s")
    assert [(o.key, o.value) for o in s.options] == [("a", "1"), ("b", "2;3"), ("c", "4")]
    assert sections[0].template and not s.template


def test_include_loop_is_a_finding(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "asterisk",
        {
            "sip.conf": "[general]\nallowguest = no\n#include more.conf\n",
            "more.conf": "#include sip.conf\n",
        },
    )
    assert ("asterisk-include-loop", "more.conf", 1) in where(audit_asterisk(directory))


def test_binary_missing_include_and_broken_syntax(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "asterisk",
        {
            "sip.conf": f"[general]\n#include gone.conf\nsecret: {BAD_SECRET}\n[broken\n",
            "pjsip.conf": "",
        },
    )
    (directory / "pjsip.conf").write_bytes(b"\x7fELF\x00\x01\x02")
    findings = audit_asterisk(directory)
    assert {
        ("asterisk-unreadable", "sip.conf", 2),
        ("asterisk-syntax", "sip.conf", 3),
        ("asterisk-syntax", "sip.conf", 4),
        ("asterisk-unreadable", "pjsip.conf", 0),
    } <= where(findings)
    assert BAD_SECRET not in render_json(findings)


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such Asterisk"):
        audit_asterisk(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"no sip\.conf nor pjsip\.conf"):
        audit_asterisk(tmp_path)


def test_cli_json_and_exit_codes(tmp_path: Path, jail_dir: Path) -> None:
    good = write(tmp_path / "good", GOOD)
    bad = write(tmp_path / "bad", BAD)
    result = gardien("-c", str(jail_dir), "audit", "asterisk", str(good))
    assert result.returncode == 0, result.stderr
    result = gardien("-c", str(jail_dir), "audit", "asterisk", str(bad), "--json")
    assert result.returncode == 1
    ids = {f["id"] for f in json.loads(result.stdout)["findings"]}
    assert "asterisk-allowguest" in ids and "asterisk-weak-secret" in ids
    assert BAD_SECRET not in result.stdout + result.stderr
    result = gardien("-c", str(jail_dir), "audit", "asterisk", str(bad))
    assert "sip.conf:1: asterisk-allowguest" in result.stdout
    assert BAD_SECRET not in result.stdout
    result = gardien("-c", str(jail_dir), "audit", "asterisk", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert result.stderr.startswith("gardien: error:") and "Traceback" not in result.stderr

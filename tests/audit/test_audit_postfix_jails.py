"""``gardien audit postfix`` and ``gardien audit jails``: good and bad trees, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gardien.audit import Finding
from gardien.audit.jails import audit_jails
from gardien.audit.postfix import audit_postfix
from gardien.errors import ConfigError
from support.cli import gardien
from support.samples import SSHD_FAILURE

GOOD_MAIN = """\
# a safe main.cf
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_mynetworks,
    permit_sasl_authenticated,
    reject_unauth_destination
"""
GOOD_MASTER = """\
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       y       60      1       pickup
"""
SASL_JAIL = """\
[postfix-sasl]
enabled = true
filter = postfix[mode=auth]
logpath = /var/log/mail.log
"""


def ids(findings: list[Finding]) -> set[tuple[str, str, int]]:
    return {(f.id, Path(f.file).name, f.line) for f in findings}


def postfix_tree(tmp_path: Path, main: str, master: str = GOOD_MASTER) -> Path:
    directory = tmp_path / "postfix"
    directory.mkdir(parents=True)
    (directory / "main.cf").write_text(main)
    (directory / "master.cf").write_text(master)
    return directory


def gardien_dir(tmp_path: Path, jail_local: str) -> Path:
    directory = tmp_path / "gardien"
    directory.mkdir(parents=True)
    (directory / "jail.local").write_text(jail_local)
    return directory


# --- postfix -------------------------------------------------------------------------------


def test_good_postfix_tree_has_no_finding(tmp_path: Path) -> None:
    postfix = postfix_tree(tmp_path, GOOD_MAIN)
    assert audit_postfix(postfix, gardien_dir(tmp_path, SASL_JAIL)) == []


@pytest.mark.parametrize(
    ("main", "line"),
    [
        ("smtpd_sasl_auth_enable = yes\n", 1),  # no TLS at all
        ("smtpd_tls_security_level = may\n\nsmtpd_sasl_auth_enable = yes\n", 3),  # no auth_only
        (
            "smtpd_tls_security_level = none\nsmtpd_tls_auth_only = yes\n"
            "smtpd_sasl_auth_enable = yes\n",
            3,
        ),
    ],
)
def test_sasl_without_tls(tmp_path: Path, main: str, line: int) -> None:
    findings = audit_postfix(postfix_tree(tmp_path, main, ""), gardien_dir(tmp_path, SASL_JAIL))
    assert ids(findings) == {("postfix-sasl-without-tls", "main.cf", line)}
    assert findings[0].severity == "error"


def test_sasl_without_tls_in_a_master_cf_service(tmp_path: Path) -> None:
    master = GOOD_MASTER.replace("-o smtpd_tls_security_level=encrypt", "-o syslog_name=sub")
    main = "smtpd_relay_restrictions = reject_unauth_destination\n"
    findings = audit_postfix(postfix_tree(tmp_path, main, master), gardien_dir(tmp_path, SASL_JAIL))
    assert ids(findings) == {("postfix-sasl-without-tls", "master.cf", 2)}
    assert "submission" in findings[0].message


@pytest.mark.parametrize(
    ("main", "line"),
    [
        ("smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated\n", 1),
        ("# relay\nsmtpd_relay_restrictions = permit, reject_unauth_destination\n", 2),
        ("mynetworks = 127.0.0.0/8\nsmtpd_recipient_restrictions = permit_mynetworks\n", 2),
        ("smtpd_relay_restrictions =\n", 1),
        ("open = permit\nsmtpd_relay_restrictions = $open, reject_unauth_destination\n", 2),
    ],
)
def test_open_relay(tmp_path: Path, main: str, line: int) -> None:
    findings = audit_postfix(postfix_tree(tmp_path, main, ""), gardien_dir(tmp_path, SASL_JAIL))
    assert ids(findings) == {("postfix-open-relay", "main.cf", line)}


def test_relay_restrictions_defer_or_recipient_restrictions_are_enough(tmp_path: Path) -> None:
    jails = gardien_dir(tmp_path, SASL_JAIL)
    for number, main in enumerate(
        [
            "smtpd_relay_restrictions = permit_mynetworks defer_unauth_destination\n",
            "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n",
            "# postfix's default relay restrictions\n",
        ]
    ):
        assert audit_postfix(postfix_tree(tmp_path / str(number), main, ""), jails) == [], main


def test_open_relay_in_a_master_cf_service(tmp_path: Path) -> None:
    master = GOOD_MASTER.replace("permit_sasl_authenticated,reject", "permit_sasl_authenticated")
    findings = audit_postfix(
        postfix_tree(tmp_path, GOOD_MAIN, master), gardien_dir(tmp_path, SASL_JAIL)
    )
    assert ids(findings) == {("postfix-open-relay", "master.cf", 2)}


@pytest.mark.parametrize(("mode", "severity"), [(0o644, "error"), (0o640, None), (0o600, None)])
def test_sasl_password_file_mode(tmp_path: Path, mode: int, severity: str | None) -> None:
    passwords = tmp_path / "sasl_passwd"
    passwords.write_text("[smtp.example.com]:587 user:secret\n")
    passwords.chmod(mode)
    main = GOOD_MAIN + f"smtp_sasl_password_maps = hash:{passwords}\n"
    findings = audit_postfix(postfix_tree(tmp_path, main), gardien_dir(tmp_path, SASL_JAIL))
    if os.stat(passwords).st_gid != 0 and mode == 0o640:
        severity = "warning"  # group-readable by a group that is not root
    if severity is None:
        assert findings == []
    else:
        assert ids(findings) == {("postfix-sasl-passwords-readable", "sasl_passwd", 1)}
        assert findings[0].severity == severity
        assert "secret" not in findings[0].message


@pytest.mark.parametrize(
    ("jail", "found"),
    [
        (SASL_JAIL, False),
        # mode more, as fail2ban's: normal, without the SASL failures
        ("[postfix]\nenabled = true\nlogpath = /var/log/mail.log\n", True),
        ("[postfix]\nenabled = true\nmode = aggressive\nlogpath = /var/log/mail.log\n", False),
        ("[postfix]\nenabled = true\nmode = extra\nlogpath = /var/log/mail.log\n", False),
        ("[postfix]\nenabled = true\nmode = normal\nlogpath = /var/log/mail.log\n", True),
        (SASL_JAIL.replace("true", "false"), True),
        ("[mine]\nenabled = true\nfilter = postfix-sasl\nlogpath = /var/log/mail.log\n", False),
        ("", True),
    ],
)
def test_no_sasl_jail(tmp_path: Path, jail: str, found: bool) -> None:
    findings = audit_postfix(postfix_tree(tmp_path, GOOD_MAIN), gardien_dir(tmp_path, jail))
    expected = {("postfix-no-sasl-jail", "jail.local", 1)} if found else set()
    assert ids(findings) == expected


def test_binary_or_unreadable_or_missing_main_cf_is_a_clear_error(tmp_path: Path) -> None:
    jails = gardien_dir(tmp_path, SASL_JAIL)
    binary = postfix_tree(tmp_path, "")
    (binary / "main.cf").write_bytes(b"\x7fELF\x00\x01\x02")
    with pytest.raises(ConfigError, match="binary"):
        audit_postfix(binary, jails)
    with pytest.raises(ConfigError, match=r"no main\.cf"):
        audit_postfix(tmp_path / "nowhere", jails)
    # unreadable even as root (the tests run as root): a directory where main.cf should be
    (binary / "main.cf").unlink()
    (binary / "main.cf").mkdir()
    with pytest.raises(ConfigError, match=r"cannot read|no main\.cf|directory"):
        audit_postfix(binary, jails)


# --- jails ---------------------------------------------------------------------------------


def jails_tree(tmp_path: Path, body: str, log_text: str | None = SSHD_FAILURE + "\n") -> Path:
    log = tmp_path / "auth.log"
    if log_text is not None:
        log.write_text(log_text)
    text = (
        "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 192.0.2.0/24\n\n"
        f"[sshd]\nenabled = true\nlogpath = {log}\n" + body
    )
    return gardien_dir(tmp_path, text)


def test_good_jails_have_no_finding(tmp_path: Path) -> None:
    assert (
        audit_jails(jails_tree(tmp_path, ""), {"SSH_CONNECTION": "192.0.2.9 5 10.0.0.1 22"}) == []
    )


def test_ignoreip_without_loopback(tmp_path: Path) -> None:
    directory = jails_tree(tmp_path, "")
    jail_local = directory / "jail.local"
    jail_local.write_text(jail_local.read_text().replace("127.0.0.1/8 ::1 ", ""))
    assert ids(audit_jails(directory, {})) == {("jails-ignoreip-no-loopback", "jail.local", 2)}


def test_ignoreip_without_the_ssh_client(tmp_path: Path) -> None:
    findings = audit_jails(
        jails_tree(tmp_path, ""), {"SSH_CONNECTION": "203.0.113.5 51 10.0.0.1 22"}
    )
    assert ids(findings) == {("jails-ignoreip-self-lockout", "jail.local", 2)}
    assert "203.0.113.5" in findings[0].message


def test_bantime_longer_than_dbpurgeage(tmp_path: Path) -> None:
    directory = jails_tree(tmp_path, "bantime = 2d\n")
    assert ids(audit_jails(directory, {})) == {("jails-bantime-over-dbpurgeage", "jail.local", 7)}
    (directory / "gardien.local").write_text("[Definition]\ndbpurgeage = 7d\n")
    assert audit_jails(directory, {}) == []


def test_missing_logpath_and_empty_glob(tmp_path: Path) -> None:
    directory = jails_tree(
        tmp_path,
        f"[other]\nenabled = true\nfilter = sshd\nlogpath = {tmp_path}/none.log\n"
        f"[globbed]\nenabled = true\nfilter = sshd\nlogpath = {tmp_path}/*.nothing\n",
    )
    findings = audit_jails(directory, {})
    assert ids(findings) == {
        ("jails-logpath-missing", "jail.local", 10),
        ("jails-logpath-glob-empty", "jail.local", 14),
    }
    severities = {f.id: f.severity for f in findings}
    assert severities["jails-logpath-glob-empty"] == "info"


def test_filter_matching_nothing_in_its_log(tmp_path: Path) -> None:
    directory = jails_tree(tmp_path, "", log_text="Nov 21 10:00:03 web CRON[77]: (root) CMD x\n")
    findings = audit_jails(directory, {})
    assert ids(findings) == {("jails-filter-matches-nothing", "jail.local", 4)}
    assert findings[0].severity == "info"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("maxretry = 50\n", ("jails-maxretry-unusual", 7)),
        ("maxretry = 1\n", ("jails-maxretry-unusual", 7)),
        ("findtime = 30\n", ("jails-findtime-unusual", 7)),
        ("findtime = 2d\nbantime = 10m\n", ("jails-findtime-unusual", 7)),
    ],
)
def test_unusual_maxretry_or_findtime(tmp_path: Path, body: str, expected: tuple[str, int]) -> None:
    findings = audit_jails(jails_tree(tmp_path, body), {})
    assert ids(findings) == {(expected[0], "jail.local", expected[1])}


def test_shared_option_gives_one_finding_for_all_jails(tmp_path: Path) -> None:
    directory = jails_tree(
        tmp_path, f"[second]\nenabled = true\nfilter = sshd\nlogpath = {tmp_path}/auth.log\n"
    )
    findings = audit_jails(directory, {"SSH_CONNECTION": "203.0.113.5 51 10.0.0.1 22"})
    assert len(findings) == 1
    assert "sshd, second" in findings[0].message


# --- CLI -----------------------------------------------------------------------------------


def test_cli_postfix_json_and_exit_codes(tmp_path: Path) -> None:
    postfix = postfix_tree(tmp_path, "smtpd_sasl_auth_enable = yes\n", "")
    jails = gardien_dir(tmp_path, SASL_JAIL)
    result = gardien("-c", str(jails), "audit", "postfix", str(postfix), "--json")
    assert result.returncode == 1, result.stderr
    found = json.loads(result.stdout)["findings"]
    assert [(f["id"], f["line"]) for f in found] == [("postfix-sasl-without-tls", 1)]
    assert found[0]["file"] == str(postfix / "main.cf")
    text = gardien("-c", str(jails), "audit", "postfix", str(postfix))
    assert f"{postfix / 'main.cf'}:1: postfix-sasl-without-tls" in text.stdout
    good = postfix_tree(tmp_path / "good", GOOD_MAIN)
    ok = gardien("-c", str(jails), "audit", "postfix", str(good))
    assert (ok.returncode, ok.stdout.strip()) == (0, f"postfix {good}: no finding")


def test_cli_postfix_fail_on(tmp_path: Path) -> None:
    postfix = postfix_tree(tmp_path, GOOD_MAIN)
    jails = gardien_dir(tmp_path, "")  # only a warning: no SASL jail
    args = ("-c", str(jails), "audit", "postfix", str(postfix))
    assert gardien(*args).returncode == 1
    assert gardien(*args, "--fail-on", "error").returncode == 0
    assert gardien(*args, "--fail-on", "info").returncode == 1


def test_cli_postfix_bad_input_is_one_line(tmp_path: Path) -> None:
    postfix = postfix_tree(tmp_path, "")
    (postfix / "main.cf").write_bytes(b"\x00\x01binary")
    result = gardien("-c", str(gardien_dir(tmp_path, SASL_JAIL)), "audit", "postfix", str(postfix))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"gardien: error: {postfix / 'main.cf'}: not a text file (binary content)"
    ]


def test_cli_jails(tmp_path: Path) -> None:
    directory = jails_tree(tmp_path, "findtime = 30\n")
    env = {"SSH_CONNECTION": ""}
    result = gardien("-c", str(directory), "audit", "jails", "--json", env=env)
    assert result.returncode == 1, result.stderr
    found = json.loads(result.stdout)["findings"]
    assert [(f["id"], f["file"], f["line"]) for f in found] == [
        ("jails-findtime-unusual", str(directory / "jail.local"), 7)
    ]
    assert (
        gardien("-c", str(directory), "audit", "jails", "--fail-on", "error", env=env).returncode
        == 0
    )
    broken = gardien_dir(tmp_path / "broken", "[sshd]\nenabled = true\nmaxretry = many\n")
    bad = gardien("-c", str(broken), "audit", "jails", env=env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("gardien: error:") and len(bad.stderr.strip().splitlines()) == 1

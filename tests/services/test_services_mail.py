"""Mail services for real: Debian's Dovecot, Postfix (SASL through Dovecot) and Exim 4, each
started in the lab's server namespace with a configuration of the test's own, attacked from one
client namespace (curl for IMAP and POP3, swaks for SMTP), used rightly from the other.
gardien's bundled filters must find in the log the daemon really wrote exactly the failures the
attacker caused, and nothing of the legitimate client.

Dovecot and Postfix log through syslog (a private rsyslogd, as Debian's /var/log/mail.log);
Exim writes its own main log (as Debian's /var/log/exim4/mainlog). Exim is unpacked from
Debian's exim4-daemon-light package, which conflicts with postfix; its binary looks up the user
"Debian-exim" that the exim4-base package creates, which is given to it in a mount namespace of
its own (a copy of /etc/passwd and /etc/group bound over the real ones), so nothing on the
machine changes.

Dovecot delays its answer to an address that failed before (its auth penalty, up to 15 s), so
the attacker's attempts go in parallel, as a password-guessing tool sends them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from support.netns import Client, Lab
from support.services import (
    Service,
    Syslog,
    assert_exactly,
    failures_found,
    require_tools,
    service_lab,
    settle,
    unpacked,
)

USER, PASSWORD = "alice", "correct-horse"

#: ``sh -c`` program: bind ``$0`` on /etc/passwd and ``$1`` on /etc/group, then run the rest
_WITH_ACCOUNTS = (
    'mount --bind "$0" /etc/passwd && mount --bind "$1" /etc/group && shift && exec "$@"'
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the daemons' own users can reach (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="gardien-mail-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def stack(workdir: Path) -> Iterator[contextlib.ExitStack]:
    """What a test starts, stopped at its end (before its directory goes)."""
    with contextlib.ExitStack() as started:
        yield started


def run_together(lab: Lab, client: Client, commands: Sequence[Sequence[str]]) -> list[int]:
    """Run ``commands`` at the same time in ``client``'s namespace; their exit codes."""
    processes = [
        subprocess.Popen(
            ["ip", "netns", "exec", client.namespace, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in commands
    ]
    return [process.wait(timeout=60) for process in processes]


def logged(path: Path, text: str) -> Callable[[], bool]:
    """Readiness by the daemon's own word: probing its port from a client namespace would add a
    connection without a login to the log, which the aggressive and ddos modes count."""
    return lambda: path.exists() and text in path.read_text(errors="replace")


def url_host(address: object) -> str:
    text = str(address)
    return f"[{text}]" if ":" in text else text


# ---- Dovecot ------------------------------------------------------------------------------


def start_dovecot(lab: Lab, directory: Path, syslog: Syslog) -> Service:
    """Dovecot with IMAP and POP3 on their ports, one user, an auth socket for Postfix."""
    require_tools("dovecot")
    run, mail = directory / "dovecot-run", directory / "mail"
    run.mkdir()
    mail.mkdir()
    run.chmod(0o755)
    shutil.chown(mail, "nobody", "nogroup")
    users = directory / "users"
    users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    users.chmod(0o644)
    conf = directory / "dovecot.conf"
    conf.write_text(
        f"base_dir = {run}\n"
        f"state_dir = {directory / 'dovecot-state'}\n"
        "protocols = imap pop3\n"
        "listen = *, ::\n"
        "ssl = no\n"
        "disable_plaintext_auth = no\n"
        "auth_mechanisms = plain login\n"
        "auth_failure_delay = 0\n"
        "log_path = syslog\n"
        "syslog_facility = mail\n"
        "first_valid_uid = 1\n"
        f"mail_location = maildir:{mail}/%u\n"
        "passdb {\n"
        "  driver = passwd-file\n"
        f"  args = scheme=PLAIN {users}\n"
        "}\n"
        "userdb {\n"
        "  driver = static\n"
        f"  args = uid=nobody gid=nogroup home={mail}/%u\n"
        "}\n"
        "service auth {\n"
        "  unix_listener auth-postfix {\n"
        "    mode = 0666\n"
        "  }\n"
        "}\n"
    )
    (directory / "dovecot-state").mkdir()
    # the master logs that it starts up once it listens
    return Service.start(
        lab,
        ["dovecot", "-F", "-c", str(conf)],
        directory,
        syslog=syslog,
        ready=logged(syslog.path, "starting up for imap, pop3"),
    )


def test_dovecot_imap_and_pop3(lab: Lab, workdir: Path, stack: contextlib.ExitStack) -> None:
    syslog = Syslog.start(workdir)
    stack.callback(syslog.stop)
    stack.callback(start_dovecot(lab, workdir, syslog).stop)
    attacker, friend = lab.clients
    v4, v6 = url_host(attacker.server_ipv4), url_host(attacker.server_ipv6)
    codes = run_together(
        lab,
        attacker,
        [
            ["curl", "-s", "-m", "30", f"imap://{v4}/", "--user", f"{USER}:guess1"],
            ["curl", "-s", "-m", "30", f"imap://{v4}/", "--user", "admin:guess2"],
            ["curl", "-s", "-m", "30", f"pop3://{v6}/", "--user", f"{USER}:guess3"],
            ["curl", "-s", "-m", "30", f"pop3://{v6}/", "--user", "root:guess4"],
        ],
    )
    assert all(code != 0 for code in codes), codes
    host = url_host(friend.server_ipv4)
    for scheme in ("imap", "pop3"):
        result = lab.run(
            friend.namespace,
            "curl", "-s", "-m", "30", f"{scheme}://{host}/", "--user", f"{USER}:{PASSWORD}",
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{scheme} login failed: {result.stderr}"
    syslog.settle()
    log = syslog.text()
    assert f"rip={friend.ipv4}" in log, log  # the legitimate logins were logged
    expected = {str(attacker.ipv4): 2, str(attacker.ipv6): 2}
    for name in ("dovecot", "dovecot[mode=aggressive]"):
        found = failures_found(syslog.path, name)
        assert_exactly(found, expected, absent=[str(friend.ipv4)], log=log)


# ---- Postfix ------------------------------------------------------------------------------

_POSTFIX_MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
discard   unix  -       -       n       -       -       discard
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
showq     unix  n       -       n       -       -       showq
"""


def start_postfix(
    lab: Lab, directory: Path, syslog: Syslog, auth_socket: Path, stack: contextlib.ExitStack
) -> None:
    """Postfix on port 25 of every address, SASL through Dovecot, every message discarded;
    stopped with ``stack``. Postfix's master makes a session of its own, so stopping the
    command that started it is not enough: ``postfix abort`` stops it and its children."""
    require_tools("postfix")
    config, queue, data = (
        directory / "postfix",
        directory / "postfix-queue",
        directory / "postfix-data",
    )
    for path in (config, queue, data):
        path.mkdir()
        path.chmod(0o755)
    shutil.chown(data, "postfix")
    (config / "main.cf").write_text(
        "compatibility_level = 3.6\n"
        f"queue_directory = {queue}\n"
        f"data_directory = {data}\n"
        "mail_owner = postfix\n"
        "setgid_group = postdrop\n"
        "myhostname = mx.example.org\n"
        "mydomain = example.org\n"
        "mydestination = example.org\n"
        "inet_interfaces = all\n"
        "inet_protocols = all\n"
        "mynetworks = 127.0.0.0/8\n"
        "smtpd_peername_lookup = no\n"
        "smtpd_sasl_auth_enable = yes\n"
        "smtpd_sasl_type = dovecot\n"
        f"smtpd_sasl_path = {auth_socket}\n"
        "smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated"
        " reject_unauth_destination\n"
        "local_recipient_maps =\n"
        "default_transport = discard\n"
        "local_transport = discard\n"
        "relay_transport = discard\n"
        "disable_dns_lookups = yes\n"
        "biff = no\n"
    )
    (config / "master.cf").write_text(_POSTFIX_MASTER)
    service = Service.start(
        lab,
        ["postfix", "-c", str(config), "start-fg"],
        directory,
        syslog=syslog,
        ready=logged(syslog.path, "daemon started -- version"),
    )
    stack.callback(service.stop)
    stack.callback(_postfix_abort, config, queue)


def _postfix_abort(config: Path, queue: Path) -> None:
    pid_file = queue / "pid" / "master.pid"
    pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    subprocess.run(["postfix", "-c", str(config), "abort"], capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def swaks(client: Client, *options: str) -> list[str]:
    return [
        "swaks", "--server", str(client.server_ipv4), "--helo", "client.example.net",
        "--from", "sender@example.net", "--timeout", "20", *options,
    ]  # fmt: skip


def test_postfix_rejects_and_sasl_failures(
    lab: Lab, workdir: Path, stack: contextlib.ExitStack
) -> None:
    syslog = Syslog.start(workdir)
    stack.callback(syslog.stop)
    stack.callback(start_dovecot(lab, workdir, syslog).stop)
    socket = workdir / "dovecot-run" / "auth-postfix"
    start_postfix(lab, workdir, syslog, socket, stack)
    attacker, friend = lab.clients
    guesses = [
        swaks(attacker, "--to", "bob@example.org", "--auth", mechanism,
              "--auth-user", user, "--auth-password", "guess")
        for mechanism, user in (("LOGIN", USER), ("PLAIN", "admin"), ("LOGIN", "info"))
    ]  # fmt: skip
    relays = [
        swaks(attacker, "--to", f"victim{n}@example.com", "--quit-after", "RCPT") for n in (1, 2)
    ]
    run_together(lab, attacker, [*guesses, *relays])
    sent = lab.run(
        friend.namespace,
        *swaks(friend, "--to", "bob@example.com", "--auth", "PLAIN",
               "--auth-user", USER, "--auth-password", PASSWORD),
        check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout[-2000:]
    syslog.settle()
    log = syslog.text()
    assert f"sasl_username={USER}" in log, log  # the legitimate submission was logged
    attacker_address, friend_address = str(attacker.ipv4), [str(friend.ipv4)]
    # the [postfix] jail's mode: the relay attempts, not the SASL failures (fail2ban's more)
    for name in ("postfix", "postfix[mode=more]", "postfix[mode=normal]"):
        found = failures_found(syslog.path, name)
        assert_exactly(found, {attacker_address: 2}, absent=friend_address, log=log)
    # [postfix-sasl]: the password guesses only
    for name in ("postfix-sasl", "postfix[mode=auth]"):
        found = failures_found(syslog.path, name)
        assert_exactly(found, {attacker_address: 3}, absent=friend_address, log=log)
    # extra: both; ddos: the sessions that ended with AUTH failed (auth=0/1)
    found = failures_found(syslog.path, "postfix[mode=extra]")
    assert_exactly(found, {attacker_address: 5}, absent=friend_address, log=log)
    found = failures_found(syslog.path, "postfix[mode=ddos]")
    assert_exactly(found, {attacker_address: 3}, absent=friend_address, log=log)


# ---- Exim 4 -------------------------------------------------------------------------------

#: Debian's exim4 binary runs as this user (created by exim4-base); given the "mail" ids here
_EXIM_USER = "Debian-exim"


def _exim_accounts(directory: Path) -> tuple[Path, Path]:
    passwd, group = directory / "passwd", directory / "group"
    passwd.write_text(
        Path("/etc/passwd").read_text() + f"{_EXIM_USER}:x:8:8:Exim:{directory}:/usr/sbin/nologin\n"
    )
    group.write_text(Path("/etc/group").read_text() + f"{_EXIM_USER}:x:8:\n")
    return passwd, group


def start_exim(lab: Lab, directory: Path) -> tuple[Service, Path]:
    """Exim 4.96 from Debian's package, on port 25, with PLAIN and LOGIN authenticators and an
    ACL that refuses relaying; its main log's path."""
    root = unpacked("exim4-daemon-light")
    binary = root / "usr/sbin/exim4"
    require_tools("unshare")
    spool, logs = directory / "exim-spool", directory / "exim-log"
    for path in (spool, logs):
        path.mkdir()
        os.chown(path, 8, 8)
    conf = directory / "exim.conf"
    conf.write_text(
        "keep_environment =\n"
        "exim_user = mail\n"
        "exim_group = mail\n"
        "never_users = root\n"
        "primary_hostname = mx.example.org\n"
        "domainlist local_domains = example.org\n"
        f"spool_directory = {spool}\n"
        f"log_file_path = {logs}/%slog\n"
        "daemon_smtp_ports = 25\n"
        "tls_advertise_hosts =\n"
        "queue_only = true\n"
        "acl_smtp_rcpt = acl_check_rcpt\n"
        "begin acl\n"
        "acl_check_rcpt:\n"
        "  accept authenticated = *\n"
        "  deny message = relay not permitted\n"
        "       !domains = +local_domains\n"
        "  accept\n"
        "begin routers\n"
        "discard_all:\n"
        "  driver = redirect\n"
        "  data = :blackhole:\n"
        "begin transports\n"
        "begin authenticators\n"
        "plain_server:\n"
        "  driver = plaintext\n"
        "  public_name = PLAIN\n"
        "  server_prompts = :\n"
        f"  server_condition = ${{if and {{{{eq{{$auth2}}{{{USER}}}}}{{eq{{$auth3}}{{{PASSWORD}}}}}}}}}\n"
        "  server_set_id = $auth2\n"
        "login_server:\n"
        "  driver = plaintext\n"
        "  public_name = LOGIN\n"
        "  server_prompts = Username:: : Password::\n"
        f"  server_condition = ${{if and {{{{eq{{$auth1}}{{{USER}}}}}{{eq{{$auth2}}{{{PASSWORD}}}}}}}}}\n"
        "  server_set_id = $auth1\n"
    )
    passwd, group = _exim_accounts(directory)
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", _WITH_ACCOUNTS, str(passwd), str(group),
        str(binary), "-C", str(conf), "-bdf",
    ]  # fmt: skip
    mainlog = logs / "mainlog"
    ready = logged(mainlog, "daemon started")
    return Service.start(lab, argv, directory, name="exim4", ready=ready), mainlog


def test_exim_auth_failures_and_relay_attempts(
    lab: Lab, workdir: Path, stack: contextlib.ExitStack
) -> None:
    exim, mainlog = start_exim(lab, workdir)
    stack.callback(exim.stop)
    attacker, friend = lab.clients
    guesses = [
        swaks(attacker, "--to", "bob@example.org", "--auth", mechanism,
              "--auth-user", user, "--auth-password", "guess")
        for mechanism, user in (("LOGIN", USER), ("PLAIN", "admin"))
    ]  # fmt: skip
    relays = [
        swaks(attacker, "--to", f"victim{n}@example.com", "--quit-after", "RCPT") for n in (1, 2)
    ]
    run_together(lab, attacker, [*guesses, *relays])
    sent = lab.run(
        friend.namespace,
        *swaks(friend, "--to", "bob@example.org", "--auth", "PLAIN",
               "--auth-user", USER, "--auth-password", PASSWORD),
        check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout[-2000:]
    settle(mainlog)
    log = mainlog.read_text()
    assert f"A=plain_server:{USER}" in log, log  # the legitimate submission was logged
    for name in ("exim", "exim[mode=aggressive]"):
        found = failures_found(mainlog, name)
        assert_exactly(found, {str(attacker.ipv4): 4}, absent=[str(friend.ipv4)], log=log)
    assert not failures_found(mainlog, "exim-spam"), log

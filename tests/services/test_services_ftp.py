"""Real FTP servers against gardien's bundled filters: Debian's Pure-FTPd (installed), vsftpd and
ProFTPD (they conflict with it: run from their unpacked .deb) in the lab's server namespace, each
with a configuration of its own. One client fails logins with a real FTP client (hydra, curl,
lftp), over IPv4 and IPv6; another logs in. The filter must find exactly the attacker's
failures, and nothing for the legitimate client."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from urllib.parse import quote

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

PASSWORD = "goodpass"  # noqa: S105 (the legitimate account's)
#: the address an attacker's user name puts in the log (it must never be reported)
FORGED = "192.0.2.250"
#: a uid of the test's own, for the accounts the servers read from the test's files
UID = 64999

#: hydra without its restore file (-I), three logins at once (-t 3), no wait between them
HYDRA = ("hydra", "-I", "-t", "3", "-W", "0")

#: ``sh -c`` program run before a daemon (data are its positional parameters): bind the test's
#: passwd, shadow and pam.d over the system's in the daemon's private mount namespace
_WITH_ACCOUNTS = (
    'mount --bind "$0" /etc/passwd && mount --bind "$1" /etc/shadow'
    ' && mount --bind "$2" /etc/pam.d && shift 2 && exec "$@"'
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


def _crypt(password: str) -> str:
    """A SHA-512 crypt(3) hash, as /etc/shadow and FTP servers' user files hold them."""
    result = subprocess.run(
        ["htpasswd", "-nb5", "user", password], capture_output=True, text=True, check=True
    )
    return result.stdout.strip().partition(":")[2]


def _url(user: str, password: str, server: IPv4Address | IPv6Address) -> str:
    """An ftp:// URL with credentials (any characters in them)."""
    host = f"[{server}]" if server.version == 6 else str(server)
    return f"ftp://{quote(user, safe='')}:{quote(password, safe='')}@{host}/"


def _at_once(lab: Lab, namespace: str, commands: Sequence[Sequence[str]]) -> None:
    """Run client commands side by side (FTP servers delay each failed login by seconds)."""
    processes = [
        subprocess.Popen(
            ["ip", "netns", "exec", namespace, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in commands
    ]
    for process in processes:
        process.wait(timeout=60)


@pytest.fixture
def home() -> Iterator[Path]:
    """The FTP account's home: outside pytest's temporary directories, which only root may
    enter, since a server changes into it as the account."""
    path = Path(tempfile.mkdtemp(prefix="gardien-ftp-home-"))
    try:
        path.chmod(0o755)
        (path / "hello.txt").write_text("hello\n")
        os.chown(path, UID, UID)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _login(lab: Lab, friend: Client, url: str) -> None:
    result = lab.run(friend.namespace, "curl", "-sS", "-u", f"alice:{PASSWORD}", url, check=False)
    assert result.returncode == 0 and "hello.txt" in result.stdout, result.stderr


def test_pure_ftpd_failures_are_found(lab: Lab, tmp_path: Path, home: Path) -> None:
    require_tools("pure-ftpd", "pure-pw", "hydra", "curl", "htpasswd", "rsyslogd")
    users, database = tmp_path / "pureftpd.passwd", tmp_path / "pureftpd.pdb"
    users.write_text(f"alice:{_crypt(PASSWORD)}:{UID}:{UID}::{home}/./::::::::::::\n")
    subprocess.run(["pure-pw", "mkdb", str(database), "-f", str(users)], check=True)
    words = tmp_path / "words"
    words.write_text("letmein\n123456\nalice\n")
    syslog = Syslog.start(tmp_path)
    # -H: addresses, not reverse-DNS names, in the log; -E: no anonymous logins
    argv = ["pure-ftpd", "-l", f"puredb:{database}", "-S", ",21", "-H", "-E"]
    service = Service.start(lab, argv, tmp_path, syslog=syslog, port=21)
    try:
        attacker, friend = lab.clients
        _at_once(
            lab,
            attacker.namespace,
            [
                [*HYDRA, "-l", "alice", "-P", str(words), f"ftp://{attacker.server_ipv4}"],
                # a user name forging Pure-FTPd's header
                [
                    "curl",
                    "-s",
                    _url(f"a] ({FORGED}@{FORGED}) [WARNING] x [b", "x", attacker.server_ipv6),
                ],
            ],
        )
        _login(lab, friend, f"ftp://{friend.server_ipv4}/")
        syslog.settle()
    finally:
        service.stop()
        syslog.stop()
    found = failures_found(syslog.path, "pure-ftpd")
    expected = {str(attacker.ipv4): 3, str(attacker.ipv6): 1}
    assert_exactly(found, expected, absent=[str(friend.ipv4)], log=syslog.text())


def test_vsftpd_failures_are_found(lab: Lab, tmp_path: Path, home: Path) -> None:
    require_tools("curl", "htpasswd", "rsyslogd")
    root = unpacked("vsftpd")
    # the daemon's own accounts: no copy of this machine's /etc/shadow
    passwd, shadow = tmp_path / "passwd", tmp_path / "shadow"
    passwd.write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        f"alice:x:{UID}:{UID}::{home}:/bin/sh\n"
    )
    shadow.write_text(
        f"root:*:19000::::::\nnobody:*:19000::::::\nalice:{_crypt(PASSWORD)}:19000::::::\n"
    )
    shadow.chmod(0o600)
    pam = tmp_path / "pam.d"
    shutil.copytree("/etc/pam.d", pam)
    shutil.copy(root / "etc/pam.d/vsftpd", pam / "vsftpd")  # Debian's: pam_unix via common-auth
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o555)
    log = tmp_path / "vsftpd.log"
    conf = tmp_path / "vsftpd.conf"
    conf.write_text(
        "listen=NO\nlisten_ipv6=YES\nanonymous_enable=NO\nlocal_enable=YES\n"
        "xferlog_enable=YES\nuse_localtime=YES\n"
        f"vsftpd_log_file={log}\nsecure_chroot_dir={empty}\n"
        "pam_service_name=vsftpd\nseccomp_sandbox=NO\n"
    )
    syslog = Syslog.start(tmp_path)
    argv = ["sh", "-c", _WITH_ACCOUNTS, str(passwd), str(shadow), str(pam)]
    argv += [str(root / "usr/sbin/vsftpd"), str(conf)]
    service = Service.start(lab, argv, tmp_path, name="vsftpd", syslog=syslog, port=21)
    try:
        attacker, friend = lab.clients
        v4, v6 = attacker.server_ipv4, attacker.server_ipv6
        _at_once(
            lab,
            attacker.namespace,
            [
                ["curl", "-s", _url("alice", "letmein", v4)],
                ["curl", "-s", _url("alice", "123456", v4)],
                ["curl", "-s", _url("bob", "bob", v4)],
                # a user name forging vsftpd's wording
                ["curl", "-s", _url(f'x] FAIL LOGIN: Client "{FORGED}"', "x", v4)],
                ["curl", "-s", _url("root", "toor", v6)],
            ],
        )
        _login(lab, friend, f"ftp://{friend.server_ipv4}/")
        settle(log)
        syslog.settle()
    finally:
        service.stop()
        syslog.stop()
    expected = {str(attacker.ipv4): 4, str(attacker.ipv6): 1}
    # vsftpd's own log, and PAM's lines about the same attempts
    own = failures_found(log, "vsftpd")
    assert_exactly(own, expected, absent=[str(friend.ipv4)], log=log.read_text())
    # PAM is not asked about the forged name (vsftpd refuses it first): one attempt fewer
    pam_lines = failures_found(syslog.path, "vsftpd")
    pam_expected = {str(attacker.ipv4): 3, str(attacker.ipv6): 1}
    assert_exactly(pam_lines, pam_expected, absent=[str(friend.ipv4)], log=syslog.text())


def test_proftpd_failures_are_found(lab: Lab, tmp_path: Path, home: Path) -> None:
    require_tools("lftp", "curl", "htpasswd")
    root = unpacked(
        "proftpd-core", "libhiredis0.14", "libmemcached11", "libmemcachedutil2", "libpcre2-posix3"
    )
    libraries = ":".join(str(p) for p in sorted(root.glob("usr/lib/*-linux-gnu")))
    users = tmp_path / "ftpd.passwd"
    users.write_text(f"alice:{_crypt(PASSWORD)}:{UID}:{UID}::{home}:/bin/sh\n")
    users.chmod(0o600)
    log = tmp_path / "proftpd.log"
    conf = tmp_path / "proftpd.conf"
    conf.write_text(
        "ServerType standalone\nDefaultServer on\nUseIPv6 on\nPort 21\n"
        "User nobody\nGroup nogroup\n"
        f"ScoreboardFile {tmp_path}/scoreboard\nPidFile {tmp_path}/proftpd.pid\n"
        # no delay after a failed login (mod_delay), no reverse DNS in the lab
        "DelayTable none\nWtmpLog off\nUseReverseDNS off\nRequireValidShell off\n"
        f"AuthOrder mod_auth_file.c\nAuthUserFile {users}\n"
        f"TransferLog none\nSystemLog {log}\n"
    )
    # -n: in the foreground; -q: into the SystemLog file, as the daemon writes it, not to stderr
    argv = [str(root / "usr/sbin/proftpd"), "-n", "-q", "-c", str(conf)]
    env = {"LD_LIBRARY_PATH": libraries}
    service = Service.start(lab, argv, tmp_path, port=21, env=env)
    try:
        attacker, friend = lab.clients
        script = "set net:max-retries 1; set net:timeout 5; ls; quit"
        for user, password, server in (
            ("alice", "letmein", attacker.server_ipv4),
            ("alice", "123456", attacker.server_ipv4),
            ("bob", "bob", attacker.server_ipv4),
            # a user name forging ProFTPD's session header and wording
            (
                f"x (a[{FORGED}]): USER y: no such user found from a [{FORGED}]",
                "x",
                attacker.server_ipv4,
            ),
            ("root", "toor", attacker.server_ipv6),
        ):
            host = f"[{server}]" if server.version == 6 else str(server)
            login = ["-u", f"{user},{password}", "-e", script, host]
            lab.run(attacker.namespace, "lftp", *login, check=False)
        _login(lab, friend, f"ftp://{friend.server_ipv4}/")
        settle(log)
    finally:
        service.stop()
    found = failures_found(log, "proftpd")
    expected = {str(attacker.ipv4): 4, str(attacker.ipv6): 1}
    assert_exactly(found, expected, absent=[str(friend.ipv4)], log=log.read_text())

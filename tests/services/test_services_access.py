"""Remote access and VoIP services for real: Debian's OpenSSH server, Dropbear, OpenVPN and
Kamailio run in the lab's server namespace, an attacker fails logins against them from one
client namespace with a real client (hydra, an OpenVPN client holding a certificate of another
CA, SIP REGISTERs with a wrong password), a friend logs in from the other, and gardien's bundled
filter must find exactly the attacker's failures in the log the daemon really wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.ci import require
from support.netns import Client, Lab
from support.services import (
    Service,
    Syslog,
    assert_exactly,
    failures_found,
    require_tools,
    service_lab,
    settle,
)

#: wrong passwords hydra tries, one connection after another (-t 1)
PASSWORDS = ("123456", "letmein", "wrongpass")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


def _keypair(directory: Path) -> Path:
    """An ed25519 key pair for the friend (``id``, ``id.pub``); the private key's path."""
    key = directory / "id"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    return key


def _hydra(lab: Lab, attacker: Client, port: int, directory: Path, user: str = "root") -> None:
    """hydra's ssh module, one task, every password of :data:`PASSWORDS` for ``user``."""
    passwords = directory / "passwords"
    passwords.write_text("".join(f"{p}\n" for p in PASSWORDS))
    result = lab.run(
        attacker.namespace,
        "hydra",
        "-l",
        user,
        "-P",
        str(passwords),
        "-t",
        "1",
        "-s",
        str(port),
        "-I",
        f"ssh://{attacker.server_ipv4}",
        check=False,
    )
    assert "0 valid password" in result.stdout, result.stdout + result.stderr


def _ssh(lab: Lab, friend: Client, port: int, key: Path) -> None:
    """A key login by the real OpenSSH client, which must get in."""
    result = lab.run(
        friend.namespace,
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        f"root@{friend.server_ipv4}",
        "echo",
        "in",
        check=False,
    )
    assert result.stdout.strip() == "in", result.stderr


def test_openssh_server(lab: Lab, tmp_path: Path) -> None:
    require_tools("sshd", "ssh", "hydra")
    attacker, friend = lab.clients
    key = _keypair(tmp_path)
    host_key = tmp_path / "host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True, timeout=30
    )
    (tmp_path / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {host_key}\n"
        f"PidFile {tmp_path / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\n"
        "StrictModes no\n"
        "PermitRootLogin yes\n"
        "PasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM yes\n"
        "MaxAuthTries 6\n"
        "SyslogFacility AUTH\n"
        "LogLevel INFO\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
    syslog = Syslog.start(tmp_path)
    service = Service.start(
        lab,
        ["/usr/sbin/sshd", "-D", "-f", str(config), "-o", "Port=22"],
        tmp_path,
        syslog=syslog,
        port=22,
    )
    try:
        _hydra(lab, attacker, 22, tmp_path)
        _ssh(lab, friend, 22, key)
        time.sleep(0.5)  # sshd logs the end of hydra's last connection after it has gone
        syslog.settle()
    finally:
        service.stop()
        syslog.stop()
    text = syslog.text()
    assert f"Accepted publickey for root from {friend.ipv4}" in text, text
    found = failures_found(syslog.path, "sshd")
    assert_exactly(found, {str(attacker.ipv4): len(PASSWORDS)}, absent=[str(friend.ipv4)], log=text)


def test_dropbear(lab: Lab, tmp_path: Path) -> None:
    require_tools("dropbear", "dropbearkey", "ssh", "hydra")
    attacker, friend = lab.clients
    key = _keypair(tmp_path)
    # dropbear reads ~/.ssh/authorized_keys: root's home is a directory of the test's, bound
    # over /root in the daemon's own mount namespace
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    home.chmod(0o700)
    (home / ".ssh").chmod(0o700)
    (home / ".ssh" / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    host_key = tmp_path / "dropbear_ed25519_host_key"
    subprocess.run(
        ["dropbearkey", "-t", "ed25519", "-f", str(host_key)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    service = Service.start(
        lab,
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            'mount --bind "$0" /root && exec "$@"',
            str(home),
            "dropbear",
            "-F",
            "-E",
            "-p",
            "2222",
            "-r",
            str(host_key),
        ],
        tmp_path,
        name="dropbear",
        port=2222,
    )
    try:
        _hydra(lab, attacker, 2222, tmp_path)
        _hydra(lab, attacker, 2222, tmp_path, user="nosuchuser")
        _ssh(lab, friend, 2222, key)
        settle(service.output)
    finally:
        service.stop()
    text = service.output.read_text()
    assert "Pubkey auth succeeded for 'root'" in text, text
    found = failures_found(service.output, "dropbear")
    # each wrong password for root, and each connection naming the unknown user: dropbear says
    # so once per connection (hydra's first one too), whatever the passwords tried in it
    unknown = text.count("Login attempt for nonexistent user")
    assert unknown >= 1, text
    assert_exactly(
        found,
        {str(attacker.ipv4): len(PASSWORDS) + unknown},
        absent=[str(friend.ipv4)],
        log=text,
    )


# --- OpenVPN -------------------------------------------------------------------------------


def _openssl(*argv: str) -> None:
    subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)


def _certificates(directory: Path) -> None:
    """A test CA with the server's and the friend's certificates, and a rogue CA with the
    attacker's (``NAME.crt``, ``NAME.key``)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("testca", "rogueca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{directory}/{ca}.key",
                 "-out", f"{directory}/{ca}.crt", "-days", "2", "-subj", f"/CN={ca}")  # fmt: skip
    for name, ca, usage in (
        ("server", "testca", "serverAuth"),
        ("friend", "testca", "clientAuth"),
        ("attacker", "rogueca", "clientAuth"),
    ):
        extensions = directory / f"{name}.ext"
        extensions.write_text(f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature\n")
        _openssl("req", *ec, "-keyout", f"{directory}/{name}.key",
                 "-out", f"{directory}/{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        _openssl("x509", "-req", "-in", f"{directory}/{name}.csr", "-CA", f"{directory}/{ca}.crt",
                 "-CAkey", f"{directory}/{ca}.key", "-CAcreateserial", "-days", "2",
                 "-out", f"{directory}/{name}.crt", "-extfile", str(extensions))  # fmt: skip


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _openvpn_client(
    lab: Lab,
    client: Client,
    name: str,
    directory: Path,
    done: Callable[[Path], bool],
    *,
    family: int = 4,
) -> None:
    """Run a real OpenVPN client of certificate ``name`` until ``done(its log)``, then stop it."""
    log = directory / f"client-{name}-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        ["ip", "netns", "exec", client.namespace, "openvpn", "--client", "--dev", "tun",
         "--proto", "udp", "--remote", str(client.server_address(family)), "1194", "--nobind",
         "--ca", f"{directory}/testca.crt", "--cert", f"{directory}/{name}.crt",
         "--key", f"{directory}/{name}.key", "--remote-cert-tls", "server",
         "--connect-retry-max", "1", "--verb", "3", "--log", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.processes.append(process)
    try:
        _wait_for(lambda: done(log) or process.poll() is not None, 30, f"the {name} client")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("target", ["log", "syslog"])
def test_openvpn(lab: Lab, tmp_path: Path, target: str) -> None:
    """Its own --log file, with an attacker over IPv4; syslog, with an attacker over IPv6
    (which OpenVPN names without a port)."""
    require_tools("openvpn", "openssl")
    require(os.path.exists("/dev/net/tun"), "/dev/net/tun is missing")
    attacker, friend = lab.clients
    _certificates(tmp_path)
    syslog = Syslog.start(tmp_path) if target == "syslog" else None
    log = syslog.path if syslog is not None else tmp_path / "openvpn.log"
    logging = ["--syslog", "ovpn-server"] if syslog is not None else ["--log", str(log)]
    family = 6 if syslog is not None else 4
    service = Service.start(
        lab,
        ["openvpn", "--mode", "server", "--tls-server", "--dev", "tun", "--topology", "subnet",
         "--ifconfig", "10.8.0.1", "255.255.255.0", "--ifconfig-pool", "10.8.0.2", "10.8.0.20",
         "--proto", "udp6", "--port", "1194", "--dh", "none", "--ca", f"{tmp_path}/testca.crt",
         "--cert", f"{tmp_path}/server.crt", "--key", f"{tmp_path}/server.key",
         "--verb", "3", *logging],
        tmp_path,
        syslog=syslog,
        ready=lambda: "Initialization Sequence Completed" in _text(log),
    )  # fmt: skip
    attempts = 3
    try:
        for attempt in range(1, attempts + 1):
            # the server refuses the certificate at once; the client would wait a minute
            _openvpn_client(
                lab,
                attacker,
                "attacker",
                tmp_path,
                lambda _: _text(log).count("VERIFY ERROR") >= attempt,  # noqa: B023
                family=family,
            )
        _openvpn_client(
            lab,
            friend,
            "friend",
            tmp_path,
            lambda own: "Initialization Sequence Completed" in _text(own),
        )
        settle(log)
    finally:
        service.stop()
        if syslog is not None:
            syslog.stop()
    text = _text(log)
    assert f"{friend.ipv4}:" in text and "[friend] Peer Connection Initiated" in text, text
    found = failures_found(log, "openvpn")
    assert_exactly(
        found,
        {str(attacker.address(family)): attempts},
        absent=[str(friend.ipv4), str(friend.ipv6)],
        log=text,
    )


# --- Kamailio ------------------------------------------------------------------------------

#: the stock kamailio.cfg's log settings and flood detection (WITH_ANTIFLOOD), and the auth
#: failure line filter.d/kamailio.conf documents; pv_auth_check: a password without a database
KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=no
log_facility=LOG_LOCAL0
log_prefix="{$mt $hdr(CSeq) $ci} "
children=1
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "sl.so"
loadmodule "auth.so"
loadmodule "pike.so"
loadmodule "htable.so"
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", 16)
modparam("pike", "remove_latency", 4)
modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")
request_route {
    if ($sht(ipban=>$si) != $null) {
        exit;
    }
    if (!pike_check_req()) {
        xlog("L_ALERT", "ALERT: pike blocking $rm from $fu (IP:$si:$sp)\\n");
        $sht(ipban=>$si) = 1;
        exit;
    }
    if (method == "OPTIONS") {
        sl_send_reply("200", "Keepalive");
        exit;
    }
    if (!pv_auth_check("$fd", "s3cret", "0", "0")) {
        $var(auth) = $rc;
        if ($var(auth) == -2 || $var(auth) == -3 || $var(auth) == -8) {
            xlog("L_WARN", "AUTH failed ($var(auth)): $rm from $fu (IP:$si:$sp)\\n");
        }
        auth_challenge("$fd", "0");
        exit;
    }
    sl_send_reply("200", "OK");
}
"""

#: a SIP user agent (run in a client namespace): ``register SERVER PASSWORD`` answers the
#: digest challenge with PASSWORD and prints the final status; ``flood SERVER N`` sends N
#: OPTIONS at once
SIP_CLIENT = r"""
import hashlib, re, socket, sys

def md5(text):
    return hashlib.md5(text.encode()).hexdigest()

def request(sock, server, method, cseq, extra=""):
    port = sock.getsockname()[1]
    sock.sendto((
        f"{method} sip:{server} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sock.getsockname()[0]}:{port};branch=z9hG4bK{cseq}x{port};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:100@{server}>;tag=t{port}\r\n"
        f"To: <sip:100@{server}>\r\nCall-ID: c{port}@gardien-test\r\n"
        f"CSeq: {cseq} {method}\r\nContact: <sip:100@{sock.getsockname()[0]}:{port}>\r\n"
        f"{extra}Content-Length: 0\r\n\r\n").encode(), (server, 5060))

def register(server, password):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.connect((server, 5060))
    request(sock, server, "REGISTER", 1)
    reply = sock.recv(4096).decode()
    nonce = re.search(r'nonce="([^"]+)"', reply).group(1)
    realm = re.search(r'realm="([^"]+)"', reply).group(1)
    uri = f"sip:{server}"
    digest = md5(f"{md5(f'100:{realm}:{password}')}:{nonce}:{md5(f'REGISTER:{uri}')}")
    request(sock, server, "REGISTER", 2, f'Authorization: Digest username="100", '
            f'realm="{realm}", nonce="{nonce}", uri="{uri}", response="{digest}", '
            'algorithm=MD5\r\n')
    print(sock.recv(4096).decode().split("\r\n")[0])

def flood(server, count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((server, 5060))
    for number in range(count):
        request(sock, server, "OPTIONS", number + 1)

if sys.argv[1] == "register":
    register(sys.argv[2], sys.argv[3])
else:
    flood(sys.argv[2], int(sys.argv[3]))
"""


def test_kamailio(lab: Lab, tmp_path: Path) -> None:
    require_tools("kamailio")
    attacker, friend = lab.clients
    config = tmp_path / "kamailio.cfg"
    config.write_text(KAMAILIO_CFG)
    client = tmp_path / "sip_client.py"
    client.write_text(SIP_CLIENT)
    syslog = Syslog.start(tmp_path)
    output = tmp_path / "kamailio.out"
    service = Service.start(
        lab,
        ["kamailio", "-DD", "-f", str(config), "-P", str(tmp_path / "kamailio.pid"),
         "-Y", str(tmp_path), "-w", str(tmp_path)],
        tmp_path,
        syslog=syslog,
        ready=lambda: "Listening on" in _text(output) and "udp:" in _text(output),
    )  # fmt: skip

    def sip(who: Client, *argv: str) -> str:
        result = lab.run(who.namespace, sys.executable, str(client), argv[0],
                         str(who.server_ipv4), *argv[1:], check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    attempts = 3
    try:
        for _ in range(attempts):
            assert sip(attacker, "register", "guess") == "SIP/2.0 401 Unauthorized"
        assert sip(friend, "register", "s3cret") == "SIP/2.0 200 OK"
        sip(attacker, "flood", "60")  # then pike blocks it, once
        _wait_for(lambda: "pike blocking" in syslog.text(), 10, "the flood alert")
        syslog.settle()
    finally:
        service.stop()
        syslog.stop()
    text = syslog.text()
    assert text.count("pike blocking") == 1, text
    normal = failures_found(syslog.path, "kamailio")
    assert_exactly(normal, {str(attacker.ipv4): attempts}, absent=[str(friend.ipv4)], log=text)
    every = failures_found(syslog.path, "kamailio[mode=aggressive]")
    assert_exactly(every, {str(attacker.ipv4): attempts + 1}, log=text)

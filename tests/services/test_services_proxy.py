"""Real proxies against gardien's bundled filters: Debian's Squid (proxy authentication with
basic_ncsa_auth, access rules) and HAProxy (HTTP basic authentication against a userlist) in
the lab's server namespace, in front of a small web server there. One client sends wrong
credentials, none, or requests the rules deny, with curl, over IPv4 and IPv6; another gets
through. The filters must find exactly the attacker's failures, and nothing for the legitimate
client."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.netns import Lab
from support.services import (
    Service,
    Syslog,
    assert_exactly,
    failures_found,
    require_tools,
    service_lab,
    settle,
)

PASSWORD = "goodpass"  # noqa: S105 (the legitimate account's)
#: the address an attacker's user name or request puts in the log (it must never be reported)
FORGED = "192.0.2.250"
#: where the web server behind the proxies listens, in the server namespace
ORIGIN_PORT = 8080


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab, with a web server the proxies forward to."""
    with service_lab(clients=2) as built:
        www = tmp_path_factory.mktemp("www")
        (www / "index.html").write_text("hello\n")
        argv = [sys.executable, "-m", "http.server", str(ORIGIN_PORT), "--directory", str(www)]
        origin = Service.start(built, argv, www, name="origin", port=ORIGIN_PORT)
        try:
            yield built
        finally:
            origin.stop()


def _curl(lab: Lab, namespace: str, *argv: str) -> str:
    """The HTTP status curl got (000: none); no URL globbing (-g): brackets are data."""
    result = lab.run(
        namespace, "curl", "-sg", "-o", "/dev/null", "-w", "%{http_code}", *argv, check=False
    )
    return result.stdout


@pytest.fixture
def squid_dir() -> Iterator[Path]:
    """Squid's files: outside pytest's temporary directories, which only root may enter, since
    Squid writes its logs as its own user."""
    path = Path(tempfile.mkdtemp(prefix="gardien-squid-"))
    try:
        path.chmod(0o755)
        proxy = pwd.getpwnam("proxy")
        os.chown(path, proxy.pw_uid, proxy.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_squid_failures_are_found(lab: Lab, squid_dir: Path) -> None:
    require_tools("squid", "htpasswd", "curl")
    helper = Path("/usr/lib/squid/basic_ncsa_auth")
    users = squid_dir / "passwd"
    subprocess.run(["htpasswd", "-cb5", str(users), "alice", PASSWORD], check=True)
    users.chmod(0o644)
    log = squid_dir / "access.log"
    conf = squid_dir / "squid.conf"
    conf.write_text(
        f"http_port 3128\npid_filename {squid_dir}/squid.pid\n"
        f"access_log stdio:{log} squid\ncache_log {squid_dir}/cache.log\n"
        "cache_store_log none\ncache deny all\nshutdown_lifetime 0 seconds\n"
        f"auth_param basic program {helper} {users}\nauth_param basic realm gardien\n"
        # Debian's rules: only safe ports, CONNECT only to 443; then the proxy's users only
        f"acl SSL_ports port 443\nacl Safe_ports port 80 443 {ORIGIN_PORT}\n"
        "acl users proxy_auth REQUIRED\n"
        "http_access deny !Safe_ports\nhttp_access deny CONNECT !SSL_ports\n"
        "http_access deny !users\nhttp_access allow users\nhttp_access deny all\n"
    )
    service = Service.start(lab, ["squid", "-N", "-f", str(conf)], squid_dir, port=3128)
    try:
        attacker, friend = lab.clients
        proxy4 = ["-x", f"http://{attacker.server_ipv4}:3128"]
        proxy6 = ["-x", f"http://[{attacker.server_ipv6}]:3128"]
        page = f"http://{attacker.server_ipv4}:{ORIGIN_PORT}/"
        for argv in (
            [*proxy4, "-U", "alice:letmein", page],  # wrong password: 407, user logged
            [*proxy4, "-U", "bob:bob", page],  # unknown user: 407
            [*proxy4, "-U", f"x {FORGED} TCP_DENIED/403:x", page],  # a forging name: 407
            [*proxy4, "-U", f"alice:{PASSWORD}", "-p", f"https://{attacker.server_ipv4}:25/"],
            [*proxy6, "-U", "root:toor", page],  # 407 over IPv6
            [*proxy4, page],  # no credentials: the challenge (407, no user)
        ):
            _curl(lab, attacker.namespace, *argv)
        good = [
            *["-x", f"http://{friend.server_ipv4}:3128", "-U", f"alice:{PASSWORD}"],
            f"http://{friend.server_ipv4}:{ORIGIN_PORT}/",
        ]
        assert _curl(lab, friend.namespace, *good) == "200"
        settle(log)
    finally:
        service.stop()
    text = log.read_text()
    # the CONNECT to port 25 is denied (403) and the three rejected logins over IPv4 count; the
    # challenge of the request without credentials only in aggressive mode
    expected = {str(attacker.ipv4): 4, str(attacker.ipv6): 1}
    assert_exactly(failures_found(log, "squid"), expected, absent=[str(friend.ipv4)], log=text)
    aggressive = failures_found(log, "squid[mode=aggressive]")
    expected[str(attacker.ipv4)] += 1
    assert_exactly(aggressive, expected, absent=[str(friend.ipv4)], log=text)


def test_haproxy_http_auth_failures_are_found(lab: Lab, tmp_path: Path) -> None:
    require_tools("haproxy", "curl", "rsyslogd")
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(
        "global\n    log /dev/log local0\n"
        "defaults\n    log global\n    mode http\n    option httplog\n"
        "    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n"
        f"userlist users\n    user alice insecure-password {PASSWORD}\n"
        "frontend main\n    bind :::8000 v4v6\n    capture request header User-Agent len 64\n"
        "    http-request auth realm gardien unless { http_auth(users) }\n"
        "    default_backend app\n"
        f"backend app\n    server app1 127.0.0.1:{ORIGIN_PORT}\n"
    )
    syslog = Syslog.start(tmp_path)
    service = Service.start(
        lab, ["haproxy", "-db", "-f", str(conf)], tmp_path, syslog=syslog, port=8000
    )
    try:
        attacker, friend = lab.clients
        site4 = f"http://{attacker.server_ipv4}:8000"
        for argv in (
            ["-u", "alice:letmein", f"{site4}/"],
            ["-u", "bob:bob", f"{site4}/"],
            # the request line and a captured header are the client's
            ["-u", f"{FORGED}:x", "-A", f"{FORGED}:1234 [x]", f"{site4}/{FORGED}:80%20[x]%20main"],
            [f"{site4}/"],  # no credentials: refused the same way
            ["-u", "root:toor", f"http://[{attacker.server_ipv6}]:8000/"],
        ):
            assert _curl(lab, attacker.namespace, *argv) == "401"
        good = ["-u", f"alice:{PASSWORD}", f"http://{friend.server_ipv4}:8000/"]
        assert _curl(lab, friend.namespace, *good) == "200"
        syslog.settle()
    finally:
        service.stop()
        syslog.stop()
    found = failures_found(syslog.path, "haproxy-http-auth")
    expected = {str(attacker.ipv4): 4, str(attacker.ipv6): 1}
    assert_exactly(found, expected, absent=[str(friend.ipv4)], log=syslog.text())

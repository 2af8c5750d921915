"""Real nginx and Apache httpd (Debian's packages) in a network namespace lab: one client fails
against them with curl (or a raw socket), another succeeds, and gardien's bundled web filters
must find exactly the failures of the first in the logs the servers really wrote.

One nginx and one Apache serve the whole module, one server block (virtual host) per filter on a
port of its own, each with its own error and access logs: a test reads only its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.netns import Client, Lab
from support.services import (
    Service,
    assert_exactly,
    failures_found,
    require_tools,
    service_lab,
    settle,
)

USER, PASSWORD = "alice", "correct horse"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

#: nginx server blocks: filter -> port
NGINX = {"auth": 8081, "limit": 8082, "probe": 8083, "bad": 8084, "tls": 8085}
#: Apache virtual hosts: filter -> port
APACHE = {"auth": 8091, "noscript": 8092, "nohome": 8093, "bots": 8094, "probe": 8095, "big": 8096}

#: what a client sends on a raw connection (python3 -c, in its namespace): the bytes in argv[3]
#: as a Python literal, then whatever the server answers is read and dropped
_SEND = (
    "import ast, socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "s.sendall(ast.literal_eval(sys.argv[3]))\n"
    "s.shutdown(socket.SHUT_WR)\n"
    "try:\n"
    "    while s.recv(65536):\n"
    "        pass\n"
    "except OSError:\n"
    "    pass\n"
)


@dataclass
class Web:
    """A running server and where its logs are: ``logs / f"{name}-error.log"`` and
    ``logs / f"{name}-access.log"`` for each server block or virtual host ``name``."""

    service: Service
    logs: Path
    root: Path

    def error_log(self, name: str) -> Path:
        return self.logs / f"{name}-error.log"

    def access_log(self, name: str) -> Path:
        return self.logs / f"{name}-access.log"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


@pytest.fixture(scope="module")
def document_root() -> Iterator[Path]:
    """Pages and a password file that Apache's www-data children can read (pytest's own
    directories are root's alone)."""
    require_tools("htpasswd")
    root = Path(tempfile.mkdtemp(prefix="gardien-web-"))
    try:
        root.chmod(0o755)
        html = root / "html"
        (html / "private").mkdir(parents=True)
        (html / "index.html").write_text("hello\n")
        (html / "private" / "index.html").write_text("private\n")
        (root / "cgi-bin").mkdir()
        subprocess.run(
            ["htpasswd", "-b", "-c", str(root / "htpasswd"), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx(lab: Lab, document_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    require_tools("nginx", "curl", "openssl")
    prefix = tmp_path_factory.mktemp("nginx")
    html = document_root / "html"

    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=tls.example.test",
            "-keyout", str(prefix / "key.pem"), "-out", str(prefix / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip

    def server(name: str, body: str = "", ssl: str = "") -> str:
        port = NGINX[name]
        return (
            f"  server {{\n"
            f"    listen {port}{ssl}; listen [::]:{port}{ssl} ipv6only=on;\n"
            f"    server_name {name}.example.test;\n"
            f"    root {html};\n"
            f"    error_log {prefix}/{name}-error.log info;\n"
            f"    access_log {prefix}/{name}-access.log combined;\n"
            f"{body}"
            f"  }}\n"
        )

    conf = prefix / "nginx.conf"
    conf.write_text(
        "daemon off;\n"
        "master_process off;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/main-error.log info;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log {prefix}/main-access.log combined;\n"
        + "".join(
            f"  {kind}_temp_path {prefix}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + "  limit_req_zone $binary_remote_addr zone=login:1m rate=1r/m;\n"
        + server(
            "auth",
            f'    location /private/ {{ auth_basic "staff"; '
            f"auth_basic_user_file {document_root}/htpasswd; }}\n",
        )
        + server("limit", "    location / { limit_req zone=login; }\n")
        + server("probe")
        + server("bad")
        + server(
            "tls",
            f"    ssl_certificate {prefix}/cert.pem;\n    ssl_certificate_key {prefix}/key.pem;\n",
            ssl=" ssl",
        )
        + "}\n"
    )
    service = Service.start(
        lab, ["nginx", "-c", str(conf), "-p", f"{prefix}/"], prefix, port=NGINX["auth"]
    )
    try:
        yield Web(service, prefix, document_root)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def apache(
    lab: Lab, document_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Web]:
    require_tools("apache2", "curl")
    prefix = tmp_path_factory.mktemp("apache")
    modules = Path("/usr/lib/apache2/modules")
    loaded = [
        ("mpm_prefork", "mpm_prefork"),
        ("authn_core", "authn_core"),
        ("authn_file", "authn_file"),
        ("authz_core", "authz_core"),
        ("authz_user", "authz_user"),
        ("authz_host", "authz_host"),
        ("auth_basic", "auth_basic"),
        ("alias", "alias"),
        ("cgi", "cgi"),
        ("userdir", "userdir"),
    ]
    html = document_root / "html"

    def vhost(name: str, body: str = "", level: str = "warn") -> str:
        return (
            f"<VirtualHost *:{APACHE[name]}>\n"
            f"  ServerName {name}.example.test\n"
            f"  DocumentRoot {html}\n"
            f"  ErrorLog {prefix}/{name}-error.log\n"
            f"  LogLevel {level}\n"
            f"  CustomLog {prefix}/{name}-access.log combined\n"
            f"{body}"
            f"</VirtualHost>\n"
        )

    conf = prefix / "apache2.conf"
    conf.write_text(
        f"ServerRoot {prefix}\n"
        "ServerName www.example.test\n"
        f"DefaultRuntimeDir {prefix}\n"
        f"PidFile {prefix}/apache2.pid\n"
        f"Mutex file:{prefix} default\n"
        + "".join(f"LoadModule {m}_module {modules}/mod_{f}.so\n" for m, f in loaded)
        + "StartServers 1\nMinSpareServers 1\nMaxSpareServers 2\n"
        "User www-data\nGroup www-data\n"
        f"ErrorLog {prefix}/main-error.log\n"
        'LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined\n'
        + "".join(f"Listen {port}\n" for port in APACHE.values())
        + f"<Directory {html}>\n  Require all granted\n</Directory>\n"
        + vhost(
            "auth",
            "  <Location /private/>\n"
            "    AuthType Basic\n    AuthName staff\n"
            f"    AuthUserFile {document_root}/htpasswd\n    Require valid-user\n"
            "  </Location>\n",
        )
        + vhost(
            "noscript",
            f"  ScriptAlias /cgi-bin/ {document_root}/cgi-bin/\n",
            level="warn core:info",
        )
        + vhost("nohome", "  UserDir public_html\n", level="warn core:info")
        + vhost("bots")
        + vhost("probe", level="warn core:info")
        + vhost("big", level="warn core:info")
    )
    runtime = {
        "APACHE_RUN_USER": "www-data",
        "APACHE_RUN_GROUP": "www-data",
        "APACHE_RUN_DIR": str(prefix),
        "APACHE_PID_FILE": str(prefix / "apache2.pid"),
        "APACHE_LOCK_DIR": str(prefix),
        "APACHE_LOG_DIR": str(prefix),
    }
    service = Service.start(
        lab,
        ["apache2", "-f", str(conf), "-DFOREGROUND"],
        prefix,
        port=APACHE["auth"],
        env=runtime,
    )
    try:
        yield Web(service, prefix, document_root)
    finally:
        service.stop()


def url(client: Client, port: int, path: str, family: int = 4) -> str:
    host = client.server_address(family)
    return f"http://{host}:{port}{path}" if family == 4 else f"http://[{host}]:{port}{path}"


def curl(lab: Lab, client: Client, target: str, *options: str) -> str:
    """One request with the real curl from ``client``; the status code it got."""
    result = lab.run(
        client.namespace,
        "curl",
        "-s",
        "-g",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        *options,
        target,
        check=False,
    )
    return result.stdout.strip()


def send_raw(lab: Lab, client: Client, port: int, payloads: Sequence[bytes]) -> None:
    """Each payload on a connection of its own, as a scanner sends it."""
    for payload in payloads:
        lab.run(
            client.namespace,
            sys.executable,
            "-c",
            _SEND,
            str(client.server_ipv4),
            str(port),
            repr(payload),
        )


def found_in(log: Path, filter_name: str) -> tuple[dict[str, int], str]:
    settle(log)
    text = log.read_text(errors="replace") if log.exists() else ""
    return dict(failures_found(log, filter_name)), text


# -- nginx -------------------------------------------------------------------------------------


def test_nginx_http_auth_finds_the_wrong_credentials(lab: Lab, nginx: Web) -> None:
    attacker, friend = lab.clients
    port = NGINX["auth"]
    private = "/private/index.html"
    assert curl(lab, attacker, url(attacker, port, private), "-u", f"{USER}:guess") == "401"
    assert curl(lab, attacker, url(attacker, port, private), "-u", "admin:admin") == "401"
    assert curl(lab, attacker, url(attacker, port, private, 6), "-u", "root:toor") == "401"
    # a browser asks without credentials first, then with its user's
    assert curl(lab, friend, url(friend, port, private)) == "401"
    assert curl(lab, friend, url(friend, port, private), "-u", f"{USER}:{PASSWORD}") == "200"
    found, text = found_in(nginx.error_log("auth"), "nginx-http-auth")
    assert "password mismatch" in text and "was not found in" in text, text
    assert_exactly(
        found,
        {str(attacker.ipv4): 2, str(attacker.ipv6): 1},
        absent=[str(friend.ipv4), str(friend.ipv6)],
        log=text,
    )


def test_nginx_limit_req_finds_the_refused_requests(lab: Lab, nginx: Web) -> None:
    attacker, friend = lab.clients
    port = NGINX["limit"]
    statuses = [curl(lab, attacker, url(attacker, port, "/index.html", 6)) for _ in range(4)]
    assert statuses == ["200", "503", "503", "503"], statuses
    assert curl(lab, friend, url(friend, port, "/index.html")) == "200"
    found, text = found_in(nginx.error_log("limit"), "nginx-limit-req")
    assert_exactly(found, {str(attacker.ipv6): 3}, absent=[str(friend.ipv4)], log=text)


def test_nginx_botsearch_finds_the_probes(lab: Lab, nginx: Web) -> None:
    attacker, friend = lab.clients
    port = NGINX["probe"]
    for probe in ("/phpmyadmin/index.php", "/wp-login.php", "/.env"):
        assert curl(lab, attacker, url(attacker, port, probe)) == "404"
    assert curl(lab, attacker, url(attacker, port, "/index.html")) == "200"
    assert curl(lab, friend, url(friend, port, "/index.html"), "-A", FIREFOX) == "200"
    assert curl(lab, friend, url(friend, port, "/favicon.ico"), "-A", FIREFOX) == "404"
    # the jail's log, and the error log (log_not_found), which the filter reads too
    for log in (nginx.access_log("probe"), nginx.error_log("probe")):
        found, text = found_in(log, "nginx-botsearch")
        assert_exactly(found, {str(attacker.ipv4): 3}, absent=[str(friend.ipv4)], log=text)


def test_nginx_bad_request_finds_what_is_not_http(lab: Lab, nginx: Web) -> None:
    attacker, friend = lab.clients
    port = NGINX["bad"]
    send_raw(
        lab,
        attacker,
        port,
        [
            b"\x16\x03\x01\x00\x05hello\r\n\r\n",  # a TLS handshake on the plain port
            b"GET /a b HTTP/1.1\r\nHost: bad.example.test\r\n\r\n",  # a space in the target
            b"HELP\r\n\r\n",
        ],
    )
    assert curl(lab, friend, url(friend, port, "/index.html"), "-A", FIREFOX) == "200"
    found, text = found_in(nginx.access_log("bad"), "nginx-bad-request")
    assert_exactly(found, {str(attacker.ipv4): 3}, absent=[str(friend.ipv4)], log=text)


def test_nginx_http_auth_fallback_finds_what_is_not_tls(lab: Lab, nginx: Web) -> None:
    attacker, friend = lab.clients
    port = NGINX["tls"]
    send_raw(
        lab,
        attacker,
        port,
        [
            b"\x16\x09\x09\x00\x05hello",  # a record of no TLS version
            b"\x16\x03\x01\xff\xff" + b"A" * 100,  # a record longer than TLS allows
        ],
    )
    assert curl(lab, friend, f"https://{friend.server_ipv4}:{port}/index.html", "-k") == "200"
    log = nginx.error_log("tls")
    found, text = found_in(log, "nginx-http-auth[mode=fallback]")
    assert "SSL_do_handshake() failed" in text, text
    assert_exactly(found, {str(attacker.ipv4): 2}, absent=[str(friend.ipv4)], log=text)
    assert failures_found(log, "nginx-http-auth") == {}  # normal mode: logins only


# -- Apache httpd ------------------------------------------------------------------------------


def test_apache_auth_finds_the_wrong_credentials(lab: Lab, apache: Web) -> None:
    attacker, friend = lab.clients
    port = APACHE["auth"]
    private = "/private/index.html"
    assert curl(lab, attacker, url(attacker, port, private, 6), "-u", f"{USER}:guess") == "401"
    assert curl(lab, attacker, url(attacker, port, private, 6), "-u", "admin:admin") == "401"
    assert curl(lab, attacker, url(attacker, port, private), "-u", "root:toor") == "401"
    assert curl(lab, friend, url(friend, port, private)) == "401"
    assert curl(lab, friend, url(friend, port, private), "-u", f"{USER}:{PASSWORD}") == "200"
    found, text = found_in(apache.error_log("auth"), "apache-auth")
    assert "AH01617" in text and "AH01618" in text, text
    assert_exactly(
        found,
        {str(attacker.ipv6): 2, str(attacker.ipv4): 1},
        absent=[str(friend.ipv4), str(friend.ipv6)],
        log=text,
    )


def test_apache_noscript_finds_the_missing_scripts(lab: Lab, apache: Web) -> None:
    attacker, friend = lab.clients
    port = APACHE["noscript"]
    for script in ("/cgi-bin/php5", "/cgi-bin/test-cgi", "/shell.php"):
        assert curl(lab, attacker, url(attacker, port, script)) == "404"
    assert curl(lab, friend, url(friend, port, "/index.html")) == "200"
    assert curl(lab, friend, url(friend, port, "/favicon.ico")) == "404"
    found, text = found_in(apache.error_log("noscript"), "apache-noscript")
    assert_exactly(found, {str(attacker.ipv4): 3}, absent=[str(friend.ipv4)], log=text)


def test_apache_nohome_finds_the_guessed_homes(lab: Lab, apache: Web) -> None:
    attacker, friend = lab.clients
    port = APACHE["nohome"]
    for home in ("/~oracle/", "/~admin/"):
        assert curl(lab, attacker, url(attacker, port, home, 6)) == "404"
    assert curl(lab, friend, url(friend, port, "/index.html")) == "200"
    found, text = found_in(apache.error_log("nohome"), "apache-nohome")
    assert_exactly(found, {str(attacker.ipv6): 2}, absent=[str(friend.ipv4)], log=text)


def test_apache_badbots_finds_the_harvester(lab: Lab, apache: Web) -> None:
    attacker, friend = lab.clients
    port = APACHE["bots"]
    for page in ("/index.html", "/contact.html"):
        curl(lab, attacker, url(attacker, port, page), "-A", "EmailCollector/1.0")
    assert curl(lab, friend, url(friend, port, "/index.html"), "-A", FIREFOX) == "200"
    # the request and the referrer are the client's too: a bad bot's name there is no agent
    curl(
        lab,
        friend,
        url(friend, port, "/index.html?q=EmailCollector"),
        "-A",
        FIREFOX,
        "-e",
        "http://www.example.test/?agent=EmailSiphon",
    )
    found, text = found_in(apache.access_log("bots"), "apache-badbots")
    assert_exactly(found, {str(attacker.ipv4): 2}, absent=[str(friend.ipv4)], log=text)


def test_apache_botsearch_finds_the_probes(lab: Lab, apache: Web) -> None:
    attacker, friend = lab.clients
    port = APACHE["probe"]
    for probe in ("/phpmyadmin/", "/wp-login.php", "/webmail"):
        assert curl(lab, attacker, url(attacker, port, probe)) == "404"
    assert curl(lab, friend, url(friend, port, "/index.html")) == "200"
    assert curl(lab, friend, url(friend, port, "/private/mail.html")) == "404"
    webroot = str(apache.root / "html")
    found, text = found_in(apache.error_log("probe"), f"apache-botsearch[webroot={webroot}]")
    assert_exactly(found, {str(attacker.ipv4): 3}, absent=[str(friend.ipv4)], log=text)


def test_apache_overflows_finds_the_oversized_requests(lab: Lab, apache: Web) -> None:
    attacker, friend = lab.clients
    port = APACHE["big"]
    host = b"Host: big.example.test\r\n"
    send_raw(
        lab,
        attacker,
        port,
        [
            b"GET /" + b"A" * 9000 + b" HTTP/1.1\r\n" + host + b"\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"X-Fill: " + b"B" * 9000 + b"\r\n\r\n",
            b"GET /../../etc/passwd HTTP/1.1\r\n" + host + b"\r\n",
        ],
    )
    assert curl(lab, friend, url(friend, port, "/index.html")) == "200"
    found, text = found_in(apache.error_log("big"), "apache-overflows")
    assert_exactly(found, {str(attacker.ipv4): 3}, absent=[str(friend.ipv4)], log=text)

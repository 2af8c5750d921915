"""Real services that log JSON: Debian's Caddy, its access log read by caddy-auth.

Caddy runs in the lab's server namespace with basic authentication on /private and a JSON
access log of its own; one client fails logins with curl (IPv4 and IPv6, once with a forged
X-Forwarded-For header, once without credentials), another logs in. The bundled filter must
find exactly the attacker's failures, in the modes' meanings.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
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

PORT = 8080


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


def _password_hash(password: str) -> str:
    # bcrypt at the lowest cost, so that each refused login takes milliseconds, not a second
    result = subprocess.run(
        ["htpasswd", "-nbB", "-C", "4", "alice", password],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip().split(":", 1)[1].replace("$2y$", "$2a$", 1)


def _curl(lab: Lab, client: Client, url: str, *options: str) -> str:
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
        url,
        check=False,
    )
    return str(result.stdout).strip()


def test_caddy_basic_auth_failures_are_found_in_its_json_access_log(
    lab: Lab, tmp_path: Path
) -> None:
    require_tools("caddy", "curl", "htpasswd")
    access_log = tmp_path / "access.log"
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tauto_https off\n}\n"
        f":{PORT} {{\n"
        f"\tlog {{\n\t\toutput file {access_log}\n\t\tformat json\n\t}}\n"
        f"\tbasicauth /private/* {{\n\t\talice {_password_hash('secret')}\n\t}}\n"
        '\trespond "ok"\n'
        "}\n"
    )
    service = Service.start(
        lab,
        ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        tmp_path,
        port=PORT,
        env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")},
    )
    attacker, friend = lab.clients
    try:
        v4 = f"http://{attacker.server_ipv4}:{PORT}/private/report"
        v6 = f"http://[{attacker.server_ipv6}]:{PORT}/private/report"
        assert _curl(lab, attacker, v4, "-u", "alice:wrong") == "401"
        assert (
            _curl(
                lab,
                attacker,
                v4 + "?from=192.0.2.250",
                "-u",
                "root:toor",
                "-H",
                "X-Forwarded-For: 192.0.2.250",
                "-A",
                "rhost=192.0.2.250",
            )
            == "401"
        )
        assert _curl(lab, attacker, v6, "-u", "admin:admin") == "401"
        assert _curl(lab, attacker, v4) == "401"  # no credentials: a probe
        ok = f"http://{friend.server_ipv4}:{PORT}/private/report"
        assert _curl(lab, friend, ok, "-u", "alice:secret") == "200"
        settle(access_log)
    finally:
        service.stop()
    log = access_log.read_text()
    legit = [str(friend.ipv4), str(friend.ipv6), "192.0.2.250"]
    found = failures_found(access_log, "caddy-auth")
    assert_exactly(found, {str(attacker.ipv4): 2, str(attacker.ipv6): 1}, absent=legit, log=log)
    probes = failures_found(access_log, "caddy-auth[mode=ddos]")
    assert_exactly(probes, {str(attacker.ipv4): 1}, absent=legit, log=log)
    every = failures_found(access_log, "caddy-auth[mode=aggressive]")
    assert_exactly(every, {str(attacker.ipv4): 3, str(attacker.ipv6): 1}, absent=legit, log=log)

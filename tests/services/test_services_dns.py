"""Real name servers (Debian's BIND 9 and NSD) in a network namespace lab: an attacker asks
with ``dig`` for what the servers' access lists refuse it (zone transfers, recursion, updates,
notifies), a friend makes the same kind of requests from an address the lists allow, and
gardien's bundled filters (``named-refused``, ``nsd``) find exactly the attacker's refusals in
the log each server really wrote."""

from __future__ import annotations

import sys
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

ZONE = """\
$TTL 300
@    IN SOA ns.example.org. hostmaster.example.org. 2026112101 3600 600 86400 300
@    IN NS  ns.example.org.
ns   IN A   192.0.2.1
www  IN A   192.0.2.80
"""


#: ``python -c`` program: 200 "www.example.org ANY" queries over UDP to the server ``argv[1]``
QUERY_BURST = """\
import socket, struct, sys
query = struct.pack(">6H", 1, 0x0100, 1, 0, 0, 0) + b"\\3www\\7example\\3org\\0\\0\\xff\\0\\1"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    for _ in range(200):
        sock.sendto(query, (sys.argv[1], 53))
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


def dig(lab: Lab, client: Client, *query: str) -> str:
    """``dig`` from ``client`` to the server's address on its link; its output."""
    result = lab.run(
        client.namespace,
        *["dig", f"@{client.server_ipv4}", "+tries=1", "+time=5", *query],
        check=False,
    )
    return result.stdout


def test_bind_refusals_are_found(lab: Lab, tmp_path: Path) -> None:
    require_tools("named", "dig", "nsupdate")
    attacker, friend = lab.clients
    (tmp_path / "example.org.zone").write_text(ZONE)
    conf = tmp_path / "named.conf"
    conf.write_text(
        f"""\
options {{
  directory "{tmp_path}";
  pid-file "{tmp_path}/named.pid";
  listen-on {{ any; }};
  listen-on-v6 {{ none; }};
  recursion yes;
  allow-recursion {{ {friend.ipv4}; }};
  allow-transfer {{ {friend.ipv4}; }};
  dnssec-validation no;
}};
controls {{ }};
zone "example.org" {{
  type primary;
  file "{tmp_path}/example.org.zone";
  allow-update {{ none; }};
}};
zone "example.com" {{
  type secondary;
  primaries {{ {friend.ipv4}; }};
  file "{tmp_path}/example.com.zone";
}};
"""
    )
    # -g: in the foreground, logging to standard error as named's own file channel does
    service = Service.start(lab, ["named", "-g", "-c", str(conf)], tmp_path, port=53)
    try:
        assert "Transfer failed" in dig(lab, attacker, "example.org", "AXFR")
        assert "Transfer failed" in dig(lab, attacker, "example.org", "IXFR=2026112100")
        assert "REFUSED" in dig(lab, attacker, "www.example.net", "A")  # recursion
        # a query name carrying a forged client: still the attacker's refusal
        assert "Transfer failed" in dig(lab, attacker, "client.203.0.113.250#53.org", "AXFR")
        script = tmp_path / "update.txt"
        script.write_text(
            f"server {attacker.server_ipv4}\nzone example.org\n"
            "update add evil.example.org 300 A 203.0.113.250\nsend\n"
        )
        update = lab.run(attacker.namespace, "nsupdate", str(script), check=False)
        assert "REFUSED" in update.stdout + update.stderr
        # a notify for a secondary zone from an address that is not its primary
        dig(lab, attacker, "example.com", "SOA", "+opcode=notify")
        assert "192.0.2.80" in dig(lab, friend, "www.example.org", "A", "+short")
        assert "hostmaster" in dig(lab, friend, "example.org", "AXFR")
        settle(service.output)
        assert_exactly(
            failures_found(service.output, "named-refused"),
            {str(attacker.ipv4): 6},
            absent=[str(friend.ipv4)],
            log=service.log(),
        )
    finally:
        service.stop()


def test_nsd_refusals_are_found(lab: Lab, tmp_path: Path) -> None:
    require_tools("nsd", "dig")
    attacker, friend = lab.clients
    (tmp_path / "example.org.zone").write_text(ZONE)
    log = tmp_path / "nsd.log"
    conf = tmp_path / "nsd.conf"
    conf.write_text(
        f"""\
server:
  ip-address: 0.0.0.0
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{tmp_path}"
  database: ""
  logfile: "{log}"
  pidfile: "{tmp_path}/nsd.pid"
  xfrdfile: "{tmp_path}/xfrd.state"
  zonelistfile: "{tmp_path}/zone.list"
  verbosity: 2
  rrl-ratelimit: 20
remote-control:
  control-enable: no
zone:
  name: example.org
  zonefile: example.org.zone
  provide-xfr: {friend.ipv4} NOKEY
"""
    )
    service = Service.start(lab, ["nsd", "-d", "-c", str(conf)], tmp_path, port=53)
    try:
        assert "Transfer failed" in dig(lab, attacker, "example.org", "AXFR")
        assert "Transfer failed" in dig(lab, attacker, "example.org", "IXFR=2026112100")
        dig(lab, attacker, "example.org", "SOA", "+opcode=notify")
        # a burst of queries over the rate limit: one "ratelimit block" for the attacker
        lab.run(attacker.namespace, sys.executable, "-c", QUERY_BURST, str(attacker.server_ipv4))
        assert "192.0.2.80" in dig(lab, friend, "www.example.org", "A", "+short")
        assert "hostmaster" in dig(lab, friend, "example.org", "AXFR")
        settle(log)
        assert_exactly(
            failures_found(log, "nsd"),
            {str(attacker.ipv4): 4},
            absent=[str(friend.ipv4)],
            log=log.read_text(),
        )
    finally:
        service.stop()

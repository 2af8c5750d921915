"""The ipset and iptables backends on the real kernel, in network namespaces (tests/support/netns.py):
a banned client's packets are dropped, others pass, ipset timeouts end bans by themselves, and
forgetting a banned client's tracked connections stops its established UDP flow.

The backends run in the test process; their commands run in the server namespace through
``command_prefix`` (``ip netns exec``), so the host's firewall is never touched. Expected-open
probes get a long timeout (a loaded machine is slow to answer), expected-dropped ones a short
one (a drop never answers, however long we wait). Needs root, iptables, ipset and conntrack.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gardien.backends.base import BlockSpec
from gardien.backends.conntrack import forget_connections
from gardien.backends.ipset import IpsetFirewall
from gardien.backends.iptables import IptablesFirewall, object_name
from gardien.model import Ban
from support.ci import require
from support.flows import accept_established_first, answered, sip_scanner
from support.netns import (
    DROP_TIMEOUT,
    OPEN_TIMEOUT,
    Client,
    Lab,
    assert_dropped,
    assert_open,
    bans_of,
    netns_available,
)

UDP, TCP = ("udp", 5060), ("tcp", 22)
SSH = BlockSpec("test", ports=("22",), protocol="tcp")
BACKENDS = {"ipset": IpsetFirewall, "iptables": IptablesFirewall}


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    for tool in ("iptables", "ip6tables", "ipset", "conntrack"):
        require(shutil.which(tool) is not None, f"{tool} is missing (apt-get install {tool})")
    with Lab.create(clients=2) as built:
        yield built


@pytest.fixture
def prefix(lab: Lab) -> Iterator[tuple[str, ...]]:
    """``command_prefix`` for the server namespace, whose firewall is emptied afterwards."""
    yield ("ip", "netns", "exec", lab.server)
    for tool in ("iptables", "ip6tables"):
        lab.run(lab.server, tool, "-F")
        lab.run(lab.server, tool, "-X")
    lab.run(lab.server, "ipset", "destroy")
    lab.run(lab.server, "conntrack", "-F", check=False)


@pytest.fixture(params=sorted(BACKENDS))
def firewall(request: pytest.FixtureRequest, prefix: tuple[str, ...]) -> Any:
    return BACKENDS[request.param](command_prefix=prefix, forget_connections=False)


@pytest.fixture
def client1(lab: Lab) -> Client:
    return lab.clients[0]


@pytest.fixture
def client2(lab: Lab) -> Client:
    return lab.clients[1]


def rules(lab: Lab, tool: str = "iptables", *chain: str) -> list[str]:
    return lab.run(lab.server, tool, "-S", *chain).stdout.splitlines()


# ---- behaviour common to both backends ----------------------------------------------------


def test_ban_blocks_only_the_banned_client_and_unban_lifts_it(
    lab: Lab, firewall: Any, client1: Client, client2: Client
) -> None:
    firewall.setup(SSH)
    now = time.time()
    firewall.ban(SSH, bans_of(client1, now=now), now)
    for family in (4, 6):
        assert_dropped(lab, client1, TCP, family)
        assert_open(lab, client1, UDP, family)  # not the jail's protocol
        assert_open(lab, client2, TCP, family)
    firewall.unban(SSH, [client1.ipv4, client1.ipv6])
    for family in (4, 6):
        assert_open(lab, client1, TCP, family)


def test_all_ports_reject_and_networks(
    lab: Lab, firewall: Any, client1: Client, client2: Client
) -> None:
    spec = BlockSpec("recidive", protocol="all", blocktype="reject")
    firewall.setup(spec)
    now = time.time()
    network = ipaddress.ip_network(f"{client2.ipv4}/24", strict=False)
    firewall.ban(spec, [Ban("recidive", network, now, now + 60)], now)
    assert lab.probe(client2, *UDP, 4, OPEN_TIMEOUT) == "refused"
    assert lab.probe(client2, *TCP, 4, OPEN_TIMEOUT) == "refused"
    assert_open(lab, client2, TCP, 6)
    assert_open(lab, client1, TCP, 4)


def test_port_lists_and_ranges(lab: Lab, firewall: Any, client1: Client) -> None:
    spec = BlockSpec("sip", ports=("5000-5001", "ssh", *map(str, range(100, 115))), protocol="udp")
    firewall.setup(spec)
    now = time.time()
    firewall.ban(spec, bans_of(client1, now=now), now)
    assert_open(lab, client1, UDP, 4)  # 5060 is not one of the ports
    firewall.setup(BlockSpec("sip", ports=("5060",), protocol="udp"))  # the jail changed
    assert_dropped(lab, client1, UDP, 4)
    assert_dropped(lab, client1, UDP, 6)


def test_double_ban_and_absent_unban_are_harmless(
    lab: Lab, firewall: Any, client1: Client, client2: Client
) -> None:
    firewall.setup(SSH)
    firewall.setup(SSH)
    now = time.time()
    firewall.ban(SSH, [Ban("test", client1.ipv4, now, now + 60)], now)
    firewall.ban(SSH, [Ban("test", client1.ipv4, now, None)] * 2, now)
    firewall.unban(SSH, [client2.ipv4, client2.ipv6])
    assert firewall.banned(SSH) == {client1.ipv4}
    assert sum("-j gardien-test" in r or "-j f2b-test" in r for r in rules(lab)) == 1
    firewall.unban(SSH, [client1.ipv4])
    firewall.unban(SSH, [client1.ipv4])
    assert firewall.banned(SSH) == set()
    assert_open(lab, client1, TCP, 4)


def test_banned_lists_addresses_and_networks_of_both_families(firewall: Any) -> None:
    firewall.setup(SSH)
    now = time.time()
    network = ipaddress.ip_network("203.0.113.0/24")
    bans = [
        Ban("test", ipaddress.ip_address("192.0.2.100"), now, now + 600),
        Ban("test", ipaddress.ip_address("2001:db8:ff::1"), now, None),
        Ban("test", network, now, now + 600),
        Ban("test", ipaddress.ip_network("2001:db8:aa::/48"), now, now + 600),
        Ban("test", ipaddress.ip_network("192.0.2.200/32"), now, now + 600),  # an address
        Ban("test", ipaddress.ip_address("192.0.2.101"), now - 10, now - 1),  # already over
    ]
    firewall.ban(SSH, bans, now)
    assert firewall.banned(SSH) == {
        ipaddress.ip_address("192.0.2.100"),
        ipaddress.ip_address("2001:db8:ff::1"),
        network,
        ipaddress.ip_network("2001:db8:aa::/48"),
        ipaddress.ip_address("192.0.2.200"),
    }
    firewall.unban(SSH, [network, ipaddress.ip_network("192.0.2.200/32")])
    assert len(firewall.banned(SSH)) == 3
    assert firewall.banned(BlockSpec("other")) == set()


def test_the_jump_comes_before_an_existing_accept(lab: Lab, firewall: Any, client1: Client) -> None:
    for tool in ("iptables", "ip6tables"):
        lab.run(lab.server, tool, "-A", "INPUT", "-j", "ACCEPT")
    firewall.setup(SSH)
    now = time.time()
    firewall.ban(SSH, bans_of(client1, now=now), now)
    for family in (4, 6):
        assert_dropped(lab, client1, TCP, family)
    assert rules(lab, "iptables", "INPUT")[1].endswith(f"-j {firewall.chain(SSH)}")


def test_teardown_leaves_nothing(lab: Lab, firewall: Any, client1: Client) -> None:
    before = rules(lab, "iptables"), rules(lab, "ip6tables")
    firewall.setup(SSH)
    now = time.time()
    firewall.ban(SSH, bans_of(client1, now=now), now)
    firewall.teardown(SSH)
    assert (rules(lab, "iptables"), rules(lab, "ip6tables")) == before
    assert lab.run(lab.server, "ipset", "list", "-n").stdout == ""
    assert_open(lab, client1, TCP, 4)
    firewall.teardown(SSH)  # harmless when there is nothing left


def test_teardown_keeping_bans_and_setup_again(lab: Lab, firewall: Any, client1: Client) -> None:
    firewall.setup(SSH)
    now = time.time()
    firewall.ban(SSH, bans_of(client1, now=now), now)
    firewall.teardown(SSH, keep_bans=True)
    assert_open(lab, client1, TCP, 4)
    assert firewall.banned(SSH) == {client1.ipv4, client1.ipv6}
    firewall.setup(SSH)
    assert_dropped(lab, client1, TCP, 6)


# ---- conntrack --------------------------------------------------------------------------


def test_an_established_udp_flow_passes_a_ban_until_forgotten(
    lab: Lab, firewall: Any, prefix: tuple[str, ...], client1: Client, client2: Client
) -> None:
    sip = BlockSpec("sip", ports=("5060",), protocol="udp")
    firewall.setup(sip)
    accept_established_first(lab)
    scanner = sip_scanner(lab, client1)
    try:
        assert answered(scanner, OPEN_TIMEOUT)
        now = time.time()
        firewall.ban(sip, [Ban("sip", client1.ipv4, now, now + 600)], now)
        assert answered(scanner, OPEN_TIMEOUT), "the established flow passes the ban"
        assert forget_connections([client1.ipv4], command_prefix=prefix) >= 1
        assert not answered(scanner, DROP_TIMEOUT)
        assert forget_connections([client2.ipv4, client2.ipv6], command_prefix=prefix) == 0
    finally:
        scanner.close()


def test_backends_forget_connections_on_ban(
    lab: Lab, prefix: tuple[str, ...], client1: Client
) -> None:
    sip = BlockSpec("sip", ports=("5060",), protocol="udp")
    for backend in BACKENDS.values():
        firewall = backend(command_prefix=prefix)
        firewall.setup(sip)
        accept_established_first(lab)
        scanner = sip_scanner(lab, client1)
        try:
            assert answered(scanner, OPEN_TIMEOUT)
            now = time.time()
            firewall.ban(sip, [Ban("sip", client1.ipv4, now, now + 600)], now)
            assert not answered(scanner, DROP_TIMEOUT), backend.name
        finally:
            scanner.close()
            firewall.teardown(sip)
            lab.run(lab.server, "iptables", "-F", "INPUT")


# ---- ipset ------------------------------------------------------------------------------


def test_ipset_timeout_ends_the_ban_in_the_kernel(
    lab: Lab, prefix: tuple[str, ...], client1: Client
) -> None:
    firewall = IpsetFirewall(command_prefix=prefix, forget_connections=False)
    firewall.setup(SSH)
    now = time.time()
    firewall.ban(SSH, [*bans_of(client1, 1, now=now), Ban("test", client1.ipv6, now, None)], now)
    assert_dropped(lab, client1, TCP, 4)
    deadline = time.monotonic() + 10
    while not lab.reachable(client1, *TCP, 4, timeout=DROP_TIMEOUT):
        assert time.monotonic() < deadline, "the ban did not expire"
    assert firewall.banned(SSH) == {client1.ipv6}
    assert_dropped(lab, client1, TCP, 6)


def test_ipset_objects_and_timeouts(lab: Lab, prefix: tuple[str, ...]) -> None:
    firewall = IpsetFirewall(command_prefix=prefix, forget_connections=False)
    firewall.setup(SSH)
    now = 1_000_000.0
    a, b = ipaddress.ip_address("192.0.2.7"), ipaddress.ip_address("192.0.2.8")
    c = ipaddress.ip_address("2001:db8::7")
    firewall.ban(SSH, [Ban("test", a, now, now + 600), Ban("test", b, now, None),
                       Ban("test", c, now, now + 10**8)], now)  # fmt: skip
    saved = lab.run(lab.server, "ipset", "list", "-output", "save").stdout
    assert "create gardien-test hash:net family inet " in saved
    assert "create gardien6-test hash:net family inet6 " in saved
    assert saved.count("maxelem 1048576") == 2
    assert f"add gardien-test {b} timeout 0" in saved
    assert f"add gardien6-test {c} timeout 0" in saved  # beyond ipset's longest timeout
    timeout = int(saved.split(f"add gardien-test {a} timeout ")[1].split()[0])
    assert 590 <= timeout <= 600
    assert rules(lab, "iptables", "gardien-test")[1:] == [
        "-A gardien-test -p tcp -m multiport --dports 22 -m set --match-set gardien-test src"
        " -j DROP",
        "-A gardien-test -j RETURN",
    ]
    assert "-A INPUT -j gardien-test" in rules(lab, "iptables", "INPUT")
    assert "-A INPUT -j gardien-test" in rules(lab, "ip6tables", "INPUT")


def test_long_names_are_shortened_with_a_hash(
    lab: Lab, prefix: tuple[str, ...], client1: Client
) -> None:
    firewall = IpsetFirewall(command_prefix=prefix, forget_connections=False)
    first = BlockSpec("a-very-long-jail-name-for-asterisk-one", protocol="all")
    second = BlockSpec("a-very-long-jail-name-for-asterisk-two", protocol="all")
    assert len(firewall.set_name(first, 6)) == 31
    assert len(firewall.chain(first)) == 28
    assert firewall.set_name(first, 6) != firewall.set_name(second, 6)
    firewall.setup(first)
    firewall.setup(second)
    now = time.time()
    firewall.ban(first, [Ban("x", client1.ipv6, now, now + 60)], now)
    assert firewall.banned(first) == {client1.ipv6}
    assert firewall.banned(second) == set()
    assert_dropped(lab, client1, TCP, 6)
    assert object_name("gardien-", "odd name", 28) != object_name("gardien-", "odd_name", 28)


# ---- iptables ---------------------------------------------------------------------------


def test_iptables_layout_is_fail2bans(lab: Lab, prefix: tuple[str, ...]) -> None:
    firewall = IptablesFirewall(command_prefix=prefix, forget_connections=False)
    firewall.setup(SSH)
    now = time.time()
    a, b = ipaddress.ip_address("192.0.2.7"), ipaddress.ip_address("192.0.2.8")
    c = ipaddress.ip_address("2001:db8::7")
    firewall.ban(SSH, [Ban("test", a, now, now + 60), Ban("test", b, now, None)], now)
    firewall.ban(SSH, [Ban("test", c, now, None)], now)
    assert rules(lab)[3:] == [
        "-N f2b-test",
        "-A INPUT -p tcp -m multiport --dports 22 -j f2b-test",
        f"-A f2b-test -s {b}/32 -j DROP",
        f"-A f2b-test -s {a}/32 -j DROP",
        "-A f2b-test -j RETURN",
    ]
    assert f"-A f2b-test -s {c}/128 -j DROP" in rules(lab, "ip6tables")
    firewall.setup(SSH)  # again: the bans stay, the jump is not doubled
    assert sum(rule.endswith("-j f2b-test") for rule in rules(lab)) == 1
    assert firewall.banned(SSH) == {a, b, c}


def test_replace_keeps_exactly_the_given_bans(
    lab: Lab, firewall: Any, client1: Client, client2: Client
) -> None:
    spec = BlockSpec("restore", ports=None, protocol="all")
    firewall.setup(spec)
    now = time.time()
    leftover = ipaddress.ip_address("198.51.100.250")
    firewall.ban(spec, [Ban("restore", leftover, now, now + 600), *bans_of(client2, now=now)], now)
    wanted = bans_of(client1, now=now)
    firewall.replace(spec, wanted, now)
    assert firewall.banned(spec) == {ban.address for ban in wanted}
    assert not lab.reachable(client1, "tcp", 22, 4)
    assert lab.reachable(client2, "tcp", 22, 4)

"""The nftables backend on the real kernel, in network namespaces (tests/support/netns.py): packets of
a banned client are dropped or rejected, others pass, timeouts end bans by themselves.

The backend runs in a worker process inside the server namespace, so the host's firewall is
never touched. Expected-open probes get a long timeout (a loaded machine is slow to answer);
expected-dropped ones a short one (a drop never answers, however long we wait).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Iterator

import pytest

from gardien.backends import nftables
from gardien.backends.base import BlockSpec
from gardien.backends.nftables import NftablesFirewall, _ports, _rules
from gardien.errors import BackendError, ConfigError
from gardien.model import Address, Ban
from support.ci import require
from support.netns import (
    DROP_TIMEOUT,
    OPEN_TIMEOUT,
    Client,
    Lab,
    RemoteObject,
    assert_dropped,
    assert_open,
    bans_of,
    netns_available,
)

UDP, TCP = ("udp", 5060), ("tcp", 22)


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    try:
        nftables._Library.get()
    except BackendError as error:
        require(False, str(error))
    with Lab.create(clients=2) as built:
        yield built


@pytest.fixture
def firewall(lab: Lab) -> Iterator[RemoteObject]:
    """A fresh NftablesFirewall in the server namespace; the table is removed afterwards."""
    remote = lab.server_python.new("gardien.backends.nftables:NftablesFirewall")
    yield remote
    remote.remove_table()
    remote.close()


@pytest.fixture
def client1(lab: Lab) -> Client:
    return lab.clients[0]


@pytest.fixture
def client2(lab: Lab) -> Client:
    return lab.clients[1]


def ruleset(lab: Lab) -> list[dict[str, object]]:
    output = lab.run(lab.server, "nft", "-j", "list", "ruleset").stdout
    items: list[dict[str, object]] = json.loads(output)["nftables"]
    return [item for item in items if "metainfo" not in item]


# ---- blocking -------------------------------------------------------------------------


def test_ban_drops_only_the_jail_ports_of_the_banned_client(
    lab: Lab, firewall: RemoteObject, client1: Client, client2: Client
) -> None:
    spec = BlockSpec("asterisk", ports=("5060",), protocol="udp")
    firewall.setup(spec)
    for client in (client1, client2):
        for family in (4, 6):
            assert_open(lab, client, UDP, family)
            assert_open(lab, client, TCP, family)

    firewall.ban(spec, bans_of(client1, now=time.time()), time.time())
    for family in (4, 6):
        assert_dropped(lab, client1, UDP, family)
        assert_open(lab, client1, TCP, family)  # not one of the jail's ports
        assert_open(lab, client2, UDP, family)
        assert_open(lab, client2, TCP, family)

    firewall.unban(spec, [client1.ipv4, client1.ipv6])
    for family in (4, 6):
        assert_open(lab, client1, UDP, family)


def test_service_names_and_port_lists(lab: Lab, firewall: RemoteObject, client1: Client) -> None:
    spec = BlockSpec("sshd", ports=("ssh,http", "5000:5001"), protocol="tcp")
    firewall.setup(spec)
    firewall.ban(spec, bans_of(client1, now=time.time()), time.time())
    for family in (4, 6):
        assert_dropped(lab, client1, TCP, family)
        assert_open(lab, client1, UDP, family)


def test_all_ports_all_protocols(
    lab: Lab, firewall: RemoteObject, client1: Client, client2: Client
) -> None:
    spec = BlockSpec("recidive", ports=None, protocol="all")
    firewall.setup(spec)
    firewall.ban(spec, bans_of(client1, None, now=time.time()), time.time())
    for family in (4, 6):
        assert_dropped(lab, client1, TCP, family)
        assert_dropped(lab, client1, UDP, family)
        assert_open(lab, client2, TCP, family)


def test_reject_answers_at_once(lab: Lab, firewall: RemoteObject, client1: Client) -> None:
    spec = BlockSpec("recidive", ports=None, protocol="all", blocktype="reject")
    firewall.setup(spec)
    firewall.ban(spec, bans_of(client1, now=time.time()), time.time())
    for family in (4, 6):
        for target in (TCP, UDP):  # TCP reset; ICMP port unreachable
            started = time.monotonic()
            assert lab.probe(client1, *target, family, OPEN_TIMEOUT) == "refused"
            assert time.monotonic() - started < OPEN_TIMEOUT / 2


def test_a_ban_ends_by_itself(lab: Lab, firewall: RemoteObject, client1: Client) -> None:
    spec = BlockSpec("sshd", ports=("22",))
    firewall.setup(spec)
    now = time.time()
    firewall.ban(spec, bans_of(client1, 2, now=now), now)
    assert_dropped(lab, client1, TCP, 4)
    deadline = time.monotonic() + 10
    while not lab.reachable(client1, *TCP, 4, timeout=DROP_TIMEOUT):
        assert time.monotonic() < deadline, "the ban did not expire"
    assert time.time() - now >= 1.5  # ceil(2 s) at least, less the probe's own imprecision
    assert_open(lab, client1, TCP, 6)
    assert firewall.banned(spec) == set()


# ---- bookkeeping ----------------------------------------------------------------------


def test_banned_lists_addresses_and_networks(firewall: RemoteObject) -> None:
    spec = BlockSpec("sshd", ports=("ssh",))
    firewall.setup(spec)
    now = time.time()
    network = ipaddress.ip_network("203.0.113.0/24")
    single = ipaddress.ip_network("192.0.2.200/32")  # a /32 is an address
    bans = [
        Ban("sshd", ipaddress.ip_address("192.0.2.100"), now, now + 600),
        Ban("sshd", ipaddress.ip_address("2001:db8:ff::1"), now, None),
        Ban("sshd", network, now, now + 600),
        Ban("sshd", ipaddress.ip_network("2001:db8:aa::/48"), now, now + 600),
        Ban("sshd", single, now, now + 600),
        Ban("sshd", ipaddress.ip_address("192.0.2.101"), now - 10, now - 1),  # already over
    ]
    firewall.ban(spec, bans, now)
    assert firewall.banned(spec) == {
        ipaddress.ip_address("192.0.2.100"),
        ipaddress.ip_address("2001:db8:ff::1"),
        network,
        ipaddress.ip_network("2001:db8:aa::/48"),
        ipaddress.ip_address("192.0.2.200"),
    }
    firewall.unban(spec, [network, single])
    assert network not in firewall.banned(spec)


@pytest.mark.parametrize("kernel_updates_timeouts", [None, False])
def test_banning_twice_updates_and_unbanning_absent_is_harmless(
    lab: Lab, firewall: RemoteObject, client1: Client, kernel_updates_timeouts: bool | None
) -> None:
    """Also as on kernels before 6.10 (``False``: delete and add again), whatever this one is."""
    firewall.remote_setattr("_timeout_update", kernel_updates_timeouts)
    spec = BlockSpec("sshd", ports=("22",))
    firewall.setup(spec)
    firewall.setup(spec)  # idempotent, keeps one rule per set
    now = time.time()
    firewall.ban(spec, [Ban("sshd", client1.ipv4, now, now + 60)], now)
    firewall.ban(spec, [Ban("sshd", client1.ipv4, now, now + 7200)], now)
    firewall.ban(spec, [Ban("sshd", client1.ipv4, now, now + 7200)] * 2, now)  # twice in a batch
    assert_dropped(lab, client1, TCP, 4)
    elements = [
        element
        for item in ruleset(lab)
        if isinstance(set_ := item.get("set"), dict) and set_["name"] == "sshd-v4"
        for element in set_.get("elem", [])
    ]
    assert len(elements) == 1
    assert elements[0]["elem"]["timeout"] == 7200
    rules = [item for item in ruleset(lab) if "rule" in item]
    assert len(rules) == 4  # addresses and networks, IPv4 and IPv6

    absent = [ipaddress.ip_address("192.0.2.250"), ipaddress.ip_network("2001:db8:bb::/48")]
    firewall.unban(spec, absent)
    firewall.unban(spec, [client1.ipv4, client1.ipv4])
    firewall.unban(spec, [client1.ipv4])
    firewall.unban(spec, [])
    firewall.ban(spec, [], now)
    assert firewall.banned(spec) == set()


def test_teardown_leaves_nothing_of_the_jail(
    lab: Lab, firewall: RemoteObject, client1: Client
) -> None:
    other = BlockSpec("other", ports=None, protocol="all")
    spec = BlockSpec("sshd", ports=("22",), chain="FORWARD")
    firewall.setup(other)
    firewall.setup(spec)
    chains = [item["chain"] for item in ruleset(lab) if "chain" in item]
    hooks = {chain["name"]: chain["hook"] for chain in chains}  # type: ignore[index]
    assert hooks == {"other": "input", "sshd": "forward"}
    firewall.ban(spec, bans_of(client1, now=time.time()), time.time())

    firewall.teardown(spec)
    firewall.teardown(spec)  # harmless when gone
    text = json.dumps(ruleset(lab))
    assert "sshd" not in text
    assert '"other"' in text  # another jail is untouched


def test_the_last_teardown_removes_the_table(lab: Lab, firewall: RemoteObject) -> None:
    first, second = BlockSpec("first", ports=("22",)), BlockSpec("second", ports=None)
    firewall.setup(first)
    firewall.setup(second)
    firewall.ban(
        second, [Ban("second", ipaddress.ip_address("192.0.2.99"), time.time(), None)], time.time()
    )
    firewall.teardown(first)
    assert "table inet gardien" in lab.run(lab.server, "nft", "list", "tables").stdout
    firewall.teardown(second)
    assert lab.run(lab.server, "nft", "list", "ruleset").stdout.strip() == ""
    firewall.teardown(second)  # harmless once the table is gone
    firewall.setup(first)  # and a later setup makes it again
    assert "table inet gardien" in lab.run(lab.server, "nft", "list", "tables").stdout


def test_teardown_keeping_bans(lab: Lab, firewall: RemoteObject, client1: Client) -> None:
    spec = BlockSpec("sshd", ports=("22",))
    firewall.setup(spec)
    firewall.ban(spec, bans_of(client1, now=time.time()), time.time())
    firewall.teardown(spec, keep_bans=True)
    assert not [item for item in ruleset(lab) if "chain" in item]
    # the table stays, holding the sets: the bans stay in the kernel on purpose
    assert "table inet gardien" in lab.run(lab.server, "nft", "list", "tables").stdout
    assert firewall.banned(spec) == {client1.ipv4, client1.ipv6}
    assert_open(lab, client1, TCP, 4)  # kept, but nothing hooks the sets
    firewall.setup(spec)
    assert_dropped(lab, client1, TCP, 4)


def test_a_batch_is_one_transaction(lab: Lab, firewall: RemoteObject, client1: Client) -> None:
    spec = BlockSpec("sshd", ports=None, protocol="all")
    firewall.setup(spec)
    now = time.time()
    firewall.ban(spec, [Ban("sshd", ipaddress.ip_network("203.0.113.0/24"), now, now + 600)], now)
    overlapping = Ban("sshd", ipaddress.ip_network("203.0.113.128/25"), now, now + 600)
    with pytest.raises(BackendError, match="overlaps"):
        firewall.ban(spec, [*bans_of(client1, now=now), overlapping], now)
    assert firewall.banned(spec) == {ipaddress.ip_network("203.0.113.0/24")}
    assert_open(lab, client1, TCP, 4)


def test_a_set_holds_100k_addresses(lab: Lab, firewall: RemoteObject, client1: Client) -> None:
    """Beyond the kernel's default set size of 65,536."""
    spec = BlockSpec("big", ports=None, protocol="all")
    firewall.setup(spec)
    now = time.time()
    base = ipaddress.ip_address("2001:db8:100::")
    addresses: list[Address] = [base + i for i in range(100_000)]
    for start in range(0, len(addresses), 25_000):
        chunk = addresses[start : start + 25_000]
        firewall.ban(spec, [Ban("big", a, now, now + 600) for a in chunk], now)
    firewall.ban(spec, bans_of(client1, now=now), now)
    assert_dropped(lab, client1, TCP, 6)
    assert len(firewall.banned(spec)) == 100_002


def test_docker_user_needs_iptables(firewall: RemoteObject) -> None:
    with pytest.raises(BackendError, match="iptables"):
        firewall.setup(BlockSpec("web", chain="DOCKER-USER"))


def test_errors_carry_nft_text(firewall: RemoteObject) -> None:
    with pytest.raises(BackendError, match=r"nftables: .*No such file or directory"):
        firewall.run([{"delete": {"table": {"family": "inet", "name": "absent"}}}])


# ---- without a kernel: rules, ports, the library --------------------------------------


def test_ports_are_resolved_and_validated() -> None:
    assert _ports(None, ("tcp",)) is None
    assert _ports(("ssh", "80,443", "5060:5070", "6000-6001", "8080:8080"), ("tcp",)) == {
        "set": [22, 80, 443, {"range": [5060, 5070]}, {"range": [6000, 6001]}, 8080]
    }
    assert _ports(("sip",), ("udp",)) == {"set": [5060]}
    for bad in ("nosuchservice", "70000", "0", "5070:5060", "ssh;drop"):
        with pytest.raises(ConfigError):
            _ports((bad,), ("tcp",))


def test_rules_for_each_protocol_and_blocktype() -> None:
    drop = _rules(BlockSpec("j", ports=("22",), protocol="tcp"))
    assert drop == [
        [
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "th", "field": "dport"}},
                    "right": {"set": [22]},
                }
            },
            {"drop": None},
        ]
    ]
    everything = _rules(BlockSpec("j", ports=None, protocol="all"))
    assert everything == [[{"drop": None}]]
    ports_any_protocol = _rules(BlockSpec("j", ports=("5060",), protocol="all"))
    assert ports_any_protocol[0][0]["match"]["right"] == {"set": ["tcp", "udp", "sctp", "udplite"]}
    reject = _rules(BlockSpec("j", ports=None, protocol="tcp,udp", blocktype="reject"))
    assert [rule[-1] for rule in reject] == [
        {"reject": {"type": "tcp reset"}},
        {"reject": {"type": "icmpx", "expr": "port-unreachable"}},
    ]
    for bad in (BlockSpec("j", protocol="icmp"), BlockSpec("j", blocktype="tarpit")):
        with pytest.raises(ConfigError):
            _rules(bad)


def test_a_missing_library_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nftables, "_LIBRARY", "libnftables-missing.so.0")
    monkeypatch.setattr(nftables._Library, "_loaded", None)
    with pytest.raises(BackendError, match="libnftables1"):
        NftablesFirewall()


def test_addresses_are_validated() -> None:
    with pytest.raises(BackendError):
        nftables._address("192.0.2.1; flush ruleset")
    with pytest.raises(ConfigError):
        nftables._check_name("sshd; flush ruleset")


def test_replace_makes_the_sets_hold_exactly_the_given_bans(
    lab: Lab, firewall: RemoteObject, client1: Client, client2: Client
) -> None:
    spec = BlockSpec("restore", ports=None, protocol="all")
    firewall.setup(spec)
    now = time.time()
    leftover = ipaddress.ip_address("198.51.100.250")
    firewall.ban(spec, [Ban("restore", leftover, now, now + 600), *bans_of(client2, now=now)], now)
    wanted = bans_of(client1, now=now)
    firewall.replace(spec, wanted, now)
    assert firewall.banned(spec) == {ban.address for ban in wanted}
    assert_dropped(lab, client1, ("tcp", 22), 4)
    assert_open(lab, client2, ("tcp", 22), 4)
    firewall.replace(spec, [], now)
    assert firewall.banned(spec) == set()
    assert_open(lab, client1, ("tcp", 22), 4)


def test_an_established_udp_flow_is_cut_by_a_ban(
    lab: Lab, firewall: RemoteObject, client1: Client
) -> None:
    """fail2ban issues #2503, #3351: an ESTABLISHED accept rule let a banned SIP flow on. The
    gardien chain runs before the filter chains, and the ban forgets the flow as well."""
    from support.flows import accept_established_first, answered, sip_scanner
    from support.netns import DROP_TIMEOUT as SHORT
    from support.netns import OPEN_TIMEOUT as LONG

    sip = BlockSpec("sipflow", ports=("5060",), protocol="udp")
    firewall.setup(sip)
    accept_established_first(lab)
    scanner = sip_scanner(lab, client1)
    try:
        assert answered(scanner, LONG)
        now = time.time()
        firewall.ban(sip, [Ban("sipflow", client1.ipv4, now, now + 600)], now)
        assert not answered(scanner, SHORT)
    finally:
        scanner.close()
        firewall.teardown(sip)
        lab.run(lab.server, "iptables", "-F", "INPUT")

"""``ignoreip`` and ``ignoreself``: addresses, networks, host names, own addresses."""

from __future__ import annotations

import ipaddress

import pytest

from gardien.clock import FakeClock
from gardien.config.values import parse_spec
from gardien.errors import ConfigError
from gardien.jails import IgnoreList
from gardien.settings import JailSettings


class Resolver:
    """A DNS stand-in that answers from a table and counts the questions."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, name: str) -> list[str]:
        self.asked.append(name)
        if name not in self.table:
            raise OSError(f"unknown host {name}")
        return self.table[name]


def ignore(*entries: str, **options: object) -> IgnoreList:
    options.setdefault("clock", FakeClock(1_000))
    return IgnoreList(entries, **options)  # type: ignore[arg-type]


def test_single_addresses_and_networks() -> None:
    ignored = ignore("192.0.2.7", "10.0.0.0/8", "127.0.0.1/8", ignoreself=False)
    assert ignored.contains("192.0.2.7") == "192.0.2.7 in ignoreip"
    assert ignored.contains("192.0.2.8") is None
    assert ignored.contains("10.255.0.1") == "10.0.0.0/8 in ignoreip"
    assert ignored.contains("127.3.2.1") == "127.0.0.1/8 in ignoreip"  # host bits allowed
    assert ignored.contains("11.0.0.1") is None
    assert ignored.contains(ipaddress.ip_address("10.1.2.3")) == "10.0.0.0/8 in ignoreip"


def test_netmask_notation() -> None:
    ignored = ignore("192.168.0.0/255.255.0.0", ignoreself=False)
    assert ignored.contains("192.168.44.1") == "192.168.0.0/255.255.0.0 in ignoreip"
    assert ignored.contains("192.169.0.1") is None


def test_ipv6_addresses_and_networks() -> None:
    ignored = ignore("2001:db8::/32", "[2001:db9::5]", ignoreself=False)
    assert ignored.contains("2001:db8:1:2::3") == "2001:db8::/32 in ignoreip"
    assert ignored.contains("2001:DB9:0::5") == "[2001:db9::5] in ignoreip"
    assert ignored.contains("2001:db9::6") is None
    # an IPv4 network never covers an IPv6 address, nor the reverse
    assert ignore("0.0.0.0/0", ignoreself=False).contains("::2") is None
    assert ignore("::/0", ignoreself=False).contains("192.0.2.1") is None


def test_ipv4_mapped_ipv6_is_compared_as_ipv4() -> None:
    ignored = ignore("192.0.2.0/24", ignoreself=False)
    assert ignored.contains("::ffff:192.0.2.9") == "192.0.2.0/24 in ignoreip"
    mapped = ipaddress.IPv6Address("::ffff:192.0.2.9")
    assert ignored.contains(mapped) == "192.0.2.0/24 in ignoreip"
    # and an entry written as mapped IPv6 covers the IPv4 addresses
    ignored = ignore("::ffff:198.51.100.0/120", "::ffff:203.0.113.5", ignoreself=False)
    assert ignored.contains("198.51.100.200") == "::ffff:198.51.100.0/120 in ignoreip"
    assert ignored.contains("203.0.113.5") == "::ffff:203.0.113.5 in ignoreip"
    assert ignored.contains("198.51.101.1") is None


def test_a_network_is_ignored_only_if_wholly_inside() -> None:
    ignored = ignore("10.0.0.0/8", ignoreself=False)
    assert ignored.contains("10.1.0.0/16") == "10.0.0.0/8 in ignoreip"
    assert ignored.contains("10.0.0.0/7") is None


def test_host_names_are_resolved_and_cached_for_the_ttl() -> None:
    clock = FakeClock(1_000)
    dns = Resolver({"gw.example.org": ["192.0.2.1", "2001:db8::1"]})
    ignored = ignore("gw.example.org", clock=clock, resolve=dns, ttl=300, ignoreself=False)
    assert ignored.contains("192.0.2.1") == "gw.example.org in ignoreip"
    assert ignored.contains("2001:db8::1") == "gw.example.org in ignoreip"
    assert ignored.contains("192.0.2.2") is None
    assert dns.asked == ["gw.example.org"]
    clock.advance(299)
    dns.table["gw.example.org"] = ["192.0.2.2"]
    assert ignored.contains("192.0.2.1") == "gw.example.org in ignoreip"  # still cached
    clock.advance(1)
    assert ignored.contains("192.0.2.1") is None
    assert ignored.contains("192.0.2.2") == "gw.example.org in ignoreip"
    assert dns.asked == ["gw.example.org", "gw.example.org"]


def test_a_host_name_that_does_not_resolve_matches_nothing_until_the_ttl() -> None:
    clock = FakeClock(0)
    dns = Resolver({})
    ignored = ignore("gone.example.org", clock=clock, resolve=dns, ttl=60, ignoreself=False)
    assert ignored.contains("192.0.2.1") is None
    assert ignored.contains("192.0.2.1") is None
    assert dns.asked == ["gone.example.org"]  # the failure is cached too
    dns.table["gone.example.org"] = ["192.0.2.1"]
    clock.advance(60)
    assert ignored.contains("192.0.2.1") == "gone.example.org in ignoreip"


def test_without_a_resolver_host_names_match_nothing() -> None:
    assert ignore("gw.example.org", ignoreself=False).contains("192.0.2.1") is None


def test_ignoreself_covers_loopback_and_own_addresses() -> None:
    clock = FakeClock(0)
    own = Resolver({"self": ["198.51.100.4", "2001:db8::4"]})
    ignored = ignore(clock=clock, own_addresses=lambda: own("self"), ttl=300)
    assert ignored.contains("127.0.0.1") == "own address"
    assert ignored.contains("::1") == "own address"
    assert ignored.contains("198.51.100.4") == "own address"
    assert ignored.contains("2001:db8::4") == "own address"
    assert ignored.contains("198.51.100.5") is None
    assert own.asked == ["self"]
    # own addresses change (DHCP): seen after the ttl
    own.table["self"] = ["198.51.100.5"]
    clock.advance(300)
    assert ignored.contains("198.51.100.5") == "own address"
    assert ignored.contains("198.51.100.4") is None


def test_ignoreself_off_ignores_not_even_loopback() -> None:
    ignored = ignore(ignoreself=False, own_addresses=lambda: ["198.51.100.4"])
    assert ignored.contains("127.0.0.1") is None
    assert ignored.contains("198.51.100.4") is None


def test_own_address_wins_over_ignoreip() -> None:
    assert ignore("127.0.0.0/8").contains("127.0.0.1") == "own address"
    assert ignore("127.0.0.0/8").contains("127.0.0.2") == "127.0.0.0/8 in ignoreip"


def test_non_addresses_are_not_ignored() -> None:
    assert ignore("10.0.0.0/8").contains("not-an-address") is None


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.0/33", "300.1.1.1", "192.0.2.1/abc", "2001:db8::g", "foo bar", "-bad.example", "a/b"],
)
def test_invalid_entries_are_refused_by_name(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ignore(entry)
    assert repr(entry) in str(caught.value)
    assert caught.value.option == "ignoreip"


def test_errors_from_settings_name_the_jail() -> None:
    settings = JailSettings(
        name="sshd",
        enabled=True,
        filter=parse_spec("sshd"),
        actions=(),
        logpath=(),
        ignoreip=("127.0.0.1/8", "10.0.0.0/40"),
        path="/etc/gardien/jail.local",
    )
    with pytest.raises(ConfigError) as caught:
        IgnoreList.from_settings(settings, clock=FakeClock())
    assert str(caught.value).startswith("/etc/gardien/jail.local: [sshd] ignoreip: '10.0.0.0/40'")


def test_entries_are_added_and_removed_at_run_time() -> None:
    ignored = ignore("10.0.0.0/8", ignoreself=False)
    assert ignored.add("192.0.2.7")
    assert not ignored.add("192.0.2.7")  # already there
    assert not ignored.add("10.0.0.1/8")  # the same network, written otherwise
    assert not ignored.add("  ")
    assert list(ignored.entries) == ["10.0.0.0/8", "192.0.2.7"]
    assert ignored.contains("192.0.2.7") == "192.0.2.7 in ignoreip"
    assert ignored.remove("10.9.9.9/8")  # by meaning, not by spelling
    assert not ignored.remove("10.0.0.0/8")
    assert ignored.contains("10.0.0.1") is None
    assert ignored.entries == ("192.0.2.7",)
    with pytest.raises(ConfigError):
        ignored.add("10.0.0.0/99")


def test_removing_a_host_name_forgets_its_addresses() -> None:
    dns = Resolver({"gw.example.org": ["192.0.2.1"]})
    ignored = ignore("GW.example.org.", resolve=dns, ignoreself=False)
    assert ignored.contains("192.0.2.1") == "GW.example.org. in ignoreip"
    assert ignored.remove("gw.example.org")
    assert ignored.contains("192.0.2.1") is None
    assert ignored.entries == ()

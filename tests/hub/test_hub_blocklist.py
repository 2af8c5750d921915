"""The hub's blocklist formats: aggregation is exact, and the nft and ipset scripts load into
the real kernel (in a throw-away network namespace), again and again."""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.hub.blocklist import FORMATS, aggregate, render, render_delta
from support.ci import require
from support.netns import netns_available


def text(fmt: str, addresses: list[str], cursor: int = 7) -> str:
    return "".join(render(fmt, addresses, cursor))


def random_addresses(count: int, seed: int = 3) -> list[str]:
    """Public-looking IPv4 and IPv6 addresses, a third of them in runs of neighbours."""
    generator = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        if generator.random() < 0.85:
            base = ipaddress.IPv4Address(
                generator.choice([0x0B000000, 0x5DB80000, 0xC6336400]) + generator.getrandbits(16)
            )
            for offset in range(generator.choice([1, 1, 2, 3, 8])):
                found.add(str(base + offset))
        else:
            found.add(str(ipaddress.IPv6Address((0x2A00_1450 << 96) | generator.getrandbits(20))))
    return sorted(found)


def covered(blocks: list[str]) -> set[int]:
    out: set[int] = set()
    for block in blocks:
        network = ipaddress.ip_network(block)
        out.update(range(int(network.network_address), int(network.broadcast_address) + 1))
    return out


# ---- aggregation -------------------------------------------------------------------------


def test_aggregate_collapses_neighbours_and_keeps_lone_addresses_bare() -> None:
    v4, v6 = aggregate(
        [
            "192.0.2.1",
            "192.0.2.0",
            "192.0.2.3",
            "192.0.2.2",
            "192.0.2.4",
            "2001:db8::",
            "2001:db8::1",
        ]
    )
    assert v4 == ["192.0.2.0/30", "192.0.2.4"]
    assert v6 == ["2001:db8::/127"]


def test_aggregate_absorbs_addresses_inside_networks() -> None:
    v4, _ = aggregate(["10.0.0.0/8", "10.1.2.3", "11.0.0.0", "9.255.255.255"])
    assert v4 == ["9.255.255.255", "10.0.0.0/8", "11.0.0.0"]


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=300), max_size=120))
def test_aggregate_matches_ipaddress_collapse(offsets: set[int]) -> None:
    base = int(ipaddress.IPv4Address("198.51.100.0"))
    addresses = [str(ipaddress.IPv4Address(base + o)) for o in offsets]
    v4, v6 = aggregate(addresses)
    expected = [
        n.with_prefixlen if n.prefixlen < 32 else str(n.network_address)
        for n in ipaddress.collapse_addresses(ipaddress.IPv4Address(a) for a in addresses)
    ]
    assert v4 == expected and v6 == []
    assert covered(v4) == {base + o for o in offsets}


def test_every_format_of_an_empty_list_is_valid() -> None:
    assert text("plain", []) == "" and text("cidr", []) == ""
    assert json.loads(text("json", [])) == {"cursor": 7, "addresses": []}
    assert "flush set inet gardien_hub hub4" in text("nft", [])
    assert "swap gardien-hub4-new gardien-hub4" in text("ipset", [])


def test_plain_and_json_list_every_address() -> None:
    addresses = random_addresses(20_000)
    assert text("plain", addresses).splitlines() == addresses
    assert json.loads(text("json", addresses, 42)) == {"cursor": 42, "addresses": addresses}
    assert json.loads(render_delta(["192.0.2.1"], ["2001:db8::1"], 9)) == {
        "cursor": 9,
        "add": ["192.0.2.1"],
        "remove": ["2001:db8::1"],
        "reset": False,
    }
    assert json.loads(render_delta(["192.0.2.1"], [], 10, reset=True))["reset"] is True


def test_cidr_covers_exactly_the_addresses_with_fewer_lines() -> None:
    addresses = random_addresses(5_000)
    lines = text("cidr", addresses).splitlines()
    assert len(lines) < len(addresses)
    v4_lines = [line for line in lines if ":" not in line]
    assert covered(v4_lines) == {int(ipaddress.IPv4Address(a)) for a in addresses if ":" not in a}


def test_unknown_format_is_refused() -> None:
    assert "xml" not in FORMATS
    with pytest.raises(ValueError, match="unknown blocklist format"):
        render("xml", [])


# ---- the scripts, in the real kernel --------------------------------------------------------


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    """A network namespace of its own, so that the host's firewall is never touched."""
    ok, why = netns_available()
    require(ok, why)
    name = f"gardien-hubbl-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_in(namespace: str, *argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_nft_script_passes_nft_check_mode(tmp_path: Path) -> None:
    require(shutil.which("nft") is not None, "nft is not installed")
    script = tmp_path / "hub.nft"
    script.write_text(text("nft", random_addresses(6_000)))
    result = subprocess.run(["nft", "-c", "-f", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def nft_elements(namespace: str, name: str) -> set[int]:
    listing = json.loads(run_in(namespace, "nft", "-j", "list", "set", "inet", "gardien_hub", name))
    elements = next(item["set"] for item in listing["nftables"] if "set" in item).get("elem", [])
    blocks: list[str] = []
    for element in elements:
        if isinstance(element, str):
            blocks.append(element)
        elif "prefix" in element:
            blocks.append(f"{element['prefix']['addr']}/{element['prefix']['len']}")
        else:  # a range nft could not write as one prefix
            first, last = element["range"]
            blocks += [
                str(n)
                for n in ipaddress.summarize_address_range(
                    ipaddress.ip_address(first), ipaddress.ip_address(last)
                )
            ]
    return covered(blocks)


def test_nft_script_loads_and_reloads_in_the_kernel(namespace: str, tmp_path: Path) -> None:
    require(shutil.which("nft") is not None, "nft is not installed")
    first = random_addresses(3_000, seed=1)
    second = random_addresses(2_000, seed=2)
    # An administrator's rule referring to the sets must survive the reloads.
    run_in(namespace, "nft", "-f", "-", stdin=text("nft", first))
    run_in(
        namespace,
        "nft",
        "add chain inet gardien_hub input { type filter hook input priority -5; }; "
        "add rule inet gardien_hub input ip saddr @hub4 drop",
    )
    for addresses in (first, second):
        script = tmp_path / "hub.nft"
        script.write_text(text("nft", addresses))
        run_in(namespace, "nft", "-f", str(script))
        expected4 = {int(ipaddress.ip_address(a)) for a in addresses if ":" not in a}
        expected6 = {int(ipaddress.ip_address(a)) for a in addresses if ":" in a}
        assert nft_elements(namespace, "hub4") == expected4
        assert nft_elements(namespace, "hub6") == expected6
    assert "@hub4 drop" in run_in(namespace, "nft", "list", "chain", "inet", "gardien_hub", "input")


def ipset_members(namespace: str, name: str) -> set[int]:
    listing = run_in(namespace, "ipset", "list", name)
    members = listing.split("Members:\n", 1)[1].split()
    return covered(members)


def test_ipset_script_restores_and_restores_again(namespace: str) -> None:
    require(shutil.which("ipset") is not None, "ipset is not installed")
    for seed, count in ((1, 3_000), (2, 4_500), (3, 10)):
        addresses = random_addresses(count, seed=seed)
        run_in(namespace, "ipset", "restore", stdin=text("ipset", addresses))
        assert ipset_members(namespace, "gardien-hub4") == {
            int(ipaddress.ip_address(a)) for a in addresses if ":" not in a
        }
        assert ipset_members(namespace, "gardien-hub6") == {
            int(ipaddress.ip_address(a)) for a in addresses if ":" in a
        }
    names = run_in(namespace, "ipset", "list", "-n").split()
    assert sorted(names) == ["gardien-hub4", "gardien-hub6"]  # no temporary set left behind

"""Property tests of the counting window against brute-force references."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.clock import FakeClock
from gardien.jails import Jail
from gardien.model import Failure
from support.jails import settings as jail_settings

HOSTS = ["192.0.2.1", "2001:db8::1", "::ffff:198.51.100.7"]

# integer times keep "within findtime" exact on both sides of the comparison
times_of = st.lists(st.integers(0, 5_000).map(float), max_size=25).map(sorted)


def first_full_window(times: list[float], maxretry: int, findtime: float) -> float | None:
    """The time of the first failure that ends a run of ``maxretry`` failures spanning at
    most ``findtime`` seconds: every window is tried."""
    for end in range(len(times)):
        for start in range(end + 1):
            if end - start + 1 >= maxretry and times[end] - times[start] <= findtime:
                return times[end]
    return None


def interleave(per_host: dict[str, list[float]]) -> list[tuple[float, str]]:
    return sorted((at, host) for host, times in per_host.items() for at in times)


@settings(max_examples=200, deadline=None)
@given(
    per_host=st.fixed_dictionaries(dict.fromkeys(HOSTS, times_of)),
    maxretry=st.integers(1, 6),
    findtime=st.integers(1, 1_500).map(float),
)
def test_a_ban_happens_iff_some_window_holds_maxretry_failures(
    per_host: dict[str, list[float]], maxretry: int, findtime: float
) -> None:
    # permanent bans: each address is banned at most once, at the end of its first full window
    jail = Jail(jail_settings(maxretry=maxretry, findtime=findtime, bantime=-1), clock=FakeClock(0))
    banned_at: dict[str, float] = {}
    for at, host in interleave(per_host):
        ban = jail.add_failure(Failure(host, at, 0))
        if ban is not None:
            assert ban.address == ipaddress.ip_address(host.removeprefix("::ffff:"))
            assert ban.start == at
            assert host not in banned_at
            banned_at[host] = at
    expected = {
        host: when
        for host, times in per_host.items()
        if (when := first_full_window(times, maxretry, findtime)) is not None
    }
    assert banned_at == expected


def reference_bans(
    times: list[float], maxretry: int, findtime: float, bantime: float
) -> list[float]:
    """Ban times of one address, recomputed from scratch at every failure: failures while
    banned are dropped, and a ban wipes the slate."""
    bans: list[float] = []
    counted: list[float] = []
    banned_until = float("-inf")
    for at in times:
        if at < banned_until:
            continue
        counted.append(at)
        if sum(1 for t in counted if at - findtime <= t <= at) >= maxretry:
            bans.append(at)
            counted = []
            banned_until = at + bantime
    return bans


@settings(max_examples=200, deadline=None)
@given(
    per_host=st.fixed_dictionaries(dict.fromkeys(HOSTS, times_of)),
    maxretry=st.integers(1, 5),
    findtime=st.integers(1, 1_500).map(float),
    bantime=st.integers(1, 2_000).map(float),
)
def test_bans_expire_and_addresses_can_be_banned_again(
    per_host: dict[str, list[float]], maxretry: int, findtime: float, bantime: float
) -> None:
    clock = FakeClock(0)
    jail = Jail(jail_settings(maxretry=maxretry, findtime=findtime, bantime=bantime), clock=clock)
    made: dict[str, list[float]] = {host: [] for host in HOSTS}
    for at, host in interleave(per_host):
        clock.set(at)
        jail.expire()
        ban = jail.add_failure(Failure(host, at, 0))
        if ban is not None:
            assert ban.end == at + bantime
            made[host].append(at)
    for host, times in per_host.items():
        assert made[host] == reference_bans(times, maxretry, findtime, bantime), host
    counts = [len(bans) for bans in made.values()]
    assert jail.status().total_banned == sum(counts)
    # every failure counts, those of addresses banned then included (fail2ban's Total failed)
    assert jail.status().total_failed == sum(len(t) for t in per_host.values())
    # the last expire() ran at the last failure: bans ending after it are still in force
    still_banned = {
        ipaddress.ip_address(host.removeprefix("::ffff:"))
        for host, bans in made.items()
        if bans and bans[-1] + bantime > clock.now()
    }
    assert {ban.address for ban in jail.active_bans()} == still_banned

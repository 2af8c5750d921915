"""A jail's pending failures: what it tells the store changed, what it takes back after a
restart, and the bound on how many addresses it counts."""

from __future__ import annotations

import random

from gardien.clock import FakeClock
from gardien.jails import Jail
from gardien.model import PendingFailures
from support.jails import IP, T0, fail, feed, make_jail, settings


def restarted(old: Jail, clock: FakeClock, **options: object) -> Jail:
    """A new jail given what ``old`` told the store, as the daemon does on a restart."""
    pending, _ = old.take_pending()
    jail = Jail(settings(**options), clock=clock, random=random.Random(0))
    jail.restore_pending(pending)
    return jail


def test_two_failures_a_restart_and_one_more_ban() -> None:
    clock = FakeClock(T0 + 10)
    jail = make_jail(clock)
    feed(jail, "192.0.2.1", [T0, T0 + 5])
    after = restarted(jail, clock)
    assert after.status().currently_failed == 1
    (ban,) = feed(after, "192.0.2.1", [T0 + 10])
    assert ban.failures == 3 and ban.start == T0 + 10
    # the lines of the failures before the restart are in the ban's sample
    assert ban.matches == tuple("Failed password from 192.0.2.1" for _ in range(3))


def test_changes_are_reported_once_and_a_ban_settles_its_address() -> None:
    jail = make_jail()
    feed(jail, "192.0.2.1", [T0])
    feed(jail, "192.0.2.2", [T0, T0 + 1])
    pending, settled = jail.take_pending()
    assert sorted(str(p.address) for p in pending) == ["192.0.2.1", "192.0.2.2"]
    assert settled == []
    assert jail.take_pending() == ([], [])  # nothing changed since
    feed(jail, "192.0.2.2", [T0 + 2])  # banned: no longer pending
    assert jail.take_pending() == ([], [IP("192.0.2.2")])


def test_expiry_and_manual_bans_settle_addresses_too() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock)
    feed(jail, "192.0.2.1", [T0])
    feed(jail, "192.0.2.2", [T0])
    jail.take_pending()
    jail.ban("192.0.2.1")
    clock.advance(601)
    jail.expire()
    _, settled = jail.take_pending()
    assert sorted(map(str, settled)) == ["192.0.2.1", "192.0.2.2"]


def test_restored_failures_out_of_findtime_ignored_or_banned_are_dropped() -> None:
    clock = FakeClock(T0 + 1000)
    jail = make_jail(clock, ignoreip=("198.51.100.0/24",))
    jail.restore(
        [jail.ban("203.0.113.9", now=T0 + 999)], now=T0 + 1000
    )  # banned already: its failures are not counted again
    taken = jail.restore_pending(
        [
            PendingFailures(IP("192.0.2.1"), (T0, T0 + 900), ((), ())),  # one left in findtime
            PendingFailures(IP("192.0.2.2"), (T0,), ((),)),  # out of findtime
            PendingFailures(IP("198.51.100.7"), (T0 + 990,), ((),)),  # ignored now
            PendingFailures(IP("203.0.113.9"), (T0 + 990,), ((),)),
        ]
    )
    assert taken == 1
    pending, settled = jail.take_pending()
    assert pending == []
    assert sorted(map(str, settled)) == ["192.0.2.2", "198.51.100.7", "203.0.113.9"]
    (ban,) = feed(jail, "192.0.2.1", [T0 + 1000, T0 + 1000])
    assert ban.failures == 3


def test_a_lowered_maxretry_keeps_the_failures_that_do_not_ban_by_themselves() -> None:
    clock = FakeClock(T0 + 10)
    jail = make_jail(clock, maxretry=5)
    feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2, T0 + 3])
    after = restarted(jail, clock, maxretry=3)
    assert feed(after, "192.0.2.1", []) == []
    (ban,) = feed(after, "192.0.2.1", [T0 + 10])
    assert ban.failures == 3


def test_a_flood_of_single_failures_forgets_other_single_failures_first() -> None:
    clock = FakeClock(T0)
    jail = Jail(settings(maxretry=3), clock=clock, max_pending=100)
    feed(jail, "203.0.113.1", [T0, T0 + 1])  # the attacker who keeps trying
    for index in range(1000):  # a flood of addresses that fail once
        jail.add_failure(fail(f"10.0.{index // 256}.{index % 256}", T0 + 2))
    status = jail.status(T0 + 2)
    assert status.currently_failed == 100
    assert status.forgotten == 901
    (ban,) = feed(jail, "203.0.113.1", [T0 + 3])  # its count survived the flood
    assert ban.failures == 3
    pending, _ = jail.take_pending()
    assert len(pending) <= 100


def test_when_all_have_several_failures_the_oldest_goes() -> None:
    jail = Jail(settings(maxretry=5), clock=FakeClock(T0), max_pending=2)
    feed(jail, "192.0.2.1", [T0, T0 + 1])
    feed(jail, "192.0.2.2", [T0 + 2, T0 + 3])
    feed(jail, "192.0.2.3", [T0 + 4])
    pending, settled = jail.take_pending()
    assert sorted(str(p.address) for p in pending) == ["192.0.2.2", "192.0.2.3"]
    assert settled == [IP("192.0.2.1")]


def test_a_jail_retuned_by_hand_counts_on() -> None:
    clock = FakeClock(T0 + 10)
    old = make_jail(clock, maxretry=5)
    feed(old, "192.0.2.1", [T0, T0 + 1])
    new = Jail(settings(maxretry=3), clock=clock)
    new.take_over_pending(old)
    (ban,) = feed(new, "192.0.2.1", [T0 + 2])
    assert ban.failures == 3
    # what the old jail had not reported yet, the new one reports
    assert new.take_pending() == ([], [IP("192.0.2.1")])

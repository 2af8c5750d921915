"""The jail: failures within findtime, bans, unbans, restarts and status."""

from __future__ import annotations

import ipaddress
import random

import pytest

from gardien.clock import FakeClock
from gardien.errors import ConfigError, GardienError
from gardien.jails import IgnoreList, Jail, JailError
from gardien.model import Address, Ban, Failure, Unban
from gardien.settings import BanTimeIncrement
from support.jails import IP, T0, fail, feed, make_jail, settings

# -- the window ---------------------------------------------------------------------------


def test_maxretry_failures_within_findtime_ban() -> None:
    jail = make_jail()
    assert jail.add_failure(fail("192.0.2.1", T0)) is None
    assert jail.add_failure(fail("192.0.2.1", T0 + 300)) is None
    ban = jail.add_failure(fail("192.0.2.1", T0 + 600))  # exactly findtime after the first
    assert ban == Ban(
        jail="sshd",
        address=IP("192.0.2.1"),
        start=T0 + 600,
        end=T0 + 600 + 3600,
        count=1,
        failures=3,
        matches=("Failed password from 192.0.2.1",) * 3,
    )


def test_a_failure_just_outside_the_window_does_not_count() -> None:
    jail = make_jail()
    assert feed(jail, "192.0.2.1", [T0, T0 + 300, T0 + 600.5]) == []


def test_the_window_slides() -> None:
    jail = make_jail()
    # each new failure pushes the oldest out: (0, 300, 601) and (300, 601, 901) span 601 s
    assert feed(jail, "192.0.2.1", [T0, T0 + 300, T0 + 601, T0 + 901]) == []
    # (601, 901, 1201) spans exactly findtime
    bans = feed(jail, "192.0.2.1", [T0 + 1201])
    assert [(b.start, b.failures) for b in bans] == [(T0 + 1201, 3)]


def test_addresses_are_counted_apart() -> None:
    jail = make_jail()
    assert feed(jail, "192.0.2.1", [T0, T0 + 1]) == []
    assert feed(jail, "192.0.2.2", [T0 + 2, T0 + 3]) == []
    bans = feed(jail, "192.0.2.2", [T0 + 4])
    assert [b.address for b in bans] == [IP("192.0.2.2")]


def test_the_counter_starts_again_after_a_ban() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock, bantime=60)
    assert len(feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2])) == 1
    clock.set(T0 + 62)
    assert [u.address for u in jail.expire()] == [IP("192.0.2.1")]
    assert feed(jail, "192.0.2.1", [T0 + 63, T0 + 64]) == []  # two new ones are not three
    assert len(feed(jail, "192.0.2.1", [T0 + 65])) == 1


def test_failures_out_of_order_within_the_window_count() -> None:
    jail = make_jail()
    assert feed(jail, "192.0.2.1", [T0 + 500, T0 + 100]) == []
    # T0 - 200 is more than findtime before the newest (T0 + 500): forgotten
    assert feed(jail, "192.0.2.1", [T0 - 200]) == []
    bans = feed(jail, "192.0.2.1", [T0 + 300])
    assert [(b.start, b.failures) for b in bans] == [(T0 + 500, 3)]  # starts at the newest


def test_failures_without_a_time_use_the_clock() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock)
    jail.add_failure(fail("192.0.2.1", None))
    clock.advance(700)
    jail.add_failure(fail("192.0.2.1", None))
    assert jail.add_failure(fail("192.0.2.1", None)) is None  # the first has left the window
    clock.advance(10)
    ban = jail.add_failure(fail("192.0.2.1", None))
    assert ban is not None
    assert ban.start == T0 + 710


def test_maxretry_one_bans_at_once() -> None:
    ban = make_jail(maxretry=1).add_failure(fail("192.0.2.1", T0))
    assert ban is not None
    assert ban.failures == 1


def test_matches_keep_the_last_maxmatches_lines() -> None:
    jail = make_jail(maxretry=4, maxmatches=2)
    for n in range(3):
        jail.add_failure(fail("192.0.2.1", T0 + n, f"line {n}"))
    ban = jail.add_failure(Failure("192.0.2.1", T0 + 3, 0, lines=("line 3a", "line 3b")))
    assert ban is not None
    assert ban.matches == ("line 3a", "line 3b")
    jail = make_jail(maxretry=2, maxmatches=0)
    assert feed(jail, "192.0.2.1", [T0, T0 + 1])[0].matches == ()


def test_an_address_banned_now_is_not_banned_again() -> None:
    jail = make_jail()
    assert len(feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2])) == 1
    assert feed(jail, "192.0.2.1", [T0 + 3, T0 + 4, T0 + 5, T0 + 6]) == []
    assert jail.status(T0 + 6).total_banned == 1


def test_old_log_lines_read_again_do_not_make_bans_already_over() -> None:
    clock = FakeClock(T0 + 86_400)  # a day later: the bans would have ended long ago
    jail = make_jail(clock)
    assert feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2]) == []
    assert jail.active_bans() == []
    # ... but one still running when read is made, with its real end
    clock.set(T0 + 1000)
    bans = feed(jail, "192.0.2.3", [T0, T0 + 1, T0 + 2])
    assert [(b.start, b.end) for b in bans] == [(T0 + 2, T0 + 2 + 3600)]


# -- addresses ----------------------------------------------------------------------------


def test_ipv6_and_ipv4_mapped_addresses() -> None:
    jail = make_jail()
    bans = feed(jail, "2001:db8::1", [T0, T0 + 1, T0 + 2])
    assert [b.address for b in bans] == [IP("2001:db8::1")]
    assert feed(jail, "2001:db8::2", [T0, T0 + 1]) == []  # another address
    # ::ffff:192.0.2.9 and 192.0.2.9 are one address
    jail.add_failure(fail("::ffff:192.0.2.9", T0))
    jail.add_failure(fail("192.0.2.9", T0 + 1))
    ban = jail.add_failure(Failure("::ffff:192.0.2.9", T0 + 2, 0))
    assert ban is not None
    assert ban.address == IP("192.0.2.9")


def test_failures_of_non_addresses_are_dropped() -> None:
    jail = make_jail(maxretry=1)
    assert jail.add_failure(fail("host.example.org", T0)) is None
    assert jail.add_failure(fail("user-42", T0)) is None
    status = jail.status()
    assert (status.invalid, status.total_failed, status.currently_failed) == (2, 0, 0)


def test_ignored_addresses_are_dropped_with_the_reason() -> None:
    clock = FakeClock(T0)
    config = settings(maxretry=1, ignoreip=("10.0.0.0/8", "gw.example.org"), ignoreself=True)
    ignore = IgnoreList.from_settings(
        config,
        clock=clock,
        own_addresses=lambda: ["198.51.100.4"],
        resolve=lambda name: ["192.0.2.77"],
    )
    jail = Jail(config, clock=clock, ignore=ignore)
    assert jail.add_failure(fail("10.1.2.3", T0)) is None
    assert jail.status().last_ignored == (IP("10.1.2.3"), "10.0.0.0/8 in ignoreip")
    assert jail.add_failure(fail("192.0.2.77", T0)) is None
    assert jail.status().last_ignored == (IP("192.0.2.77"), "gw.example.org in ignoreip")
    assert jail.add_failure(fail("198.51.100.4", T0)) is None
    assert jail.add_failure(fail("::1", T0)) is None
    status = jail.status()
    assert status.last_ignored == (IP("::1"), "own address")
    assert (status.ignored, status.total_failed, status.total_banned) == (4, 0, 0)
    assert jail.add_failure(fail("192.0.2.78", T0)) is not None
    # addignoreip at run time
    jail.ignore.add("192.0.2.79")
    assert jail.add_failure(fail("192.0.2.79", T0)) is None


def test_the_default_ignore_list_comes_from_the_settings() -> None:
    jail = Jail(settings(maxretry=1, ignoreip=("192.0.2.0/24",)), clock=FakeClock(T0))
    assert jail.add_failure(fail("192.0.2.5", T0)) is None
    assert jail.add_failure(fail("127.0.0.1", T0)) is not None  # ignoreself is off here
    with pytest.raises(ConfigError):
        Jail(settings(ignoreip=("192.0.2.0/40",)), clock=FakeClock(T0))


# -- ban times ----------------------------------------------------------------------------


def test_permanent_bans_have_no_end_and_never_expire() -> None:
    jail = make_jail(bantime=-1)
    (ban,) = feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2])
    assert ban.end is None
    assert ban.permanent
    assert jail.expire(T0 + 10 * 365 * 86_400) == []
    assert jail.active_bans() == [ban]


def test_repeated_bans_grow_with_multipliers() -> None:
    clock = FakeClock(T0)
    increment = BanTimeIncrement(enabled=True, multipliers=(1, 2, 4), maxtime=10_000)
    jail = make_jail(clock, bantime=600, increment=increment)
    durations = []
    at = T0
    for _ in range(5):
        (ban,) = feed(jail, "192.0.2.1", [at, at + 1, at + 2])
        assert ban.end is not None
        durations.append((ban.count, ban.end - ban.start))
        at = ban.end
        clock.set(at)
        assert [u.reason for u in jail.expire()] == ["expired"]
    assert durations == [(1, 600), (2, 1200), (3, 2400), (4, 2400), (5, 2400)]


def test_history_counts_bans_before_a_restart() -> None:
    asked: list[tuple[str, Address, bool]] = []

    def history(jail: str, address: Address, overall: bool) -> int:
        asked.append((jail, address, overall))
        return 3

    increment = BanTimeIncrement(enabled=True)  # doubling: 600 * 2**3 for the fourth ban
    jail = Jail(settings(bantime=600, increment=increment), clock=FakeClock(T0), history=history)
    (ban,) = feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2])
    assert (ban.count, ban.end) == (4, T0 + 2 + 600 * 8)
    assert asked == [("sshd", IP("192.0.2.1"), False)]


def test_overalljails_asks_history_across_jails() -> None:
    asked: list[bool] = []

    def history(jail: str, address: Address, overall: bool) -> int:
        asked.append(overall)
        return 2 if overall else 0  # banned twice, by other jails

    increment = BanTimeIncrement(enabled=True, multipliers=(1, 5, 30), overalljails=True)
    jail = Jail(settings(bantime=60, increment=increment), clock=FakeClock(T0), history=history)
    ban = jail.ban("2001:db8::7", now=T0)
    assert (ban.count, ban.end) == (3, T0 + 60 * 30)
    assert asked == [True]


def test_own_bans_count_when_history_lags() -> None:
    # the store has not yet written the first ban: the jail still knows it made it
    clock = FakeClock(T0)
    increment = BanTimeIncrement(enabled=True)
    jail = Jail(
        settings(bantime=600, increment=increment),
        clock=clock,
        history=lambda jail, address, overall: 0,
    )
    first = jail.ban("192.0.2.1")
    assert jail.unban("192.0.2.1") == Unban("sshd", IP("192.0.2.1"), reason="manual")
    second = jail.ban("192.0.2.1")
    assert (first.count, second.count) == (1, 2)
    assert second.remaining(T0) == 1200


def test_rndtime_comes_from_the_injected_random() -> None:
    increment = BanTimeIncrement(enabled=True, rndtime=100)
    jail = Jail(
        settings(bantime=600, increment=increment),
        clock=FakeClock(T0),
        random=random.Random(5),
        history=lambda jail, address, overall: 1,
    )
    ban = jail.ban("192.0.2.1", now=T0)
    assert ban.end == T0 + 1200 + random.Random(5).random() * 100


def test_a_formula_gardien_cannot_run_is_a_config_error() -> None:
    increment = BanTimeIncrement(enabled=True, formula="ban.Time * 3")
    with pytest.raises(ConfigError, match=r"bantime\.multipliers"):
        make_jail(increment=increment)


# -- manual bans, unbans, expiry ------------------------------------------------------------


def test_manual_ban_and_unban() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock)
    jail.add_failure(fail("192.0.2.1", T0))
    ban = jail.ban("192.0.2.1")
    assert ban == Ban("sshd", IP("192.0.2.1"), T0, T0 + 3600, count=1, failures=0)
    assert jail.banned("192.0.2.1") == ban
    assert jail.ban("192.0.2.1", now=T0 + 50) is ban  # banned already: the same ban
    assert jail.status().currently_failed == 0  # the manual ban cleared its failures
    assert jail.unban(IP("192.0.2.1")) == Unban("sshd", IP("192.0.2.1"), reason="manual")
    assert jail.unban("192.0.2.1") is None
    assert jail.unban("nonsense") is None
    assert jail.banned("192.0.2.1") is None
    network = jail.ban("198.51.100.0/24", now=T0)
    assert network.address == ipaddress.ip_network("198.51.100.0/24")


def test_manual_ban_refuses_ignored_and_invalid_addresses() -> None:
    jail = make_jail(ignoreip=("192.0.2.0/24",))
    with pytest.raises(JailError, match=r"192\.0\.2\.0/24 in ignoreip"):
        jail.ban("192.0.2.1")
    with pytest.raises(JailError, match="not an IP address"):
        jail.ban("host.example.org")
    assert issubclass(JailError, GardienError)
    assert jail.active_bans() == []


def test_expire_lifts_bans_whose_end_has_come() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock)
    jail.ban("192.0.2.1", now=T0)
    jail.ban("192.0.2.2", now=T0 - 100)
    jail.ban("2001:db8::1", now=T0 + 100)
    assert jail.expire(T0 + 3599) == [Unban("sshd", IP("192.0.2.2"))]
    assert jail.expire(T0 + 3600) == [Unban("sshd", IP("192.0.2.1"))]  # end <= now
    clock.set(T0 + 5000)
    assert jail.expire() == [Unban("sshd", IP("2001:db8::1"), reason="expired")]
    assert jail.active_bans() == []
    assert jail.expire() == []


def test_expire_forgets_failures_that_left_the_window() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock)
    feed(jail, "192.0.2.1", [T0, T0 + 1])
    assert jail.status(T0 + 1).currently_failed == 1
    clock.set(T0 + 602)
    assert jail.status().currently_failed == 0
    jail.expire()
    assert repr(jail) == "Jail('sshd', banned=0, failed=0)"


# -- restarts -------------------------------------------------------------------------------


def test_restore_keeps_the_remaining_time_and_skips_what_is_over() -> None:
    clock = FakeClock(T0 + 1000)
    jail = make_jail(clock, ignoreip=("203.0.113.0/24",))
    running = Ban("sshd", IP("192.0.2.1"), T0, T0 + 3600, count=2, failures=3)
    over = Ban("sshd", IP("192.0.2.2"), T0 - 4000, T0 + 1000, count=1)
    forever = Ban("sshd", IP("2001:db8::1"), T0 - 10**6, None, count=7)
    now_ignored = Ban("sshd", IP("203.0.113.9"), T0, T0 + 3600)
    mapped = Ban("sshd", IP("::ffff:192.0.2.3"), T0, T0 + 3600)
    restored = jail.restore([running, over, forever, now_ignored, mapped, running])
    assert [b.address for b in restored] == [
        IP("192.0.2.1"),
        IP("2001:db8::1"),
        IP("192.0.2.3"),
    ]
    assert jail.banned("192.0.2.1") == running
    assert running.remaining(clock.now()) == 2600
    assert jail.expire(T0 + 3599) == []
    assert [u.address for u in jail.expire(T0 + 3600)] == [IP("192.0.2.1"), IP("192.0.2.3")]
    status = jail.status()
    assert (status.currently_banned, status.total_banned) == (1, 3)


def test_restored_counts_carry_the_increment_on() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock, bantime=600, increment=BanTimeIncrement(enabled=True))
    jail.restore([Ban("sshd", IP("192.0.2.1"), T0 - 100, T0 + 100, count=3)])
    clock.set(T0 + 100)
    jail.expire()
    (ban,) = feed(jail, "192.0.2.1", [T0 + 101, T0 + 102, T0 + 103])
    assert (ban.count, ban.remaining(ban.start)) == (4, 600 * 8)


def test_restore_refuses_bans_of_another_jail() -> None:
    jail = make_jail()
    with pytest.raises(JailError, match="'postfix'"):
        jail.restore([Ban("postfix", IP("192.0.2.1"), T0, T0 + 60)])


# -- status ---------------------------------------------------------------------------------


def test_status_counters() -> None:
    clock = FakeClock(T0)
    jail = make_jail(clock)
    feed(jail, "192.0.2.1", [T0, T0 + 1, T0 + 2])  # banned
    feed(jail, "192.0.2.2", [T0 + 3])
    feed(jail, "2001:db8::5", [T0 + 4, T0 + 5])
    jail.ban("198.51.100.1", now=T0)
    jail.add_failure(fail("nonsense", T0))
    jail.add_failure(fail("192.0.2.1", T0 + 4))  # banned: counted as fail2ban counts it
    clock.set(T0 + 5)
    status = jail.status()
    assert status.name == "sshd"
    assert status.currently_failed == 2
    assert status.total_failed == 7
    assert status.currently_banned == 2
    assert status.total_banned == 2
    assert status.banned == (IP("192.0.2.1"), IP("198.51.100.1"))
    assert (status.ignored, status.invalid, status.last_ignored) == (0, 1, None)
    jail.unban("192.0.2.1")
    later = jail.status(T0 + 604)  # 192.0.2.2's failure at T0 + 3 has left the window
    assert (later.currently_failed, later.currently_banned, later.total_banned) == (1, 1, 2)

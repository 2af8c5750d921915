"""Ban times: ``bantime`` and ``bantime.increment``, against the numbers fail2ban gives.

fail2ban's formula (``jail.conf``, ``server/jail.py``) is written with ``ban.Count`` = earlier
bans; gardien's ``count`` includes the ban being made, so ``ban.Count == count - 1``.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gardien.errors import ConfigError
from gardien.jails import BanTimePolicy
from gardien.settings import BanTimeIncrement

DEFAULT_FORMULA = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor"
EXPONENTIAL_FORMULA = "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"


def policy(bantime: float = 600, **increment: object) -> BanTimePolicy:
    return BanTimePolicy(
        bantime,
        BanTimeIncrement(enabled=True, **increment),  # type: ignore[arg-type]
        random=random.Random(1),
    )


def test_without_increment_every_ban_lasts_bantime() -> None:
    plain = BanTimePolicy(600, BanTimeIncrement(enabled=False, multipliers=(1, 2, 4)))
    assert [plain.duration(count) for count in (1, 2, 10)] == [600, 600, 600]


def test_permanent_bans_are_never_incremented() -> None:
    forever = policy(-1, multipliers=(1, 2))
    assert forever.permanent
    assert [forever.duration(count) for count in (1, 2, 5)] == [None, None, None]


def test_default_formula_doubles_up_to_two_to_the_twentieth() -> None:
    # 600 * (1 << min(ban.Count, 20)) * 1
    doubling = policy(600)
    assert [doubling.duration(count) for count in range(1, 6)] == [600, 1200, 2400, 4800, 9600]
    assert doubling.duration(21) == 600 * 2**20
    assert doubling.duration(30) == 600 * 2**20


def test_default_formula_never_goes_below_bantime() -> None:
    # max(ban.Time, ban.Time * 2**Count * 0.25): 600, max(600, 300), 600, 1200
    quartered = policy(600, factor=0.25)
    assert [quartered.duration(count) for count in range(1, 5)] == [600, 600, 600, 1200]


def test_multipliers_from_jail_conf() -> None:
    # jail.conf: "for bantime=60 the multipliers are minutes: 1 min, 5 min, 30 min, 1 hour,
    # 5 hour, 12 hour, 1 day, 2 day"; past the list the last multiplier stays
    minutes = policy(60, multipliers=(1, 5, 30, 60, 300, 720, 1440, 2880))
    expected = [60, 300, 1800, 3600, 18000, 43200, 86400, 172800, 172800, 172800]
    assert [minutes.duration(count) for count in range(1, 11)] == expected
    # jail.conf: "1 2 4 8 16 32 64 ... for factor '1' and original ban time 600 - 10.6 hours"
    doubling = policy(600, multipliers=(1, 2, 4, 8, 16, 32, 64))
    longest = doubling.duration(100)
    assert longest == 600 * 64
    assert round(longest / 3600, 1) == 10.7  # 10h40m: jail.conf rounds down


def test_multipliers_are_scaled_by_factor_but_not_the_first_ban() -> None:
    # ban.Time * banFactor * multipliers[ban.Count]: fail2ban skips the formula for Count 0
    scaled = policy(600, factor=2, multipliers=(1, 2, 4))
    assert [scaled.duration(count) for count in range(1, 5)] == [600, 2400, 4800, 4800]


def test_exponential_formula_documented_in_jail_conf() -> None:
    # "same values only for factor 2.0 / 2.885385": 600 * exp(Count * factor) ~ 600 * 2**Count
    grow = policy(600, factor=2.0 / 2.885385, formula=EXPONENTIAL_FORMULA)
    for count in range(2, 8):
        assert grow.duration(count) == pytest.approx(600 * 2 ** (count - 1), rel=1e-4)
    assert grow.duration(10_000) is not None  # does not overflow


def test_the_default_formula_spelled_out_is_accepted() -> None:
    spelled = policy(600, formula="ban.Time*(1<<(ban.Count if ban.Count<20 else 20))*banFactor")
    assert spelled.duration(3) == 2400


def test_maxtime_caps_the_ban_time() -> None:
    capped = policy(600, maxtime=3000)
    assert [capped.duration(count) for count in range(1, 6)] == [600, 1200, 2400, 3000, 3000]
    capped = policy(600, factor=2, multipliers=(1, 2, 4), maxtime=3000)
    assert [capped.duration(count) for count in range(1, 4)] == [600, 2400, 3000]


def test_rndtime_adds_up_to_rndtime_seconds_after_the_cap() -> None:
    rnd = BanTimePolicy(
        600,
        BanTimeIncrement(enabled=True, maxtime=3000, rndtime=100),
        random=random.Random(42),
    )
    reference = random.Random(42)
    first = rnd.duration(1)
    assert first == 600  # fail2ban adds nothing to a first ban
    for count, base in [(2, 1200), (3, 2400), (4, 3000), (5, 3000), (9, 3000)]:
        seconds = rnd.duration(count)
        assert seconds == base + reference.random() * 100
        assert base <= seconds < base + 100


def test_rndtime_varies_between_bans() -> None:
    rnd = policy(600, rndtime=60)
    assert len({rnd.duration(2) for _ in range(20)}) > 1


def test_custom_formula_is_refused_with_a_pointer_to_multipliers() -> None:
    with pytest.raises(ConfigError) as caught:
        BanTimePolicy(
            600,
            BanTimeIncrement(enabled=True, formula="ban.Time * ban.Count ** 3"),
            jail="sshd",
            path="/etc/gardien/jail.local",
        )
    message = str(caught.value)
    assert message.startswith("/etc/gardien/jail.local: [sshd] bantime.formula:")
    assert "bantime.multipliers" in message
    assert "bantime.factor" in message
    assert "ban.Time * ban.Count ** 3" in message


def test_custom_formula_is_harmless_when_unused() -> None:
    # fail2ban ignores the formula when multipliers are set, and when increment is off
    with_multipliers = policy(600, formula="ban.Time * 3", multipliers=(1, 3))
    assert with_multipliers.duration(2) == 1800
    off = BanTimePolicy(600, BanTimeIncrement(enabled=False, formula="ban.Time * 3"))
    assert off.duration(2) == 600


@pytest.mark.parametrize(
    ("bantime", "increment", "option"),
    [
        (0, {}, "bantime"),
        (600, {"factor": 0}, "bantime.factor"),
        (600, {"multipliers": (1, 0, 4)}, "bantime.multipliers"),
        (600, {"maxtime": 300}, "bantime.maxtime"),
        (600, {"rndtime": -5}, "bantime.rndtime"),
    ],
)
def test_values_that_make_no_sense_are_refused(
    bantime: float, increment: dict[str, object], option: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        policy(bantime, **increment)
    assert caught.value.option == option


def test_counts_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        policy().duration(0)


@st.composite
def increments(draw: st.DrawFn) -> tuple[float, BanTimeIncrement]:
    bantime = float(draw(st.integers(1, 86_400)))
    maxtime = draw(st.none() | st.floats(bantime, 10 * 365 * 86_400))
    kind = draw(st.sampled_from(["multipliers", "doubling", "exponential"]))
    if kind == "multipliers":
        multipliers = tuple(sorted(draw(st.lists(st.integers(1, 10_000), min_size=1))))
        # a factor below 1 lets fail2ban's second ban be shorter than the first
        factor = draw(st.floats(1, 100))
        return bantime, BanTimeIncrement(
            enabled=True, factor=factor, multipliers=multipliers, maxtime=maxtime
        )
    formula = EXPONENTIAL_FORMULA if kind == "exponential" else DEFAULT_FORMULA
    factor = draw(st.floats(0.01, 100))
    return bantime, BanTimeIncrement(enabled=True, factor=factor, formula=formula, maxtime=maxtime)


@given(increments(), st.lists(st.integers(1, 200), min_size=2, max_size=10))
def test_ban_time_grows_with_count_and_never_exceeds_maxtime(
    setting: tuple[float, BanTimeIncrement], counts: list[int]
) -> None:
    bantime, increment = setting
    times = BanTimePolicy(bantime, increment)
    durations = [times.duration(count) for count in sorted(counts)]
    assert all(d is not None and d >= bantime for d in durations)
    assert durations == sorted(durations)  # type: ignore[type-var]
    if increment.maxtime is not None:
        assert all(d is not None and d <= increment.maxtime for d in durations)
    assert all(d is not None and math.isfinite(d) for d in durations)

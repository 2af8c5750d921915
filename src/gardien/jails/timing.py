"""How long a ban lasts: ``bantime`` and ``bantime.increment``, as fail2ban computes them.

fail2ban (``server/jail.py``, ``setBanTimeExtra``; ``server/observer.py``, ``incrBanTime``)
calls the number of *earlier* bans of an address ``ban.Count``; gardien's
:class:`~gardien.model.Ban` counts the ban being made too, so ``ban.Count == count - 1``.
With ``bantime.increment``:

- the first ban (no earlier one) lasts ``bantime``: fail2ban applies no formula, no
  ``maxtime`` and no ``rndtime`` to it;
- with ``bantime.multipliers`` the n-th ban lasts
  ``bantime * factor * multipliers[min(n - 1, len(multipliers) - 1)]``;
- otherwise fail2ban's default ``bantime.formula``,
  ``ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor``, and never less than
  ``bantime``: ``max(bantime, bantime * 2**min(n - 1, 20) * factor)``;
- the result is capped at ``bantime.maxtime``, *then* up to ``bantime.rndtime`` random seconds
  are added (so a ban can exceed ``maxtime`` by at most ``rndtime``).

A permanent ``bantime`` (``-1``) is never incremented. fail2ban evaluates ``bantime.formula``
as Python; gardien does not run configuration as code, so it recognises the two formulas
fail2ban's ``jail.conf`` documents and refuses any other with a :class:`ConfigError` that
points to ``bantime.multipliers`` and ``bantime.factor``.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from typing import Protocol

from gardien.errors import ConfigError
from gardien.settings import BanTimeIncrement, JailSettings

__all__ = ["BanTimePolicy", "RandomSource"]

#: fail2ban counts at most this many earlier bans in its default formula (``1 << 20``)
MAX_DOUBLINGS = 20
#: the exponential formula stops growing here (e**500 s is forever; e**710 overflows)
MAX_EXPONENT = 500.0


class RandomSource(Protocol):
    """Where ``bantime.rndtime`` gets its randomness: ``random.Random`` and friends."""

    def random(self) -> float:
        """A number in ``[0, 1)``."""
        ...


# A growth law: (bantime, earlier bans, factor) -> seconds, before maxtime and rndtime.
_Growth = Callable[[float, int, float], float]


def _doubling(bantime: float, earlier: int, factor: float) -> float:
    return max(bantime, bantime * (1 << min(earlier, MAX_DOUBLINGS)) * factor)


def _exponential(bantime: float, earlier: int, factor: float) -> float:
    # exp((Count + 1) * f) / exp(1 * f) == exp(Count * f)
    return max(bantime, bantime * math.exp(min(earlier * factor, MAX_EXPONENT)))


#: the formulas fail2ban's jail.conf documents, compared with all white space removed
KNOWN_FORMULAS: dict[str, _Growth] = {
    "ban.Time*(1<<(ban.Countifban.Count<20else20))*banFactor": _doubling,
    "ban.Time*math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)": _exponential,
}


class BanTimePolicy:
    """The ban time of one jail: ``duration(count)`` for the ``count``-th ban of an address.

    ``bantime`` is in seconds, negative (``-1``) for permanent bans. ``random`` supplies the
    ``rndtime`` part (tests pass a seeded ``random.Random``; by default the system's source,
    since the point of ``rndtime`` is that attackers cannot predict it). ``jail`` and ``path``
    only locate configuration errors. Raises :class:`ConfigError` for values fail2ban would
    misuse silently (a zero ban time, a non-positive factor or multiplier, a ``maxtime``
    shorter than ``bantime``) and for a ``bantime.formula`` gardien does not know.
    """

    def __init__(
        self,
        bantime: float,
        increment: BanTimeIncrement | None = None,
        *,
        random: RandomSource | None = None,
        jail: str | None = None,
        path: str | None = None,
    ) -> None:
        self._jail = jail
        self._path = path
        if bantime == 0:
            raise self._error("bantime", "bantime must be longer than 0 seconds (-1: for ever)")
        self.bantime = -1.0 if bantime < 0 else float(bantime)
        self.increment = increment or BanTimeIncrement()
        self._random: RandomSource = random or _random.SystemRandom()
        self._growth: _Growth | None = None
        if self.increment.enabled:
            self._growth = self._check_increment(self.increment)

    @classmethod
    def from_settings(
        cls, settings: JailSettings, *, random: RandomSource | None = None
    ) -> BanTimePolicy:
        """The policy a jail's settings describe."""
        return cls(
            settings.bantime,
            settings.increment,
            random=random,
            jail=settings.name,
            path=settings.path,
        )

    @property
    def permanent(self) -> bool:
        """Whether every ban is for ever."""
        return self.bantime < 0

    def duration(self, count: int) -> float | None:
        """Seconds the ``count``-th ban of an address lasts (1 = first), ``None`` for ever."""
        if count < 1:
            raise ValueError(f"a ban count starts at 1, got {count}")
        if self.permanent:
            return None
        if self._growth is None or count == 1:
            return self.bantime
        seconds = self._growth(self.bantime, count - 1, self.increment.factor)
        if self.increment.maxtime is not None:
            seconds = min(seconds, self.increment.maxtime)
        if self.increment.rndtime:
            seconds += self._random.random() * self.increment.rndtime
        return seconds

    def _check_increment(self, increment: BanTimeIncrement) -> _Growth:
        if increment.factor <= 0:
            raise self._error("bantime.factor", "bantime.factor must be more than 0")
        maxtime = increment.maxtime
        if maxtime is not None and not self.permanent and maxtime < self.bantime:
            # fail2ban would make the first ban longer than the later ones
            raise self._error(
                "bantime.maxtime",
                f"bantime.maxtime ({maxtime:g}s) is shorter than bantime ({self.bantime:g}s)",
            )
        if increment.rndtime is not None and increment.rndtime < 0:
            raise self._error("bantime.rndtime", "bantime.rndtime cannot be negative")
        if increment.multipliers:
            if any(m <= 0 for m in increment.multipliers):
                raise self._error(
                    "bantime.multipliers", "bantime.multipliers must all be 1 or more"
                )
            multipliers = increment.multipliers
            last = len(multipliers) - 1

            def by_multipliers(bantime: float, earlier: int, factor: float) -> float:
                return bantime * factor * multipliers[min(earlier, last)]

            # fail2ban ignores bantime.formula when multipliers are given
            return by_multipliers
        if increment.formula is None:
            return _doubling
        growth = KNOWN_FORMULAS.get("".join(increment.formula.split()))
        if growth is None:
            raise self._error(
                "bantime.formula",
                f"gardien does not evaluate Python formulas ({increment.formula!r}); "
                "use bantime.multipliers (e.g. 1 2 4 8 16 32 64) and bantime.factor instead",
            )
        return growth

    def _error(self, option: str, message: str) -> ConfigError:
        return ConfigError(message, path=self._path, section=self._jail, option=option)

    def __repr__(self) -> str:
        return f"BanTimePolicy(bantime={self.bantime!r}, increment={self.increment!r})"

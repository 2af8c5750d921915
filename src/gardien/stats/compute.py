"""Attack statistics from the ban history: what the seed article graphed and noticed.

:func:`compute_stats` sums up the bans that started in a range of whole clock hours into an
:class:`AttackStats`: bans per hour (every hour, zeros included) and the cumulative number of
unique banned addresses, each with a least-squares trend; mean and median bans per hour;
night (20:00-08:00) against day and weekdays against the week-end, compared in bans per hour
because the range rarely holds as many hours of each; bans per jail; the top addresses and
networks (/24 for IPv4, /64 for IPv6: what one operator usually holds); repeat offenders.

It is pure: the bans come summed up from a :class:`~gardien.stats.source.StatsSource`, and
"now" and the time zone are arguments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import ipaddress
import itertools
import math
import socket
import statistics
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gardien.stats.source import StatsSource
from gardien.stats.times import HOUR, floor_hour, local

__all__ = [
    "DISTRIBUTION",
    "NIGHT_END",
    "NIGHT_START",
    "AddressSummary",
    "AttackStats",
    "JailSummary",
    "NetworkSummary",
    "Period",
    "RepeatOffenders",
    "Trend",
    "compute_stats",
    "linear_trend",
    "network_of",
]

NIGHT_START = 20  # local hour at which the night starts...
NIGHT_END = 8  # ...and ends: 20:00-08:00 is night, 08:00-20:00 day
DISTRIBUTION: tuple[tuple[int, int | None], ...] = ((1, 1), (2, 2), (3, 5), (6, 10), (11, None))
"""The classes of "banned N times" in :attr:`RepeatOffenders.distribution`."""


@dataclass(frozen=True)
class Trend:
    """The least-squares line through an hourly series: the value of hour ``i`` (0 for the
    first hour) is about ``intercept + slope_per_hour * i``."""

    slope_per_hour: float
    intercept: float

    @property
    def slope_per_day(self) -> float:
        """How much the line rises in 24 hours."""
        return self.slope_per_hour * 24

    def at(self, index: float) -> float:
        """The line's value at hour ``index``."""
        return self.intercept + self.slope_per_hour * index


def linear_trend(values: Sequence[float]) -> Trend:
    """The least-squares line through ``values`` taken at 0, 1, 2...; flat through the only
    value (or 0) when there are fewer than two."""
    count = len(values)
    if count < 2:
        return Trend(0.0, float(values[0]) if values else 0.0)
    mean_x = (count - 1) / 2
    mean_y = math.fsum(values) / count
    # sum((x - mean_x)^2) over 0..n-1, in closed form
    spread = count * (count * count - 1) / 12
    covariance = math.fsum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    slope = covariance / spread
    return Trend(slope, mean_y - slope * mean_x)


def network_of(address: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) network holding ``address`` (canonical text, as stored);
    a banned network wider than that is its own network."""
    # the common cases on strings and bytes: 200,000 addresses through ipaddress take a second
    if "/" not in address:
        if ":" not in address:
            return address.rpartition(".")[0] + ".0/24"
        with contextlib.suppress(OSError):  # a scope id (fe80::1%eth0): ipaddress below
            packed = socket.inet_pton(socket.AF_INET6, address)
            return socket.inet_ntop(socket.AF_INET6, packed[:8] + bytes(8)) + "/64"
    network = ipaddress.ip_network(address.partition("%")[0], strict=False)
    prefix = 24 if network.version == 4 else 64
    if network.prefixlen > prefix:
        network = network.supernet(new_prefix=prefix)
    return str(network)


@dataclass(frozen=True)
class Period:
    """The bans of some hours of the range: night or day, weekdays or week-end."""

    name: str  # night, day, weekdays, weekend
    label: str  # for people: "night (20:00-08:00)"
    hours: int
    bans: int
    share: float  # of all the bans of the range, 0 to 1

    @property
    def mean_per_hour(self) -> float:
        """Bans per hour of this period: what compares periods of different lengths."""
        return self.bans / self.hours if self.hours else 0.0


@dataclass(frozen=True)
class JailSummary:
    """The bans of one jail."""

    jail: str
    bans: int
    addresses: int  # distinct addresses banned
    share: float  # of all the bans, 0 to 1


@dataclass(frozen=True)
class AddressSummary:
    """The bans of one address: how many, in which jails, the first and the last."""

    address: str
    bans: int
    jails: tuple[str, ...]
    first: float
    last: float


@dataclass(frozen=True)
class NetworkSummary:
    """The bans of the addresses of one /24 (IPv4) or /64 (IPv6) network."""

    network: str
    bans: int
    addresses: int


@dataclass(frozen=True)
class RepeatOffenders:
    """The addresses banned more than once in the range (in one jail or several)."""

    addresses: int
    share: float  # of the unique addresses, 0 to 1
    bans: int  # their bans, all of them
    bans_share: float  # of all the bans, 0 to 1
    distribution: tuple[tuple[str, int], ...]  # ("1", n), ("2", n), ("3-5", n)...: times banned
    top: tuple[AddressSummary, ...]  # the most banned


@dataclass(frozen=True)
class AttackStats:
    """The statistics of the bans that started in ``[since, until)``: whole clock hours of
    ``tz`` (``None``: the machine's local time), in ``jails`` (empty: every jail)."""

    since: float
    until: float
    tz: dt.tzinfo | None
    jails: tuple[str, ...]
    bans_per_hour: tuple[int, ...]  # one per hour of the range
    cumulative_unique: tuple[int, ...]  # distinct addresses banned by the end of each hour
    bans_trend: Trend
    unique_trend: Trend
    mean_per_hour: float
    median_per_hour: float
    night: Period
    day: Period
    weekdays: Period
    weekend: Period
    per_jail: tuple[JailSummary, ...]  # most bans first
    top_addresses: tuple[AddressSummary, ...]
    top_networks: tuple[NetworkSummary, ...]
    repeat_offenders: RepeatOffenders

    @property
    def hours(self) -> int:
        """How many hours the range holds."""
        return len(self.bans_per_hour)

    @property
    def bans(self) -> int:
        """Every ban of the range."""
        return sum(self.bans_per_hour)

    @property
    def unique_addresses(self) -> int:
        """How many distinct addresses were banned."""
        return self.cumulative_unique[-1] if self.cumulative_unique else 0

    @property
    def peak_hour(self) -> int | None:
        """The index of the (first) hour with the most bans, ``None`` without bans."""
        if not self.bans:
            return None
        return max(range(self.hours), key=self.bans_per_hour.__getitem__)

    def hour_start(self, index: int) -> float:
        """When hour ``index`` of the range starts, in seconds since the epoch."""
        return self.since + index * HOUR

    def local(self, epoch: float) -> dt.datetime:
        """``epoch`` as an aware date and time in the zone of these statistics."""
        return local(epoch, self.tz)


def compute_stats(
    source: StatsSource,
    *,
    until: float,
    since: float | None = None,
    jails: Collection[str] = (),
    tz: dt.tzinfo | None = None,
    top: int = 10,
) -> AttackStats:
    """Sum up the bans of ``source`` from ``since`` (default: the first ban) to ``until``,
    widened to whole clock hours of ``tz`` (``None``: local time), in ``jails`` (empty: all);
    ``top`` addresses and networks are listed."""
    chosen = tuple(sorted(set(jails)))
    if since is None:
        first = source.first_ban(until, chosen)
        since = until if first is None else first
    if since > until:
        raise ValueError(f"since ({since}) is after until ({until})")
    origin = floor_hour(since, tz)
    hours = math.ceil((until - origin) / HOUR)
    end = origin + hours * HOUR

    counted = source.bans_per_hour(origin, origin, end, chosen)
    series = tuple(counted.get(index, 0) for index in range(hours))
    total = sum(series)

    # per address: [bans, first start, last start, jails]; per jail: bans and addresses
    addresses: dict[str, list[Any]] = {}
    jail_bans: dict[str, int] = {}
    jail_addresses: dict[str, int] = {}
    for address, jail, bans, first, last in source.address_jail_counts(origin, end, chosen):
        seen = addresses.get(address)
        if seen is None:
            addresses[address] = [bans, first, last, [jail]]
        else:
            seen[0] += bans
            seen[1] = min(seen[1], first)
            seen[2] = max(seen[2], last)
            seen[3].append(jail)
        jail_bans[jail] = jail_bans.get(jail, 0) + bans
        jail_addresses[jail] = jail_addresses.get(jail, 0) + 1

    new_per_hour = [0] * hours
    for _, first, _, _ in addresses.values():
        new_per_hour[int((first - origin) // HOUR)] += 1
    cumulative = tuple(itertools.accumulate(new_per_hour))

    def summary(address: str) -> AddressSummary:
        bans, first, last, jails = addresses[address]
        return AddressSummary(address, bans, tuple(sorted(jails)), first, last)

    def most_banned(candidates: Iterable[str]) -> tuple[AddressSummary, ...]:
        # most bans first, then by address so that ties always list the same way
        ranked = heapq.nsmallest(top, candidates, key=lambda a: (-addresses[a][0], a))
        return tuple(summary(address) for address in ranked)

    times_banned = Counter(bans for bans, _, _, _ in addresses.values())
    repeated = sum(count for bans, count in times_banned.items() if bans > 1)
    repeated_bans = sum(bans * count for bans, count in times_banned.items() if bans > 1)

    return AttackStats(
        since=origin,
        until=end,
        tz=tz,
        jails=chosen,
        bans_per_hour=series,
        cumulative_unique=tuple(cumulative),
        bans_trend=linear_trend(series),
        unique_trend=linear_trend(cumulative),
        mean_per_hour=total / hours if hours else 0.0,
        median_per_hour=float(statistics.median(series)) if series else 0.0,
        **_periods(series, origin, tz, total),
        per_jail=tuple(
            JailSummary(jail, bans, jail_addresses[jail], _share(bans, total))
            for jail, bans in sorted(jail_bans.items(), key=lambda item: (-item[1], item[0]))
        ),
        top_addresses=most_banned(addresses),
        top_networks=_top_networks(addresses, top),
        repeat_offenders=RepeatOffenders(
            addresses=repeated,
            share=_share(repeated, len(addresses)),
            bans=repeated_bans,
            bans_share=_share(repeated_bans, total),
            distribution=_distribution(times_banned),
            top=most_banned(a for a, (bans, *_) in addresses.items() if bans > 1),
        ),
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _periods(
    series: Sequence[int], origin: float, tz: dt.tzinfo | None, total: int
) -> dict[str, Period]:
    """Night and day, weekdays and week-end, by the local hour and day each hour starts at."""
    hours = {"night": 0, "day": 0, "weekdays": 0, "weekend": 0}
    bans = dict.fromkeys(hours, 0)
    for index, count in enumerate(series):
        moment = local(origin + index * HOUR, tz)
        night = moment.hour >= NIGHT_START or moment.hour < NIGHT_END
        for name in (
            "night" if night else "day",
            "weekend" if moment.weekday() >= 5 else "weekdays",
        ):
            hours[name] += 1
            bans[name] += count
    labels = {
        "night": f"night ({NIGHT_START:02}:00-{NIGHT_END:02}:00)",
        "day": f"day ({NIGHT_END:02}:00-{NIGHT_START:02}:00)",
        "weekdays": "weekdays (Mon-Fri)",
        "weekend": "week-end (Sat-Sun)",
    }
    return {
        name: Period(name, labels[name], hours[name], bans[name], _share(bans[name], total))
        for name in hours
    }


def _top_networks(addresses: dict[str, list[Any]], top: int) -> tuple[NetworkSummary, ...]:
    networks: dict[str, list[int]] = {}  # network -> [bans, addresses]
    for address, (bans, *_) in addresses.items():
        network = network_of(address)
        seen = networks.get(network)
        if seen is None:
            networks[network] = [bans, 1]
        else:
            seen[0] += bans
            seen[1] += 1
    ranked = heapq.nsmallest(
        top, networks.items(), key=lambda item: (-item[1][0], -item[1][1], item[0])
    )
    return tuple(NetworkSummary(network, bans, count) for network, (bans, count) in ranked)


def _distribution(times_banned: Counter[int]) -> tuple[tuple[str, int], ...]:
    """How many addresses were banned once, twice, 3-5 times..., from how many addresses were
    banned each number of times."""
    distribution = []
    for low, high in DISTRIBUTION:
        label = str(low) if high == low else f"{low}+" if high is None else f"{low}-{high}"
        count = sum(
            addresses
            for bans, addresses in times_banned.items()
            if bans >= low and (high is None or bans <= high)
        )
        distribution.append((label, count))
    return tuple(distribution)

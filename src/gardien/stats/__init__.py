"""Attack statistics from the ban store (``gardien stats``): bans per hour and unique
addresses over time with their trends, night and day, weekdays and week-end, per jail, the top
addresses and networks, repeat offenders; as text, JSON, CSV or a plot."""

from gardien.stats.compute import (
    AddressSummary,
    AttackStats,
    JailSummary,
    NetworkSummary,
    Period,
    RepeatOffenders,
    Trend,
    compute_stats,
    linear_trend,
    network_of,
)
from gardien.stats.render import render_csv, render_json, render_text, to_dict
from gardien.stats.source import (
    AddressJailCount,
    BansSource,
    Fail2banReader,
    StatsSource,
    StoreReader,
    open_store,
)
from gardien.stats.times import parse_when

__all__ = [
    "AddressJailCount",
    "AddressSummary",
    "AttackStats",
    "BansSource",
    "Fail2banReader",
    "JailSummary",
    "NetworkSummary",
    "Period",
    "RepeatOffenders",
    "StatsSource",
    "StoreReader",
    "Trend",
    "compute_stats",
    "linear_trend",
    "network_of",
    "open_store",
    "parse_when",
    "render_csv",
    "render_json",
    "render_text",
    "to_dict",
]

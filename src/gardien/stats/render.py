""":class:`~gardien.stats.compute.AttackStats` for people (aligned text in 80 columns), for
programs (JSON) and for spreadsheets (CSV of the hourly series, the data behind the graphs).

Times are ISO 8601 with their UTC offset in JSON and CSV (``2026-11-01T08:00:00+01:00``), and
``2026-11-01 08:00`` in the text, whose heading names the zone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from gardien.stats.compute import AddressSummary, AttackStats, Period, Trend

__all__ = ["render_csv", "render_json", "render_text", "to_dict"]


def _iso(stats: AttackStats, epoch: float) -> str:
    return stats.local(epoch).isoformat(timespec="seconds")


def _trend(trend: Trend) -> dict[str, float]:
    return {
        "slope_per_hour": trend.slope_per_hour,
        "slope_per_day": trend.slope_per_day,
        "intercept": trend.intercept,
    }


def _period(period: Period) -> dict[str, Any]:
    return {
        "label": period.label,
        "hours": period.hours,
        "bans": period.bans,
        "share": period.share,
        "mean_per_hour": period.mean_per_hour,
    }


def _address(stats: AttackStats, summary: AddressSummary) -> dict[str, Any]:
    return {
        "address": summary.address,
        "bans": summary.bans,
        "jails": list(summary.jails),
        "first": _iso(stats, summary.first),
        "last": _iso(stats, summary.last),
    }


def to_dict(stats: AttackStats) -> dict[str, Any]:
    """The statistics as plain JSON values (the keys are listed in the README)."""
    peak = stats.peak_hour
    repeat = stats.repeat_offenders
    return {
        "since": _iso(stats, stats.since),
        "until": _iso(stats, stats.until),
        "timezone": stats.local(stats.since).tzname(),
        "jails": list(stats.jails),
        "hours": stats.hours,
        "bans": stats.bans,
        "unique_addresses": stats.unique_addresses,
        "bans_per_hour": {
            "mean": stats.mean_per_hour,
            "median": stats.median_per_hour,
            "peak": None
            if peak is None
            else {"hour": _iso(stats, stats.hour_start(peak)), "bans": stats.bans_per_hour[peak]},
            "trend": _trend(stats.bans_trend),
        },
        "unique_addresses_trend": _trend(stats.unique_trend),
        "night": _period(stats.night),
        "day": _period(stats.day),
        "weekdays": _period(stats.weekdays),
        "weekend": _period(stats.weekend),
        "per_jail": [
            {"jail": j.jail, "bans": j.bans, "addresses": j.addresses, "share": j.share}
            for j in stats.per_jail
        ],
        "top_addresses": [_address(stats, summary) for summary in stats.top_addresses],
        "top_networks": [
            {"network": n.network, "bans": n.bans, "addresses": n.addresses}
            for n in stats.top_networks
        ],
        "repeat_offenders": {
            "addresses": repeat.addresses,
            "share": repeat.share,
            "bans": repeat.bans,
            "bans_share": repeat.bans_share,
            "distribution": [
                {"times": times, "addresses": count} for times, count in repeat.distribution
            ],
            "top": [_address(stats, summary) for summary in repeat.top],
        },
        "hourly": [
            {
                "hour": _iso(stats, stats.hour_start(index)),
                "bans": bans,
                "cumulative_unique": unique,
            }
            for index, (bans, unique) in enumerate(
                zip(stats.bans_per_hour, stats.cumulative_unique, strict=True)
            )
        ],
    }


def render_json(stats: AttackStats) -> str:
    """One JSON object: :func:`to_dict`."""
    return json.dumps(to_dict(stats), indent=2)


def render_csv(stats: AttackStats) -> str:
    """The hourly series: ``hour,bans,cumulative_unique``, one row per hour of the range."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("hour", "bans", "cumulative_unique"))
    for index, (bans, unique) in enumerate(
        zip(stats.bans_per_hour, stats.cumulative_unique, strict=True)
    ):
        writer.writerow((_iso(stats, stats.hour_start(index)), bans, unique))
    return out.getvalue()


# ---- text ---------------------------------------------------------------------------------


def _when(stats: AttackStats, epoch: float, short: bool = False) -> str:
    return stats.local(epoch).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M")


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _signed(value: float) -> str:
    """Three significant digits, sign always, never in scientific notation."""
    if abs(value) >= 100:
        return f"{value:+.0f}"
    return f"{value:+.3g}" if abs(value) >= 0.001 else "+0" if value >= 0 else "-0"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Aligned columns, two spaces apart; ``right`` says which columns are numbers."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def range_text(stats: AttackStats) -> str:
    """``2026-11-01 00:00 and 2026-11-16 00:00 (UTC)``: the range, for messages."""
    zone = stats.local(stats.since).tzname()
    return f"{_when(stats, stats.since)} and {_when(stats, stats.until)} ({zone})"


def render_text(stats: AttackStats) -> str:
    """A summary, then per jail, night and day, weekdays and week-end, the top addresses and
    networks and the repeat offenders; in 80 columns but for the longest IPv6 addresses."""
    jails = ", ".join(stats.jails) if stats.jails else "every jail"
    heading = f"Bans between {range_text(stats)}, {jails}"
    if not stats.bans:
        return f"No bans between {range_text(stats)}, {jails}."
    peak = stats.peak_hour or 0  # there are bans, hence a peak
    trend, unique = stats.bans_trend, stats.unique_trend
    summary = [
        ("hours", str(stats.hours)),
        ("bans", str(stats.bans)),
        ("unique addresses", str(stats.unique_addresses)),
        (
            "bans per hour",
            f"mean {_number(stats.mean_per_hour)}, median {_number(stats.median_per_hour)}, "
            f"peak {stats.bans_per_hour[peak]} at {_when(stats, stats.hour_start(peak))}",
        ),
        (
            "trend of bans/hour",
            f"{_signed(trend.slope_per_day)} a day ({_signed(trend.slope_per_hour)} an hour): "
            f"{_number(trend.at(0))} to {_number(trend.at(stats.hours - 1))}",
        ),
        (
            "trend of unique",
            f"{_signed(unique.slope_per_day)} addresses a day "
            f"({_signed(unique.slope_per_hour)} an hour)",
        ),
    ]
    width = max(len(label) for label, _ in summary)
    parts = [heading, *(f"  {label.ljust(width)}  {value}" for label, value in summary)]

    def periods(title: str, first: Period, second: Period) -> None:
        rows = [
            [p.label, str(p.hours), str(p.bans), _percent(p.share), _number(p.mean_per_hour)]
            for p in (first, second)
        ]
        headers = ["", "hours", "bans", "share", "bans/hour"]
        parts.extend(["", title, _table(headers, rows, [False, True, True, True, True])])

    parts.extend(
        [
            "",
            "Per jail",
            _table(
                ["jail", "bans", "share", "addresses"],
                [
                    [j.jail, str(j.bans), _percent(j.share), str(j.addresses)]
                    for j in stats.per_jail
                ],
                [False, True, True, True],
            ),
        ]
    )
    periods("Night and day", stats.night, stats.day)
    periods("Weekdays and week-end", stats.weekdays, stats.weekend)
    if stats.top_addresses:  # none with --top 0
        parts.extend(["", "Top addresses", _addresses(stats, stats.top_addresses)])
    if stats.top_networks:
        parts.extend(
            [
                "",
                "Top networks (/24 IPv4, /64 IPv6)",
                _table(
                    ["network", "bans", "addresses"],
                    [[n.network, str(n.bans), str(n.addresses)] for n in stats.top_networks],
                    [False, True, True],
                ),
            ]
        )
    repeat = stats.repeat_offenders
    parts.extend(
        [
            "",
            "Repeat offenders (banned more than once)",
            f"  {repeat.addresses} of {stats.unique_addresses} addresses "
            f"({_percent(repeat.share)}), {repeat.bans} bans "
            f"({_percent(repeat.bans_share)} of all)",
            _table(
                ["times banned", "addresses"],
                [[times, str(count)] for times, count in repeat.distribution],
                [False, True],
            ),
        ]
    )
    return "\n".join(parts)


def _addresses(stats: AttackStats, summaries: Sequence[AddressSummary]) -> str:
    return _table(
        ["address", "bans", "first", "last", "jails"],
        [
            [
                s.address,
                str(s.bans),
                _when(stats, s.first, short=True),
                _when(stats, s.last, short=True),
                ",".join(s.jails),
            ]
            for s in summaries
        ],
        [False, True, False, False, False],
    )

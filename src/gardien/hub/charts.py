"""Server-side SVG bar charts for the dashboard: no JavaScript, nothing to load.

Pure functions from a series of ``(bucket start, count)`` pairs to an SVG string. Buckets the
series leaves out are drawn as zero, so a quiet hour shows as a gap rather than vanishing.
Every piece of text is escaped; colours and sizes are presentation attributes, not ``style``
attributes, so the dashboard's Content-Security-Policy can forbid inline styles on elements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from html import escape

__all__ = ["bar_chart", "daily_chart", "fill_buckets", "hourly_chart", "nice_ticks"]

HOUR = 3600.0
DAY = 86400.0

_BAR = "#2f6f9f"
_AXIS = "#555"
_GRID = "#ddd"
_TEXT = "#333"


def fill_buckets(
    series: Iterable[tuple[float, int]], start: float, step: float, count: int
) -> list[tuple[float, int]]:
    """``count`` buckets of ``step`` seconds from ``start`` (aligned down to ``step``), each
    with the total of the series points that fall in it; points outside are ignored."""
    first = math.floor(start / step) * step
    totals = [0] * count
    for when, value in series:
        index = math.floor((when - first) / step)
        if 0 <= index < count:
            totals[index] += int(value)
    return [(first + i * step, totals[i]) for i in range(count)]


def nice_ticks(maximum: int, most: int = 5) -> list[int]:
    """Round y-axis values from 0 to at least ``maximum`` (steps of 1, 2 or 5 times a power of
    ten), at most ``most`` + 1 of them."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / most
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(int(step), 1)
    top = math.ceil(maximum / step) * step
    return list(range(0, top + 1, step))


def _utc(format_: str) -> Callable[[float], str]:
    return lambda when: time.strftime(format_, time.gmtime(when))


def bar_chart(
    buckets: list[tuple[float, int]],
    *,
    title: str,
    label: Callable[[float], str],
    label_every: int,
    describe: Callable[[float], str],
    width: int = 760,
    height: int = 240,
) -> str:
    """An SVG bar chart of ``buckets`` (already filled): a title, a y axis with round ticks
    and grid lines, an x axis labelled every ``label_every`` bars with ``label(start)``, and
    a tooltip per bar (``describe(start)``: count)."""
    left, right, top, bottom = 48, 12, 28, 34
    plot_width = width - left - right
    plot_height = height - top - bottom
    ticks = nice_ticks(max((count for _, count in buckets), default=0))
    scale = plot_height / ticks[-1]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="{_TEXT}">'
        f"{escape(title)}</text>",
    ]
    for tick in ticks:
        y = top + plot_height - tick * scale
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width}" y2="{y:.1f}" '
            f'stroke="{_GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{_TEXT}">{tick}</text>'
        )
    slot = plot_width / max(len(buckets), 1)
    bar_width = max(slot * 0.8, 1.0)
    for index, (start, count) in enumerate(buckets):
        x = left + index * slot + (slot - bar_width) / 2
        bar_height = count * scale
        y = top + plot_height - bar_height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" '
            f'height="{bar_height:.1f}" fill="{_BAR}">'
            f"<title>{escape(describe(start))}: {count}</title></rect>"
        )
        if index % label_every == 0:
            center = left + index * slot + slot / 2
            parts.append(
                f'<text x="{center:.1f}" y="{top + plot_height + 16}" font-size="11" '
                f'text-anchor="middle" fill="{_TEXT}">{escape(label(start))}</text>'
            )
    base = top + plot_height
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="{_AXIS}" stroke-width="1"/>'
    )
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{left + plot_width}" y2="{base}" '
        f'stroke="{_AXIS}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def hourly_chart(
    per_hour: Iterable[tuple[float, int]],
    until: float,
    hours: int = 48,
    title: str = "Reports per hour (UTC)",
) -> str:
    """Reports per hour over the ``hours`` hours that end with the one holding ``until``."""
    first = (math.floor(until / HOUR) - hours + 1) * HOUR
    buckets = fill_buckets(per_hour, first, HOUR, hours)
    return bar_chart(
        buckets,
        title=title,
        label=_utc("%H:%M"),
        label_every=6,
        describe=_utc("%Y-%m-%d %H:00"),
    )


def daily_chart(
    per_day: Iterable[tuple[float, int]],
    until: float,
    days: int = 30,
    title: str = "Reports per day (UTC)",
) -> str:
    """Reports per day over the ``days`` days that end with the one holding ``until``."""
    first = (math.floor(until / DAY) - days + 1) * DAY
    buckets = fill_buckets(per_day, first, DAY, days)
    return bar_chart(
        buckets,
        title=title,
        label=_utc("%m-%d"),
        label_every=5,
        describe=_utc("%Y-%m-%d"),
    )

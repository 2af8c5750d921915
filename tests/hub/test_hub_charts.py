"""The dashboard's SVG charts: well-formed, complete (zero buckets drawn), proportional, and
escaped."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from gardien.hub.charts import (
    DAY,
    HOUR,
    bar_chart,
    daily_chart,
    fill_buckets,
    hourly_chart,
    nice_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def bars(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # noqa: S314 (our own output)
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # noqa: S314 (our own output)
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_fill_buckets_counts_points_into_aligned_buckets_and_fills_gaps() -> None:
    start = 10 * HOUR + 120  # not aligned: buckets start at 10:00
    series = [(10 * HOUR, 3), (10 * HOUR + 1800, 2), (12 * HOUR, 5), (99 * HOUR, 7), (0.0, 1)]
    assert fill_buckets(series, start, HOUR, 3) == [
        (10 * HOUR, 5),
        (11 * HOUR, 0),
        (12 * HOUR, 5),
    ]


def test_hourly_chart_draws_48_bars_ending_with_the_current_hour() -> None:
    current_hour = NOW // HOUR * HOUR
    svg = hourly_chart(
        [(current_hour, 10), (current_hour - 47 * HOUR, 4), (current_hour - 48 * HOUR, 99)], NOW
    )
    drawn = bars(svg)
    assert len(drawn) == 48
    heights = [float(rect.get("height", "0")) for rect in drawn]
    assert heights[-1] > 0 and heights[0] > 0
    assert heights[-1] == 2.5 * heights[0]  # 10 reports against 4: proportional
    assert all(h == 0 for h in heights[1:-1])
    # the tooltip names the hour and its count
    tooltip = drawn[-1].find(f"{SVG}title")
    assert tooltip is not None and tooltip.text == "2023-11-14 22:00: 10"
    assert "Reports per hour (UTC)" in texts(svg)
    # x labels every 6 hours, in UTC
    assert "23:00" in texts(svg)


def test_daily_chart_draws_30_days_with_date_labels() -> None:
    today = NOW // DAY * DAY
    svg = daily_chart([(today, 1234), (today - DAY, 17)], NOW)
    drawn = bars(svg)
    assert len(drawn) == 30
    labels = texts(svg)
    assert "10-16" in labels  # 29 days before 11-14, the first bar
    # the y axis reaches the biggest day with a round number
    ticks = [int(t) for t in labels if t.isdigit()]
    assert max(ticks) >= 1234 and max(ticks) % 100 == 0


def test_an_empty_series_is_still_a_chart() -> None:
    svg = hourly_chart([], NOW)
    assert len(bars(svg)) == 48
    assert all(float(rect.get("height", "1")) == 0 for rect in bars(svg))


def test_text_is_escaped() -> None:
    svg = bar_chart(
        [(0.0, 1)],
        title='<script>alert("x")</script>',
        label=lambda _: "<b>&",
        label_every=1,
        describe=lambda _: "</title><script>",
    )
    assert "<script>" not in svg and "<b>" not in svg
    root = ET.fromstring(svg)  # noqa: S314 (still well-formed)
    assert root.get("aria-label") == '<script>alert("x")</script>'
    assert "<b>&" in texts(svg)


def test_no_style_attributes_nor_scripts() -> None:
    svg = hourly_chart([(NOW, 3)], NOW)
    assert "style=" not in svg and "<script" not in svg


@given(st.integers(min_value=0, max_value=10**9))
def test_nice_ticks_cover_the_maximum_with_few_round_steps(maximum: int) -> None:
    ticks = nice_ticks(maximum)
    assert ticks[0] == 0 and ticks[-1] >= maximum
    assert 2 <= len(ticks) <= 6
    step = ticks[1]
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    assert str(step).rstrip("0") in ("1", "2", "5")

"""Waiting before trying again: the backoffs and a server's Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from gardien.retries import MAX_RETRY_AFTER, backoff_after, backoff_delays, retry_after

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()


def test_retry_after_reads_seconds_and_http_dates_within_bounds() -> None:
    assert retry_after("7", NOW) == 7.0
    later = format_datetime(datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after(later, NOW) == 30.0
    earlier = format_datetime(datetime(2026, 11, 21, 11, 0, tzinfo=UTC), usegmt=True)
    assert retry_after(earlier, NOW) == 0.0  # in the past: go now
    assert retry_after("86400", NOW) == MAX_RETRY_AFTER  # not believed beyond the cap
    assert retry_after("86400", NOW, cap=60) == 60.0


def test_retry_after_ignores_what_it_cannot_read() -> None:
    for value in (None, "", "  ", "-5", "1.5", "soon", "Mon, 99 Foo 2026 99:99:99 GMT"):
        assert retry_after(value, NOW) is None, value


def test_backoffs_double_with_jitter_up_to_a_cap() -> None:
    waits = list(backoff_delays(1.0, 5, cap=5.0))
    assert len(waits) == 4  # between 5 attempts
    for wait, base in zip(waits, (1.0, 2.0, 4.0, 5.0), strict=True):
        assert base <= wait <= base * 1.25
    for failures, base in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0), (1000, 60.0)):
        assert base * 0.8 <= backoff_after(failures, 2.0, 60.0) <= base

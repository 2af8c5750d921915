"""Time for the statistics: hours of the local clock (or UTC), and the ``--since`` and
``--until`` values a user types.

Local time is the machine's time zone (``TZ`` honoured) when ``tz`` is ``None``; a
:class:`~datetime.tzinfo` (``datetime.timezone.utc``, a ``ZoneInfo``) overrides it. Nothing here
reads the clock: "now" is always passed in.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from gardien.config.values import parse_duration
from gardien.errors import ConfigError

__all__ = ["HOUR", "floor_hour", "local", "parse_when"]

HOUR = 3600.0

# what looks like a date: an ISO date or time, never a duration such as 15d or 90m
_LOOKS_LIKE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def local(epoch: float, tz: dt.tzinfo | None) -> dt.datetime:
    """The aware date and time of ``epoch`` in ``tz``, or in the machine's time zone."""
    if tz is None:
        return dt.datetime.fromtimestamp(epoch).astimezone()
    return dt.datetime.fromtimestamp(epoch, tz)


def floor_hour(epoch: float, tz: dt.tzinfo | None) -> float:
    """The start of the clock hour (in ``tz``) that ``epoch`` falls in."""
    moment = local(epoch, tz)
    return moment.replace(minute=0, second=0, microsecond=0).timestamp()


def parse_when(text: str, now: float, tz: dt.tzinfo | None, option: str = "--since") -> float:
    """Seconds since the epoch of ``text``: an ISO date or time (``2026-11-01``,
    ``2026-11-01T08:00``; without a zone, in ``tz`` or local time) or a duration back from
    ``now`` (``15d``, ``12h``, ``1w``). Raises :class:`ConfigError` naming ``option``."""
    value = text.strip()
    if _LOOKS_LIKE_DATE.match(value):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"{text!r} is not an ISO date or time such as 2026-11-01 or 2026-11-01T08:00",
                option=option,
            ) from None
        if moment.tzinfo is None:
            if tz is None:
                # mktime applies the local zone's rules (daylight saving time) of that date
                return time.mktime(moment.timetuple()) + moment.microsecond / 1e6
            moment = moment.replace(tzinfo=tz)
        return moment.timestamp()
    try:
        seconds = parse_duration(value)
    except ConfigError:
        seconds = -1.0
    if seconds < 0 or not value:
        raise ConfigError(
            f"{text!r} is neither an ISO date or time (2026-11-01, 2026-11-01T08:00) nor a "
            "duration back from now (15d, 12h, 1w)",
            option=option,
        )
    return now - seconds

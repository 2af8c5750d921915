"""Find and read the timestamp of a log line.

A :class:`DateTemplate` is a regular expression for one date format plus the arithmetic that
turns its match into seconds since the epoch. ``datepattern`` values are written in the strftime
style fail2ban uses (``%Y-%m-%d %H:%M:%S``, ``%b %d %H:%M:%S``, with its ``%Ex..`` variants that
only accept plausible values), or one of the special names ``EPOCH``, ``LEPOCH``, ``TAI64N`` and
``{NONE}`` (the line has no date: use the current time). ``{^LN-BEG}`` in front anchors the date at
the beginning of the line (a couple of punctuation characters such as ``[`` may come first);
``{DATE}`` inside a larger regex stands for every default format.

A :class:`DateDetector` holds the candidate templates of one log. It remembers the template that
matched last and tries it first, so that a log in one format costs one regex search per line;
otherwise it tries all templates and keeps the date found earliest in the line (line-anchored
templates first).

Year-less dates take the year of the reference time and fall back one year when that would put
them more than a day in the future, so that a log read in January still dates December right.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gardien.errors import FilterError

__all__ = ["DateDetector", "DateTemplate", "compile_datepattern", "default_templates"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_INDEX = {name: i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_INDEX.update({name: i + 1 for i, name in enumerate(_MONTH_NAMES)})


def _alternatives(names: Sequence[str]) -> str:
    return "|".join(sorted(names, key=len, reverse=True))


_TZ_ABBR = r"[A-Z](?:[A-Z]{2,4})?"
#: strftime directive -> regex (named groups carry the field)
DIRECTIVES: dict[str, str] = {
    "a": rf"(?P<a>{_alternatives(_DAYS)})",
    "A": rf"(?P<A>{_alternatives(_DAY_NAMES)})",
    "b": rf"(?P<b>{_alternatives(_MONTHS)})",
    "B": rf"(?P<B>{_alternatives(_MONTH_NAMES)})",
    "d": r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])",
    "f": r"(?P<f>[0-9]{1,6})",
    "H": r"(?P<H>[0-1]?\d|2[0-3])",
    "I": r"(?P<I>1[0-2]|0[1-9]|[1-9])",
    "j": r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
    "k": r" ?(?P<H>[0-2]?\d)",
    "l": r" ?(?P<I>1?\d)",
    "m": r"(?P<m>0?[1-9]|1[0-2])",
    "M": r"(?P<M>[0-5]?\d)",
    "p": r"(?P<p>am|pm)",
    "S": r"(?P<S>[0-5]?\d|6[0-1])",
    "U": r"(?P<U>5[0-3]|[0-4]\d|\d)",
    "W": r"(?P<W>5[0-3]|[0-4]\d|\d)",
    "w": r"(?P<w>[0-6])",
    "y": r"(?P<y>\d\d)",
    "Y": r"(?P<Y>\d\d\d\d)",
    "z": r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)",
    "Z": r"(?P<Z>Z|[A-Z]{3,5})",
    "ExY": r"(?P<Y>20\d\d)",
    "Exy": r"(?P<y>\d{2})",
    "Exd": r"(?P<d>[1-2]\d|0[1-9]|3[0-1])",
    "Exm": r"(?P<m>0[1-9]|1[0-2])",
    "ExH": r"(?P<H>[0-1]\d|2[0-3])",
    "Exk": r" ?(?P<H>[0-1]?\d|2[0-3])",
    "Exl": r" ?(?P<I>1[0-2]|\d)",
    "ExM": r"(?P<M>[0-5]\d)",
    "ExS": r"(?P<S>[0-5]\d|6[0-1])",
    "ExZ": rf"(?P<Z>{_TZ_ABBR})",
    "Exz": rf"(?P<z>(?:{_TZ_ABBR})?[+-][01]\d(?::?\d{{2}})?|{_TZ_ABBR})",
    "%": "%",
}
_DIRECTIVE_RE = re.compile(
    r"%("
    + "|".join(k for k in DIRECTIVES if len(k) > 1)
    + r"|["
    + "".join(re.escape(k) for k in DIRECTIVES if len(k) == 1)
    + r"])"
)
_ALPHA_DIRECTIVE_RE = re.compile(r"(?<!%)%[aAbBp]")
_EPOCH_TAG_RE = re.compile(r"(?<!\\)\{L?EPOCH\}", re.IGNORECASE)
_DATE_TAG_RE = re.compile(r"(?<!\\)\{DATE\}", re.IGNORECASE)
_NO_WORD_START_RE = re.compile(r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)")
_NO_WORD_END_RE = re.compile(r"(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$")
_STARS_RE = re.compile(r"^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$")
_LINE_START_RE = re.compile(r"^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))")
_LINE_END_RE = re.compile(r"(?<![\\|])(?:\$\)?)$")
_GLOBAL_FLAGS_RE = re.compile(r"((?:^|(?!<\\))\(\?[a-z]+\))")
_HAS_GROUP_RE = re.compile(r"(?<!\(\?)(?<!\\)\((?!\?)")
_WRAP_RE = re.compile(r"^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$")

# offsets (minutes) of time-zone abbreviations, for %Z / %Exz
_ZONE_OFFSETS: dict[str, int] = {
    "": 0,
    "Z": 0,
    "UTC": 0,
    "GMT": 0,
    "UT": 0,
    "WET": 0,
    "CET": 60,
    "CEST": 120,
    "WEST": 60,
    "EET": 120,
    "EEST": 180,
    "MSK": 180,
    "IST": 330,
    "JST": 540,
    "KST": 540,
    "HKT": 480,
    "SGT": 480,
    "AEST": 600,
    "AEDT": 660,
    "ACST": 570,
    "AWST": 480,
    "NZST": 720,
    "NZDT": 780,
    "EST": -300,
    "EDT": -240,
    "CST": -360,
    "CDT": -300,
    "MST": -420,
    "MDT": -360,
    "PST": -480,
    "PDT": -420,
    "AKST": -540,
    "AKDT": -480,
    "HST": -600,
    "AST": -240,
    "ADT": -180,
    "NST": -210,
    "NDT": -150,
    "BST": 60,
    "SAST": 120,
    "CAT": 120,
    "EAT": 180,
    "WAT": 60,
    "BRT": -180,
    "ART": -180,
}
_MILITARY = "ZABCDEFGHIKLMNOPQRSTUVWXY"


def zone_offset(text: str) -> int:
    """Minutes east of UTC for ``Z``, ``UTC``, ``+0200``, ``-05:00``, ``CEST`` or ``CET+0100``."""
    match = re.fullmatch(rf"({_TZ_ABBR})?([+-][01]\d(?::?\d{{2}})?)?", text)
    if match is None:
        raise FilterError(f"unknown time zone {text!r}")
    name, offset = match.groups()
    base = 0
    if name:
        if name in _ZONE_OFFSETS:
            base = _ZONE_OFFSETS[name]
        elif len(name) == 1 and name in _MILITARY:
            index = _MILITARY.index(name)
            base = 60 * (index if index <= 12 else 12 - index)
        else:
            raise FilterError(f"unknown time zone abbreviation {name!r}")
    if offset:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours = int(digits[:2])
        minutes = int(digits[2:4]) if len(digits) > 2 else 0
        base += sign * (hours * 60 + minutes)
    return base


class DateTemplate:
    """One date format: where it is found in a line and how to read it."""

    __slots__ = ("_group", "_reader", "anchored", "name", "regex")

    def __init__(
        self,
        name: str,
        regex: str,
        reader: Callable[[re.Match[str], DateContext], float | None],
        *,
        anchored: bool = False,
        flags: int = 0,
    ) -> None:
        self.name = name
        try:
            self.regex = re.compile(regex, flags)
        except re.error as exc:
            raise FilterError(f"date pattern {name!r} is not a valid regex: {exc}") from None
        self.anchored = anchored
        self._reader = reader

    def search(self, line: str) -> re.Match[str] | None:
        return self.regex.search(line)

    def read(self, match: re.Match[str], context: DateContext) -> float | None:
        """Seconds since the epoch for ``match``, or ``None`` when the date is impossible."""
        try:
            return self._reader(match, context)
        except (ValueError, OverflowError, KeyError):
            return None

    def __repr__(self) -> str:
        return f"DateTemplate({self.name!r})"


@dataclass
class DateContext:
    """What reading a date may depend on besides the text: the reference time and log zone."""

    now: float
    default_offset: int | None = None  # minutes east of UTC for dates without a zone

    def __post_init__(self) -> None:
        self._local_hours: dict[tuple[int, int, int, int], float] = {}
        self._year_of: tuple[float, int] = (float("nan"), 0)

    @property
    def year(self) -> int:
        """The local year of ``now`` (what a year-less date is first given)."""
        now = self.now
        cached_now, year = self._year_of
        if cached_now != now:
            year = time.localtime(now).tm_year
            self._year_of = (now, year)
        return year

    def local_epoch(
        self, year: int, month: int, day: int, hour: int, minute: int, second: int
    ) -> float:
        """mktime() of a local wall-clock time, cached per hour (the hot path of log reading)."""
        key = (year, month, day, hour)
        base = self._local_hours.get(key)
        if base is None:
            if len(self._local_hours) > 4096:
                self._local_hours.clear()
            base = time.mktime((year, month, day, hour, 0, 0, 0, 0, -1))
            self._local_hours[key] = base
        return base + minute * 60 + second


def _number(groups: dict[str, str | None], key: str) -> int | None:
    value = groups.get(key)
    return int(value) if value else None


def _read_fields(match: re.Match[str], context: DateContext) -> float | None:
    groups = match.groupdict()
    offset: int | None = None
    week = weekday = None
    week_starts_sunday = False
    year = _number(groups, "Y")
    short_year = _number(groups, "y")
    if year is None and short_year is not None:
        year = short_year + 2000
    month = _number(groups, "m")
    month_name = groups.get("b") or groups.get("B")
    if month_name:
        month = _MONTH_INDEX[month_name.lower()]
    day = _number(groups, "d")
    hour = _number(groups, "H") or 0
    twelve = _number(groups, "I")
    if twelve is not None:
        meridian = (groups.get("p") or "").lower()
        hour = twelve + 12 if meridian == "pm" and twelve != 12 else twelve
        if meridian in ("", "am") and twelve == 12:
            hour = 0
    minute = _number(groups, "M") or 0
    second = _number(groups, "S") or 0
    value = groups.get("f")
    fraction = int(value.ljust(6, "0")) / 1_000_000 if value else 0.0
    value = groups.get("z") or groups.get("Z")
    if value:
        try:
            offset = zone_offset(value)
        except FilterError:
            return None  # a line's text where a zone goes that names none: no date read
    julian = _number(groups, "j")
    for key in ("U", "W"):
        value = groups.get(key)
        if value:
            week = int(value)
            week_starts_sunday = key == "U"
    value = groups.get("w")
    if value:
        weekday = (int(value) - 1) % 7
    value = groups.get("a") or groups.get("A")
    if value and weekday is None:
        weekday = _DAYS.index(value.lower()[:3])
    now = context.now
    assume_year = year is None
    if year is None:
        year = time.localtime(now).tm_year
    if (
        (month is None or day is None)
        and julian is None
        and week is not None
        and weekday is not None
    ):
        first = calendar.weekday(year, 1, 1)
        start = (6 - first) % 7 + 1 if week_starts_sunday else (7 - first) % 7 + 1
        julian = start + (week - 1) * 7 + (weekday + (1 if week_starts_sunday else 0)) % 7
    if (month is None or day is None) and julian is not None:
        stamp = calendar.timegm((year, 1, 1, 0, 0, 0)) + (julian - 1) * 86400
        parts = time.gmtime(stamp)
        year, month, day = parts.tm_year, parts.tm_mon, parts.tm_mday
    assume_today = month is None and day is None
    if month is None or day is None:
        today = time.localtime(now)
        month, day = today.tm_mon, today.tm_mday
    if offset is None:
        offset = context.default_offset

    def epoch(for_year: int) -> float:
        if offset is None:
            return context.local_epoch(for_year, month, day, hour, minute, second)
        return calendar.timegm((for_year, month, day, hour, minute, second)) - offset * 60

    if hour > 23 or minute > 59 or second > 59:
        return None  # 24:00 or a leap second is not a time mktime should roll over
    # validate the calendar date (mktime would silently roll 31 Feb over)
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        if assume_year and month == 2 and day == 29:
            year -= 1
            while not calendar.isleap(year):
                year -= 1
        else:
            return None
    result = epoch(year)
    if assume_today and result > now:
        result -= 86400
    if assume_year and result > now + 86400:
        if month == 2 and day == 29 and not calendar.isleap(year - 1):
            return None
        result = epoch(year - 1)
    return result + fraction


_FAST_FIELDS = frozenset("aAbmdHMSfY")  # weekday names are checked by the regex only
_ALL_FIELDS = frozenset("aAbBdfHIjmMpSUWwyYzZ")


def _reader_for(regex: re.Pattern[str]) -> Callable[[re.Match[str], DateContext], float | None]:
    """A reader specialised for the common formats (month, day, time, maybe year; no zone), or
    the general one. Both give the same results; the fast one hands odd dates to the other."""
    fields = set(regex.groupindex) & _ALL_FIELDS
    if not (
        fields <= _FAST_FIELDS
        and {"d", "H", "M", "S"} <= fields
        and ("b" in fields) != ("m" in fields)
    ):
        return _read_fields
    names = (
        "b" if "b" in fields else "m",
        "d",
        "H",
        "M",
        "S",
        "Y" if "Y" in fields else "d",
        "f" if "f" in fields else "d",
    )
    has_year = "Y" in fields
    has_fraction = "f" in fields
    by_name = "b" in fields
    last_day = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

    def read(match: re.Match[str], context: DateContext) -> float | None:
        mon, day_text, hour, minute, second, year_text, fraction_text = match.group(*names)
        if mon is None or day_text is None or hour is None or minute is None or second is None:
            return _read_fields(match, context)
        month = _MONTH_INDEX[mon.lower()] if by_name else int(mon)
        day = int(day_text)
        if (
            day > last_day[month]
            or (month == 2 and day == 29)
            or context.default_offset is not None
            or int(hour) > 23
            or int(second) > 59
        ):
            return _read_fields(match, context)
        if has_year and year_text:
            year = int(year_text)
            result = context.local_epoch(year, month, day, int(hour), int(minute), int(second))
        else:
            now = context.now
            year = context.year
            result = context.local_epoch(year, month, day, int(hour), int(minute), int(second))
            if result > now + 86400:
                result = context.local_epoch(
                    year - 1, month, day, int(hour), int(minute), int(second)
                )
        if has_fraction and fraction_text:
            result += int(fraction_text.ljust(6, "0")) / 1_000_000
        return result

    return read


def _read_epoch(group: int, long_form: bool) -> Callable[[re.Match[str], DateContext], float]:
    def read(match: re.Match[str], context: DateContext) -> float:
        del context
        text = match.group(group)
        if long_form and len(text) >= 13:
            if len(text) >= 16 and "." not in text:
                return float(text) / 1_000_000
            return float(text) / 1000
        return float(text)

    return read


def _read_tai64n(match: re.Match[str], context: DateContext) -> float:
    del context
    label = match.group(1)
    return float(int(label[2:17], 16))


def _bounded(
    regex: str, name: str, word_start: bool | str, word_end: bool
) -> tuple[str, bool, str]:
    """Add word boundaries (or a line-start anchor) around a date regex, as fail2ban does."""
    regex = regex.strip()
    global_flags = _GLOBAL_FLAGS_RE.search(regex)
    if global_flags:
        regex = _GLOBAL_FLAGS_RE.sub("", regex, count=1)
    bound_start = word_start and not _NO_WORD_START_RE.search(regex)
    bound_end = word_end and not _NO_WORD_END_RE.search(regex)
    if not _HAS_GROUP_RE.search(regex):
        regex = _WRAP_RE.sub(r"\1(\2)\3", regex)
    anchored = False
    if bound_start:
        if word_start == "start":
            regex = r"^(?:\W{0,2})?" + regex
            anchored = True
            if not name.startswith("{^LN-BEG}"):
                name = "{^LN-BEG}" + name
        else:
            regex = r"(?=^|\b|\W)" + regex
    if bound_end:
        regex += r"(?=\b|\W|$)"
    if not anchored and (_LINE_START_RE.search(regex) or _LINE_END_RE.search(regex)):
        anchored = True
    regex = _STARS_RE.sub(lambda m: m.group().replace("**", ""), regex)
    if global_flags:
        regex = global_flags.group(1) + regex
    return regex, anchored, name


def _pattern_template(pattern: str) -> DateTemplate:
    """A template from a strftime-style ``datepattern`` (with ``{^LN-BEG}``/``{UNB}`` prefixes)."""
    original = pattern
    word_start: bool | str = True
    word_end = True
    if pattern.startswith("{UNB}"):
        pattern = pattern[len("{UNB}") :]
        word_start = word_end = False
    if word_start and pattern.startswith("{^LN-BEG}"):
        pattern = pattern[len("{^LN-BEG}") :]
        word_start = "start"
    missing = [
        d
        for d in re.findall(r"%(Ex\w|\w|%)", pattern)
        if d not in DIRECTIVES and d[:3] not in DIRECTIVES
    ]
    unknown = [d for d in missing if not _DIRECTIVE_RE.match("%" + d)]
    if unknown:
        raise FilterError(
            f"date pattern {original!r} uses unsupported directive(s) "
            + ", ".join("%" + d for d in unknown)
        )
    seen: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        regex = DIRECTIVES[match.group(1)]
        group = re.match(r"\s?\?*\(\?P<(\w+)>", regex.lstrip(" ?"))
        if group:
            field = group.group(1)
            if field in seen:  # a field given twice: match it, but only read the first
                regex = regex.replace(f"(?P<{field}>", "(?:", 1)
            seen.add(field)
        return regex

    regex = _DIRECTIVE_RE.sub(expand, pattern)
    flags = re.IGNORECASE if _ALPHA_DIRECTIVE_RE.search(pattern) else 0
    regex, anchored, name = _bounded(regex, original, word_start, word_end)
    return DateTemplate(
        name, regex, _reader_for(re.compile(regex, flags)), anchored=anchored, flags=flags
    )


_EPOCH_RE = r"\d{10,11}\b(?:\.\d{3,6})?"
_LONG_EPOCH_RE = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?"


def _epoch_template(key: str, pattern: str) -> DateTemplate:
    long_form = "LEPOCH" in key
    number = _LONG_EPOCH_RE if long_form else _EPOCH_RE
    name = "LongEpoch" if long_form else "Epoch"
    if _EPOCH_TAG_RE.search(pattern):
        regex = "(" + _EPOCH_TAG_RE.sub(lambda _: f"({number})", pattern) + ")"
        regex, anchored, _ = _bounded(regex, pattern, True, True)
        return DateTemplate(pattern, regex, _read_epoch(2, long_form), anchored=anchored)
    if key in ("EPOCH", "LEPOCH"):
        regex = (
            rf"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))({number}))"
            r"(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))"
        )
        regex, anchored, name = _bounded(regex, name, False, True)
        return DateTemplate(name, regex, _read_epoch(4, long_form), anchored=anchored)
    regex = rf"((?P<square>(?<=^\[))?({number}))(?(square)(?=\]))"
    regex, anchored, name = _bounded(regex, name, "start", True)
    return DateTemplate(name, regex, _read_epoch(3, long_form), anchored=True)


def _tai64n_template(line_start: bool) -> DateTemplate:
    regex, anchored, name = _bounded(
        r"@[0-9a-f]{24}", "TAI64N", "start" if line_start else False, True
    )
    return DateTemplate(name, regex, _read_tai64n, anchored=anchored)


def _no_date_template() -> DateTemplate:
    return DateTemplate("{NONE}", r"^()", lambda m, c: None, anchored=True)


#: the formats recognised when a filter does not set ``datepattern``, most specific first
DEFAULT_PATTERNS = (
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
)

_TEMPLATE_CACHE: dict[str, DateTemplate] = {}


def compile_datepattern(pattern: str) -> DateTemplate:
    """One template from one ``datepattern`` line (cached: filters share templates)."""
    key = pattern if "%" in pattern else pattern.upper()
    cached = _TEMPLATE_CACHE.get(key)
    if cached is not None:
        return cached
    if "EPOCH" in key and (
        _EPOCH_TAG_RE.search(pattern)
        or key in ("EPOCH", "LEPOCH", "{^LN-BEG}EPOCH", "^EPOCH", "{^LN-BEG}LEPOCH", "^LEPOCH")
    ):
        template = _epoch_template(key.replace("{^LN-BEG}", "^"), pattern)
    elif key in ("TAI64N", "{^LN-BEG}TAI64N", "^TAI64N"):
        template = _tai64n_template(key != "TAI64N")
    elif key == "{NONE}":
        template = _no_date_template()
    else:
        template = _pattern_template(pattern)
    _TEMPLATE_CACHE[key] = template
    return template


def default_templates(*, line_start_only: bool = False) -> list[DateTemplate]:
    """The default templates: a line-anchored form of each first, then (unless
    ``line_start_only``) the forms that may occur anywhere in the line."""
    pinned: list[DateTemplate] = []
    originals: list[DateTemplate] = []
    for pattern in DEFAULT_PATTERNS:
        originals.append(compile_datepattern(pattern))
        if not pattern.startswith(("{^LN-BEG}", "^")):
            pinned.append(compile_datepattern("{^LN-BEG}" + pattern))
    if line_start_only:
        return pinned + [t for t in originals if t.anchored]
    return pinned + originals


def templates_for(datepattern: str | None) -> list[DateTemplate]:
    """The templates a filter's ``datepattern`` (one pattern per line, or none) selects."""
    if datepattern is None:
        return default_templates()
    templates: list[DateTemplate] = []
    for line in (part.strip() for part in datepattern.split("\n")):
        if not line:
            continue
        key = line.upper()
        if key == "{^LN-BEG}":
            templates += default_templates(line_start_only=True)
        elif key == "{DEFAULT}":
            templates += default_templates()
        elif _DATE_TAG_RE.search(line):
            # every default format (but the numeric ones) in the place of {DATE}
            for pattern in DEFAULT_PATTERNS:
                if pattern in ("EPOCH", "TAI64N"):
                    continue
                bare = pattern.removeprefix("{^LN-BEG}").removeprefix("^")
                expanded = _DATE_TAG_RE.sub(bare.replace("\\", "\\\\"), line)
                templates.append(compile_datepattern(expanded))
        else:
            templates.append(compile_datepattern(line))
    unique: list[DateTemplate] = []
    for template in templates:
        if template not in unique:
            unique.append(template)
    return unique


class DateDetector:
    """Finds the date of each line of one log.

    The rule does not depend on the lines seen before (so a prefiltered scan and a line-by-line
    one agree): the first template in order that is anchored at the line start and matches
    wins; otherwise the date found earliest in the line, ties going to the earlier template.
    Remembering the template of the last line makes that one regex search per line in a log of
    one format: it is confirmed by checking only the anchored templates listed before it.
    """

    def __init__(self, templates: Sequence[DateTemplate]) -> None:
        if not templates:
            raise FilterError("no date template to look for")
        self.templates = list(templates)
        self._last: DateTemplate | None = None
        self._before: dict[DateTemplate, tuple[DateTemplate, ...]] = {}
        anchored: list[DateTemplate] = []
        for template in self.templates:
            if template.anchored:
                self._before.setdefault(template, tuple(anchored))
                anchored.append(template)

    def find(self, line: str) -> tuple[re.Match[str], DateTemplate] | None:
        """The date match of ``line`` and its template, or ``None``."""
        last = self._last
        if last is not None:
            match = last.regex.search(line)
            if match is not None:
                for earlier in self._before[last]:
                    if earlier.regex.search(line) is not None:
                        break
                else:
                    return match, last
        best: tuple[re.Match[str], DateTemplate] | None = None
        for template in self.templates:
            match = template.regex.search(line)
            if match is None:
                continue
            if template.anchored:
                best = (match, template)
                break
            if best is None or match.start() < best[0].start():
                best = (match, template)
        if best is not None and best[1].anchored:
            self._last = best[1]
        return best

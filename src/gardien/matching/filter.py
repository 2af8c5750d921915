"""Compiled filters and the per-log matcher that applies them line by line.

The matching rules are fail2ban's, so that existing filters behave the same:

1. The date is found (:mod:`gardien.matching.dates`) and cut out of the line; the regexes see the
   rest (``"[Nov 21 10:00:00] NOTICE"`` is matched as ``"[] NOTICE"``).
2. ``prefregex``, when set, must match; its ``<F-CONTENT>`` becomes the text the failregexes see,
   and its other captures (``<F-MLFID>``) join every failure's.
3. The failregexes are tried in order and the first that matches wins. An ``ignoreregex`` that
   also matches discards the line.
4. A capture ``<F-MLFID>`` ties lines of one connection (e.g. ``sshd[1234]``) together: data seen
   on one line (the address in ``Connection from``) completes a later one, ``<F-NOFAIL>`` marks a
   line that is not a failure by itself, ``<F-MLFFORGET>`` ends the connection and
   ``<F-MLFGAINED>`` says the user got in (pending failures of the connection are dropped).
5. With ``maxlines > 1`` the last lines are matched together as one text (``re.MULTILINE``).
6. In a filter with ``failjson`` rules, a line whose first non-blank character is ``{`` (or
   whose ``{`` follows a journal or syslog header only) is a JSON record: it is decoded and
   matched by field (:mod:`gardien.matching.jsonrules`), never by the regexes, its time read
   from the ``jsontime`` field; what follows a match (ignore rules, connections, the failure)
   is as for a regex. A JSON rule's index follows the failregexes' (rule ``j`` is
   ``len(failregex) + j``), and so for ignore rules.
"""

from __future__ import annotations

import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from gardien.clock import Clock, SystemClock
from gardien.errors import FilterError
from gardien.matching.dates import DateContext, DateDetector, templates_for, zone_offset
from gardien.matching.jsonrules import (
    JsonRule,
    compile_tagged,
    decode_record,
    json_start,
    parse_path,
    record_time,
)
from gardien.matching.literals import first_characters, required_words
from gardien.model import Failure, parse_address
from gardien.settings import FilterSpec, RegexSource

__all__ = ["CompiledRegex", "Filter", "LineMatcher", "LineResult"]

_ALT_RE = re.compile(r"^(alt_|tuple_)(.*?)(?:_\d+)?$")
_ID_GROUPS = ("fid", "ip4", "ip6", "dns", "mlfid")
#: groups that are machinery, not data worth showing to a user
INTERNAL_GROUPS = frozenset(
    {
        "ip4",
        "ip6",
        "dns",
        "cidr",
        "fid",
        "mlfid",
        "nofail",
        "mlfforget",
        "mlfgained",
        "content",
        "matches",
        "nofail-matches",
        "mlfpending",
        "users",
    }
)
#: how many connections (``<F-MLFID>``) are remembered, and for how long (seconds of clock time)
MLFID_CACHE_SIZE = 100
MLFID_CACHE_AGE = 300.0
#: lines longer than this are cut before matching: bounded work whatever an attacker writes
MAX_LINE_LENGTH = 16384


class CompiledRegex:
    """One filter regex with its tags expanded and compiled."""

    __slots__ = ("_alt", "_tuple", "has_skiplines", "pattern", "regex", "source")

    def __init__(
        self, source: RegexSource, *, usedns: str, multiline: bool, kind: str = "failregex"
    ) -> None:
        self.source = source
        self.regex = compile_tagged(
            source.pattern, source, kind, usedns, re.MULTILINE if multiline else 0
        )
        if not self.regex.pattern.strip():
            raise FilterError(f"empty {kind}", path=source.path, line=source.line, option=kind)
        self.pattern = self.regex.pattern
        self.has_skiplines = "skiplines0" in self.regex.groupindex
        alt: list[tuple[str, str]] = []
        tup: list[tuple[str, str]] = []
        for name in self.regex.groupindex:
            special = _ALT_RE.match(name)
            if special:
                target = {"id": "fid", "port": "fport"}.get(special.group(2), special.group(2))
                (alt if special.group(1) == "alt_" else tup).append((name, target))
        self._alt = tuple(sorted(alt))
        self._tuple = tuple(sorted(tup))

    def fields(self, match: re.Match[str]) -> dict[str, Any]:
        """The named captures of ``match``, with alternative and tuple captures folded in."""
        return self._fold(match.groupdict())

    def fields_from(self, values: Sequence[str | None]) -> dict[str, Any]:
        """:meth:`fields` from the values of the groups in order (group 1 first), as the
        native core gives them."""
        return self._fold({name: values[i - 1] for name, i in self.regex.groupindex.items()})

    def _fold(self, groups: dict[str, Any]) -> dict[str, Any]:
        for name, target in self._alt:
            value = groups.get(name)
            if value and not groups.get(target):
                groups[target] = value
        for name, target in self._tuple:
            value = groups.get(name)
            current = groups.get(target)
            groups[target] = (*current, value) if isinstance(current, tuple) else (current, value)
        return groups

    @property
    def alt_groups(self) -> tuple[tuple[str, str], ...]:
        """``(group, field)`` of each ``alt_`` group, in the order they fold."""
        return self._alt

    @property
    def tuple_groups(self) -> tuple[tuple[str, str], ...]:
        """``(group, field)`` of each ``tuple_`` group, in the order they fold."""
        return self._tuple

    def skipped_lines(self, match: re.Match[str]) -> list[str]:
        skipped = ""
        index = 0
        while f"skiplines{index}" in self.regex.groupindex:
            part = match.group(f"skiplines{index}")
            if part is not None:
                skipped += part
            index += 1
        return skipped.splitlines()


class Filter:
    """A compiled filter. Cheap to share; make one :class:`LineMatcher` per log to apply it."""

    def __init__(self, spec: FilterSpec) -> None:
        self.spec = spec
        if not spec.failregex and not spec.failjson:
            where = spec.files[-1] if spec.files else None
            raise FilterError(
                f"filter {spec.name!r} has no failregex (nor failjson)",
                path=where,
                section="Definition",
                option="failregex",
            )
        multiline = spec.maxlines > 1
        self.prefregex = (
            CompiledRegex(spec.prefregex, usedns=spec.usedns, multiline=False, kind="prefregex")
            if spec.prefregex
            else None
        )
        self.failregex = tuple(
            CompiledRegex(r, usedns=spec.usedns, multiline=multiline) for r in spec.failregex
        )
        self.ignoreregex = tuple(
            CompiledRegex(r, usedns=spec.usedns, multiline=False, kind="ignoreregex")
            for r in spec.ignoreregex
        )
        self.failjson = tuple(JsonRule(r, usedns=spec.usedns) for r in spec.failjson)
        self.ignorejson = tuple(
            JsonRule(r, kind="ignorejson", usedns=spec.usedns) for r in spec.ignorejson
        )
        try:
            self.jsontime = tuple(parse_path(path) for path in spec.jsontime)
        except ValueError as exc:
            raise FilterError(str(exc), path=spec.path, option="jsontime") from None
        pref_ids = set(self.prefregex.regex.groupindex) if self.prefregex else set()
        for compiled in self.failregex:
            if not (set(compiled.regex.groupindex) | pref_ids) & set(_ID_GROUPS):
                raise FilterError(
                    "failregex has no <HOST> (nor <ADDR>, <IP4>, <IP6>, <DNS>, <SUBNET>, "
                    f"<F-ID>) to say who failed: {compiled.source.pattern}",
                    path=compiled.source.path,
                    line=compiled.source.line,
                    option="failregex",
                )
        self.date_templates = templates_for(spec.datepattern)
        # for a text starting with character c, the failregexes that may match it, in order
        self._first_chars = tuple(
            None if multiline else first_characters(r.regex) for r in self.failregex
        )
        self._by_first_char: dict[str, tuple[tuple[int, CompiledRegex], ...]] = {}
        self._required_words: tuple[frozenset[str] | None, ...] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def required_words(self) -> tuple[frozenset[str] | None, ...]:
        """For each failregex not anchored at known first characters, words one of which its
        matches contain (else ``None``). Trying every failregex on a line (``check_all``) skips
        at once those whose words the line lacks."""
        if self._required_words is None:
            # a regex anchored at a known first character is already left out of lines
            # starting otherwise (regexes_for): looking for its words would cost more
            self._required_words = tuple(
                None if chars is not None else required_words(r.regex)
                for r, chars in zip(self.failregex, self._first_chars, strict=True)
            )
        return self._required_words

    def regexes_for(self, text: str) -> tuple[tuple[int, CompiledRegex], ...]:
        """The failregexes (with their index) that can match ``text``, in order: those anchored
        at the start whose first character cannot be ``text[0]`` are left out."""
        first = text[:1]
        found = self._by_first_char.get(first)
        if found is None:
            found = tuple(
                (index, regex)
                for index, (regex, chars) in enumerate(
                    zip(self.failregex, self._first_chars, strict=True)
                )
                if chars is None or first in chars
            )
            if len(self._by_first_char) < 4096:
                self._by_first_char[first] = found
        return found

    def matcher(
        self,
        *,
        clock: Clock | None = None,
        log_timezone: str | None = None,
        skip_undated: bool = False,
        check_all: bool = False,
    ) -> LineMatcher:
        """A fresh matcher (its own date detector, line buffer and connection cache).

        ``check_all`` tries every failregex on every line and records each hit, as
        fail2ban-regex does to count; without it the first failregex that matches wins, as in
        the daemon."""
        return LineMatcher(
            self,
            clock=clock or SystemClock(),
            log_timezone=log_timezone,
            skip_undated=skip_undated,
            check_all=check_all,
        )


@dataclass(slots=True)
class LineResult:
    """What one line gave: failures (usually none or one), and how it was classified."""

    failures: list[Failure] = field(default_factory=list)
    ignored: bool = False  # an ignoreregex matched
    nofail: bool = False  # a failregex matched a line that is not a failure by itself
    # what fail2ban-regex counts (a matcher made with check_all=True fills them):
    hits: Sequence[int] = ()  # failregexes that matched, by index
    ignore_hits: Sequence[int] = ()  # ignoreregexes that matched
    pending: bool = False  # a failregex matched, its connection's address is still unknown
    prefregex_matched: bool = False
    time: float | None = None
    time_text: str = ""
    date_format: str | None = None  # name of the date template that found the date

    @property
    def matched(self) -> bool:
        return bool(self.failures)


Parts = tuple[str, str, str]  # text before the date, the date, text after it
#: concludes a hit elsewhere (the native core): ``(groups, index, lines, now, first)`` to
#: ``(nofail, pending, [(host as shown, index, fields, lines)])``
Concluder = Callable[
    [dict[str, Any], int, list[str], float, bool],
    tuple[bool, bool, list[tuple[Any, ...]]],
]


class _ConnectionCache:
    """Data of recent connections (``<F-MLFID>``), with fail2ban's bounds so that replays give
    the same results: at most 100 connections, the oldest first out, each kept 5 minutes (of
    the matcher's clock: real time for a daemon, a fixed instant for a replay)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[dict[str, Any], float | None]] = OrderedDict()

    def get(self, key: str, now: float | None) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if now is not None and expires is not None and expires <= now:
            del self._entries[key]
            return None
        return value

    def set(self, key: str, value: dict[str, Any], now: float | None) -> None:
        entries = self._entries
        if len(entries) >= MLFID_CACHE_SIZE:
            while entries:
                _, (_, expires) = entries.popitem(last=False)
                unexpired = expires is None or now is None or expires > now
                if unexpired and len(entries) < MLFID_CACHE_SIZE:
                    break
        entries[key] = (value, None if now is None else now + MLFID_CACHE_AGE)

    def remove(self, key: str) -> None:
        self._entries.pop(key, None)


class LineMatcher:
    """Applies a :class:`Filter` to the lines of one log, in order (it keeps state)."""

    def __init__(
        self,
        compiled: Filter,
        *,
        clock: Clock,
        log_timezone: str | None = None,
        skip_undated: bool = False,
        check_all: bool = False,
    ) -> None:
        self.filter = compiled
        self._find_line = self._find_all if check_all else self._find
        self._clock = clock
        self._detector = DateDetector(compiled.date_templates)
        self._context = DateContext(
            now=clock.now(),
            default_offset=zone_offset(log_timezone) if log_timezone else None,
        )
        self._skip_undated = skip_undated
        self._check_all = check_all
        self._json = bool(compiled.failjson)
        self._maxlines = compiled.spec.maxlines
        self._buffer: list[Parts] = []
        self._connections = _ConnectionCache()
        self._last_date: float | None = None
        self._last_text = ""
        self._dates: dict[tuple[object, str], float | None] = {}
        self._dates_now = clock.now()
        self._hosts: dict[tuple[str, str | None], str] = {}
        # fail2ban checks ignoreregex before the failregexes when there are far fewer of them
        self._ignore_first = (
            bool(compiled.ignoreregex) and len(compiled.ignoreregex) < len(compiled.failregex) - 2
        )
        self._takers = _takers(compiled)
        self._concluder: Concluder | None = None

    # ---- public --------------------------------------------------------------------------
    def process(self, line: str, *, date: float | None = None, date_text: str = "") -> LineResult:
        """Match one line (without its end-of-line). ``date`` is given when the source already
        knows the time of the line (the journal); otherwise it is read from the line."""
        if self._json:
            start = json_start(line)
            if start >= 0:
                return self._process_json(line, start, date, date_text)
        if len(line) > MAX_LINE_LENGTH:
            line = line[:MAX_LINE_LENGTH]
        now = self._clock.now()
        self._context.now = now
        no_date = False
        date_format: str | None = None
        if date is not None:
            parts: Parts = ("", date_text, line)
            self._last_date, self._last_text = date, date_text
        else:
            found = self._detector.find(line)
            if found is not None:
                match, template = found
                start, end = match.span(1)
                text = line[start:end]
                parts = (line[:start], text, line[end:])
                date_format = template.name
                if text:
                    key = (template, text)
                    # year-less dates depend on "now": keep cached readings a minute at most
                    if abs(now - self._dates_now) > 60 or len(self._dates) > 65536:
                        self._dates.clear()
                        self._dates_now = now
                    date = self._dates.get(key)
                    if date is None:
                        date = template.read(match, self._context)
                        self._dates[key] = date
                    if date is not None:
                        self._last_date, self._last_text = date, text
                elif self._last_date is not None and self._last_date > now - 60:
                    parts = ("", self._last_text, line)
                    date = self._last_date
                else:
                    date = now
            else:
                parts = ("", "", line)
            if date is None:
                no_date = True
                if self._last_date is not None and self._last_date > now - 60:
                    parts = ("", self._last_text, line)
                    date = self._last_date
        result = self._find_line(parts, date, no_date)
        result.time = date
        result.time_text = parts[1]
        result.date_format = date_format
        return result

    # ---- what the native core needs (gardien.matching.native) ---------------------------
    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def date_context(self) -> DateContext:
        return self._context

    @property
    def check_all(self) -> bool:
        return self._check_all

    @property
    def skip_undated(self) -> bool:
        return self._skip_undated

    @property
    def ignore_first(self) -> bool:
        return self._ignore_first

    max_line_length = MAX_LINE_LENGTH

    def last_date(self) -> tuple[float | None, str]:
        """The date an undated line takes (if recent) and its text."""
        return self._last_date, self._last_text

    def set_last_date(self, date: float | None, text: str) -> None:
        self._last_date, self._last_text = date, text

    def native_result(
        self, entry: Sequence[Any], names: Sequence[str], date_text: str | None = None
    ) -> LineResult:
        """The result of a line the native core matched (its entry of kind 0), made as
        :meth:`process` makes it from the same matches. ``date_text``, when given, is the
        line's date text known by its source (the journal's), put before the line."""
        (_, _line, parts, date, template, _no_date, pref_matched, prefix_values, hits,
         ignore_hits, ignored) = entry[:11]  # fmt: skip
        if date_text is not None:
            parts = ("", date_text, parts[2])
        self._buffer = [parts]
        result = LineResult()
        result.time = date
        result.time_text = parts[1]
        result.date_format = names[template] if template >= 0 else None
        if not self._check_all:
            if ignored:
                result.ignored = True
            elif hits:
                index, values = hits[0]
                prefix = self._prefix_fields(prefix_values)
                groups = self._hit_fields(prefix, index, values)
                self._conclude_first(result, groups, index, date, ["".join(parts)])
            return result
        result.hits = [index for index, _values in hits]
        result.ignore_hits = list(ignore_hits)
        result.ignored = ignored
        result.prefregex_matched = pref_matched
        lines = ["".join(parts)]
        prefix = self._prefix_fields(prefix_values)
        for index, values in hits:
            self._conclude_all(result, self._hit_fields(prefix, index, values), index, date, lines)
        return result

    def _prefix_fields(self, prefix_values: Sequence[Any] | None) -> dict[str, Any]:
        """The prefregex's fields (without ``content``) from its captures (group 1 first)."""
        flt = self.filter
        if prefix_values is None or flt.prefregex is None:
            return {}
        taker = self._takers[0]
        if taker is not None:
            names, take = taker
            prefix = dict(zip(names, take(prefix_values), strict=True))
        else:
            prefix = flt.prefregex.fields_from(prefix_values)
        prefix.pop("content", None)
        return prefix

    def _hit_fields(
        self, prefix: dict[str, Any], index: int, values: Sequence[Any]
    ) -> dict[str, Any]:
        """The fields of a hit of failregex ``index`` from its captures, the prefregex's
        under them: straight from the captures for a regex without alternative or tuple
        captures (:func:`_takers`)."""
        taker = self._takers[1][index]
        if taker is not None:
            names, take = taker
            groups = dict(prefix)
            groups.update(zip(names, take(values), strict=True))
            return groups
        groups = self.filter.failregex[index].fields_from(values)
        return {**prefix, **groups} if prefix else groups

    def conclude_with(self, concluder: Concluder) -> None:
        """Conclude every hit with ``concluder`` (the native core's, which holds the
        connections of the lines it matches itself) rather than here."""
        self._concluder = concluder

    def concluded_result(self, entry: Sequence[Any], names: Sequence[str]) -> LineResult:
        """The result of a line the native core matched and concluded (its entry of kind
        5), as :meth:`process` makes it."""
        (_, _line, parts, date, template, pref_matched, hits, ignore_hits, ignored, _ordinal,
         nofail, (pending, failures)) = entry  # fmt: skip
        self._buffer = [parts]
        result = LineResult(
            ignored=ignored,
            nofail=nofail,
            hits=hits,
            ignore_hits=ignore_hits,
            pending=pending,
            prefregex_matched=pref_matched,
            time=date,
            time_text=parts[1],
            date_format=names[template] if template >= 0 else None,
        )
        if failures:
            result.failures = [Failure(f[0], date, *f[1:]) for f in failures]
        return result

    def _concluded(
        self,
        result: LineResult,
        groups: dict[str, Any],
        index: int,
        date: float | None,
        lines: list[str],
        first: bool,
    ) -> None:
        concluder = cast("Concluder", self._concluder)
        nofail, pending, failures = concluder(groups, index, lines, self._context.now, first)
        if nofail:
            result.nofail = True
        if pending:
            result.pending = True
        result.failures.extend(Failure(f[0], date, *f[1:]) for f in failures)

    @property
    def buffer(self) -> list[Parts]:
        """The lines kept for a multi-line match (before, date, after), oldest first."""
        return self._buffer

    # ---- matching ------------------------------------------------------------------------
    @staticmethod
    def _text(lines: Sequence[Parts]) -> str:
        return "\n".join(p[0] + p[2] for p in lines) + "\n"

    def _split(
        self, compiled: CompiledRegex, match: re.Match[str], original: list[Parts]
    ) -> tuple[list[Parts], list[Parts]]:
        """The buffered lines a match covers, and the others."""
        if len(original) <= 1:
            return original, []
        text = match.string
        start = text.rfind("\n", 0, match.start() + 1) + 1
        end_nl = text.find("\n", max(match.end() - 1, 0))
        end = end_nl + 1 if end_nl >= 0 else len(text)
        first = text.count("\n", 0, start)
        last = text.count("\n", 0, end)
        matched = original[first:last]
        unmatched = original[:first]
        if compiled.has_skiplines:
            position = 0
            for skipped in compiled.skipped_lines(match):
                for offset, candidate in enumerate(matched[position:]):
                    if candidate[0] + candidate[2] == skipped:
                        unmatched.append(matched.pop(position + offset))
                        position += offset
                        break
        unmatched.extend(original[last:])
        return matched, unmatched

    def _ignored(self, text: str, covered: list[Parts] | None) -> bool:
        if covered is not None and self._maxlines > 1:
            text = self._text(covered)
        return any(r.regex.search(text) for r in self.filter.ignoreregex)

    def _find(self, parts: Parts, date: float | None, no_date: bool) -> LineResult:
        result = LineResult()
        flt = self.filter
        single = self._maxlines == 1
        if not single:
            self._buffer.append(parts)
            self._buffer = self._buffer[-self._maxlines :]
            original = self._buffer
            text = self._text(original)
        else:
            original = self._buffer = [parts]
            text = parts[0] + parts[2] + "\n"
        if self._ignore_first and self._ignored(text, None):
            result.ignored = True
            return result
        prefix: dict[str, Any] = {}
        if flt.prefregex is not None:
            pre = flt.prefregex.regex.search(text)
            if pre is None:
                return result
            prefix = flt.prefregex.fields(pre)
            content = prefix.pop("content", None)
            if content:
                self._buffer = [("", "", content)]
                text = content + "\n"
        for index, compiled in flt.regexes_for(text):
            match = compiled.regex.search(text)
            if match is None:
                continue
            groups = compiled.fields(match)
            uncovered: list[Parts]
            if single:
                covered, uncovered = original, []
            else:
                covered, uncovered = self._split(compiled, match, original)
            if flt.ignoreregex and self._ignored(text, covered):
                result.ignored = True
                self._buffer = uncovered
                return result
            if no_date and date is None and self._skip_undated:
                continue
            self._buffer = uncovered
            if prefix:
                groups = {**prefix, **groups}
            lines = [parts[0] + parts[1] + parts[2]] if single else ["".join(p) for p in covered]
            self._conclude_first(result, groups, index, date, lines)
            return result
        return result

    def _conclude_first(
        self,
        result: LineResult,
        groups: dict[str, Any],
        index: int,
        date: float | None,
        lines: list[str],
    ) -> None:
        """What the hit that wins (first-match matching) makes of ``result``: a failure, a line
        that is no failure by itself, or one whose connection's address is still unknown."""
        if self._concluder is not None:
            self._concluded(result, groups, index, date, lines, True)
            return
        connection = groups.get("mlfid")
        if connection is not None:
            groups = self._merge(connection, groups, lines)
            if groups.get("nofail"):
                result.nofail = True
                return
        else:
            groups["matches"] = groups.get("matches", []) + lines
        host, cidr, failure_id = _identity(groups)
        if host is None:
            if connection is not None:
                groups["mlfpending"] = 1
                result.nofail = True
            return
        # a copy: the connection's cached data goes on changing with later lines
        result.failures.append(
            self._failure(groups, host, cidr, failure_id, index, date, lines, copy=True)
        )

    def _conclude_all(
        self,
        result: LineResult,
        groups: dict[str, Any],
        index: int,
        date: float | None,
        lines: list[str],
    ) -> None:
        """What one more hit (fail2ban-regex's every-failregex matching) adds to ``result``."""
        if self._concluder is not None:
            self._concluded(result, groups, index, date, lines, False)
            return
        connection = groups.get("mlfid")
        if connection is not None:
            groups = self._merge(connection, groups, lines)
        else:
            groups["matches"] = groups.get("matches", []) + lines
        host, cidr, failure_id = _identity(groups)
        if host is None and connection is not None:
            groups["mlfpending"] = 1
        if groups.get("nofail"):
            result.nofail = True
            return
        if host is None:
            result.pending = True
            return
        if connection is not None:
            # the next failregex may change the connection's data: keep this hit's own
            groups = dict(groups)
        result.failures.append(
            self._failure(groups, host, cidr, failure_id, index, date, lines, copy=False)
        )

    def _process_json(
        self, line: str, start: int, date: float | None, date_text: str
    ) -> LineResult:
        """Match a JSON record by field: the failjson rules (the first that holds wins, or
        each is tried with ``check_all``), then the ignorejson rules."""
        flt = self.filter
        now = self._clock.now()
        self._context.now = now
        record, _why = decode_record(line, start)
        hits: list[int] = []
        ignore_hits: list[int] = []
        result = LineResult(hits=hits, ignore_hits=ignore_hits)
        when: float | None = None
        when_text = ""
        if record is not None and flt.jsontime:
            when, when_text, path = record_time(record, flt.jsontime, self._context.default_offset)
            if when is not None:
                result.date_format = f"JSON {path}"
        if when is None and date is not None:
            when, when_text = date, date_text
        no_date = when is None
        if no_date and self._last_date is not None and self._last_date > now - 60:
            when, when_text = self._last_date, self._last_text
        elif when is not None:
            self._last_date, self._last_text = when, when_text
        result.time, result.time_text = when, when_text
        if record is None:
            return result
        offset = len(flt.failregex)
        ignore_offset = len(flt.ignoreregex)
        memo: dict[str, dict[str, Any] | None] = {}  # conditions the rules share
        for number, rule in enumerate(flt.failjson):
            groups = rule.match(record, memo)
            if groups is None:
                continue
            ignored = [
                ignore_offset + k
                for k, r in enumerate(flt.ignorejson)
                if r.match(record) is not None
            ]
            if ignored:
                result.ignored = True
                if not self._check_all:
                    return result
                ignore_hits += ignored
                continue
            if self._check_all:
                hits.append(offset + number)
                self._conclude_all(result, groups, offset + number, when, [line])
                continue
            if no_date and when is None and self._skip_undated:
                continue
            self._conclude_first(result, groups, offset + number, when, [line])
            return result
        return result

    def _ignore_hits(self, text: str, covered: list[Parts] | None) -> list[int]:
        if covered is not None and self._maxlines > 1:
            text = self._text(covered)
        return [i for i, r in enumerate(self.filter.ignoreregex) if r.regex.search(text)]

    def _find_all(self, parts: Parts, date: float | None, no_date: bool) -> LineResult:
        """fail2ban-regex's way (its ``checkAllRegex``): every failregex is tried and each hit
        is recorded, even one on a line another failregex matched already; a hit that an
        ignoreregex covers is not a hit, and every ignoreregex that covers it counts. With
        ``maxlines > 1`` the lines a hit covers leave the buffer before the next failregex."""
        del no_date  # fail2ban-regex keeps undated matches (it does not check findtime)
        hits: list[int] = []
        ignore_hits: list[int] = []
        result = LineResult(hits=hits, ignore_hits=ignore_hits)
        flt = self.filter
        single = self._maxlines == 1
        if not single:
            self._buffer.append(parts)
            self._buffer = self._buffer[-self._maxlines :]
            whole = self._text(self._buffer)
        else:
            self._buffer = [parts]
            whole = parts[0] + parts[2] + "\n"
        text: str | None = whole
        if self._ignore_first:
            ignore_hits += self._ignore_hits(whole, None)
            if ignore_hits:
                result.ignored = True
                return result
        prefix: dict[str, Any] = {}
        if flt.prefregex is not None:
            pre = flt.prefregex.regex.search(whole)
            if pre is None:
                return result
            result.prefregex_matched = True
            prefix = flt.prefregex.fields(pre)
            content = prefix.pop("content", None)
            if content:
                self._buffer = [("", "", content)]
                text = whole = content + "\n"
        required = flt.required_words
        for index, compiled in flt.regexes_for(whole):
            current = self._buffer
            if text is None:
                text = self._text(current)
            words = required[index]
            if words is not None:
                for word in words:
                    if word in text:
                        break
                else:
                    continue
            match = compiled.regex.search(text)
            if match is None:
                continue
            groups = compiled.fields(match)
            if single:
                covered, uncovered = current, current
            else:
                covered, uncovered = self._split(compiled, match, current)
            if flt.ignoreregex:
                ignored = self._ignore_hits(text, covered)
                if ignored:
                    result.ignored = True
                    ignore_hits += ignored
                    if not single:
                        self._buffer, text = uncovered, None
                    continue
            hits.append(index)
            if not single:
                self._buffer, text = uncovered, None
            if prefix:
                groups = {**prefix, **groups}
            lines = [parts[0] + parts[1] + parts[2]] if single else ["".join(p) for p in covered]
            self._conclude_all(result, groups, index, date, lines)
        return result

    def _failure(
        self,
        groups: dict[str, Any],
        host: str,
        cidr: str | None,
        failure_id: str | None,
        index: int,
        date: float | None,
        lines: list[str],
        *,
        copy: bool,
    ) -> Failure:
        """The failure a hit reports: its host as shown (normalised once per host; the failure
        id when it names the offender, the address then under ``ip``), with ``groups`` as its
        fields (``copy``: a copy of them, for groups that later lines still change)."""
        shown = self._hosts.get((host, cidr))
        if shown is None:
            if len(self._hosts) > 65536:
                self._hosts.clear()
            shown = self._hosts[(host, cidr)] = normalise_host(host, cidr)
        if failure_id is not None and failure_id != host:
            groups["ip"] = shown
            shown = failure_id
        fields = dict(groups) if copy else groups
        users = fields.get("users")
        if isinstance(users, set):
            fields["users"] = set(users)
        return Failure(
            host=shown,
            time=date,
            regex_index=index,
            fields=fields,
            lines=tuple(fields.get("matches") or lines),
        )

    def _merge(self, key: str, groups: dict[str, Any], lines: list[str]) -> dict[str, Any]:
        """Fold this line's data into the data of its connection (fail2ban's rules)."""
        now = self._context.now
        cached = self._connections.get(key, now)
        flags = 0  # 1: not a failure, 2: forget connection, 4: cached was not a failure,
        #            8: access gained
        if groups.get("mlfgained"):
            flags |= 8 | 1
            if not groups.get("nofail"):
                groups["nofail"] = groups["mlfgained"]
        elif groups.get("nofail"):
            flags |= 1
        if groups.pop("mlfforget", None):
            flags |= 2
        users: set[str] | None = None
        if cached is not None:
            users = _add_user(cached, groups.get("user"))
            if cached.pop("nofail", None):
                flags |= 4
            if cached.pop("mlfgained", None):
                flags |= 4
            if flags & 8:
                cached.pop("mlfpending", None)
            if not flags & 4 and not cached.get("mlfpending", 0):
                cached.pop("matches", None)
            cached.update((k, v) for k, v in groups.items() if v is not None)
            groups = cached
            if flags & 2:
                self._connections.remove(key)
        elif not flags & 2:
            users = _add_user(groups, groups.get("user"))
            self._connections.set(key, groups, now)
        if groups.pop("mlfpending", 0) or (users and len(users) > 1):
            groups.pop("nofail", None)
            groups.pop("mlfgained", None)
            flags &= ~(8 | 1)
        if not flags & 1:
            merged = groups.pop("nofail-matches", [])
            merged += groups.get("matches", [])
            if not flags & 8:
                merged += lines
            groups["matches"] = merged
        elif flags & 3 == 1:
            groups["nofail-matches"] = groups.get("nofail-matches", []) + lines
        return groups


#: a regex's named groups (in ``groupindex`` order) and what takes their values, in that
#: order, from the values of all its groups (group 1 first)
_Named = tuple[tuple[str, ...], Callable[[Sequence[Any]], Sequence[Any]]]
#: groups that make a hit's conclusion more than "the fields and their host"
_NOT_LEAN = frozenset(
    {"mlfid", "nofail", "mlfgained", "mlfforget", "mlfpending", "matches", "nofail-matches",
     "users"}
)  # fmt: skip


@dataclass(frozen=True)
class _LeanFields:
    prefix: _Named | None
    failregex: tuple[_Named, ...]


def _named(compiled: CompiledRegex, *, special: bool = False) -> _Named | None:
    """The named groups of ``compiled``, or ``None`` when one of them is special (with
    ``special``: only when one is folded into another, an ``alt_``/``tuple_`` group)."""
    index = compiled.regex.groupindex
    if any(n.startswith(("alt_", "tuple_")) or (n in _NOT_LEAN and not special) for n in index):
        return None
    names = tuple(index)
    positions = [index[n] - 1 for n in names]
    if not positions:
        return names, lambda values: ()
    if len(positions) == 1:
        only = positions[0]
        return names, lambda values: (values[only],)
    return names, operator.itemgetter(*positions)


def lean_fields(compiled: Filter) -> _LeanFields | None:
    """What the core's light results need to make a hit's fields straight from the captures,
    when no group of the filter is special: then a hit is concluded from its fields and host
    alone."""
    if compiled.spec.maxlines > 1:
        return None
    prefix = None
    if compiled.prefregex is not None:
        prefix = _named(compiled.prefregex)
        if prefix is None:
            return None
    fails = tuple(_named(r) for r in compiled.failregex)
    if any(f is None for f in fails):
        return None
    return _LeanFields(prefix, cast("tuple[_Named, ...]", fails))


def _takers(compiled: Filter) -> tuple[_Named | None, tuple[_Named | None, ...]]:
    """For the prefregex and each failregex, its named groups and what takes their values
    from the captures (as :meth:`CompiledRegex.fields_from` would make them), or ``None``
    for a regex with a group folded into another (``alt_``, ``tuple_``)."""
    prefix = _named(compiled.prefregex, special=True) if compiled.prefregex else None
    return prefix, tuple(_named(r, special=True) for r in compiled.failregex)


def _identity(groups: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(host, cidr, failure id) of a hit, in fail2ban's order: IPv4, IPv6, DNS name, then the
    failure id."""
    failure_id = groups.get("fid")
    for name in ("ip4", "ip6"):
        host = groups.get(name)
        if host is not None:
            return host, groups.get("cidr"), failure_id
    host = groups.get("dns")
    if host is None:
        host = failure_id
    return host, None, failure_id


def _add_user(groups: dict[str, Any], user: object) -> set[str] | None:
    users = groups.get("users")
    if user:
        if not users:
            users = groups["users"] = set()
        users.add(str(user))
    return users if isinstance(users, set) else None


def normalise_host(host: str, cidr: str | None) -> str:
    """Canonical text of an address (``2001:DB8:0::1`` -> ``2001:db8::1``); other text as is."""
    candidate = f"{host}/{cidr}" if cidr else host
    address = parse_address(candidate)
    return str(address) if address is not None else host


def public_fields(fields: Mapping[str, object]) -> dict[str, object]:
    """The captures worth showing (``user``, ``fport``...), without matching machinery."""
    out: dict[str, object] = {}
    for key, value in fields.items():
        if (
            key in INTERNAL_GROUPS
            or value is None
            or key.startswith(("alt_", "tuple_", "skiplines"))
        ):
            continue
        out[key] = sorted(value) if isinstance(value, set) else value
    return out

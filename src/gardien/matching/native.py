"""The native matching core as an accelerator of :class:`~gardien.matching.filter.LineMatcher`.

The core (the ``gardien_core`` extension, Rust, in ``native/``) takes whole blocks of a log and
does the per-line work (lines, candidate words, the date's place, ``prefregex``,
``failregex``, ``ignoreregex``) without coming back to Python; Python receives only the lines
that gave something, concluded by the core as the pure-Python engine concludes them (fields,
the connections of ``<F-MLFID>``, failures, hosts), and makes the same
:class:`~gardien.matching.filter.LineResult` of them. The core keeps the connections: the lines
it hands back to Python are concluded there too (:meth:`LineMatcher.conclude_with
<gardien.matching.filter.LineMatcher.conclude_with>`). A filter whose groups the core cannot hold
(:func:`_conclusion_specs`) is concluded in Python, from the core's captures.

It is optional: without the extension (``pip install ./native`` needs a Rust compiler), or with
``GARDIEN_NO_NATIVE=1``, or for a filter it cannot match exactly (:func:`unsupported`), the
pure-Python engine, the reference, does everything, with the same results.

Every regex of the core has a step budget (:data:`BACKTRACK_LIMIT`); the linear-time parts
need none. A line over it is a miss, counted in :attr:`NativeScanner.over_budget` and logged
once a minute per filter at most.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from gardien import _native
from gardien.matching import unicodeclasses
from gardien.matching.filter import lean_fields, normalise_host
from gardien.matching.translate import Untranslatable, gate, translate
from gardien.model import Failure

if TYPE_CHECKING:
    from gardien.matching.filter import Filter, LineMatcher, LineResult

__all__ = [
    "BACKTRACK_LIMIT",
    "NativeCounts",
    "NativeScanner",
    "available",
    "core",
    "scanner_for",
    "unsupported",
]

log = logging.getLogger("gardien.matching")

#: "all of them", as a count of lines to be given
_EVERY = 1 << 62
#: steps of backtracking one regex may take on one line (the automaton parts take none)
BACKTRACK_LIMIT = 100_000
#: at most one log line per filter about lines over budget, per this many seconds
BUDGET_LOG_EVERY = 60.0

core = _native.core


def available() -> bool:
    return core() is not None


def _reset_for_tests(module: ModuleType | bool | None = True) -> None:
    """Look for the core again (``True``), or use ``module`` (``None``: no core)."""
    _native.reset_for_tests(module)


def unsupported(compiled: Filter) -> str | None:
    """Why the core cannot match ``compiled`` exactly (then the Python engine does), or
    ``None``. Names the regex and its file:line."""
    spec = compiled.spec
    if spec.maxlines > 1:
        return f"maxlines = {spec.maxlines} (lines matched together)"
    if compiled.failjson or compiled.ignorejson:
        return "JSON rules (failjson)"
    try:
        _translated(compiled)
    except _Refused as refused:
        return str(refused)
    return None


def scanner_for(matcher: LineMatcher, words: Iterable[bytes] | None) -> NativeScanner | None:
    """A :class:`NativeScanner` for ``matcher`` (looking only at lines holding one of
    ``words``, when given), or ``None`` when the core is not there or cannot match its filter
    exactly: the caller then matches line by line in Python."""
    if core() is None or unsupported(matcher.filter) is not None:
        return None
    return NativeScanner(matcher, words)


#: the groups a hit's host comes from, in the order the core takes them
_IDENTITY = ("ip4", "ip6", "dns", "fid", "cidr")


def _identity_slots(compiled: Filter) -> tuple[Any, list[Any]] | None:
    """The numbers of the ``_IDENTITY`` groups in the prefregex and each failregex, for the
    core's light results; ``None`` when the filter's hits need more to be concluded."""
    if lean_fields(compiled) is None:
        return None

    def numbers(regex: Any) -> tuple[int | None, ...]:
        return tuple(regex.regex.groupindex.get(name) for name in _IDENTITY)

    prefix = numbers(compiled.prefregex) if compiled.prefregex else (None,) * 5
    return prefix, [numbers(r) for r in compiled.failregex]


#: the fields a connection holds besides the captures: a regex that names a group so is
#: concluded in Python
_HELD = frozenset({"matches", "nofail-matches", "users", "mlfpending"})
#: fields the conclusions read as text: a ``tuple_`` capture into one is concluded in Python
_READ = frozenset(
    {"mlfid", "user", "fid", "ip4", "ip6", "dns", "cidr", "nofail", "mlfgained", "mlfforget"}
)


def _conclusion_specs(compiled: Filter) -> tuple[Any, list[Any], Any] | None:
    """What the core needs to conclude the hits of ``compiled`` itself (fields, connections,
    failures): each regex's named groups with their numbers, its ``alt_`` and ``tuple_``
    groups; and how a host is shown. ``None`` when a regex's groups need Python's rules."""
    regexes = [compiled.prefregex, *compiled.failregex] if compiled.prefregex else []
    regexes = regexes or list(compiled.failregex)
    for regex in regexes:
        if _HELD.intersection(regex.regex.groupindex):
            return None
        if any(target in _READ for _name, target in regex.tuple_groups):
            return None

    def spec(regex: Any) -> tuple[list[tuple[str, int]], list[Any], list[Any]]:
        return (
            list(regex.regex.groupindex.items()),
            list(regex.alt_groups),
            list(regex.tuple_groups),
        )

    prefix = spec(compiled.prefregex) if compiled.prefregex else None
    return prefix, [spec(r) for r in compiled.failregex], normalise_host


def _offset_text(date_text: Callable[[int], str], offset: int, index: int) -> str:
    return date_text(offset + index)


class _Refused(Exception):
    pass


#: a pattern for the core and its gate (see :func:`~gardien.matching.translate.gate`)
_Pattern = tuple[str, str | None]


def _pattern(pattern: str, flags: int, *, unicode: bool = False) -> _Pattern:
    return translate(pattern, flags, unicode=unicode), gate(pattern, flags, unicode=unicode)


#: a filter's patterns for the core: dates, prefregex, failregexes, ignoreregexes
_Set = tuple[list[_Pattern], _Pattern | None, list[_Pattern], list[_Pattern]]


@dataclass(frozen=True)
class _Patterns:
    dates: list[_Pattern]
    anchored: list[bool]
    prefregex: _Pattern | None
    failregex: list[_Pattern]
    ignoreregex: list[_Pattern]
    #: the same for lines that are not ASCII, made on the first one (None: those go to the
    #: Python engine)
    any_text: Callable[[], _Set | None] = lambda: None


def _translated(compiled: Filter) -> _Patterns:
    cached = getattr(compiled, "_native_patterns", None)
    if isinstance(cached, _Patterns):
        return cached

    def every(unicode: bool) -> _Set:
        def one(regex: Any, kind: str) -> _Pattern:
            try:
                return _pattern(regex.regex.pattern, regex.regex.flags, unicode=unicode)
            except Untranslatable as exc:
                source = regex.source
                where = f"{source.path}:{source.line}: " if source.path else ""
                raise _Refused(f"{where}{kind} uses {exc}") from None

        dates: list[_Pattern] = []
        for template in compiled.date_templates:
            try:
                dates.append(
                    _pattern(template.regex.pattern, template.regex.flags, unicode=unicode)
                )
            except Untranslatable as exc:
                raise _Refused(f"date pattern {template.name!r} uses {exc}") from None
        return (
            dates,
            one(compiled.prefregex, "prefregex") if compiled.prefregex else None,
            [one(r, "failregex") for r in compiled.failregex],
            [one(r, "ignoreregex") for r in compiled.ignoreregex],
        )

    def unicode_set() -> tuple[_Set | None, str]:
        """The patterns for lines that are not ASCII, made when the first such line comes
        (the classes written out make them long to build), or why there are none (such lines
        then go to Python's engine)."""
        cached = getattr(compiled, "_native_any_text", None)
        if cached is None:
            if not unicodeclasses.current():
                cached = (None, "Python's Unicode version is not the one of gardien's tables")
            else:
                try:
                    cached = (every(True), "")
                except _Refused as exc:
                    cached = (None, str(exc))
                    log.debug("filter %s: non-ASCII lines go to Python: %s", compiled.name, exc)
            object.__setattr__(compiled, "_native_any_text", cached)
        return cast("tuple[_Set | None, str]", cached)

    def any_text() -> _Set | None:
        return unicode_set()[0]

    try:
        ascii = every(False)
    except _Refused:
        # a non-ASCII literal, say: the patterns for any text serve for every line
        whole, why = unicode_set()
        if whole is None:
            raise _Refused(why) from None
        ascii = whole
    patterns = _Patterns(
        ascii[0],
        [t.anchored for t in compiled.date_templates],
        ascii[1],
        ascii[2],
        ascii[3],
        any_text=any_text,
    )
    object.__setattr__(compiled, "_native_patterns", patterns)
    return patterns


@dataclass
class NativeCounts:
    """What the core counted without handing lines over: lines matched that gave nothing (and,
    with ``tally``, plain failure lines), their date templates (by name) and prefregex
    matches; with ``tally``, the failure lines, the hits of each failregex (``check_all``) and
    the failures by host as shown."""

    examined: int = 0
    date_templates: dict[str, int] = field(default_factory=dict)
    prefregex_matched: int = 0
    matched: int = 0
    regex_hits: dict[int, int] = field(default_factory=dict)
    hosts: dict[str, int] = field(default_factory=dict)
    ignored: int = 0
    ignore_hits: dict[int, int] = field(default_factory=dict)


class NativeScanner:
    """Feeds blocks of one log through the core for ``matcher`` (which keeps the state the
    lines' results depend on: connections, the last date)."""

    def __init__(self, matcher: LineMatcher, words: Iterable[bytes] | None) -> None:
        module = core()
        if module is None:
            raise RuntimeError("the native core is not available")
        compiled = matcher.filter
        patterns = _translated(compiled)
        self.matcher = matcher
        self.counts = NativeCounts()
        #: lines that count (neither empty nor starting with ``#``), as fail2ban-regex counts
        self.lines = 0
        #: lines over the step budget (missed)
        self.over_budget = 0
        #: lines the core handed to the Python engine (a content with a newline inside, bytes
        #: that are not UTF-8, a filter whose patterns cannot be written for any text)
        self.handed_over = 0
        self._last_budget_log = -BUDGET_LOG_EVERY
        templates = compiled.date_templates
        context = matcher.date_context

        def read_date(index: int, line: str) -> float | None:
            template = templates[index]
            match = template.regex.search(line)
            return template.read(match, context) if match is not None else None

        content = compiled.prefregex.regex.groupindex.get("content") if compiled.prefregex else None
        self._engine = module.Engine(
            patterns.dates,
            patterns.anchored,
            patterns.prefregex,
            content,
            patterns.failregex,
            patterns.ignoreregex,
            identity=_identity_slots(compiled),
            any_text=patterns.any_text,
            date_fields=[
                (t.regex.groupindex.get("S"), t.regex.groupindex.get("f")) for t in templates
            ],
            ignore_first=matcher.ignore_first,
            check_all=matcher.check_all,
            skip_undated=matcher.skip_undated,
            words=list(words) if words is not None else None,
            read_date=read_date,
            backtrack_limit=BACKTRACK_LIMIT,
            max_line=matcher.max_line_length,
            conclude=_conclusion_specs(compiled),
        )
        pref, fails, ignores = self._engine.group_counts()
        expected = (
            compiled.prefregex.regex.groups if compiled.prefregex else -1,
            [r.regex.groups for r in compiled.failregex],
            [r.regex.groups for r in compiled.ignoreregex],
        )
        if (pref, fails, ignores) != expected:  # pragma: no cover - a translation bug
            raise RuntimeError(f"native groups {(pref, fails, ignores)} != {expected}")
        self._names = [t.name for t in templates]
        self._shown: dict[tuple[str, str | None], str] = {}
        if self._engine.concludes():
            # the lines handed to Python's engine are concluded with the same connections
            matcher.conclude_with(self._engine.conclude)

    def results(
        self,
        blocks: Iterable[bytes],
        *,
        missed: int = 0,
        skipped: Callable[[str], bool] | None = None,
        light: bool = False,
        tally: bool = False,
        ignored: int | None = None,
    ) -> Iterator[tuple[str, LineResult]]:
        """``(line, result)`` for each line that gave something, in log order; and, while
        ``missed`` is not used up, for missed lines too (those the word search left out go to
        ``skipped`` instead, as :func:`~gardien.matching.scan.scan_lines` does). Lines that
        count are added to :attr:`lines`.

        ``light``: the failures carry their host, time and regex only (no fields, no matched
        lines), which is all counting needs; much less work per failure, for the filters whose
        hits need no more to be concluded (the others give full failures all the same).

        ``tally`` (with ``light``): the lines whose every hit has a host, with no ignoreregex
        hit, are not given at all: the core counts them, and :attr:`counts` has them once
        the blocks are read (``matched``, ``regex_hits``, ``hosts``), for a caller that keeps
        neither the lines nor the failures. Lines ignored or no failure by themselves are then
        given while ``ignored`` (``None``: all) is not used up, and counted after."""
        from gardien.matching.filter import LineResult
        from gardien.matching.scan import decode

        light_result = self._light_result

        matcher = self.matcher
        engine = self._engine
        counts = self.counts
        names = self._names
        clock = matcher.clock
        concluded = matcher.concluded_result
        wanted = _EVERY if ignored is None else ignored
        engine.set_tally(light and tally)
        for block in blocks:
            start = 0
            size = len(block)
            while start < size:
                now = clock.now()
                matcher.date_context.now = now
                start, counted, examined, date_hits, pref, entries = engine.scan(
                    block, start, now, missed, None, light, False, None, wanted
                )
                self.lines += counted
                counts.examined += examined
                counts.prefregex_matched += pref
                for index, hits in enumerate(date_hits):
                    if hits:
                        name = names[index]
                        counts.date_templates[name] = counts.date_templates.get(name, 0) + hits
                for entry in entries:
                    kind = entry[0]
                    if kind == 5:
                        if entry[8] or entry[10]:
                            wanted = max(wanted - 1, 0)
                        yield entry[1], concluded(entry, names)
                    elif kind == 4:
                        yield entry[1], light_result(entry)
                    elif kind == 0:
                        if not (entry[8] or entry[9] or entry[10]):
                            missed = max(missed - 1, 0)  # a missed line, as asked
                        result = matcher.native_result(entry, names)
                        yield entry[1], result
                    elif kind == 1:
                        self.handed_over += 1
                        line = decode(entry[1])
                        yield line, self._in_python(line)
                    elif kind == 2:
                        missed = max(missed - 1, 0)
                        if skipped is not None and not skipped(decode(entry[1])):
                            skipped = None
                    else:
                        self._budget(entry[1], entry[2], entry[3])
                        missed = max(missed - 1, 0)
                        yield entry[1], LineResult()
        self._add_tally(*engine.take_tally())
        engine.set_tally(False)

    def _add_tally(
        self,
        lines: int,
        regex_hits: Sequence[int],
        hosts: Sequence[tuple[str, Any, Any, int]],
        shown_hosts: Sequence[tuple[str, int]],
        ignored: int,
        ignore_hits: Sequence[int],
    ) -> None:
        """Add what the core counted with ``tally`` to :attr:`counts`, each host shown as a
        failure's host is shown (:meth:`_light_result`)."""
        counts = self.counts
        counts.matched += lines
        counts.ignored += ignored
        for index, hits in enumerate(regex_hits):
            if hits:
                counts.regex_hits[index] = counts.regex_hits.get(index, 0) + hits
        for index, hits in enumerate(ignore_hits):
            if hits:
                counts.ignore_hits[index] = counts.ignore_hits.get(index, 0) + hits
        for shown, hits in shown_hosts:
            counts.hosts[shown] = counts.hosts.get(shown, 0) + hits
        for host, cidr, failure_id, hits in hosts:
            shown = normalise_host(host, cidr)
            if failure_id is not None and failure_id != host:
                shown = failure_id
            counts.hosts[shown] = counts.hosts.get(shown, 0) + hits

    def _light_result(self, entry: Sequence[Any]) -> LineResult:
        """The result of an entry of kind 4: as :meth:`LineMatcher.native_result
        <gardien.matching.filter.LineMatcher.native_result>` makes it, but for failures with
        their host (shown as the full result shows it), time and regex only."""
        from gardien.matching.filter import LineResult

        _, _line, date, template, pref_matched, hits, ignore_hits, ignored = entry
        check_all = self.matcher.check_all
        result = LineResult()
        result.time = date
        result.date_format = self._names[template] if template >= 0 else None
        if check_all:
            result.hits = [hit[0] for hit in hits]
            result.ignore_hits = ignore_hits
            result.ignored = ignored
            result.prefregex_matched = pref_matched
        elif ignored:
            result.ignored = True
            return result
        shown_of = self._shown
        failures = result.failures
        for index, host, cidr, failure_id in hits:
            if host is None:
                if check_all:
                    result.pending = True
                continue
            shown = shown_of.get((host, cidr))
            if shown is None:
                if len(shown_of) > 65536:
                    shown_of.clear()
                shown = shown_of[(host, cidr)] = normalise_host(host, cidr)
            if failure_id is not None and failure_id != host:
                shown = failure_id
            failures.append(Failure(shown, date, index))
        return result

    def process(
        self,
        lines: Sequence[str],
        times: Sequence[float] | None = None,
        date_text: Callable[[int], str] | None = None,
    ) -> Iterator[LineResult]:
        """The results of ``lines`` (the records of one batch, in log order) that gave
        something, as :meth:`LineMatcher.process <gardien.matching.filter.LineMatcher.process>`
        gives them line by line: what the daemon matches with. ``times``, when given, are the
        lines' times known by their source (the journal), and ``date_text(i)`` the date text
        of line ``i``. Lines the core takes differently from the daemon (empty, starting with
        ``#``, holding a newline or ending with a carriage return) are matched in Python."""
        if not lines:
            return
        text = "\n".join(lines)
        if (
            text.count("\n") == len(lines) - 1  # no line holds a newline
            and lines[0]
            and lines[-1]
            and text[0] != "#"
            and text[-1] != "\r"
            and "\n\n" not in text
            and "\n#" not in text
            and "\r\n" not in text
        ):
            odd = [len(lines)]  # the usual batch: no odd line, found without a loop
        else:
            odd = [
                i
                for i, line in enumerate(lines)
                if not line or line[0] == "#" or line[-1] == "\r" or "\n" in line
            ]
            odd.append(len(lines))
            text = ""
        start = 0
        for stop in odd:
            if stop > start:
                yield from self._run(lines, start, stop, times, date_text, text)
            if stop < len(lines):
                result = self._python(lines, stop, times, date_text)
                if result.failures or result.ignored:
                    yield result
            start = stop + 1
        if times is not None and date_text is not None and lines:
            self.matcher.set_last_date(times[-1], date_text(len(lines) - 1))

    def process_block(self, block: bytes) -> Iterator[LineResult]:
        """:meth:`process` for a block of whole raw lines of a file (each ending with a
        newline, as :meth:`FileTail.read_block <gardien.sources.files.FileTail.read_block>`
        gives them): the core reads the bytes themselves, with no line decoded in Python but
        those it hands over (bytes that are not UTF-8, empty lines, lines starting with
        ``#``), which are decoded as :meth:`FileTail.read_lines
        <gardien.sources.files.FileTail.read_lines>` decodes them."""
        from gardien.matching.scan import decode

        def python(raw: bytes, _index: int) -> LineResult:
            return self._in_python(decode(raw))

        return self._blockwise(block, None, None, python)

    def _python(
        self,
        lines: Sequence[str],
        index: int,
        times: Sequence[float] | None,
        date_text: Callable[[int], str] | None,
    ) -> LineResult:
        if times is not None and date_text is not None:
            return self.matcher.process(lines[index], date=times[index], date_text=date_text(index))
        return self._in_python(lines[index])

    def _in_python(self, line: str) -> LineResult:
        """``line`` matched by Python's engine, with the core's last date (for an undated
        line) given to it first and taken back after."""
        matcher = self.matcher
        matcher.set_last_date(*self._engine.last_date())
        result = matcher.process(line)
        self._engine.set_last_date(*matcher.last_date())
        return result

    def _run(
        self,
        lines: Sequence[str],
        first: int,
        stop: int,
        times: Sequence[float] | None,
        date_text: Callable[[int], str] | None,
        joined: str = "",
    ) -> Iterator[LineResult]:
        """``lines[first:stop]`` through the core, none of them odd (see :meth:`process`);
        ``joined``, when not empty, is all of ``lines`` joined already (then the whole batch)."""
        block = ((joined or "\n".join(lines[first:stop])) + "\n").encode()
        given = list(times[first:stop]) if times is not None else None

        def python(_raw: bytes, index: int) -> LineResult:
            return self._python(lines, first + index, times, date_text)

        texts = None
        if given is not None and date_text is not None:
            texts = functools.partial(_offset_text, date_text, first)
        return self._blockwise(block, given, texts, python)

    def _blockwise(
        self,
        block: bytes,
        given: list[float] | None,
        date_text: Callable[[int], str] | None,
        python: Callable[[bytes, int], LineResult],
    ) -> Iterator[LineResult]:
        """The results of the whole lines of ``block``, as the daemon matches them (empty
        lines and lines starting with ``#`` too; the words the scanner looks for only choose
        which lines are matched, the others still date the undated lines after them).
        ``given`` and ``date_text`` are the journal's times and date texts of the lines, by
        number from the block's start; ``python(raw, number)`` matches a line the core hands
        over."""
        matcher = self.matcher
        engine = self._engine
        names = self._names
        clock = matcher.clock
        concluded = matcher.concluded_result
        base = 0
        start = 0
        size = len(block)
        while start < size:
            now = clock.now()
            matcher.date_context.now = now
            texts = None if date_text is None else functools.partial(_offset_text, date_text, base)
            start, counted, _, _, _, entries = engine.scan(
                block, start, now, 0, given, False, True, texts, _EVERY, True
            )
            for entry in entries:
                kind = entry[0]
                if kind == 5:
                    yield concluded(entry, names)
                elif kind == 0:
                    if date_text is not None:
                        yield matcher.native_result(entry, names, date_text(base + entry[11]))
                    else:
                        yield matcher.native_result(entry, names)
                elif kind == 1:  # the last line of this call: for Python's engine
                    self.handed_over += 1
                    result = python(entry[1], base + counted - 1)
                    if result.failures or result.ignored:
                        yield result
                elif kind == 3:
                    self._budget(entry[1], entry[2], entry[3])
            base += counted
            if given is not None:
                given = given[counted:]

    def _budget(self, line: str, kind: str, index: int) -> None:
        self.over_budget += 1
        now = time.monotonic()
        if now - self._last_budget_log >= BUDGET_LOG_EVERY:
            self._last_budget_log = now
            log.warning(
                "filter %s: a line took more than its budget in %s %d and was not matched "
                "(%d such lines so far): %.120s",
                self.matcher.filter.name,
                kind,
                index,
                self.over_budget,
                line,
            )

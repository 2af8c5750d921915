"""Read a whole log through a filter quickly, with the same results as line-by-line matching.

Most lines of a log are not failures. A :class:`Prefilter` knows words at least one of which any
line that can match must contain (:mod:`gardien.matching.literals`); :func:`scan_lines` looks for
those words in large blocks of raw bytes (``bytes.find`` runs at memory speed) and only decodes
and matches the lines around them. Lines are counted without being decoded.

The prefilter is exact, not a heuristic: it is used only when every failregex (and, where it
matters for counting, every ignoreregex) yields required words, when one line is matched at a
time (``maxlines = 1``) and when every date template is word-bounded or anchored at line start.
Otherwise every line is matched.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from gardien.matching.dates import DateTemplate, default_templates
from gardien.matching.filter import Filter
from gardien.matching.literals import best_words, required_words

__all__ = [
    "BLOCK_SIZE",
    "Prefilter",
    "ScanCounts",
    "iter_blocks",
    "no_cycle_collection",
    "scan_lines",
]

BLOCK_SIZE = 8 << 20


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off while a whole log is read: matching makes hundreds of
    thousands of short-lived tuples and dicts, none of them in a cycle (reference counting
    frees them), and the collector, run every 700 of them, walked them all for nothing (a
    sixth of ``gardien regex``'s time on an sshd log). On again after, as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _hyperscan_available() -> bool:
    if os.environ.get("GARDIEN_NO_HYPERSCAN"):
        return False
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return True


def _word_bounded(template: DateTemplate) -> bool:
    """Whether no word can straddle the place where this template's date is cut out.

    True for a date anchored at the line start (nothing but punctuation before it) and for the
    default formats: each begins and ends with a letter or digit and is word-bounded on both
    sides, or (EPOCH, TAI64N) follows a line start, "[", "audit(" or "@". A custom pattern that
    can sit in the middle of a line might begin or end with punctuation: no prefilter then.
    """
    return template.anchored or template in default_templates()


@dataclass(frozen=True)
class Prefilter:
    """Words (as bytes) one of which every line that may produce a result contains.

    Lines are found with Hyperscan when the optional ``hyperscan`` package is installed (one pass
    for all words), else with one ``bytes.find`` pass per word; both give the same lines.
    """

    words: tuple[bytes, ...]
    engine: str = field(default="auto", compare=False)
    _database: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def for_filter(cls, compiled: Filter, sample: bytes = b"") -> Prefilter | None:
        """The prefilter of ``compiled``, or ``None`` when lines must all be matched.

        ``sample`` (the start of the log) lets it prefer the words that occur least there.
        """
        if compiled.spec.maxlines > 1:
            return None
        for template in compiled.date_templates:
            if not _word_bounded(template):
                return None

        counted: dict[str, int] = {}

        def count(word: str) -> int:
            found = counted.get(word)
            if found is None:
                found = counted[word] = sample.count(word.encode("ascii"))
            return found

        def rarity(words: frozenset[str]) -> tuple[int, int, int]:
            hits = sum(count(w) for w in words) if sample else 0
            return (-hits, min(len(w) for w in words), -len(words))

        alternatives: list[frozenset[str]] = []
        failure_words = [required_words(r.regex, rarity) for r in compiled.failregex]
        if all(words is not None for words in failure_words):
            alternatives.append(frozenset().union(*(w or frozenset() for w in failure_words)))
        if compiled.prefregex is not None:
            # every failure line also matches the prefregex: its words are an alternative
            pref = required_words(compiled.prefregex.regex, rarity)
            if pref:
                alternatives.append(pref)
        chosen = best_words(alternatives, rarity) if compiled.failregex else frozenset()
        if chosen is None:
            return None
        needed = set(chosen)
        if compiled.failjson:
            needed.add("{")  # every JSON record has one; its fields are not words of the text
        # lines an ignoreregex alone can classify (checked before the failregexes) must be seen
        if compiled.ignoreregex and len(compiled.ignoreregex) < len(compiled.failregex) - 2:
            for regex in compiled.ignoreregex:
                words = required_words(regex.regex, rarity)
                if words is None:
                    return None
                needed |= words
        # a word containing another is redundant: the shorter finds its lines already
        kept: list[str] = []
        for word in sorted(needed, key=len):
            if not any(shorter in word for shorter in kept):
                kept.append(word)
        return cls(tuple(w.encode("ascii") for w in kept))

    @property
    def uses_hyperscan(self) -> bool:
        if self.engine == "python":
            return False
        return _hyperscan_available()

    def candidate_spans(self, block: bytes) -> tuple[list[tuple[int, int]], int]:
        """(start, end) of the lines of ``block`` that contain one of the words, in order, and
        the number of lines of ``block`` that count (not empty, not starting with ``#``)."""
        if self.uses_hyperscan and b"\r" not in block:
            return self._spans_hyperscan(block)
        return self._spans_python(block), _counted_lines(block)

    def _spans_python(self, block: bytes) -> list[tuple[int, int]]:
        starts: dict[int, int] = {}
        find = block.find
        rfind = block.rfind
        for word in self.words:
            pos = find(word)
            while pos >= 0:
                start = rfind(b"\n", 0, pos) + 1
                end = find(b"\n", pos)
                if end < 0:
                    end = len(block)
                starts[start] = end
                pos = find(word, end)
        return sorted(starts.items())

    def _spans_hyperscan(self, block: bytes) -> tuple[list[tuple[int, int]], int]:
        import hyperscan

        words = len(self.words)
        if not self._database:
            database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            # the words, then the two marks of lines that do not count: "\n#" and "\n\n"
            expressions = [re.escape(w.decode("ascii")).encode("ascii") for w in self.words]
            expressions += [b"\\n#", b"\\n\\n"]
            database.compile(
                expressions=expressions,
                ids=list(range(len(expressions))),
                elements=len(expressions),
                flags=[0] * len(expressions),
            )
            self._database.append(database)
        spans: dict[int, int] = {}
        find = block.find
        rfind = block.rfind
        size = len(block)
        line_end = -1
        uncounted = 0

        def on_match(ident: int, _start: int, end: int, _flags: int, _context: object) -> None:
            nonlocal line_end, uncounted
            if ident >= words:
                uncounted += 1  # an empty line, or one starting with '#'
                return
            if end <= line_end:
                return  # this line is already selected
            start = rfind(b"\n", 0, end) + 1
            line_end = find(b"\n", end - 1)
            if line_end < 0:
                line_end = size
            spans[start] = line_end

        self._database[0].scan(block, match_event_handler=on_match)
        total = block.count(b"\n") + (1 if block and not block.endswith(b"\n") else 0)
        if block.startswith((b"\n", b"#")):
            uncounted += 1
        return sorted(spans.items()), total - uncounted


@dataclass
class ScanCounts:
    """Lines of a log that count (as fail2ban-regex counts them: not empty, not ``#``)."""

    lines: int = 0


def iter_blocks(stream: BinaryIO, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Blocks of whole lines (each ends with a newline, except perhaps the last).

    On a seekable stream the partial line at the end of a read is read again with the next
    block instead of being carried over, which saves copying every block twice.
    """
    try:
        seekable = stream.seekable()
    except (AttributeError, ValueError, OSError):
        seekable = False
    rest = b""
    while True:
        data = stream.read(block_size)
        if not data:
            if rest:
                yield rest
            return
        if rest:
            data = rest + data
            rest = b""
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        if cut == len(data):
            yield data
            continue
        if seekable:
            stream.seek(cut - len(data), os.SEEK_CUR)
        else:
            rest = data[cut:]
        yield data[:cut]


def _split_lines(block: bytes) -> list[bytes]:
    """The lines of ``block``: separated by ``\n`` only, as log readers do."""
    lines = block.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _counted_lines(block: bytes) -> int:
    """Lines in ``block`` that are neither empty nor start with ``#``, without decoding."""
    if b"\r" in block:
        return sum(1 for line in _split_lines(block) if line.rstrip(b"\r") and line[:1] != b"#")
    total = block.count(b"\n") + (1 if block and not block.endswith(b"\n") else 0)
    empty = 1 if block.startswith(b"\n") else 0
    if b"\n\n" in block:
        empty += len(re.findall(b"\n(?=\n)", block))
    comments = block.count(b"\n#") + (1 if block.startswith(b"#") else 0)
    return total - empty - comments


def decode(raw: bytes) -> str:
    """A log line as text; bytes that are not UTF-8 become U+FFFD."""
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def scan_lines(
    blocks: Iterable[bytes],
    prefilter: Prefilter | None,
    counts: ScanCounts,
    *,
    skipped: Callable[[str], bool] | None = None,
) -> Iterator[str]:
    """The lines worth matching (all lines without a prefilter), decoded, in log order.

    ``counts.lines`` is kept up to date with the number of lines that count. ``skipped``, when
    given, is called in log order with each counted line the prefilter leaves out (before the
    next line is yielded), until it returns ``False``: a tester shows the first missed lines.
    """
    for block in blocks:
        if prefilter is None:
            for raw in _split_lines(block):
                line = decode(raw)
                if not line or line.startswith("#"):
                    continue
                counts.lines += 1
                yield line
            continue
        spans, counted = prefilter.candidate_spans(block)
        counts.lines += counted
        done = 0
        for start, end in spans:
            if skipped is not None and not _report_skipped(block[done:start], skipped):
                skipped = None
            done = end + 1
            line = decode(block[start:end])
            if not line or line.startswith("#"):
                continue
            yield line
        if skipped is not None and not _report_skipped(block[done:], skipped):
            skipped = None


def _report_skipped(gap: bytes, skipped: Callable[[str], bool]) -> bool:
    for raw in _split_lines(gap):
        line = decode(raw)
        if line and not line.startswith("#") and not skipped(line):
            return False
    return True

"""Find words a regex cannot match without: the key to scanning logs without running every
line through the regex engine.

:func:`required_words` returns a set of words such that *every* string the regex matches contains
at least one of them, or ``None`` when no such set exists (or the regex is too clever to tell,
e.g. case-insensitive parts). Words are runs of ASCII letters, digits and ``_`` only: a word cannot
straddle the place where a log line's date was cut out (dates are word-bounded), so a word found
in the text the regex sees is also found in the raw line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

__all__ = ["best_words", "first_characters", "required_words"]

_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
_LITERAL = sre_constants.LITERAL
_SUBPATTERN = sre_constants.SUBPATTERN
_BRANCH = sre_constants.BRANCH
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)
_IGNORECASE = sre_constants.SRE_FLAG_IGNORECASE
_ZERO_WIDTH = {sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT}

Words = frozenset[str]


Score = Callable[[Words], Any]


def _score(words: Words) -> tuple[int, int]:
    """Higher is better, without data: a longer shortest word, then fewer words."""
    return (min(len(w) for w in words), -len(words))


def best_words(candidates: list[Words], score: Score = _score) -> Words | None:
    """The most selective of several alternative word sets (any of which is required)."""
    usable = [c for c in candidates if c]
    if not usable:
        return None
    return max(usable, key=score)


def _sequence(items: Any, ignorecase: bool, score: Score) -> list[Words]:
    """Word sets each of which a match of the parsed sequence ``items`` needs (one word of)."""
    candidates: list[Words] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            candidates.append(frozenset({"".join(run)}))
            run.clear()

    for op, arg in items:
        if op is _LITERAL and not ignorecase:
            char = chr(arg)
            if _WORD_CHAR.match(char):
                run.append(char)
                continue
            close_run()
            continue
        if op in _ZERO_WIDTH:
            # an anchor consumes nothing: the word run goes on across it
            if op is sre_constants.AT:
                continue
            close_run()
            continue
        close_run()
        if op is _SUBPATTERN:
            _group, add_flags, del_flags, inner = arg
            case = (ignorecase or bool(add_flags & _IGNORECASE)) and not del_flags & _IGNORECASE
            candidates += _sequence(inner, case, score)
        elif op is _ATOMIC and _ATOMIC is not None:
            candidates += _sequence(arg, ignorecase, score)
        elif op in _REPEATS or (_POSSESSIVE is not None and op is _POSSESSIVE):
            low, _high, inner = arg
            if low >= 1:
                candidates += _sequence(inner, ignorecase, score)
        elif op is _BRANCH:
            _unused, branches = arg
            union: set[str] = set()
            for branch in branches:
                words = best_words(_sequence(branch, ignorecase, score), score)
                if words is None:
                    union = set()
                    break
                union |= words
            if union:
                candidates.append(frozenset(union))
    close_run()
    return candidates


def required_words(pattern: str | re.Pattern[str], score: Score = _score) -> Words | None:
    """Words one of which every match of ``pattern`` contains, or ``None`` if unknown.

    Of the possible sets, the one ``score`` rates highest is returned (by default the one with
    the longest words; the scanner rates them by how rarely they occur in the log itself).
    """
    compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
    if compiled.flags & re.IGNORECASE:
        return None
    try:
        parsed = sre_parse.parse(compiled.pattern, compiled.flags)
    except Exception:
        return None
    return best_words(_sequence(parsed, False, score), score)


def _first(items: Any, ignorecase: bool) -> frozenset[str] | None:
    """Characters a match of ``items`` (a parsed sequence) can start with; None: any."""
    for op, arg in items:
        if op is sre_constants.AT:
            continue  # anchors consume nothing
        if op is _LITERAL:
            return None if ignorecase else frozenset(chr(arg))
        if op is sre_constants.IN:
            if ignorecase:
                return None
            chars: set[str] = set()
            for kind, value in arg:
                if kind is _LITERAL:
                    chars.add(chr(value))
                elif kind is sre_constants.RANGE and value[1] - value[0] < 128:
                    chars.update(chr(c) for c in range(value[0], value[1] + 1))
                else:
                    return None
            return frozenset(chars)
        if op is _SUBPATTERN:
            _group, add_flags, del_flags, inner = arg
            case = (ignorecase or bool(add_flags & _IGNORECASE)) and not del_flags & _IGNORECASE
            return _first(inner, case) if _never_empty(inner) else None
        if op is _BRANCH:
            union: set[str] = set()
            for branch in arg[1]:
                part = _first(branch, ignorecase) if _never_empty(branch) else None
                if part is None:
                    return None
                union |= part
            return frozenset(union)
        if op in _REPEATS and arg[0] >= 1:
            return _first(arg[2], ignorecase) if _never_empty(arg[2]) else None
        return None
    return None


def _never_empty(items: Any) -> bool:
    """Whether a parsed sequence surely consumes a character before anything optional: its
    first consuming element is a literal, a class, or a group/branch/repeat of such."""
    for op, arg in items:
        if op is sre_constants.AT:
            continue
        if op in (_LITERAL, sre_constants.IN, sre_constants.NOT_LITERAL, sre_constants.ANY):
            return True
        if op is _SUBPATTERN:
            return _never_empty(arg[3])
        if op is _BRANCH:
            return all(_never_empty(b) for b in arg[1])
        if op in _REPEATS:
            return arg[0] >= 1 and _never_empty(arg[2])
        return False
    return False


def first_characters(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """The characters a match of ``pattern`` can start with, when it is anchored at the start
    of the text (``^...``, no MULTILINE) and they are few; ``None`` when it cannot tell."""
    if pattern.flags & (re.IGNORECASE | re.MULTILINE):
        return None
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:
        return None
    items = list(parsed)
    if (
        not items
        or items[0][0] is not sre_constants.AT
        or items[0][1] is not sre_constants.AT_BEGINNING
    ):
        return None
    return _first(items, False) if _never_empty(items) else None

"""Regexes at risk of catastrophic backtracking, for ``gardien config check`` to warn about.

A backtracking engine (Python's ``re``) takes exponential time on a crafted line when a
repetition can match the same text in many ways: ``(?:\\w+\\s?)+`` splits ``aaaa`` as ``a|aaa``,
``aa|aa``, ``a|a|aa``... and tries them all before giving up on a line that does not end as the
pattern wants. :func:`ambiguous_repeat` looks for that shape in a parsed pattern (``re``'s own
parser, as :mod:`gardien.matching.translate` reads patterns): a repetition (at most more than
once) whose body

- holds a repetition of single characters, every other part of the body being optional or
  able to match one of that repetition's characters (``(?:\\w+\\s?)+``, ``(?:.+ )*``,
  ``(\\d+)+``); or
- is an alternation of single characters that overlap (``(?:\\w|\\d)+``).

Separators the inner repetition cannot match (``(?:\\w+\\s)+``, ``(?:[^,]+,)*``) make the split
unique: they are not reported, nor are possessive repetitions and atomic groups. The check is
a heuristic on the pattern's shape, not a proof: it reports what would keep Python's engine
busy on one line for seconds or more. The native core bounds such lines anyway (a step budget
per line); the warning matters most where the Python engine matches the filter.
"""

from __future__ import annotations

import re
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

__all__ = ["ambiguous_repeat"]

_ASCII = frozenset(range(128))
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)
_CATEGORIES = {
    sre.CATEGORY_DIGIT: frozenset(range(48, 58)),
    sre.CATEGORY_SPACE: frozenset(b" \t\n\r\f\v"),
    sre.CATEGORY_WORD: frozenset(
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    ),
}
_NOT = {
    sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
    sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
    sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
}


def ambiguous_repeat(pattern: str, flags: int = 0) -> str | None:
    """What puts ``pattern`` at risk, or ``None``."""
    try:
        parsed = _parser.parse(pattern, flags)
    except re.error:
        return None
    if not _search(parsed, parsed.state.flags):
        return None
    return "a repetition whose body can split one text many ways (as (?:\\w+\\s?)+ does)"


def _search(items: Any, flags: int) -> bool:
    for op, av in items:
        if op in _REPEATS:
            _, high, body = av
            found = (high > 1 and _ambiguous(body, flags)) or _search(body, flags)
        elif op == sre.SUBPATTERN:
            group_flags = (flags | av[1]) & ~av[2]
            found = _search(av[3], group_flags)
        elif op == sre.BRANCH:
            found = any(_search(branch, flags) for branch in av[1])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            found = _search(av[1], flags)
        else:  # possessive repetitions, atomic groups and single items cannot split a text
            found = False
        if found:
            return True
    return False


def _ambiguous(body: Any, flags: int) -> bool:
    parts = _flatten(body, flags)
    if len(parts) == 1 and parts[0][0] == sre.BRANCH:
        sets = [_chars(branch, flags) for branch in parts[0][1][1]]
        known = [s for s in sets if s is not None]
        return len(known) == len(sets) and any(
            known[i] & known[j] for i in range(len(known)) for j in range(i)
        )
    for index, (op, av) in enumerate(parts):
        if op not in _REPEATS or av[1] <= 1:
            continue
        inner = _chars(av[2], flags)
        if inner is None:
            continue
        others = parts[:index] + parts[index + 1 :]
        if all(_optional(part) or _overlaps(part, inner, flags) for part in others):
            return True
    return False


def _flatten(items: Any, flags: int) -> list[tuple[Any, Any]]:
    """The body's parts, capturing and non-capturing groups opened."""
    parts: list[tuple[Any, Any]] = []
    for op, av in items:
        if op == sre.SUBPATTERN and not (av[1] | av[2]):
            parts += _flatten(av[3], flags)
        else:
            parts.append((op, av))
    return parts


def _optional(part: tuple[Any, Any]) -> bool:
    op, av = part
    if op in _REPEATS:
        return bool(av[0] == 0)
    return op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT)


def _overlaps(part: tuple[Any, Any], inner: frozenset[int], flags: int) -> bool:
    op, av = part
    chars = _chars([part], flags) if op not in _REPEATS else _chars(av[2], flags)
    return chars is not None and bool(chars & inner)


def _chars(items: Any, flags: int) -> frozenset[int] | None:
    """The ASCII characters a one-character pattern matches; ``None`` for anything else."""
    items = list(items)
    if len(items) != 1:
        return None
    op, av = items[0]
    if op == sre.SUBPATTERN and not (av[1] | av[2]):
        return _chars(av[3], flags)
    if op == sre.LITERAL:
        found = frozenset({av}) & _ASCII
    elif op == sre.NOT_LITERAL:
        found = _ASCII - {av}
    elif op == sre.ANY:
        found = _ASCII if flags & re.DOTALL else _ASCII - {10}
    elif op == sre.IN:
        found = _in(av)
    else:
        return None
    if flags & re.IGNORECASE:
        found |= {ord(chr(c).swapcase()) for c in found if chr(c).isalpha()}
    return found


def _in(members: Any) -> frozenset[int]:
    found: set[int] = set()
    negate = False
    for op, av in members:
        if op == sre.NEGATE:
            negate = True
        elif op == sre.LITERAL:
            found.add(av)
        elif op == sre.RANGE:
            found.update(range(av[0], av[1] + 1))
        elif op == sre.CATEGORY:
            if av in _CATEGORIES:
                found |= _CATEGORIES[av]
            elif av in _NOT:
                found |= _ASCII - _CATEGORIES[_NOT[av]]
    found &= _ASCII
    return frozenset(_ASCII - found if negate else found)

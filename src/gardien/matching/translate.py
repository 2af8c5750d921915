"""Python regexes rewritten for the native core's engine, for text that is ASCII only.

The native core (:mod:`gardien.matching.native`) matches with Rust's ``fancy-regex``: a
linear-time automaton (the ``regex`` crate) for the parts of a pattern that allow one, a
backtracking machine with a step budget for lookaround, back-references and conditionals.
Its syntax and its character classes are not Python's, so a pattern is not handed over as
written: it is parsed by Python's own parser (``re._parser``, the one ``re.compile`` uses, so
every quirk of Python's syntax is read as Python reads it) and written out again from the parse
tree in the syntax the native engine reads, construct by construct.

The native core only ever matches lines that are pure ASCII (it hands the others to the Python
engine), and the rewrite relies on that: each class is written as the ASCII characters Python's
class holds (``\\s`` is Python's, with ``\\x1c``-``\\x1f``, not Rust's), every literal as a
hexadecimal escape, ``$`` as "before the one final newline", which the core guarantees is the
only one. What cannot be written exactly is refused with the reason
(:class:`Untranslatable`), and the filter then stays with the Python engine:
non-ASCII literals (Python's case folding maps some onto ASCII letters), case-insensitive
back-references, the ``LOCALE`` flag, and a pattern Python itself refuses.
"""

from __future__ import annotations

import re

# the parser of the re module (Python 3.11+): the tree re.compile itself compiles
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as P  # type: ignore[attr-defined]
from typing import Any

from gardien.matching import unicodeclasses

__all__ = ["Untranslatable", "gate", "translate"]

MAXREPEAT = C.MAXREPEAT
#: the ASCII characters of Python's (Unicode) \s: \t \n \v \f \r, \x1c-\x1f and the space
_SPACE = r"\x09-\x0d\x1c-\x20"
_DIGIT = r"0-9"
_WORD = r"0-9A-Za-z_"
_CATEGORIES = {
    C.CATEGORY_DIGIT: (_DIGIT, False),
    C.CATEGORY_NOT_DIGIT: (_DIGIT, True),
    C.CATEGORY_SPACE: (_SPACE, False),
    C.CATEGORY_NOT_SPACE: (_SPACE, True),
    C.CATEGORY_WORD: (_WORD, False),
    C.CATEGORY_NOT_WORD: (_WORD, True),
}


class Untranslatable(ValueError):
    """A pattern the native engine cannot match exactly as Python does."""


def translate(pattern: str, flags: int = 0, *, unicode: bool = False) -> str:
    """``pattern`` (with ``re`` ``flags``) in the native engine's syntax, with the same groups
    in the same order (so group numbers carry over), for ASCII text whose only newline, if
    any, is its last character; with ``unicode``, for any text (Python's Unicode classes
    written out, see :mod:`~gardien.matching.unicodeclasses`). Raises
    :class:`Untranslatable`."""
    try:
        parsed = P.parse(pattern, flags)
    except re.error as exc:
        raise Untranslatable(f"not a valid regex: {exc}") from None
    state_flags = parsed.state.flags
    if state_flags & re.LOCALE:
        raise Untranslatable("the LOCALE flag")
    writer = _Writer(_letter_free_groups(parsed.data), unicode=unicode)
    return writer.sequence(
        parsed.data,
        bool(state_flags & re.IGNORECASE),
        bool(state_flags & re.MULTILINE),
        bool(state_flags & re.DOTALL),
    )


def gate(pattern: str, flags: int = 0, *, unicode: bool = False) -> str | None:
    """A pattern for the linear-time engine alone that matches wherever ``pattern`` (as
    :func:`translate` writes it) does, and maybe elsewhere: lookarounds dropped, a
    back-reference replaced by its group's pattern, a conditional by both of its branches,
    atomic groups and possessive repeats made ordinary, groups made non-capturing. The core
    runs it first and runs the backtracking machine only on a text it matches, so most lines
    never reach that machine. ``None`` when ``pattern`` needs no backtracking (the engine
    then runs it in linear time itself). Raises :class:`Untranslatable` as :func:`translate`."""
    try:
        parsed = P.parse(pattern, flags)
    except re.error as exc:
        raise Untranslatable(f"not a valid regex: {exc}") from None
    state_flags = parsed.state.flags
    writer = _Writer(_letter_free_groups(parsed.data), relaxed=True, unicode=unicode)
    text = writer.sequence(
        parsed.data,
        bool(state_flags & re.IGNORECASE),
        bool(state_flags & re.MULTILINE),
        bool(state_flags & re.DOTALL),
    )
    return text if writer.relaxed_something else None


def _hex(code: int) -> str:
    return f"\\x{{{code:x}}}"


def _can_match_letter(items: Any) -> bool:
    """Whether the parsed ``items`` may match an ASCII letter (conservatively: ``True`` when
    unsure)."""
    for op, av in items:
        if op is C.LITERAL:
            if chr(av).isalpha():
                return True
        elif op is C.IN:
            for kind, value in av:
                if kind is C.NEGATE or kind is C.CATEGORY:
                    return True
                if kind is C.LITERAL and chr(value).isalpha():
                    return True
                if kind is C.RANGE and any(
                    chr(c).isalpha() for c in range(value[0], min(value[1], 0x7F) + 1)
                ):
                    return True
        elif op is C.SUBPATTERN:
            if _can_match_letter(av[3].data):
                return True
        elif op is C.BRANCH:
            if any(_can_match_letter(b.data) for b in av[1]):
                return True
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT) or op is getattr(C, "POSSESSIVE_REPEAT", None):
            if _can_match_letter(av[2].data):
                return True
        elif op is C.AT:
            continue
        else:
            return True
    return False


def _letter_free_groups(items: Any) -> set[int]:
    """The groups of a parsed pattern that can match no letter: a case-insensitive
    back-reference to one is an exact, case-sensitive one (``(?P<_sep>[-/])`` of the dates)."""
    found: set[int] = set()

    def walk(items: Any) -> None:
        for op, av in items:
            if op is C.SUBPATTERN:
                if av[0] is not None and not _can_match_letter(av[3].data):
                    found.add(av[0])
                walk(av[3].data)
            elif op is C.BRANCH:
                for branch in av[1]:
                    walk(branch.data)
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT) or op is getattr(C, "POSSESSIVE_REPEAT", None):
                walk(av[2].data)
            elif op in (C.ASSERT, C.ASSERT_NOT):
                walk(av[1].data)
            elif op is C.GROUPREF_EXISTS:
                walk(av[1].data)
                if av[2] is not None:
                    walk(av[2].data)
            elif op is getattr(C, "ATOMIC_GROUP", None):
                walk(av.data)

    walk(items)
    return found


class _Writer:
    def __init__(
        self, letter_free: set[int], *, relaxed: bool = False, unicode: bool = False
    ) -> None:
        self.letter_free = letter_free
        #: for any text, not only ASCII: Python's Unicode classes and case folds written out
        self.unicode = unicode
        #: write the superset pattern of :func:`gate` (and whether it differs from the exact)
        self.relaxed = relaxed
        self.relaxed_something = False
        #: the groups written so far, for a relaxed back-reference
        self.groups: dict[int, str] = {}
        self.before: frozenset[int] | None = None

    def sequence(self, items: Any, icase: bool, multiline: bool, dotall: bool) -> str:
        # ``self.before``: the characters what precedes the item being written can end with
        # (``None``: unknown, or maybe nothing), for the lookbehinds that are always true
        before = self.before
        out = []
        for op, av in items:
            self.before = before
            out.append(self.item(op, av, icase, multiline, dotall))
            before = _after(op, av, icase, before)
        self.before = before
        return "".join(out)

    def atom(self, items: Any, icase: bool, multiline: bool, dotall: bool) -> str:
        """``items`` as something a quantifier may follow."""
        text = self.sequence(items, icase, multiline, dotall)
        if len(items) == 1 and items[0][0] in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            return text
        if len(items) == 1 and items[0][0] == C.SUBPATTERN:
            return text
        return f"(?:{text})"

    def literal(self, code: int, icase: bool) -> str:
        if self.unicode:
            return self.unicode_literal(code, icase)
        if code > 0x7F:
            raise Untranslatable(f"a non-ASCII character ({chr(code)!r})")
        text = _hex(code)
        if icase and chr(code).isalpha():
            return f"(?i:{text})"
        return text

    def unicode_literal(self, code: int, icase: bool) -> str:
        if icase and _has_case(code):
            if code > 0x7F:
                raise Untranslatable(f"a case-insensitive non-ASCII character ({chr(code)!r})")
            return "[" + "".join(_hex(c) for c in _cases(code)) + "]"
        return _hex(code)

    def item(self, op: Any, av: Any, icase: bool, multiline: bool, dotall: bool) -> str:
        if op is C.LITERAL:
            return self.literal(av, icase)
        if op is C.NOT_LITERAL and self.unicode:
            if icase and _has_case(av):
                raise Untranslatable("a case-insensitive negated letter")
            return f"[^{_hex(av)}]"
        if op is C.NOT_LITERAL:
            self.literal(av, False)  # refuses a non-ASCII one
            return f"(?i:[^{_hex(av)}])" if icase and chr(av).isalpha() else f"[^{_hex(av)}]"
        if op is C.ANY:
            return "(?s:.)" if dotall else "[^\\n]"
        if op is C.IN:
            return self.klass(av, icase)
        if op is C.BRANCH:
            _, branches = av
            context = self.before
            written = []
            for branch in branches:
                self.before = context
                written.append(self.sequence(branch.data, icase, multiline, dotall))
            return "(?:" + "|".join(written) + ")"
        if op is C.SUBPATTERN:
            group, add, delete, sub = av
            if (add | delete) & re.LOCALE:
                raise Untranslatable("the LOCALE flag")
            if add & re.IGNORECASE:
                icase = True
            if delete & re.IGNORECASE:
                icase = False
            if add & re.MULTILINE:
                multiline = True
            if delete & re.MULTILINE:
                multiline = False
            if add & re.DOTALL:
                dotall = True
            if delete & re.DOTALL:
                dotall = False
            inner = self.sequence(sub.data, icase, multiline, dotall)
            if self.relaxed:
                if group is not None:
                    self.groups[group] = inner
                return f"(?:{inner})"
            return f"({inner})" if group is not None else f"(?:{inner})"
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) or op is getattr(C, "POSSESSIVE_REPEAT", None):
            low, high, sub = av
            self.before = None  # a previous pass or what came before: not followed here
            inner = self.atom(sub.data, icase, multiline, dotall)
            if high is MAXREPEAT or high == MAXREPEAT:
                quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
            elif (low, high) == (0, 1):
                quantifier = "?"
            elif low == high:
                quantifier = f"{{{low}}}"
            else:
                quantifier = f"{{{low},{high}}}"
            if op is C.MIN_REPEAT:
                quantifier += "?"
            elif op is not C.MAX_REPEAT:
                if self.relaxed:
                    self.relaxed_something = True
                else:
                    quantifier += "+"
            return inner + quantifier
        if op is C.AT:
            return self.at(av, multiline)
        if op is C.GROUPREF:
            if icase and av not in self.letter_free:
                raise Untranslatable("a case-insensitive back-reference")
            if self.relaxed:
                self.relaxed_something = True
                return f"(?:{self.groups.get(av, '(?s:.*)')})"
            return f"(?:\\{av})"
        if op is C.GROUPREF_EXISTS:
            group, yes, no = av
            self.before = None
            yes_text = self.sequence(yes.data, icase, multiline, dotall)
            self.before = None
            no_text = self.sequence(no.data, icase, multiline, dotall) if no else ""
            if self.relaxed:
                self.relaxed_something = True
                return f"(?:{yes_text}|{no_text})"
            return f"(?({group}){yes_text}|{no_text})"
        if op in (C.ASSERT, C.ASSERT_NOT):
            direction, sub = av
            if direction < 0 and _always_true(op, sub.data, icase, self.before):
                # (?<=:) after what can only end with ':' (<HOST>'s IPv6 part): nothing to
                # check, and no backtracking machine needed for it
                return ""
            self.before = None
            inner = self.sequence(sub.data, icase, multiline, dotall)
            if self.relaxed:
                self.relaxed_something = True
                return ""
            kind = "=" if op is C.ASSERT else "!"
            return f"(?<{kind}{inner})" if direction < 0 else f"(?{kind}{inner})"
        if op is getattr(C, "ATOMIC_GROUP", None):
            if self.relaxed:
                self.relaxed_something = True
                return f"(?:{self.sequence(av.data, icase, multiline, dotall)})"
            return f"(?>{self.sequence(av.data, icase, multiline, dotall)})"
        raise Untranslatable(f"the construct {op}")

    def at(self, where: Any, multiline: bool) -> str:
        if where is C.AT_BEGINNING:
            return "(?m:^)" if multiline else "\\A"
        if where is C.AT_BEGINNING_STRING:
            return "\\A"
        if where is C.AT_END:
            # not multi-line: the end, or before a newline at the end; the core's texts have
            # no other newline, so "before a newline or at the end" is the same
            return "(?m:$)"
        if where is C.AT_END_STRING:
            return "\\z"
        if where in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY) and self.unicode:
            # Python's word characters, not Rust's: around them, by lookaround
            if self.relaxed:
                self.relaxed_something = True
                return ""
            word = _class_of(_unicode_word(), False)
            if where is C.AT_BOUNDARY:
                return f"(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"
            return f"(?:(?<={word})(?={word})|(?<!{word})(?!{word}))"
        if where is C.AT_BOUNDARY:
            return "\\b"
        if where is C.AT_NON_BOUNDARY:
            return "\\B"
        raise Untranslatable(f"the anchor {where}")  # pragma: no cover - all are above

    def klass(self, items: Any, icase: bool) -> str:
        if self.unicode:
            return self.unicode_klass(items, icase)
        negate = False
        parts: list[str] = []
        for op, av in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                self.literal(av, False)
                parts.append(_hex(av))
            elif op is C.RANGE:
                low, high = av
                if low > 0x7F:
                    continue  # no ASCII character in it
                parts.append(f"{_hex(low)}-{_hex(min(high, 0x7F))}")
                if high > 0x7F and icase:
                    # Python folds some non-ASCII letters onto ASCII ones (K, s)
                    raise Untranslatable("a case-insensitive class reaching past ASCII")
            elif op is C.CATEGORY:
                chars, negated = _CATEGORIES[av]
                parts.append(f"[^{chars}]" if negated else f"[{chars}]")
            else:  # pragma: no cover - the parser makes no other class items
                raise Untranslatable(f"the class item {op}")
        if not parts:
            # an empty class matches nothing; negated, any character (the newline too)
            return "(?s:.)" if negate else "[^\\x{0}-\\x{10ffff}]"
        body = "".join(parts)
        text = f"[^{body}]" if negate else f"[{body}]"
        return f"(?i:{text})" if icase else text

    def unicode_klass(self, items: Any, icase: bool) -> str:
        negate = any(op is C.NEGATE for op, _ in items)
        parts: list[str] = []
        for op, av in items:
            if op is C.NEGATE:
                continue
            if op is C.LITERAL:
                if icase and _has_case(av):
                    if negate or av > 0x7F:
                        raise Untranslatable("a case-insensitive class of that kind")
                    parts.extend(_hex(c) for c in _cases(av))
                else:
                    parts.append(_hex(av))
            elif op is C.RANGE:
                low, high = av
                if icase and high > 0x7F:
                    raise Untranslatable("a case-insensitive class reaching past ASCII")
                if icase and any(_has_case(c) for c in range(low, high + 1)):
                    if negate:
                        raise Untranslatable("a case-insensitive negated class of letters")
                    parts.extend(_hex(c) for code in range(low, high + 1) for c in _cases(code))
                else:
                    parts.append(f"{_hex(low)}-{_hex(high)}")
            elif op is C.CATEGORY:
                ranges, negated = _UNICODE_CATEGORIES[av]
                parts.append(_class_of(ranges, negated))
            else:  # pragma: no cover - the parser makes no other class items
                raise Untranslatable(f"the class item {op}")
        if not parts:
            return "(?s:.)" if negate else "[^\\x{0}-\\x{10ffff}]"
        body = "".join(parts)
        return f"[^{body}]" if negate else f"[{body}]"


def _has_case(code: int) -> bool:
    """Whether ``code`` matches other characters case-insensitively in Python (conservatively
    for non-ASCII ones: any letter)."""
    char = chr(code)
    if code <= 0x7F:
        return char.isalpha()
    return char.lower() != char or char.upper() != char or unicodeclasses.folds_onto(code)


def _cases(code: int) -> list[int]:
    """An ASCII character and what Python's ``IGNORECASE`` matches it with."""
    char = chr(code)
    if not char.isalpha():
        return [code]
    lower = char.lower()
    return [ord(lower), ord(char.upper()), *unicodeclasses.FOLDS.get(lower, ())]


def _class_of(ranges: unicodeclasses.Ranges, negated: bool) -> str:
    body = "".join(_hex(a) if a == b else f"{_hex(a)}-{_hex(b)}" for a, b in ranges)
    return f"[^{body}]" if negated else f"[{body}]"


def _unicode_word() -> unicodeclasses.Ranges:
    return unicodeclasses.WORD


_UNICODE_CATEGORIES: dict[Any, tuple[unicodeclasses.Ranges, bool]] = {
    C.CATEGORY_DIGIT: (unicodeclasses.DIGIT, False),
    C.CATEGORY_NOT_DIGIT: (unicodeclasses.DIGIT, True),
    C.CATEGORY_SPACE: (unicodeclasses.SPACE, False),
    C.CATEGORY_NOT_SPACE: (unicodeclasses.SPACE, True),
    C.CATEGORY_WORD: (unicodeclasses.WORD, False),
    C.CATEGORY_NOT_WORD: (unicodeclasses.WORD, True),
}


def _chars(op: Any, av: Any, icase: bool) -> frozenset[int] | None:
    """The characters one item of a single character can match, when few and known."""
    if op is C.LITERAL:
        return None if icase and _has_case(av) else frozenset((av,))
    if op is C.IN:
        found: set[int] = set()
        for kind, value in av:
            if kind is C.LITERAL:
                if icase and _has_case(value):
                    return None
                found.add(value)
            elif kind is C.RANGE and value[1] - value[0] < 256:
                codes = range(value[0], value[1] + 1)
                if icase and any(_has_case(c) for c in codes):
                    return None
                found.update(codes)
            else:  # NEGATE, CATEGORY, a large range
                return None
        return frozenset(found)
    return None


def _union(a: frozenset[int] | None, b: frozenset[int] | None) -> frozenset[int] | None:
    return None if a is None or b is None else a | b


def _after(op: Any, av: Any, icase: bool, before: frozenset[int] | None) -> frozenset[int] | None:
    """The characters the text matched up to the end of this item can end with, given those
    of what precedes it (``None``: unknown, or maybe no character at all)."""
    if op is C.LITERAL or op is C.IN:
        return _chars(op, av, icase)
    if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
        return before  # zero-width
    if op is C.SUBPATTERN:
        _group, add, delete, sub = av
        inner_icase = (icase or bool(add & re.IGNORECASE)) and not delete & re.IGNORECASE
        return _last(sub.data, inner_icase, before)
    if op is C.BRANCH:
        found: frozenset[int] | None = frozenset()
        for branch in av[1]:
            found = _union(found, _last(branch.data, icase, before))
        return found
    if op in (C.MAX_REPEAT, C.MIN_REPEAT) or op is getattr(C, "POSSESSIVE_REPEAT", None):
        low, _high, sub = av
        body = _last(sub.data, icase, None)
        return body if low >= 1 else _union(before, body)
    if op is getattr(C, "ATOMIC_GROUP", None):
        return _last(av.data, icase, before)
    return None


def _last(items: Any, icase: bool, before: frozenset[int] | None) -> frozenset[int] | None:
    for op, av in items:
        before = _after(op, av, icase, before)
    return before


def _always_true(op: Any, items: Any, icase: bool, before: frozenset[int] | None) -> bool:
    """Whether a one-character lookbehind always holds where the previous character is one
    of ``before``."""
    if before is None or not before or len(items) != 1:
        return False
    chars = _chars(items[0][0], items[0][1], icase)
    if chars is None:
        return False
    return before <= chars if op is C.ASSERT else not before & chars

"""JSON log lines matched by field: a filter's ``failjson`` and ``ignorejson`` rules.

Services that log JSON (Caddy, Traefik, MongoDB 4.4+, GitLab) are matched on the decoded
record, never with regexes over the JSON text, so that what a client writes in one field (a URI,
a user agent, a user name) can never be read as another field. A rule is one line of
conditions, all of which must hold::

    failjson = status=401 request.headers.Authorization request.remote_ip=<HOST>
               msg="Authentication failed" attr.remote~<HOST>:\\d+ attr.principalName=<F-USER>

A condition is ``PATH OP VALUE``, ``PATH`` (present) or ``!PATH`` (absent). ``PATH`` names a
field by its keys joined with ``.`` (``request.remote_ip``; ``\\.`` is a dot inside a key, as in
GitLab's ``meta\\.user``; a number indexes an array). Operators:

=========  ===================================================================================
``=``      the value's text equals VALUE; a VALUE that is a single tag takes the whole value:
           ``<HOST>`` (``<ADDR>``, ``<IP4>``, ``<IP6>``, ``<DNS>``, ``<SUBNET>``) an address,
           ``<F-NAME>`` a capture (``<F-USER>``: the user name)
``!=``     the value's text differs from VALUE
``~``      the value's text is matched whole by the regular expression VALUE, which may hold
           tags as a failregex does (``<HOST>:\\d+``, ``<F-USER>\\S+</F-USER>``)
``!~``     the regular expression does not match the value's text
=========  ===================================================================================

VALUE is a word, or quoted with ``"..."`` or ``'...'`` (taken as written, no escapes) when it
holds spaces. The text of a string is itself, of a number its JSON text, of a boolean ``true``
or ``false``. An array matches ``=`` and ``~`` when one of its items does (the first gives the
captures), and ``!=`` and ``!~`` when none does. A missing field, ``null``, an object or an
array without a scalar item satisfies no condition, negated or not; ``PATH`` alone holds for
any value but ``null`` (an empty array too: Caddy logs a redacted ``Authorization`` so).

Records: a line whose first non-blank character is ``{``, or whose ``{`` follows a log writer's
header only (``host tag[pid]: {``, as the journal and syslog write a service's JSON message,
with an optional time stamp in front: at most six words, the last ending with ``:``), is a JSON
record. It is decoded as one JSON object (strict JSON: no ``NaN``, nothing after it) when it has
at most :data:`MAX_JSON_LENGTH` characters; a record that does not decode matches nothing. A
record with a duplicate key anywhere is not matched: which of the two values is the service's
cannot be known. The time comes from the first of the ``jsontime`` paths that holds one: epoch
seconds (a number, or its text; milli-, micro- and nanoseconds are told by magnitude), an ISO
8601 / RFC 3339 time (a time without zone is in the log's zone), or MongoDB's ``{"$date": ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gardien.errors import FilterError
from gardien.matching.tags import expand_tags, group_name, localise_flags
from gardien.settings import RegexSource

__all__ = [
    "MAX_JSON_LENGTH",
    "Condition",
    "JsonRule",
    "Record",
    "decode_record",
    "flatten",
    "json_start",
    "json_text",
    "parse_path",
    "record_time",
    "resolve",
    "time_of",
]

#: longer lines are not decoded (they are not matched): bounded work whatever a client sends
MAX_JSON_LENGTH = 65536
#: groups that say who failed: a failjson rule needs one of them
ID_GROUPS = frozenset({"fid", "ip4", "ip6", "dns", "mlfid"})

Record = dict[str, Any]

_TOKEN_RE = re.compile(
    r"""(?P<absent>!)?(?P<path>(?:\\.|[^\s=~!\\])+)
        (?:(?P<op>!=|!~|=|~)
           (?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>(?!["'])\S*)))?
        (?=\s|$)""",
    re.VERBOSE,
)
_SPACE_RE = re.compile(r"\s*")
_ADDRESS_TAGS = frozenset({"HOST", "ADDR", "IP4", "IP6", "DNS", "SUBNET"})
_WHOLE_TAG_RE = re.compile(r"<(F-[A-Z0-9_-]+|[A-Z0-9]+)/?>")
_ANY_TAG_RE = re.compile(r"</?(?:F-[A-Z0-9_-]+|HOST|ADDR|IP4|IP6|DNS|SUBNET|CIDR)/?>")
_SEGMENT_RE = re.compile(r"(?:\\.|[^.\\])+")
#: what may come before a JSON message: [time] [host] tag[pid]: (words without "{")
_HEADER_RE = re.compile(r"\s*(?:[^\s{]+ +){0,5}[^\s{]+: *")
_HEADER_MAX = 200


class _Number(str):
    """A JSON number, kept as its text (exact, and no cost for huge digit strings)."""

    __slots__ = ()


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> Record:
    record: Record = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_int=_Number,
    parse_float=_Number,
    parse_constant=_no_constant,
)


def json_start(line: str) -> int:
    """Where the JSON record of ``line`` starts (see the module's docstring), or -1 when
    ``line`` is not a JSON record."""
    if line[:1] == "{":
        return 0
    brace = line.find("{", 0, _HEADER_MAX)
    if brace < 0:
        return -1
    if not line[:brace].strip() or _HEADER_RE.fullmatch(line, 0, brace):
        return brace
    return -1


def decode_record(line: str, start: int = 0) -> tuple[Record | None, str]:
    """The JSON object of ``line`` from ``start`` on, or ``None`` and why it is not one."""
    if len(line) - start > MAX_JSON_LENGTH:
        return None, f"longer than {MAX_JSON_LENGTH} characters: not decoded"
    try:
        record = _DECODER.decode(line[start:].strip())
    except _DuplicateKey as duplicate:
        return None, f"duplicate key {duplicate.args[0]!r}: which value is real is unknown"
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as error:
        return None, f"not valid JSON ({error})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    return record, ""


def _text(value: Any) -> str | None:
    """The text conditions test for a scalar value; ``None`` for null, objects and arrays."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    return None


def parse_path(text: str) -> tuple[str, ...]:
    """``a.b\\.c.0`` -> ``("a", "b.c", "0")``."""
    segments = []
    position = 0
    for match in _SEGMENT_RE.finditer(text):
        if match.start() != position:
            raise ValueError(f"empty key in path {text!r}")
        segments.append(re.sub(r"\\(.)", r"\1", match.group()))
        position = match.end() + 1
    if not segments or position != len(text) + 1:
        raise ValueError(f"empty key in path {text!r}")
    return tuple(segments)


_MISSING = object()


def resolve(record: Any, path: Sequence[str]) -> tuple[bool, list[Any]]:
    """Whether ``path`` holds a value other than null in ``record``, and the values found
    there (an array's items in its place; a non-numeric key applies to each item of an
    array on the way)."""
    value = record
    for index, segment in enumerate(path):  # the usual case first: objects all the way
        if not isinstance(value, dict):
            return _resolve_through_arrays([value], path[index:])
        value = value.get(segment, _MISSING)
        if value is _MISSING or value is None:
            return False, []
    if isinstance(value, list):
        return True, value
    return True, [value]


def _resolve_through_arrays(current: list[Any], path: Sequence[str]) -> tuple[bool, list[Any]]:
    for segment in path:
        following: list[Any] = []
        for value in current:
            if isinstance(value, dict):
                if segment in value:
                    following.append(value[segment])
            elif isinstance(value, list):
                if segment.isdigit():
                    index = int(segment)
                    if index < len(value):
                        following.append(value[index])
                else:
                    following.extend(
                        item[segment]
                        for item in value
                        if isinstance(item, dict) and segment in item
                    )
        current = following
        if not current:
            return False, []
    present = [value for value in current if value is not None]
    values: list[Any] = []
    for value in present:
        if isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    return bool(present), values


@dataclass(frozen=True)
class Condition:
    """One condition of a rule, compiled."""

    text: str  # as written
    path: tuple[str, ...]
    operator: str  # "present", "absent", "=", "!=", "~", "!~"
    value: str = ""
    regex: re.Pattern[str] | None = None

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self.regex.groupindex) if self.regex is not None else frozenset()

    def match(self, record: Record) -> dict[str, Any] | None:
        """The captures when the condition holds (empty when it captures nothing), else
        ``None``."""
        found, values = resolve(record, self.path)
        operator = self.operator
        if operator == "present":
            return {} if found else None
        if operator == "absent":
            return None if found else {}
        texts = [t for t in map(_text, values) if t is not None]
        if not texts:
            return None
        regex = self.regex
        if operator == "=" and regex is None:
            return {} if self.value in texts else None
        if operator == "!=":
            return None if self.value in texts else {}
        for text in texts:
            matched = regex.fullmatch(text) if regex is not None else None
            if matched is not None:
                return None if operator == "!~" else matched.groupdict()
        return {} if operator == "!~" else None

    def why_not(self, record: Record) -> str:
        """Why the condition fails on ``record`` (for ``gardien regex --explain``)."""
        found, values = resolve(record, self.path)
        shown = ".".join(self.path)
        if self.operator == "present":
            return f"{shown} is missing"
        if self.operator == "absent":
            return f"{shown} is present"
        if not found:
            return f"{shown} is missing"
        texts = [t for t in map(_text, values) if t is not None]
        if not texts:
            return f"{shown} is {_kind(values)}, not a string, number or boolean"
        listed = " / ".join(repr(_short(t)) for t in texts[:4])
        if self.operator == "=":
            return f"{shown} is {listed}, not {self.value!r}"
        if self.operator == "~":
            return f"{shown} is {listed}: not matched by {self.value}"
        if self.operator == "!=":
            return f"{shown} is {self.value!r}"
        return f"{shown} is {listed}, matched by {self.value}"


def _kind(values: list[Any]) -> str:
    if not values:
        return "an empty array"
    if isinstance(values[0], dict):
        return "an object"
    return "null"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compile_tagged(
    pattern: str, source: RegexSource, option: str, usedns: str, flags: int = 0
) -> re.Pattern[str]:
    """``pattern`` with its tags (<HOST>, <F-USER>...) expanded, compiled; a bad expression is
    a FilterError naming ``option`` at ``source``'s file and line."""
    try:
        return re.compile(localise_flags(expand_tags(pattern, usedns=usedns)), flags)
    except re.error as exc:
        raise FilterError(
            f"not a valid regular expression ({exc}): {pattern}",
            path=source.path,
            line=source.line,
            option=option,
        ) from None


def _parse_condition(
    match: re.Match[str], source: RegexSource, option: str, usedns: str
) -> Condition:
    def error(message: str) -> FilterError:
        return FilterError(
            f"{message}: {match.group().strip()}", path=source.path, line=source.line, option=option
        )

    try:
        path = parse_path(match.group("path"))
    except ValueError as exc:
        raise error(str(exc)) from None
    operator = match.group("op")
    text = match.group()
    if match.group("absent"):
        if operator:
            raise error("'!PATH' takes no value (use != or !~ to negate a comparison)")
        return Condition(text, path, "absent")
    if not operator:
        return Condition(text, path, "present")
    value = next(
        v for v in (match.group("dq"), match.group("sq"), match.group("bare")) if v is not None
    )
    regex: re.Pattern[str] | None = None
    if operator in ("~", "!~"):
        regex = compile_tagged(value, source, option, usedns)
    elif _ANY_TAG_RE.search(value):
        whole = _WHOLE_TAG_RE.fullmatch(value)
        if operator == "!=" or whole is None:
            raise error("a tag in an = value must be the whole value (use ~ for a regex with tags)")
        name = whole.group(1)
        if name in _ADDRESS_TAGS or value.endswith("/>"):
            regex = compile_tagged(value, source, option, usedns)
        elif name.startswith("F-"):
            regex = re.compile(f"(?P<{group_name(name[2:])}>(?s:.*))")
        else:
            raise error(f"unknown tag <{name}>")
    if operator.startswith("!") and regex is not None and regex.groupindex:
        raise error("a negated condition cannot capture")
    return Condition(text, path, operator, value, regex)


class JsonRule:
    """One ``failjson`` / ``ignorejson`` rule: conditions that must all hold."""

    __slots__ = ("conditions", "source")

    def __init__(self, source: RegexSource, *, kind: str = "failjson", usedns: str = "warn"):
        self.source = source
        text = source.pattern
        conditions: list[Condition] = []
        position = _SPACE_RE.match(text).end()  # type: ignore[union-attr]
        while position < len(text):
            match = _TOKEN_RE.match(text, position)
            if match is None:
                raise FilterError(
                    f"cannot read a condition at {text[position : position + 40]!r} (PATH, !PATH, "
                    "or PATH followed by =, !=, ~ or !~ and a value)",
                    path=source.path,
                    line=source.line,
                    option=kind,
                )
            conditions.append(_parse_condition(match, source, kind, usedns))
            position = _SPACE_RE.match(text, match.end()).end()  # type: ignore[union-attr]
        if not conditions:
            raise FilterError(f"empty {kind} rule", path=source.path, line=source.line, option=kind)
        self.conditions = tuple(conditions)
        if kind == "failjson" and not (self.groups & ID_GROUPS):
            raise FilterError(
                "failjson rule has no <HOST> (nor <ADDR>, <IP4>, <IP6>, <DNS>, <SUBNET>, <F-ID>) "
                f"to say who failed: {text}",
                path=source.path,
                line=source.line,
                option=kind,
            )

    @property
    def groups(self) -> frozenset[str]:
        return frozenset().union(*(c.groups for c in self.conditions))

    def match(
        self, record: Record, memo: dict[str, dict[str, Any] | None] | None = None
    ) -> dict[str, Any] | None:
        """The captures of the rule when every condition holds, else ``None``. A name
        captured by two conditions keeps the first value found. ``memo`` keeps the results of
        conditions on this record, for rules that share conditions."""
        groups: dict[str, Any] = {}
        for condition in self.conditions:
            if memo is None:
                found = condition.match(record)
            else:
                found = memo.get(condition.text, _MISSING)  # type: ignore[arg-type]
                if found is _MISSING:
                    found = memo[condition.text] = condition.match(record)
            if found is None:
                return None
            for key, value in found.items():
                if groups.get(key) is None:
                    groups[key] = value
        return groups


# ---- time -------------------------------------------------------------------------------


def _epoch_number(value: float) -> float | None:
    if not math.isfinite(value) or value < 0:
        return None
    for scale in (1.0, 1e3, 1e6, 1e9):  # seconds, ms, µs, ns: told apart by magnitude
        if value < 1e11 * scale:
            return value / scale
    return None


def _iso(text: str, default_offset: int | None) -> float | None:
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        if default_offset is not None:
            moment = moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=default_offset)))
        else:
            return time.mktime(moment.timetuple()) + moment.microsecond / 1e6
    return moment.timestamp()


def time_of(value: Any, default_offset: int | None = None) -> float | None:
    """Seconds since the epoch of a JSON time value, or ``None``."""
    if isinstance(value, dict) and set(value) == {"$date"}:
        inner = value["$date"]
        if isinstance(inner, dict) and set(inner) == {"$numberLong"}:
            inner = inner["$numberLong"]
            if isinstance(inner, str) and inner.lstrip("-").isdigit():
                return _epoch_number(float(inner) / 1e3)
            return None
        if isinstance(inner, _Number):
            return _epoch_number(float(inner) / 1e3)  # extended JSON: milliseconds
        return time_of(inner, default_offset) if isinstance(inner, str) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return _iso(value, default_offset)
        return _epoch_number(number)
    return None


def record_time(
    record: Record, paths: Sequence[tuple[str, ...]], default_offset: int | None = None
) -> tuple[float | None, str, str]:
    """(time, its text, the path it came from) from the first of ``paths`` that holds a time."""
    for path in paths:
        found, values = resolve(record, path)
        if not found:
            continue
        raw = _at(record, path)
        when = time_of(raw, default_offset)
        if when is None and values:
            when = time_of(values[0], default_offset)
        if when is not None:
            shown = raw if isinstance(raw, str) else json_text(raw)
            return when, shown, ".".join(path)
    return None, "", ""


def _at(record: Any, path: Sequence[str]) -> Any:
    current = record
    for segment in path:
        if isinstance(current, dict):
            current = current.get(segment)
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return None
    return current


def json_text(value: Any) -> str:
    """``value`` (as decoded here) written back as compact JSON, numbers as they were."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(json_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def flatten(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, JSON text) of every field of ``record`` but objects, in order (``--explain``)."""
    for key, value in record.items():
        path = prefix + key.replace(".", "\\.")
        if isinstance(value, dict) and value:
            yield from flatten(value, path + ".")
        else:
            yield path, json_text(value)

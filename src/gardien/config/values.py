"""Small value languages of fail2ban configuration: ``name[param=value, ...]`` specifications,
lists of them, durations (``10m``, ``1h30m``, ``-1``) and booleans."""

from __future__ import annotations

import re

from gardien.errors import ConfigError
from gardien.settings import Spec  # re-exported: it was defined here

__all__ = ["Spec", "parse_bool", "parse_duration", "parse_spec", "split_specs"]

_NAME_RE = re.compile(r"\s*([^\[\]\s][^\[\]]*?)\s*(?=\[|$)")
_PARAM_NAME_RE = re.compile(r"\s*([\w\-.]+)\s*=\s*")


def parse_spec(text: str) -> Spec:
    """Parse ``name``, ``name[a=1, b="x, y"]`` or ``name[a=1][b=2]``.

    Values may be bare (up to the next ``,`` or ``]``), or quoted with ``"`` or ``'``.
    Raises :class:`ConfigError` saying where the syntax breaks.
    """
    text = text.strip()
    match = _NAME_RE.match(text)
    if not match or not match.group(1):
        raise ConfigError(f"expected a name, optionally followed by [parameters], got {text!r}")
    name = match.group(1)
    pos = match.end()
    params: dict[str, str] = {}
    while pos < len(text):
        if text[pos] != "[":
            raise ConfigError(f"unexpected {text[pos : pos + 20]!r} after {name!r} in {text!r}")
        pos += 1
        while True:
            while pos < len(text) and text[pos] in " \t\n,":
                pos += 1
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            param = _PARAM_NAME_RE.match(text, pos)
            if not param:
                raise ConfigError(
                    f"expected 'parameter=value' at {text[pos : pos + 20]!r} in {text!r}"
                )
            pos = param.end()
            if pos < len(text) and text[pos] in "\"'":
                quote = text[pos]
                end = text.find(quote, pos + 1)
                if end < 0:
                    raise ConfigError(f"unclosed {quote} quote in {text!r}")
                value = text[pos + 1 : end]
                pos = end + 1
            else:
                end = pos
                while end < len(text) and text[end] not in ",]":
                    end += 1
                value = text[pos:end].strip()
                pos = end
            params[param.group(1)] = value
            while pos < len(text) and text[pos] in " \t\n":
                pos += 1
            if pos >= len(text):
                raise ConfigError(f"missing ']' at the end of {text!r}")
            if text[pos] == ",":
                pos += 1
            elif text[pos] != "]":
                raise ConfigError(f"expected ',' or ']' at {text[pos : pos + 20]!r} in {text!r}")
        while pos < len(text) and text[pos] in " \t":
            pos += 1
    return Spec(name, params)


def split_specs(text: str) -> list[str]:
    """Split a list of specifications separated by white space or new lines, keeping brackets
    (which may span lines and contain spaces) with the name they follow."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    quote = ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if depth and char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif char.isspace() and depth == 0:
            # a name followed by spaces then '[' still belongs together
            if current:
                items.append("".join(current))
                current = []
            continue
        if char == "[" and depth == 1 and not current and items:
            current = list(items.pop())
        current.append(char)
    if current:
        items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


_DURATION_PART_RE = re.compile(
    # longer units first: 'mo' must not be read as 'm' (minutes) followed by garbage
    r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|months?|mo|minutes?|mins?|m|hours?|hrs?|h|days?|d|"
    r"weeks?|wk|w|years?|yy?)?\s*",
    re.IGNORECASE,
)
_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "wk": 604800,
    "week": 604800,
    "weeks": 604800,
    "mo": 2629800,
    "month": 2629800,
    "months": 2629800,
    "y": 31557600,
    "yy": 31557600,
    "year": 31557600,
    "years": 31557600,
}


def parse_duration(text: str) -> float:
    """Seconds in a duration: ``600``, ``10m``, ``1h30m``, ``1d``, ``1w``, ``2.5h``.

    A negative number (``-1``) means *for ever* and is returned as ``-1.0``.
    Raises :class:`ConfigError` naming the text when it is not a duration.
    """
    value = text.strip()
    if re.fullmatch(r"-\d+(?:\.\d+)?", value):
        return -1.0
    total = 0.0
    pos = 0
    if not value:
        raise ConfigError("empty duration: expected e.g. 600, 10m, 1h30m, 1d, 1w or -1")
    while pos < len(value):
        part = _DURATION_PART_RE.match(value, pos)
        if not part or part.end() == pos:
            raise ConfigError(
                f"{text!r} is not a duration: expected e.g. 600, 10m, 1h30m, 1d, 1w or -1"
            )
        unit = (part.group(2) or "s").lower()
        total += float(part.group(1)) * _UNITS[unit]
        pos = part.end()
    return total


_TRUE = {"1", "yes", "true", "on", "y"}
_FALSE = {"0", "no", "false", "off", "n"}


def parse_bool(text: str) -> bool:
    """``yes/true/on/1`` or ``no/false/off/0`` (any case)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{text!r} is not a boolean: expected yes/no, true/false, on/off or 1/0")

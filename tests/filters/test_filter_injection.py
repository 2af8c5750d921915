"""Log injection, swept over every bundled filter: a client that puts a forged address in the
text it controls must never get that address reported in place of its own.

Which text a client controls depends on the log format, so the sweep works from what the filter
itself says it captured: for every line of a filter's own sample that is expected to match, the
captured fields other than the address (the user name, and any other ``<F-...>`` capture: the
text a client chooses) get a forged address in many shapes (``F``, ``from F``, ``[F]``,
``rhost=F``, ``'F'``, ``client F``...) before, inside and after their value; for a JSON line,
every string value but the one the address is read from does. Whatever the variant, the filter
may report the real address or nothing; never the forged one. Client-chosen text a filter does
not capture (a URL, a HELO name, a user agent) is covered by the injection lines of each sample
(``# expect: {"match": false}`` or the real host).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from gardien.cli.regex import parse_now
from gardien.clock import FakeClock
from gardien.config.filters import bundled_config_dir, load_filter
from gardien.matching.filter import Filter, LineMatcher
from gardien.model import parse_address
from support.samples import SHIPPED, gardien_samples_dir

FORGED = ("203.0.113.250", "2001:db8:ffff::250")

SHAPES = (
    "{a}",
    "from {a}",
    "from {a} port 22",
    "[{a}]",
    "({a})",
    "<{a}>",
    "'{a}'",
    '"{a}"',
    "rhost={a}",
    "ip={a}",
    "host={a}",
    "client {a}",
    "[client {a}]",
    "{a}:5060",
    "{a}#53",
    "@{a}",
    "Remote IP: {a}",
    "rip={a},",
    "remote={a}",
)


def _sample_lines(name: str) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """Each line of the sample expected to match, with the option sets it is run under."""
    options: list[dict[str, Any]] = [{}]
    pending: dict[str, Any] | None = None
    for raw in (gardien_samples_dir() / f"{name}.log").read_text().splitlines():
        if raw.startswith("# options:"):
            loaded = json.loads(raw.split(":", 1)[1])
            options = loaded if isinstance(loaded, list) else [loaded]
            continue
        if raw.startswith("# expect:"):
            pending = json.loads(raw.split(":", 1)[1])
            continue
        if not raw or raw.startswith("#"):
            continue
        expected, pending = pending or {}, None
        if expected.get("match"):
            yield options, raw


def _json_variants(line: str, host: str, forged: str) -> Iterator[str]:
    start = line.find("{")
    try:
        document = json.loads(line[start:])
    except ValueError:
        return
    paths: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*path, index])
        elif isinstance(node, str) and host not in node:
            paths.append(path)

    walk(document, [])
    for path in paths:
        for shape in ("{v} {f}", "{f}", "{f} {v}", "{v} from {f}"):
            copy = json.loads(line[start:])
            node = copy
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = shape.format(v=node[path[-1]], f=forged)
            yield line[:start] + json.dumps(copy)


_NOT_CLIENT_TEXT = frozenset({"host", "ip4", "ip6", "dns", "addr", "matches", "mlfid", "fid"})


def _client_values(fields: dict[str, object], host: str) -> set[str]:
    values: set[str] = set()
    for key, value in fields.items():
        if key in _NOT_CLIENT_TEXT:
            continue
        for item in value if isinstance(value, (list, set, tuple)) else [value]:
            if isinstance(item, str) and item.strip() and host not in item:
                values.add(item)
    return values


def _text_variants(line: str, values: set[str], forged: str) -> Iterator[str]:
    for value in values:
        at = line.find(value)
        while at >= 0:
            cuts = {at, at + len(value), at + len(value) // 2}
            cuts |= {at + i + 1 for i, c in enumerate(value) if c == " "}
            for cut in sorted(cuts):
                for shape in SHAPES:
                    payload = shape.format(a=forged)
                    for glue in (" {p} ", "{p} ", " {p}", "{p}"):
                        yield line[:cut] + glue.format(p=payload) + line[cut:]
            at = line.find(value, at + 1)


def _variants(line: str, fields: dict[str, object], host: str, forged: str) -> Iterator[str]:
    if "{" in line and line.rstrip().endswith("}"):
        yield from _json_variants(line, host, forged)
    yield from _text_variants(line, _client_values(fields, host), forged)


def _filter(name: str, options: dict[str, Any]) -> Filter:
    params = {k: str(v) for k, v in options.items() if not k.startswith("test.")}
    return Filter(load_filter(name, bundled_config_dir(), parameters=params))


def _matcher(compiled: Filter) -> LineMatcher:
    return compiled.matcher(clock=FakeClock(parse_now("2026-11-21T12:00:00")))


@pytest.mark.parametrize("name", SHIPPED)
def test_a_forged_address_is_never_reported(name: str, samples_timezone: None) -> None:
    cases = list(_sample_lines(name))
    assert cases, f"{name}: no matching line in its sample"
    filters: dict[str, Filter] = {}
    fooled: list[str] = []
    tried = 0
    for options_list, line in cases:
        for options in options_list:
            key = json.dumps(options, sort_keys=True)
            if key not in filters:
                filters[key] = _filter(name, options)
            for forged in FORGED:
                if forged in line:
                    continue
                first = _matcher(filters[key]).process(line).failures
                if not first:
                    continue  # needs the lines before it (a connection's state)
                fields = dict(first[0].fields)
                for variant in _variants(line, fields, str(first[0].host), forged):
                    # a fresh connection state per variant: no line lends its address to another
                    result = _matcher(filters[key]).process(variant)
                    tried += 1
                    if any(str(f.host) == forged for f in result.failures):
                        fooled.append(f"[{key}] {variant}")
    assert not fooled, f"{name} reported a forged address for:\n" + "\n".join(fooled[:20])


_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_sample_has_injection_lines(name: str) -> None:
    """What the sweep cannot know (client text the filter does not capture) the sample shows:
    lines carrying a second, forged address, which must be left unmatched or charged to the
    real one."""
    forged = 0
    pending: dict[str, Any] | None = None
    for raw in (gardien_samples_dir() / f"{name}.log").read_text().splitlines():
        if raw.startswith("# expect:"):
            pending = json.loads(raw.split(":", 1)[1])
            continue
        if not raw or raw.startswith("#"):
            continue
        expected, pending = pending or {}, None
        addresses = {a for a in _ADDRESS.findall(raw) if parse_address(a) is not None}
        if len(addresses) >= 2 or (addresses and not expected.get("match")):
            forged += 1
    assert forged >= 1, f"{name}: its sample has no line with a forged address"

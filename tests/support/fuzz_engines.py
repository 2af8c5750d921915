"""A coverage-guided fuzzer (atheris) of the native core against the Python engine.

Each input picks one of a few of fail2ban's filters and one line of that filter's sample log,
changes it as the input says (characters put in, taken out, copied, a case or a digit changed,
an address added), and gives it, with a few more lines of the sample log, to both engines as
the daemon does: line by line to the Python engine's ``LineMatcher.process``, as one batch to
``NativeScanner.process``. The matchers live as long as the run, so the connections of
multi-line filters carry from one input to the next in both. Any difference in the failures
(host, time, failregex, fields, matched lines) or in an ignored line raises, which makes
atheris stop, save the input and exit non-zero.

    python tests/support/fuzz_engines.py -runs=20000 -max_total_time=60 [CORPUS_DIR]

``tests/matching/test_fuzz.py`` runs it for a bounded time. It needs fail2ban's sample logs
(``FAIL2BAN_SAMPLES``, else Debian's place) and filters (package ``fail2ban``), and the native
core.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports():
    from gardien import _native
    from gardien.clock import FakeClock
    from gardien.config.filters import load_filter
    from gardien.matching import native
    from gardien.matching.filter import Filter, LineMatcher
    from gardien.matching.scan import Prefilter

FILTERS = ("sshd", "asterisk", "postfix", "dovecot", "nginx-http-auth", "exim", "pure-ftpd")
SAMPLES = Path(
    os.environ.get("FAIL2BAN_SAMPLES", "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")
)
NOW = 1124013600.0  # 2005-08-14 12:00 CEST, the reference time of fail2ban's samples
PIECES = ("é", "\u0130", "\u017f", "\u212a", "\u0663", "\u2003", "ü", " ", ":", "[", "]",
          "(", ")", "=", "@", "\t", "\r", "#", " port 22", "from 192.0.2.7", "user root",
          "::ffff:192.0.2.8", "2001:db8::1")  # fmt: skip


class Pair:
    """The two engines of one filter, and the sample lines to mutate."""

    def __init__(self, name: str) -> None:
        spec = load_filter(name, Path("/etc/fail2ban"), fallback_to_bundled=False)
        self.lines = [
            line
            for line in (SAMPLES / name).read_text(errors="replace").splitlines()
            if line and not line.startswith("#")
        ]
        clock = FakeClock(NOW)
        self.python: LineMatcher = Filter(spec).matcher(clock=clock)
        matcher = Filter(spec).matcher(clock=clock)
        prefilter = Prefilter.for_filter(Filter(spec))
        scanner = native.scanner_for(matcher, prefilter.words if prefilter else None)
        if scanner is None:
            raise SystemExit(f"the native core does not take filter {name}")
        self.native = scanner


def _fields(fields: Any) -> str:
    """A failure's fields as text to compare: a set (a connection's users) as its sorted
    members, whatever order its table happens to hold them in."""
    return repr(sorted((k, sorted(v) if isinstance(v, set) else v) for k, v in fields.items()))


def mutate(line: str, data: atheris.FuzzedDataProvider) -> str:
    chars = list(line)
    for _ in range(data.ConsumeIntInRange(1, 4)):
        where = data.ConsumeIntInRange(0, len(chars))
        kind = data.ConsumeIntInRange(0, 5)
        if kind == 0:
            chars[where:where] = list(PIECES[data.ConsumeIntInRange(0, len(PIECES) - 1)])
        elif kind == 1 and chars:
            del chars[min(where, len(chars) - 1)]
        elif kind == 2 and chars:
            start = data.ConsumeIntInRange(0, len(chars) - 1)
            chars[where:where] = chars[start : start + data.ConsumeIntInRange(1, 12)]
        elif kind == 3 and chars:
            index = min(where, len(chars) - 1)
            chars[index] = chars[index].swapcase()
        elif kind == 4:
            chars[where:where] = list(data.ConsumeUnicodeNoSurrogates(6).replace("\n", " "))
    return "".join(chars)


def failures(results: Any) -> list[tuple[Any, ...]]:
    return [
        (r.ignored, f.host, f.time, f.regex_index, _fields(f.fields), f.lines)
        for r in results
        for f in r.failures
    ] + [("ignored",) for r in results if r.ignored and not r.failures]


PAIRS: dict[str, Pair] = {}


def one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    name = FILTERS[data.ConsumeIntInRange(0, len(FILTERS) - 1)]
    pair = PAIRS.get(name) or PAIRS.setdefault(name, Pair(name))
    lines = []
    for _ in range(data.ConsumeIntInRange(1, 4)):
        base = pair.lines[data.ConsumeIntInRange(0, len(pair.lines) - 1)]
        lines.append(mutate(base, data) if data.ConsumeBool() else base)
    python = failures([pair.python.process(line) for line in lines])
    core = failures(list(pair.native.process(lines)))
    if python != core:
        raise AssertionError(f"{name}: {lines!r}\npython: {python!r}\ncore:   {core!r}")


def main() -> None:
    os.environ["TZ"] = "CET-01CEST-02,M3.5.0,M10.5.0"  # the zone of fail2ban's sample logs
    time.tzset()
    if _native.core() is None:
        raise SystemExit("the native core is not installed (pip install ./native)")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

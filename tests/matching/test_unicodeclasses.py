"""Python's Unicode classes, written out for the native core: the tables are the running
Python's, and the core matches lines that are not ASCII as Python's engine does."""

from __future__ import annotations

from pathlib import Path

import pytest

from gardien import tester
from gardien.clock import FakeClock
from gardien.matching import native, unicodeclasses
from gardien.matching.filter import Filter


def test_the_tables_are_what_the_running_python_matches() -> None:
    assert unicodeclasses.current()
    word, digit, space, folds = unicodeclasses.derive()
    assert word == unicodeclasses.WORD
    assert digit == unicodeclasses.DIGIT
    assert space == unicodeclasses.SPACE
    assert folds == unicodeclasses.FOLDS


def _characters() -> list[str]:
    """A spread of code points over the whole range, and those where Python and Rust differ."""
    special = [0x1C, 0x1F, 0x85, 0xA0, 0xB2, 0xDF, 0x130, 0x131, 0x17F, 0x212A, 0x2126, 0x663]
    codes = sorted({*range(0x80, 0x110000, 89), *special})
    return [chr(c) for c in codes if not 0xD800 <= c <= 0xDFFF]


@pytest.mark.parametrize(
    "failregex",
    [
        r"app: X\wY from <HOST>$",
        r"app: X\WY from <HOST>$",
        r"app: X\dY from <HOST>$",
        r"app: X\sY from <HOST>$",
        r"app: X[^\s]Y from <HOST>$",
        r"(?i)app: X[ks]Y from <HOST>$",
        r"(?i)app: XiY from <HOST>$",
        r"app: X.\bY from <HOST>$",
        r"app: (?i:x[a-z])Y from <HOST>$",
    ],
)
def test_every_kind_of_character_is_classed_as_python_classes_it(
    failregex: str, tmp_path: Path, native_core: None
) -> None:
    lines = [
        f"2026-01-02 03:04:05 app: X{char}Y from 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        for i, char in enumerate(_characters())
    ]
    log = tmp_path / "chars.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec_file = tmp_path / "chars.conf"
    spec_file.write_text(f"[Definition]\nfailregex = {failregex}\n")
    found = []
    for engine in ("python", "native"):
        native._reset_for_tests(None if engine == "python" else True)
        compiled = Filter(tester.resolve_filter(str(spec_file)))
        report = tester.test_log(compiled, str(log), clock=FakeClock(1_770_000_000.0))
        found.append(dict(report.hosts))
    assert found[1] == found[0]
    assert found[0]  # some characters match, some do not
    assert len(found[0]) < len(lines)
    # and the core matched every one of them itself
    matcher = compiled.matcher(clock=FakeClock(1_770_000_000.0))
    scanner = native.scanner_for(matcher, None)
    assert scanner is not None
    list(scanner.process(lines))
    assert scanner.handed_over == 0

"""The native core's journal reader against cysystemd's, the reference: the same journal files
give the same lines, times and cursors, whatever the entries hold (fields that are not UTF-8,
PIDs and times that are not plain numbers, repeated fields, kernel lines), read whole or in
small batches, resumed from a cursor, from a file or from a directory."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gardien import _native
from gardien.sources.journal import JournalSource
from support.ci import require
from support.journal import T0, RawFields, entry, export_format

READERS = ("native", "cysystemd")


@pytest.fixture(autouse=True)
def native_journal() -> Iterator[None]:
    _native.reset_for_tests()
    core = _native.core()
    require(
        core is not None and hasattr(core, "Journal"),
        "the native core (pip install ./native) is not installed",
    )
    yield
    _native.reset_for_tests()


def write(tool: str, path: Path, entries: list[RawFields]) -> None:
    subprocess.run(
        [tool, f"--output={path}", "-"],
        input=export_format(entries),
        check=True,
        capture_output=True,
    )


def read(
    reader: str, batch: int | None = None, **where: object
) -> tuple[list[tuple[str, float]], str | None]:
    """Every entry as (line, time), and the cursor after them, read by ``reader``."""
    _native.reset_for_tests(True if reader == "native" else None)
    found: list[tuple[str, float]] = []
    with JournalSource([], since=0, **where) as source:  # type: ignore[arg-type]
        while lines := source.read_entries(batch):
            found += [(line.line, line.time) for line in lines]
            assert lines[-1].cursor == source.cursor()
            if batch is None:
                break
        return found, source.cursor()


ODD: list[RawFields] = [
    entry(0, "Failed password for root from 192.0.2.7 port 22 ssh2", _COMM="sshd", _PID="812"),
    entry(1, "hex pid", SYSLOG_IDENTIFIER="postfix/smtpd", SYSLOG_PID="0x1f"),
    entry(2, "spaced pid", SYSLOG_IDENTIFIER="a", SYSLOG_PID=" 12 "),
    entry(3, "zero pid then _PID", SYSLOG_IDENTIFIER="a", SYSLOG_PID="00", _PID="9"),
    entry(4, "word pid", SYSLOG_IDENTIFIER="a", SYSLOG_PID="abc"),
    entry(5, "empty identifier", SYSLOG_IDENTIFIER="", _COMM="dovecot", _PID="7"),
    entry(6, "kernel", SYSLOG_IDENTIFIER="kernel", _SOURCE_MONOTONIC_TIMESTAMP="98765432"),
    entry(7, "kernel with pid", SYSLOG_IDENTIFIER="kernel", _PID="1"),
    entry(8, "sender time", _COMM="x", _SOURCE_REALTIME_TIMESTAMP=str((T0 - 60) * 1_000_000)),
    entry(9, "bad sender time", _COMM="x", _SOURCE_REALTIME_TIMESTAMP="soon"),
    entry(10, "empty sender time", _COMM="x", _SOURCE_REALTIME_TIMESTAMP=""),
    {**entry(11, "", _COMM="multi"), "MESSAGE": ["one", "two", "three"]},
    {**entry(12, "", _COMM="hosts"), "_HOSTNAME": ["h1", "h2"]},
    {**entry(13, "", _COMM="bytes"), "MESSAGE": b"caf\xe9 \xff from 192.0.2.8"},
    {**entry(14, "", _COMM=b"sh\xc3"), "MESSAGE": "identifier not UTF-8"},
    entry(15, "line one\nline two", _COMM="asterisk", _PID="3"),
    {k: v for k, v in entry(16, "no host", _COMM="x").items() if k != "_HOSTNAME"},
    {k: v for k, v in entry(17, "").items() if k != "MESSAGE"},
    entry(18, "unicode digits pid", SYSLOG_IDENTIFIER="a", SYSLOG_PID="\u0663\u0664"),
    entry(19, "ünïcödé message 🙂", _COMM="app", _PID="1_000"),
]


@pytest.mark.parametrize("where", ["files", "directory"])
def test_odd_entries_read_the_same_through_both_readers(
    journal_remote: str, tmp_path: Path, where: str
) -> None:
    path = tmp_path / "system.journal"
    write(journal_remote, path, ODD)
    place = {"files": [str(path)]} if where == "files" else {"directory": str(tmp_path)}
    native, reference = (read(reader, **place) for reader in READERS)
    assert native == reference
    assert len(native[0]) == len(ODD)
    # whole lines made in Rust and lines handed back to Python both occur
    assert native[0][0] == (
        "web1 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2",
        T0,
    )
    assert native[0][1][0] == "web1 postfix/smtpd[31]: hex pid"


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_small_batches_and_resuming_from_a_cursor_read_each_entry_once(
    journal_remote: str, tmp_path: Path, batch: int
) -> None:
    path = tmp_path / "system.journal"
    write(journal_remote, path, ODD)
    whole, _ = read("cysystemd", files=[str(path)])
    assert read("native", batch, files=[str(path)])[0] == whole
    assert read("native", batch, directory=str(tmp_path))[0] == whole
    # stop after `batch` entries, resume from the cursor saved then: the rest, once
    for reader in READERS:
        _native.reset_for_tests(True if reader == "native" else None)
        with JournalSource([], files=[str(path)], since=0) as source:
            first = source.read_entries(batch)
            saved = source.cursor()
        with JournalSource([], files=[str(path)], cursor=saved) as source:
            rest = source.read_entries()
        assert [(line.line, line.time) for line in first + rest] == whole, reader


field_values = st.one_of(
    st.sampled_from(["", "0", "00", "812", "0x10", " 7", "-3", "kernel", "sshd", "1" * 20]),
    st.text(max_size=12),
    st.binary(max_size=8),
)
fields = st.dictionaries(
    st.sampled_from(
        [
            "MESSAGE",
            "_HOSTNAME",
            "SYSLOG_IDENTIFIER",
            "_COMM",
            "SYSLOG_PID",
            "_PID",
            "_SOURCE_REALTIME_TIMESTAMP",
            "_SOURCE_MONOTONIC_TIMESTAMP",
            "OTHER",
        ]
    ),
    st.one_of(field_values, st.lists(field_values, min_size=1, max_size=3)),
    max_size=6,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(fields, min_size=1, max_size=6))
def test_generated_entries_read_the_same_through_both_readers(
    journal_remote: str, tmp_path_factory: pytest.TempPathFactory, generated: list[RawFields]
) -> None:
    path = tmp_path_factory.mktemp("journal") / "system.journal"
    entries = [
        {**{k: v for k, v in entry(number, "").items() if k != "MESSAGE"}, **more}
        for number, more in zip(itertools.count(), generated, strict=False)
    ]
    write(journal_remote, path, entries)
    native, reference = (read(reader, files=[str(path)]) for reader in READERS)
    assert native == reference
    assert len(native[0]) == len(entries)

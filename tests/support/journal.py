"""systemd journal files for the tests, written by systemd-journal-remote from the journal
export format: the ``journal_remote`` and ``write_journal`` fixtures."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gardien import _native
from support.ci import require


def _journal_remote() -> str | None:
    for candidate in (
        shutil.which("systemd-journal-remote"),
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
def journal_remote() -> str:
    """systemd-journal-remote (Debian package ``systemd-journal-remote``), and cysystemd."""
    tool = _journal_remote()
    require(
        tool is not None,
        "systemd-journal-remote is missing (apt-get install systemd-journal-remote)",
    )
    require(
        importlib.util.find_spec("cysystemd") is not None,
        "cysystemd, a dependency of gardien, is missing (pip install -e .)",
    )
    assert tool is not None
    return tool


@pytest.fixture(params=["native", "cysystemd"])
def journal_reader(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with each journal reader: the native core's (required where CI runs), then
    cysystemd's, the reference."""
    reader = str(request.param)
    _native.reset_for_tests(True if reader == "native" else None)
    if reader == "native":
        core = _native.core()
        require(
            core is not None and hasattr(core, "Journal"),
            "the native core (pip install ./native) is not installed",
        )
    yield reader
    _native.reset_for_tests()


Value = str | bytes
RawFields = dict[str, Value | list[Value]]


def export_format(entries: list[dict[str, str | list[str]]] | list[RawFields]) -> bytes:
    """The journal export format: ``FIELD=value`` lines, or the binary form for values with a
    newline or that are bytes; a blank line after each entry."""
    out = bytearray()
    for fields in entries:
        for name, values in fields.items():
            for value in [values] if isinstance(values, str | bytes) else values:
                data = value if isinstance(value, bytes) else value.encode()
                if b"\n" in data or isinstance(value, bytes):
                    out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
                else:
                    out += name.encode() + b"=" + data + b"\n"
        out += b"\n"
    return bytes(out)


@pytest.fixture
def write_journal(journal_remote: str) -> Callable[[Path, list[dict[str, str | list[str]]]], None]:
    """Add entries to a journal file (created when missing; its name ends in .journal)."""

    def write(path: Path, entries: list[dict[str, str | list[str]]]) -> None:
        subprocess.run(
            [journal_remote, f"--output={path}", "-"],
            input=export_format(entries),
            check=True,
            capture_output=True,
        )

    return write


SSHD = "_SYSTEMD_UNIT=sshd.service + _COMM=sshd"


BOOT_ID = "0123456789abcdef0123456789abcdef"


T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC


def entry(seconds: float, message: str, **fields: str | list[str]) -> dict[str, str | list[str]]:
    """One entry in the journal export format's terms, at ``seconds`` after T0."""
    usec = int((T0 + seconds) * 1_000_000)
    return {
        "__REALTIME_TIMESTAMP": str(usec),
        "__MONOTONIC_TIMESTAMP": str(usec // 1000),
        "_BOOT_ID": BOOT_ID,
        "_HOSTNAME": "web1",
        **fields,
        "MESSAGE": message,
    }


def sshd(seconds: float, message: str, pid: str = "812") -> dict[str, str | list[str]]:
    return entry(
        seconds,
        message,
        _SYSTEMD_UNIT="sshd.service",
        _COMM="sshd",
        SYSLOG_IDENTIFIER="sshd",
        _PID=pid,
    )


def cron(seconds: float, message: str) -> dict[str, str | list[str]]:
    return entry(seconds, message, _SYSTEMD_UNIT="cron.service", _COMM="cron", _PID="55")


Writer = Callable[[Path, list[dict[str, str | list[str]]]], None]

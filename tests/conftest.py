"""Shared fixtures. Tests that need something from the machine (fail2ban's sample logs, root)
skip on a developer's machine without it, but fail under CI, where the test script installs it:
a skip there would hide a failure."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hubdb import blank_url, hub_url, migrated_postgres, postgres  # noqa: F401 (fixtures)
from samples import TEST_TZ, fail2ban_samples_dir

IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def fail2ban_samples() -> Path:
    """fail2ban's installed sample logs (Debian package ``fail2ban``)."""
    found = fail2ban_samples_dir()
    require(
        found is not None and found.is_dir(), "fail2ban is not installed (apt-get install fail2ban)"
    )
    assert found is not None
    return found


@pytest.fixture
def fail2ban_config() -> Path:
    path = Path("/etc/fail2ban")
    require((path / "filter.d").is_dir(), "/etc/fail2ban/filter.d is missing")
    return path


@pytest.fixture
def samples_timezone() -> Iterator[None]:
    """The time zone fail2ban's sample logs are written in."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = TEST_TZ
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


# ---- systemd journal files (written by systemd-journal-remote) -------------------------


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


def export_format(entries: list[dict[str, str | list[str]]]) -> bytes:
    """The journal export format: ``FIELD=value`` lines, or the binary form for values with a
    newline; a blank line after each entry."""
    out = bytearray()
    for fields in entries:
        for name, values in fields.items():
            for value in [values] if isinstance(values, str) else values:
                data = value.encode()
                if b"\n" in data:
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


@pytest.fixture(scope="session")
def current_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gardien's .deb built once per run from this tree (``make deb``), for every test that
    installs it; the source's other packages are in the same directory."""
    from debroot import build_debs

    return build_debs(tmp_path_factory.mktemp("debs-current"))

"""Shared fixtures. Tests that need something from the machine (fail2ban's sample logs, root)
skip on a developer's machine without it, but fail under CI, where the test script installs it:
a skip there would hide a failure."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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

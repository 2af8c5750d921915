"""Fixtures for what the machine provides: fail2ban's sample logs and configuration, the time
zone the samples are written in, the native matching core, and gardien's .deb built once per
run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gardien.matching import native
from support.ci import require
from support.samples import TEST_TZ, fail2ban_samples_dir


@pytest.fixture
def native_core() -> Iterator[None]:
    """The native core, looked for afresh (required where CI runs), and forgotten after."""
    native._reset_for_tests()
    require(native.available(), "the native core (pip install ./native) is not installed")
    yield
    native._reset_for_tests()


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


@pytest.fixture(scope="session")
def current_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gardien's .deb built once per run from this tree (``make deb``), for every test that
    installs it; the source's other packages are in the same directory."""
    from support.debroot import build_debs

    return build_debs(tmp_path_factory.mktemp("debs-current"))

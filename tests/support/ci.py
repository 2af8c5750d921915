"""Tests that need something from the machine (fail2ban's sample logs, root, a tool) skip on a
developer's machine without it, but fail under CI, where the test script installs it: a skip
there would hide a failure."""

from __future__ import annotations

import os

import pytest

IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)

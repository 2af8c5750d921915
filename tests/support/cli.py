"""The ``gardien`` command as the tests run it.

:func:`gardien` runs it in this process through click's test runner: the same command object,
options and exit codes as the installed script, without a Python start-up per call. The
environment it sees is this process's with ``TZ=UTC`` (and ``env``), applied for the call
only (with :func:`time.tzset`, so local times follow). An exception the command lets out is
raised in the test, not turned into an exit status: for a user's mistake gardien must print an
error, never a traceback, and a test that meets one fails on it.

:func:`gardien_process` runs ``python -m gardien`` as a process, for what the process boundary
is the point of: the daemon's lifecycle and signals, the hub's server, the entry point itself.
Both return the same shape: ``returncode``, ``stdout``, ``stderr``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from click.testing import CliRunner

__all__ = ["Outcome", "gardien", "gardien_process"]


@dataclass(frozen=True)
class Outcome:
    """What a command did: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()


def gardien(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    clean: bool = False,
) -> Outcome:
    """``gardien ARGS...`` in this process. ``clean``: without the caller's ``GARDIEN_*``
    variables."""
    from gardien.cli import cli

    runner = CliRunner()
    with _environment({"TZ": "UTC", **(env or {})}, clean=clean):
        result = runner.invoke(cli, list(args), input=stdin, prog_name="gardien")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr, args)


def gardien_process(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    clean: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m gardien ARGS...`` as a process of its own, waited for."""
    base = {k: v for k, v in os.environ.items() if not (clean and k.startswith("GARDIEN_"))}
    return subprocess.run(
        [sys.executable, "-m", "gardien", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "TZ": "UTC", **(env or {})},
        check=False,
    )


@contextlib.contextmanager
def _environment(changes: Mapping[str, str], *, clean: bool) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        if clean:
            for name in [n for n in os.environ if n.startswith("GARDIEN_")]:
                del os.environ[name]
        os.environ.update(changes)
        time.tzset()
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        time.tzset()

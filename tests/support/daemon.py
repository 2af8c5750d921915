"""A real ``gardien run`` process on a configuration of its own under a temporary directory,
driven through its CLI: :class:`Running` and the ``daemon`` fixture (a jail ``asterisk-provya``
on an empty log, ``action = log``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import gardien

JAIL = """\
[asterisk-provya]
enabled  = true
ignoreip = 127.0.0.1 1.2.3.4
filter   = asterisk
action   = log
logpath  = {log}
findtime  = 10m
maxretry = 3
bantime  = 360m
"""


def failure_line(address: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f'[{stamp}] NOTICE[2104] chan_sip.c: Registration from \'"1001" '
        f"<sip:1001@192.0.2.10>' failed for '{address}:5060' - Wrong password\n"
    )


class Running:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        self.log = root / "log" / "fail2ban"
        self.socket = root / "run" / "gardien.sock"
        self.db = root / "lib" / "gardien.sqlite3"
        self.pidfile = root / "run" / "gardien.pid"
        self.process: subprocess.Popen[str] | None = None

    def run_until_exit(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """``gardien run`` that is expected to refuse to start: its exit and output."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gardien",
                "-c",
                str(self.etc),
                "-s",
                str(self.socket),
                "run",
                "--dbfile",
                str(self.db),
                "--pidfile",
                str(self.pidfile),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return gardien("-c", str(self.etc), "-s", str(self.socket), *args)

    def start(
        self, *extra: str, env: dict[str, str] | None = None, wrap: tuple[str, ...] = ()
    ) -> None:
        """``gardien run`` (``extra``: more of its options; ``wrap``: a command it runs
        under), once it answers."""
        self.process = subprocess.Popen(
            [
                *wrap,
                sys.executable,
                "-m",
                "gardien",
                "-c",
                str(self.etc),
                "-s",
                str(self.socket),
                "run",
                "--dbfile",
                str(self.db),
                "--pidfile",
                str(self.pidfile),
                "--loglevel",
                "debug",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output, _ = self.process.communicate()
                raise AssertionError(f"daemon exited: {output}")
            if self.cli("ping").stdout == "Server replied: pong\n":
                return
            time.sleep(0.1)
        raise AssertionError("daemon did not answer within 20 s")

    def stop(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            self.cli("stop")
        try:
            output, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        self.process = None
        return output

    def wait_for(self, predicate: object, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path)
    running.etc.mkdir()
    running.log.parent.mkdir()
    running.log.write_text("")
    (running.etc / "jail.d").mkdir()
    (running.etc / "jail.d" / "provya.conf").write_text(JAIL.format(log=running.log))
    # the sshd jail of the bundled defaults is not wanted here
    (running.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
    yield running
    if running.process is not None:
        running.process.kill()
        running.process.communicate(timeout=5)


def banned(running: Running) -> list[str]:
    out = running.cli("status", "--json", "asterisk-provya")

    return list(json.loads(out.stdout)["banned"]) if out.returncode == 0 else []

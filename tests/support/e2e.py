"""The daemon inside a network namespace lab, with a real firewall (:class:`Setup`)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support.cli import gardien
from support.netns import Lab

SEED_JAIL = """\
[asterisk-provya]
enabled  = true
ignoreip = 127.0.0.1 1.2.3.4
filter   = asterisk
action   = {action}
logpath  = {log}
findtime  = 10m
maxretry = 3
bantime  = 360m
"""


def eventually(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Setup:
    """A configuration with the seed jail (``action`` given), and how to run the daemon on it
    inside the lab's server namespace."""

    def __init__(self, lab: Lab, root: Path, action: str) -> None:
        self.etc, self.log, self.sock = root / "etc", root / "fail2ban", root / "gardien.sock"
        (self.etc / "jail.d").mkdir(parents=True)
        (self.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
        (self.etc / "jail.d" / "provya.conf").write_text(
            SEED_JAIL.format(action=action, log=self.log)
        )
        self.log.write_text("")
        self.argv = [
            "ip",
            "netns",
            "exec",
            lab.server,
            sys.executable,
            "-m",
            "gardien",
            "-c",
            str(self.etc),
            "-s",
            str(self.sock),
            "run",
            "--dbfile",
            str(root / "db.sqlite3"),
            "--pidfile",
            str(root / "gardien.pid"),
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return gardien("-s", str(self.sock), *args)

    def start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        eventually(lambda: self.cli("ping").stdout == "Server replied: pong\n", "the daemon")
        return process

    def stop(self, process: subprocess.Popen[str]) -> str:
        self.cli("stop")
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return output

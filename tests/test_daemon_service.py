"""The daemon as a service manager drives it: systemd's notifications (``Type=notify``),
``gardien stop`` returning once the daemon has exited (``ExecStop=``), and ``gardien flushlogs``
after logrotate renamed the log file (``postrotate``). Real ``gardien run`` processes, real
sockets, real files; driven through the command line."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_daemon
from gardien.daemon.notify import Notifier
from test_daemon import Running

#: a daemon (not started) with the asterisk-provya jail on an empty log: test_daemon's fixture
daemon = test_daemon.daemon

# ---- sd_notify -------------------------------------------------------------------------


def notifications(sock: socket.socket) -> dict[str, str]:
    """The next datagram sent to ``sock``, as its NAME=value lines."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_systemd_is_told_ready_reloading_and_stopping(daemon: Running, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(20)
        daemon.start(env={"NOTIFY_SOCKET": str(path)})
        ready = notifications(sock)
        assert ready["READY"] == "1"
        assert ready["STATUS"] == "running: 1 jail(s): asterisk-provya"
        assert daemon.cli("reload").returncode == 0
        reloading = notifications(sock)
        assert reloading["RELOADING"] == "1"
        assert int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        assert notifications(sock)["READY"] == "1"  # reloaded
        daemon.stop()
        assert notifications(sock)["STOPPING"] == "1"
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(4096)  # and nothing more


def test_ready_comes_once_the_jails_run_and_the_socket_listens(
    daemon: Running, tmp_path: Path
) -> None:
    # an abstract socket name, as systemd may give
    name = f"gardien-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(20)
        # started by hand: daemon.start() would wait for the control socket first
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gardien",
                "-c",
                str(daemon.etc),
                "-s",
                str(daemon.socket),
                "run",
                "--dbfile",
                str(daemon.db),
                "--pidfile",
                str(daemon.pidfile),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "NOTIFY_SOCKET": "@" + name},
        )
        daemon.process = process
        try:
            assert notifications(sock)["READY"] == "1"
            # at once: the control socket answers and the jail is running
            assert daemon.cli("ping").stdout == "pong\n"
            assert "Jail list:\tasterisk-provya" in daemon.cli("status").stdout
        finally:
            daemon.stop()


def test_without_notify_socket_nothing_is_sent() -> None:
    assert Notifier.from_environment({}).send("READY=1") is False

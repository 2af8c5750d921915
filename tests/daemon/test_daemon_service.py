"""The daemon as a service manager drives it: systemd's notifications (``Type=notify``),
``gardien stop`` returning once the daemon has exited (``ExecStop=``), and ``gardien flushlogs``
after logrotate renamed the log file (``postrotate``). Real ``gardien run`` processes, real
sockets, real files; driven through the command line."""

from __future__ import annotations

import http.server
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gardien.daemon.notify import Notifier
from support.daemon import JAIL, Running

#: a daemon (not started) with the asterisk-provya jail on an empty log: test_daemon's fixture

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
            assert daemon.cli("ping").stdout == "Server replied: pong\n"
            assert "Jail list:\tasterisk-provya" in daemon.cli("status").stdout
        finally:
            daemon.stop()


def test_without_notify_socket_nothing_is_sent() -> None:
    assert Notifier.from_environment({}).send("READY=1") is False


# ---- gardien stop waits ----------------------------------------------------------------


class SlowHook:
    """A webhook receiver that takes ``hold`` seconds to answer each POST."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.received = threading.Event()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.set()
                time.sleep(hook.hold)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_hook() -> Iterator[SlowHook]:
    hook = SlowHook(hold=3.0)
    yield hook
    hook.close()


def with_slow_stop(daemon: Running, hook: SlowHook) -> None:
    """A jail whose webhook is being delivered: the daemon's stop waits for the delivery."""
    (daemon.etc / "jail.d" / "provya.conf").write_text(
        JAIL.format(log=daemon.log).replace(
            "action   = log", f"action   = log\n           webhook[url={hook.url}]"
        )
    )
    daemon.start()
    assert daemon.cli("set", "asterisk-provya", "banip", "203.0.113.80").returncode == 0
    assert hook.received.wait(10), "the webhook was not posted"


def test_stop_returns_once_the_daemon_has_exited(daemon: Running, slow_hook: SlowHook) -> None:
    with_slow_stop(daemon, slow_hook)
    began = time.monotonic()
    result = daemon.cli("stop")
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Shutdown successful\n"
    assert daemon.process is not None
    assert daemon.process.poll() is not None, "gardien stop returned before the daemon exited"
    assert took > 1.0  # it did wait: the daemon's stop waited for the webhook
    assert not daemon.socket.exists() and not daemon.pidfile.exists()
    output, _ = daemon.process.communicate(timeout=5)
    assert "gardien stopped" in output
    daemon.process = None


def test_stop_gives_up_waiting_after_its_timeout(daemon: Running, slow_hook: SlowHook) -> None:
    with_slow_stop(daemon, slow_hook)
    result = daemon.cli("stop", "--timeout", "0.5")
    assert result.returncode == 1
    assert "is still running 0.5 s after it was asked to stop" in result.stderr
    assert daemon.process is not None
    output, _ = daemon.process.communicate(timeout=15)  # then it does stop
    assert daemon.process.returncode == 0, output
    daemon.process = None


# ---- gardien flushlogs -----------------------------------------------------------------


def test_flushlogs_reopens_the_log_file_after_logrotate_renamed_it(daemon: Running) -> None:
    logfile = daemon.root / "logs" / "gardien" / "gardien.log"  # its directory does not exist
    daemon.start("--logtarget", str(logfile))
    assert logfile.parent.stat().st_mode & 0o777 == 0o750
    assert logfile.stat().st_mode & 0o777 == 0o600
    assert daemon.cli("set", "asterisk-provya", "banip", "198.51.100.71").returncode == 0
    daemon.wait_for(lambda: "Ban 198.51.100.71" in logfile.read_text(), "the first ban logged")
    rotated = logfile.with_name("gardien.log.1")
    logfile.rename(rotated)  # what logrotate does, before its postrotate
    result = daemon.cli("flushlogs")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "logs: rolled over\n"  # as fail2ban-client says
    assert daemon.cli("set", "asterisk-provya", "banip", "198.51.100.72").returncode == 0
    daemon.wait_for(
        lambda: logfile.exists() and "Ban 198.51.100.72" in logfile.read_text(),
        "the next ban in a new file at the same path",
    )
    assert logfile.stat().st_mode & 0o777 == 0o600
    daemon.stop()
    assert "gardien stopped" in logfile.read_text()
    old = rotated.read_text()
    assert "Ban 198.51.100.71" in old and "198.51.100.72" not in old


def test_flushlogs_without_a_log_file_has_nothing_to_do(daemon: Running) -> None:
    daemon.start()  # logging to stderr
    result = daemon.cli("flushlogs")
    assert result.returncode == 0
    assert result.stdout == "logs: flushed\n"  # fail2ban-client's words
    daemon.stop()


def test_a_log_file_whose_directory_cannot_be_made_is_one_clear_error(daemon: Running) -> None:
    blocker = daemon.root / "not-a-directory"
    blocker.write_text("")
    result = daemon.run_until_exit("--logtarget", str(blocker / "gardien.log"))
    assert result.returncode == 1
    assert result.stderr == (
        f"gardien: error: logtarget {blocker / 'gardien.log'}: {blocker} is not a directory\n"
    )

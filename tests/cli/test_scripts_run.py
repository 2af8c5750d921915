"""``./scripts/run``, the README's run command, out of the box on a host like a stock Debian 12
without rsyslog: no /var/log/auth.log, and an empty journal (or none at all). It must run for
10 s without an error, then stop cleanly on Ctrl-C (SIGINT), leaving nothing in the firewall.

Whatever this machine has, the script runs in a network namespace of its own (its firewall is
the one inspected) and a mount namespace where empty tmpfs hide /var/log (no auth.log, no
persistent journal), /run (no volatile journal; a fresh /run/gardien) and /var/lib (a fresh
/var/lib/gardien): the bundled sshd jail then finds neither its file nor a journal entry. (An
installed gardien's /etc/gardien is hidden behind the bundled defaults too.)

On such a host, a jail that asks for the journal explicitly (``backend = systemd``) when there
is none is left out, in one line saying so, and the others run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import REPO
from support.ci import require
from support.cli import gardien

ROOT = REPO
RUNS_FOR = 10.0
BUNDLED = ROOT / "src" / "gardien" / "data"


@pytest.fixture
def namespace() -> Iterator[str]:
    require(os.geteuid() == 0, "network and mount namespaces need root")
    for tool in ("ip", "unshare", "nft"):
        require(shutil.which(tool) is not None, f"{tool} is missing")
    name = f"gardien-run-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Output:
    """The lines a process writes, gathered by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.text}")
            time.sleep(0.1)

    def finish(self) -> None:
        self._thread.join(timeout=10)
        self._stream.close()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.parametrize("journal", ["empty", "none"])
def test_scripts_run_runs_out_of_the_box_and_stops_cleanly_on_ctrl_c(
    namespace: str, journal: str
) -> None:
    # what a first ./scripts/run does with the network: install gardien in .venv (a second one
    # skips pip, as the network namespace below has no network)
    subprocess.run(
        ["bash", "-c", '. scripts/_env.sh && make_venv ""'], cwd=ROOT, check=True, timeout=600
    )
    host = [
        "set -e",
        "for hidden in /var/log /run /var/lib; do mount -t tmpfs -o mode=0755 tmpfs $hidden; done",
        # an empty journal: journald's directory, without a file yet
        "mkdir /var/log/journal" if journal == "empty" else "true",
        # an installed gardien's configuration would replace the bundled defaults: hide it
        f"[ ! -d /etc/gardien ] || mount --bind {BUNDLED} /etc/gardien",
        "exec ./scripts/run",
    ]
    process = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "unshare",
            "--mount",
            "--",
            "bash",
            "-c",
            "\n".join(host),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    output = Output(process)
    try:
        output.wait_for("started: 1 jail(s): sshd", timeout=60)
        time.sleep(RUNS_FOR)
        assert process.poll() is None, output.text
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        returncode = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.finish()
    text = output.text
    assert returncode == 0, text
    assert "ERROR" not in text and "Traceback" not in text and "error:" not in text, text
    if journal == "empty":  # no auth.log, but a journal: the sshd jail reads it
        assert "[sshd] reading the system journal (_COMM=sshd + _COMM=sshd-session)" in text
    else:  # no journal to fall back on: the file is waited for
        assert "[sshd] /var/log/auth.log does not exist yet: waiting for it" in text
    assert text.splitlines()[-1].endswith("gardien stopped")
    ruleset = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "list", "ruleset"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ruleset.stdout.strip() == ""


def test_backend_systemd_on_a_host_without_a_journal_leaves_that_jail_out(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "mount namespaces need root")
    require(shutil.which("unshare") is not None, "unshare is missing")
    etc, log, sock = tmp_path / "etc", tmp_path / "app.log", tmp_path / "gardien.sock"
    (etc / "jail.d").mkdir(parents=True)
    log.write_text("")
    (etc / "jail.local").write_text(
        "[sshd]\nenabled = false\n\n"
        "[sshd-journal]\nenabled = true\nfilter = sshd\nbackend = systemd\naction = log\n\n"
        f"[asterisk]\nenabled = true\nlogpath = {log}\naction = log\n"
    )
    daemon = [sys.executable, "-m", "gardien", "-c", str(etc), "-s", str(sock), "run"]
    daemon += ["--dbfile", str(tmp_path / "db.sqlite3"), "--pidfile", str(tmp_path / "pid")]
    host = [
        "set -e",
        "for hidden in /var/log /run; do mount -t tmpfs -o mode=0755 tmpfs $hidden; done",
        "exec " + " ".join(daemon),
    ]
    process = subprocess.Popen(
        ["unshare", "--mount", "--", "bash", "-c", "\n".join(host)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(process)
    try:
        output.wait_for("started: 1 jail(s): asterisk; not started: sshd-journal", timeout=30)
        status = gardien("-s", str(sock), "status")
        assert "Jail list:\tasterisk\n" in status.stdout
        assert "Not started:\tsshd-journal" in status.stdout
        assert gardien("-s", str(sock), "stop").returncode == 0
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        output.finish()
    (line,) = [line for line in output.lines if " ERROR " in line]
    assert line.endswith(
        "[sshd-journal] jail not started: cannot open the systemd journal: this host keeps none "
        "(no /run/log/journal nor /var/log/journal); start systemd-journald, or give the jail a "
        "logpath and backend = auto"
    )

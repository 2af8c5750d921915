"""The automation flow of a widely followed Postfix + fail2ban guide, as a shell script that
calls ``fail2ban-regex`` and ``fail2ban-client`` and parses what they print, run unchanged
against gardien through its drop-in commands (links named fail2ban-regex and fail2ban-client
to the gardien executable, first on PATH):

1. ``fail2ban-regex LOG FILTER --print-all-matched``, the offenders' addresses cut out of it;
2. the jail's ``Banned IP list:`` read from ``fail2ban-client status postfix-sasl``;
3. ``fail2ban-client set postfix-sasl banip IP`` for each address not banned yet.

The daemon is a real ``gardien run`` on a temporary configuration (its socket named in its
gardien.local, found by the drop-ins through GARDIEN_CONFIG_DIR, as /etc/gardien would be)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gardien.config.filters import bundled_config_dir

GUIDE_SCRIPT = r"""#!/bin/bash
set -euo pipefail
LOG=$1
FILTER=$2
JAIL=postfix-sasl
# the offenders the filter finds in the log
fail2ban-regex "$LOG" "$FILTER" --print-all-matched \
  | grep -oE 'unknown\[([0-9]{1,3}\.){3}[0-9]{1,3}\]' \
  | grep -oE '([0-9]{1,3}\.){3}[0-9]{1,3}' | sort -u > offenders.txt
# those the jail bans already
BANNED=$(fail2ban-client status "$JAIL" | grep "Banned IP list:" | sed 's/.*Banned IP list:[[:space:]]*//')
for IP in $(cat offenders.txt); do
  if echo " $BANNED " | grep -q " $IP "; then
    echo "already banned: $IP"
  else
    echo "banning: $IP ($(fail2ban-client set "$JAIL" banip "$IP"))"
  fi
done
fail2ban-client status "$JAIL"
"""

JAIL = """\
[sshd]
enabled = false

[postfix-sasl]
enabled  = true
filter   = postfix[mode=auth]
logpath  = {log}
action   = log
maxretry = 50
bantime  = 1h
"""


def sasl_failure(address: str, number: int) -> str:
    stamp = time.strftime("%b %e %H:%M:%S")
    return (
        f"{stamp} mx1 postfix/submission/smtpd[{20300 + number}]: warning: "
        f"unknown[{address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n"
    )


@pytest.fixture
def system(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A running gardien and the environment of a shell whose fail2ban commands are gardien."""
    etc = tmp_path / "etc"
    shutil.copytree(bundled_config_dir(), etc, ignore=shutil.ignore_patterns("samples"))
    socket = tmp_path / "gardien.sock"
    (etc / "gardien.local").write_text(
        f"[Definition]\nsocket = {socket}\npidfile = {tmp_path / 'gardien.pid'}\n"
        f"dbfile = {tmp_path / 'gardien.sqlite3'}\n"
    )
    log = tmp_path / "mail.log"
    lines = [sasl_failure(a, n) for n, a in enumerate(["203.0.113.34", "198.51.100.71"] * 2)]
    lines.append(sasl_failure("192.0.2.44", 9))
    lines.append(
        f"{time.strftime('%b %e %H:%M:%S')} mx1 postfix/smtpd[1]: connect from x[192.0.2.1]\n"
    )
    log.write_text("".join(lines))
    (etc / "jail.local").write_text(JAIL.format(log=log))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gardien = Path(sys.executable).parent / "gardien"
    for name in ("fail2ban-client", "fail2ban-regex"):
        (bin_dir / name).symlink_to(gardien)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GARDIEN_CONFIG_DIR": str(etc),
        "LOG": str(log),
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "gardien", "-c", str(etc), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ping = subprocess.run(["fail2ban-client", "ping"], env=env, capture_output=True)
            if ping.returncode == 0:
                break
            assert daemon.poll() is None, daemon.communicate()[0]
            time.sleep(0.2)
        yield env
    finally:
        subprocess.run(["fail2ban-client", "stop"], env=env, capture_output=True)
        try:
            daemon.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()


def test_the_guides_script_runs_unchanged_against_gardien(
    system: dict[str, str], tmp_path: Path
) -> None:
    env = system
    script = tmp_path / "ban-offenders.sh"
    script.write_text(GUIDE_SCRIPT)
    # one offender banned before, by hand, as an administrator would
    first = subprocess.run(
        ["fail2ban-client", "set", "postfix-sasl", "banip", "198.51.100.71"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.stdout == "1\n", first.stderr
    filter_path = Path(env["GARDIEN_CONFIG_DIR"]) / "filter.d" / "postfix.conf"
    run = subprocess.run(
        ["bash", str(script), env["LOG"], f"{filter_path}[mode=auth]"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "offenders.txt").read_text().split() == [
        "192.0.2.44",
        "198.51.100.71",
        "203.0.113.34",
    ]
    assert "already banned: 198.51.100.71" in run.stdout
    assert "banning: 203.0.113.34 (1)" in run.stdout
    assert "banning: 192.0.2.44 (1)" in run.stdout
    # the jail's status, in fail2ban-client's tree, lists all three
    listed = next(line for line in run.stdout.splitlines() if "Banned IP list:" in line)
    assert listed.startswith("   `- Banned IP list:\t")
    assert sorted(listed.split("\t", 1)[1].split()) == [
        "192.0.2.44",
        "198.51.100.71",
        "203.0.113.34",
    ]
    # run again: nothing new to ban
    again = subprocess.run(
        ["bash", str(script), env["LOG"], f"{filter_path}[mode=auth]"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "banning:" not in again.stdout and again.stdout.count("already banned:") == 3

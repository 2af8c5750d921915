"""A real fail2ban installation in a temporary directory, for ``gardien migrate``'s tests and
benchmark: a copy of the Debian package's /etc/fail2ban with an administrator's ``jail.local``,
a ``jail.d/*.local`` and a ``filter.d/*.local``; a database written by fail2ban's own code
(``fail2ban_writer.py`` under the system's python3); its server run in a network namespace with
its own socket; and a gardien configuration directory as gardien's package installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardien.config.filters import bundled_config_dir

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
JAILS = ("sshd", "nginx-http-auth", "postfix-sasl", "recidive")

JAIL_LOCAL = """\
[DEFAULT]
ignoreip = 127.0.0.1/8 ::1 203.0.113.0/24
bantime = 1h
findtime = 10m
bantime.increment = true
bantime.maxtime = 1w
banaction = iptables-multiport
banaction_allports = iptables-allports
backend = polling

[sshd]
enabled = true
mode = aggressive
maxretry = 3
logpath = {root}/auth.log

[nginx-http-auth]
enabled = true
logpath = {root}/nginx-error.log

[recidive]
enabled = true
logpath = {root}/fail2ban.log
"""
POSTFIX_LOCAL = """\
[postfix-sasl]
enabled = true
logpath = {root}/mail.log
maxretry = 2
"""
SSHD_FILTER_LOCAL = """\
[Definition]
# the admin's own addition
ignoreregex = ^.*from 203\\.0\\.113\\.250 port \\d+.*$
"""


@dataclass
class Fail2ban:
    """A fail2ban installation under ``root``."""

    root: Path
    conf: Path
    socket: Path
    db: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def client(self, *args: str, namespace: str | None = None) -> str:
        argv = ["fail2ban-client", "-s", str(self.socket), *args]
        if namespace:
            argv = ["ip", "netns", "exec", namespace, *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout

    def start(self, namespace: str) -> None:
        """Run ``fail2ban-server`` in ``namespace`` and wait until it answers."""
        with (self.root / "server.out").open("ab") as output:
            self.process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    namespace,
                    "fail2ban-server",
                    "-f",
                    "-x",
                    "-c",
                    str(self.conf),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "pong" not in self.client("ping", namespace=namespace):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "fail2ban-server did not start: " + (self.root / "server.out").read_text()
                )
            time.sleep(0.2)

    def wait_restored(self, namespace: str, counts: dict[str, int], within: float) -> None:
        """Wait until each jail reports its number of current bans (fail2ban restores them one
        by one at start)."""
        deadline = time.monotonic() + within
        for jail, count in counts.items():
            while f"Currently banned:\t{count}" not in self.client(
                "status", jail, namespace=namespace
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"fail2ban did not restore {count} bans in {jail}: "
                        + self.client("status", jail, namespace=namespace)
                    )
                time.sleep(0.5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def make_fail2ban(root: Path) -> Fail2ban:
    """A copy of /etc/fail2ban under ``root``/fail2ban with the admin's overrides, its socket,
    database and log under ``root``."""
    conf = root / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for extra in ("jail.local", "fail2ban.local"):
        (conf / extra).unlink(missing_ok=True)
    fail2ban = Fail2ban(root, conf, root / "f2b.sock", root / "f2b.sqlite3", root / "fail2ban.log")
    (conf / "fail2ban.local").write_text(
        "[Definition]\n"
        "loglevel = INFO\n"
        f"logtarget = {fail2ban.log}\n"
        f"socket = {fail2ban.socket}\n"
        f"pidfile = {root / 'f2b.pid'}\n"
        f"dbfile = {fail2ban.db}\n"
        "dbpurgeage = 30d\n"
    )
    (conf / "jail.local").write_text(JAIL_LOCAL.format(root=root))
    (conf / "jail.d" / "postfix.local").write_text(POSTFIX_LOCAL.format(root=root))
    (conf / "filter.d" / "sshd.local").write_text(SSHD_FILTER_LOCAL)
    for name in ("auth.log", "nginx-error.log", "mail.log", "fail2ban.log"):
        (root / name).touch()
    return fail2ban


def make_gardien_etc(root: Path) -> Path:
    """gardien's configuration directory as its package installs it (gardien.conf, jail.conf,
    filter.d), with a ``gardien.local`` putting its socket, store and log under ``root``."""
    etc = root / "gardien"
    etc.mkdir()
    data = bundled_config_dir()
    shutil.copy(data / "gardien.conf", etc)
    shutil.copy(data / "jail.conf", etc)
    shutil.copytree(data / "filter.d", etc / "filter.d")
    (etc / "gardien.local").write_text(
        "[Definition]\n"
        f"socket = {root / 'gardien.sock'}\n"
        f"pidfile = {root / 'gardien.pid'}\n"
        f"dbfile = {root / 'gardien.sqlite3'}\n"
        f"logtarget = {root / 'gardien.log'}\n"
    )
    return etc


def write_bans(db: Path, bans: list[dict[str, Any]]) -> None:
    """Write ``bans`` into fail2ban's database ``db`` with fail2ban's own code."""
    subprocess.run(
        [SYSTEM_PYTHON, str(HERE / "fail2ban_writer.py"), str(db)],
        input=json.dumps(bans),
        text=True,
        check=True,
        capture_output=True,
        timeout=3600,
    )


def sample_bans(now: float, active: int, *, extra: list[str] = ()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """``active`` active bans spread over the four jails (60% sshd, 20% nginx-http-auth,
    10% postfix-sasl, 10% recidive), each tenth one banned twice before (ban count 3), every
    twentieth permanent; the addresses in ``extra`` first, in sshd; and 50 expired bans."""
    bans: list[dict[str, Any]] = []
    addresses = [*extra] + [
        f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(1, active + 1)
    ]
    for index, ip in enumerate(addresses[:active]):
        share = index % 10
        jail = (
            "sshd"
            if share < 6
            else "nginx-http-auth"
            if share < 8
            else ("postfix-sasl" if share == 8 else "recidive")
        )
        if index < len(extra):
            jail = "sshd"
        start = int(now) - 60 - (index % 1800)
        if index % 10 == 3:
            for earlier in (2, 1):
                bans.append(
                    {
                        "jail": jail,
                        "ip": ip,
                        "time": start - earlier * 86400,
                        "bantime": 3600,
                        "count": 3 - earlier,
                        "failures": 3,
                        "matches": [f"line {earlier}"],
                    }
                )
        bantime = -1 if index % 20 == 7 else 3600 if jail != "recidive" else 604800
        bans.append(
            {
                "jail": jail,
                "ip": ip,
                "time": start,
                "bantime": bantime,
                "count": 3 if index % 10 == 3 else 1,
                "failures": 4,
                "matches": [f"{ip} failed"],
            }
        )
    for index in range(50):
        bans.append(
            {
                "jail": "sshd",
                "ip": f"172.16.0.{index + 1}",
                "time": int(now) - 90000,
                "bantime": 3600,
                "count": 1,
                "failures": 3,
                "matches": [],
            }
        )
    return bans

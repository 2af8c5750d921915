"""The host side of the switch-over: fail2ban's server and gardien's daemon (under systemd or
not), and what fail2ban leaves in the firewall (``f2b-*`` chains, tables and sets).

Every command is an argument list, never a shell string; names read from the firewall are
checked against :data:`F2B_NAME` before they are passed back to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardien.daemon.control import ControlClient
from gardien.errors import ControlError, GardienError, MigrateError

__all__ = [
    "F2B_NAME",
    "Leftover",
    "fail2ban_running",
    "find_leftovers",
    "gardien_running",
    "reload_gardien",
    "remove_leftovers",
    "start_gardien",
    "stop_fail2ban",
    "systemd_runs",
    "unit_installed",
]

#: fail2ban's chains (``f2b-sshd``), nftables tables (``f2b-table``) and ipsets (``f2b-sshd``)
F2B_NAME = re.compile(r"f2b-[A-Za-z0-9_.-]{1,60}")
_TIMEOUT = 60.0
_NFT_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")


@dataclass(frozen=True)
class Leftover:
    """One object fail2ban put in the firewall: ``kind`` is ``iptables``, ``ip6tables``,
    ``nftables`` (a table, ``family`` set) or ``ipset``."""

    kind: str
    name: str
    family: str = ""

    def __str__(self) -> str:
        if self.kind == "nftables":
            return f"nftables table {self.family} {self.name}"
        return f"{self.kind} {'set' if self.kind == 'ipset' else 'chain'} {self.name}"


def _run(argv: list[str], timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def systemd_runs() -> bool:
    """Whether systemd is the init system here (``sd_booted``) and ``systemctl`` exists."""
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def unit_installed(unit: str) -> bool:
    """Whether systemd knows ``unit`` (the Debian package installs ``gardien.service``)."""
    return systemd_runs() and _run(["systemctl", "cat", unit]).returncode == 0


def fail2ban_running(socket: str, pidfile: str) -> str | None:
    """How fail2ban runs: ``"systemd"`` (its unit is active), ``"server"`` (the process of its
    pid file is a fail2ban-server or, when there is no pid file, its server answers on
    ``socket``), or ``None``."""
    if systemd_runs() and _run(["systemctl", "is-active", "--quiet", "fail2ban"]).returncode == 0:
        return "systemd"
    if _server_pid(pidfile) is not None:
        return "server"
    if Path(pidfile).exists() or not Path(socket).exists():
        return None  # a stale pid file, or no socket: nothing runs
    client = shutil.which("fail2ban-client")
    if client and _run([client, "-s", socket, "ping"], 15).returncode == 0:
        return "server"
    return None


def _server_pid(pidfile: str) -> int | None:
    """The pid in ``pidfile`` when that process runs fail2ban-server."""
    try:
        pid = int(Path(pidfile).read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"fail2ban-server" in command else None


def stop_fail2ban(how: str, socket: str, pidfile: str) -> str:
    """Stop fail2ban (its actions remove its chains) and keep it from starting at boot; the
    command run. :class:`MigrateError` if it is still running afterwards."""
    if how == "systemd":
        argv = ["systemctl", "disable", "--now", "fail2ban"]
    else:
        argv = [shutil.which("fail2ban-client") or "fail2ban-client", "-s", socket, "stop"]
    result = _run(argv, 300)
    if result.returncode != 0:
        raise MigrateError(
            f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()} "
            "(gardien runs with every ban; fail2ban may still run beside it)"
        )
    deadline = time.monotonic() + _TIMEOUT
    while fail2ban_running(socket, pidfile) is not None:
        if time.monotonic() > deadline:
            raise MigrateError(f"fail2ban still runs after {' '.join(argv)}")
        time.sleep(0.02)
    return " ".join(argv)


def gardien_running(socket: str) -> bool:
    """Whether a gardien daemon answers on ``socket``."""
    try:
        ControlClient(socket, timeout=10).call("ping")
    except GardienError:
        return False
    return True


def start_gardien(config_dir: Path, socket: str, log: Path, probe: str | None) -> str:
    """Start gardien's daemon and return once every jail runs (its bans are in the kernel):
    ``systemctl enable --now gardien`` when the package's unit is installed, else ``gardien
    run`` detached from this process (its output in ``log``). ``probe``: an address that must
    be banned once it runs. Returns how it was started; :class:`MigrateError` when it did not
    start (nothing else was changed by this step)."""
    process: subprocess.Popen[bytes] | None = None
    if unit_installed("gardien.service"):
        how = "systemctl enable --now gardien"
        result = _run(["systemctl", "enable", "--now", "gardien"], 600)
        if result.returncode != 0:
            raise MigrateError(f"{how} failed: {(result.stderr or result.stdout).strip()}")
    else:
        argv = [sys.executable, "-m", "gardien", "-c", str(config_dir), "-s", socket, "run"]
        how = "gardien run (detached; no systemd unit of gardien here)"
        log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with log.open("ab") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
    deadline = time.monotonic() + 600
    client = ControlClient(socket, timeout=600)
    while True:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise MigrateError(
                f"gardien did not start (exit status {process.returncode}): " + " / ".join(tail)
            )
        try:
            # 'banned' waits until every jail has started with its bans
            answer = client.call("banned", *([probe] if probe else []))
            break
        except ControlError:
            if time.monotonic() > deadline:
                raise MigrateError(f"gardien did not answer on {socket} within 600 s") from None
            time.sleep(0.05)
    if probe and not answer:
        raise MigrateError(f"gardien runs but {probe}, imported, is not banned")
    return how


def reload_gardien(socket: str, probe: str | None) -> None:
    """Have the running daemon re-read its configuration and restart its jails with the bans
    of its store; ``probe``: an address that must be banned afterwards."""
    client = ControlClient(socket, timeout=600)
    try:
        client.call("reload")
        answer = client.call("banned", *([probe] if probe else []))
    except GardienError as error:
        raise MigrateError(f"gardien did not reload: {error} (fail2ban was not stopped)") from None
    if probe and not answer:
        raise MigrateError(f"gardien reloaded but {probe}, imported, is not banned")


# ---- what fail2ban leaves in the firewall ------------------------------------------------


def find_leftovers() -> list[Leftover]:
    """fail2ban's chains (iptables, ip6tables), nftables tables and ipsets present now."""
    found: list[Leftover] = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter",):
            result = _run([tool, "-w", "-t", table, "-S"])
            for line in result.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "-N" and F2B_NAME.fullmatch(parts[1]):
                    found.append(Leftover(tool, parts[1]))
    if shutil.which("nft"):
        result = _run(["nft", "-j", "list", "tables"])
        try:
            items: list[Any] = json.loads(result.stdout or "{}").get("nftables", [])
        except ValueError:
            items = []
        for item in items:
            found_table: Any = item.get("table") if isinstance(item, dict) else None
            if not isinstance(found_table, dict):
                continue
            name = str(found_table.get("name", ""))
            family = str(found_table.get("family", ""))
            if F2B_NAME.fullmatch(name) and family in _NFT_FAMILIES:
                found.append(Leftover("nftables", name, family))
    if shutil.which("ipset"):
        result = _run(["ipset", "list", "-n"])
        for name in result.stdout.split():
            if F2B_NAME.fullmatch(name):
                found.append(Leftover("ipset", name))
    return found


def remove_leftovers(leftovers: list[Leftover]) -> list[str]:
    """Remove fail2ban's objects: the rules jumping to its chains, the chains, its nftables
    tables, then its ipsets (once no rule uses them). Returns what could not be removed."""
    failed: list[str] = []
    for tool in ("iptables", "ip6tables"):
        chains = {item.name for item in leftovers if item.kind == tool}
        if not chains:
            continue
        listing = _run([tool, "-w", "-t", "filter", "-S"]).stdout.splitlines()
        for line in listing:
            parts = line.split()
            if parts[:1] == ["-A"] and "-j" in parts:
                jump = parts[parts.index("-j") + 1]
                if jump in chains and parts[1] not in chains:
                    _run([tool, "-w", "-t", "filter", "-D", *parts[1:]])
        for chain in sorted(chains):
            _run([tool, "-w", "-t", "filter", "-F", chain])
            if _run([tool, "-w", "-t", "filter", "-X", chain]).returncode != 0:
                failed.append(f"{tool} chain {chain}")
    for item in leftovers:
        if item.kind == "nftables":
            argv = ["nft", "delete", "table", item.family, item.name]
            if _run(argv).returncode != 0:
                failed.append(str(item))
    for item in leftovers:
        if item.kind == "ipset" and _run(["ipset", "destroy", item.name]).returncode != 0:
            failed.append(str(item))
    return failed

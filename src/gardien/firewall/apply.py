"""Apply a rendered policy to the running firewall, safely: save the ruleset in force first,
replace it in one transaction, and roll back unless the change is confirmed in time.

The state directory (``/run/gardien/firewall``, mode 0700) holds the saved ruleset
(``ruleset.nft``, or ``iptables.v4`` and ``iptables.v6``), the backend it came from, and while a
rollback is pending its ``token``; ``gardien firewall confirm`` deletes the token, and the
detached ``gardien firewall _rollback`` process restores the saved ruleset if it still finds it.
A lock file serialises the three, so a confirm never races a rollback.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gardien.errors import BackendError
from gardien.firewall.policy import Policy
from gardien.firewall.render import render

__all__ = [
    "DEFAULT_STATE_DIR",
    "Applied",
    "apply_policy",
    "confirm",
    "rollback_after",
    "ssh_allowed",
]

DEFAULT_STATE_DIR = Path("/run/gardien/firewall")
_TOKEN = "token"  # noqa: S105 (a file name)
_BACKEND = "backend"
_NFT_SAVE = "ruleset.nft"
_XT_SAVES = {4: "iptables.v4", 6: "iptables.v6"}
_XT_TOOLS = {4: "iptables", 6: "ip6tables"}
#: iptables-save prints nothing for a table never loaded; restoring this empties it instead
_EMPTY_FILTER = (
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
)


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_policy` did."""

    backend: str
    state_dir: Path
    confirm: int  # seconds before the rollback; 0 for none
    kept_save: bool  # a rollback was pending: the older saved ruleset was kept


def _run(argv: list[str], stdin: str | None = None) -> str:
    """Run ``argv`` (never through a shell); its output, or a BackendError with its message."""
    try:
        result = subprocess.run(
            argv, check=False, input=stdin, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendError(f"{argv[0]}: {error}") from None
    if result.returncode:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise BackendError(f"{argv[0]} failed: {message}")
    return result.stdout


def ssh_allowed(policy: Policy, ssh_connection: str | None) -> bool:
    """Whether ``policy`` accepts the SSH session ``SSH_CONNECTION`` describes
    (``client_ip client_port server_ip server_port``); True when there is none."""
    if not ssh_connection:
        return True
    words = ssh_connection.split()
    if len(words) != 4 or not words[3].isdigit():
        return True  # not an SSH session gardien can read
    try:
        client = ipaddress.ip_address(words[0].split("%")[0])
    except ValueError:
        return True
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    port = int(words[3])
    if policy.inbound == "accept":
        return True
    return any(
        "tcp" in service.protocols
        and any(low <= port <= high for low, high in service.ports)
        and (not service.addresses or any(client in network for network in service.addresses))
        for service in policy.services
    )


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    with open(state_dir / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _save(backend: str, state_dir: Path) -> None:
    if backend == "nftables":
        _write(state_dir / _NFT_SAVE, _run(["nft", "list", "ruleset"]))
    else:
        for version, tool in _XT_TOOLS.items():
            saved = _run([f"{tool}-save"])
            if "*filter" not in saved:
                saved += _EMPTY_FILTER
            _write(state_dir / _XT_SAVES[version], saved)
    _write(state_dir / _BACKEND, backend + "\n")


def _restore(state_dir: Path) -> None:
    """Put the saved ruleset back in force."""
    backend = (state_dir / _BACKEND).read_text().strip()
    if backend == "nftables":
        saved = (state_dir / _NFT_SAVE).read_text()
        _run(["nft", "-f", "-"], "flush ruleset\n" + saved)
    else:
        for version, tool in _XT_TOOLS.items():
            _run([f"{tool}-restore"], (state_dir / _XT_SAVES[version]).read_text())


def _load(policy: Policy, backend: str, state_dir: Path) -> None:
    if backend == "nftables":
        _run(["nft", "-f", "-"], render(policy, "nftables"))
        return
    done: list[int] = []
    try:
        for version, tool in _XT_TOOLS.items():
            _run([f"{tool}-restore"], render(policy, "iptables", family=str(version)))
            done.append(version)
    except BackendError:
        for version in done:  # IPv4 went in, IPv6 did not: put IPv4 back as it was
            with contextlib.suppress(BackendError):
                _run(
                    [f"{_XT_TOOLS[version]}-restore"], (state_dir / _XT_SAVES[version]).read_text()
                )
        raise


def apply_policy(
    policy: Policy,
    backend: str = "nftables",
    *,
    state_dir: Path = DEFAULT_STATE_DIR,
    confirm: int = 30,
    force: bool = False,
    ssh_connection: str | None = None,
) -> Applied:
    """Save the ruleset in force, apply ``policy`` and, when ``confirm`` > 0, start a detached
    process that restores the saved ruleset after ``confirm`` seconds unless confirmed.

    Refuses (BackendError, nothing changed) a policy cutting the SSH session ``ssh_connection``
    unless ``force``.
    """
    if not force and not ssh_allowed(policy, ssh_connection):
        client, _, _, port = (ssh_connection or "").split()
        raise BackendError(
            f"the policy would cut this SSH session (tcp port {port} from {client}): "
            "add a service accepting it, or use --force"
        )
    with _locked(state_dir):
        # a rollback still pending: keep the ruleset saved before the unconfirmed change
        pending = (state_dir / _TOKEN).is_file() and (state_dir / _BACKEND).is_file()
        kept = pending and (state_dir / _BACKEND).read_text().strip() == backend
        if not kept:
            _save(backend, state_dir)
        _load(policy, backend, state_dir)
        token_path = state_dir / _TOKEN
        if confirm <= 0:
            token_path.unlink(missing_ok=True)
            return Applied(backend, state_dir, 0, kept)
        _write(token_path, secrets.token_hex(16) + "\n")
        argv = [sys.executable, "-m", "gardien", "firewall", "_rollback"]
        argv += ["--state-dir", str(state_dir), "--after", str(confirm)]
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    return Applied(backend, state_dir, confirm, kept)


def confirm(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Keep the applied rules: cancel the pending rollback (BackendError when none is)."""
    with _locked(state_dir):
        try:
            (state_dir / _TOKEN).unlink()
        except FileNotFoundError:
            raise BackendError(
                f"no rollback is pending in {state_dir} (confirmed already, rolled back, "
                "or applied with --confirm 0)"
            ) from None


def rollback_after(state_dir: Path, seconds: float) -> bool:
    """Wait ``seconds``, then restore the saved ruleset unless the change was confirmed (or
    applied again since); whether it was restored. Errors go to ``rollback.log``."""
    token_path = state_dir / _TOKEN
    try:
        token = token_path.read_text()
    except FileNotFoundError:
        return False
    time.sleep(seconds)
    with _locked(state_dir):
        try:
            if token_path.read_text() != token:
                return False  # applied again: that apply's own rollback takes over
        except FileNotFoundError:
            return False  # confirmed
        try:
            _restore(state_dir)
        except (BackendError, OSError) as error:
            _write(state_dir / "rollback.log", f"rollback failed: {error}\n")
            return False
        token_path.unlink(missing_ok=True)
        _write(state_dir / "rollback.log", f"rolled back at {time.ctime()}\n")
        return True

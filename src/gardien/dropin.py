"""``fail2ban-client`` and ``fail2ban-regex`` as commands that run gardien, for the scripts, cron
jobs, logrotate snippets and monitoring plugins written for fail2ban.

Each is a symbolic link to the ``gardien`` executable: gardien looks at the name it was run
under (see :mod:`gardien.cli`) and takes fail2ban's options and prints fail2ban's output. They
are installed only where fail2ban itself is not, so they never hide a real fail2ban: the Debian
package ``gardien-fail2ban-compat`` (which conflicts with ``fail2ban``) ships them in /usr/bin,
and ``gardien compat install`` puts them in /usr/local/bin for an installation from source.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gardien.errors import GardienError

__all__ = ["DROP_IN_COMMANDS", "DropIn", "gardien_executable", "install", "remove"]

#: the commands of fail2ban that gardien answers to
DROP_IN_COMMANDS = ("fail2ban-client", "fail2ban-regex")
#: fail2ban's own programs: any of them on the system means fail2ban is installed
_FAIL2BAN_PROGRAMS = ("fail2ban-server", "fail2ban-client", "fail2ban-regex")
_SYSTEM_DIRECTORIES = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin")


@dataclass(frozen=True)
class DropIn:
    """One drop-in command: its link and what it points to."""

    path: Path
    target: Path


def gardien_executable() -> Path:
    """The ``gardien`` command the links point to: the one on PATH, else this interpreter's."""
    found = shutil.which("gardien")
    if found is None:
        raise GardienError("the gardien command is not on PATH: install gardien first")
    return Path(found).resolve()


def _ours(path: Path, target: Path) -> bool:
    return path.is_symlink() and path.resolve() == target.resolve()


def _real_fail2ban(target: Path, directories: tuple[str, ...]) -> Path | None:
    """The first program of fail2ban found that is not one of our links."""
    search = [*os.environ.get("PATH", "").split(os.pathsep), *directories]
    for program in _FAIL2BAN_PROGRAMS:
        for directory in dict.fromkeys(d for d in search if d):
            candidate = Path(directory) / program
            if candidate.exists() and not _ours(candidate, target):
                return candidate
    return None


def install(
    directory: Path,
    target: Path | None = None,
    *,
    system_directories: tuple[str, ...] = _SYSTEM_DIRECTORIES,
) -> list[DropIn]:
    """Link ``fail2ban-client`` and ``fail2ban-regex`` in ``directory`` to ``target`` (default:
    :func:`gardien_executable`). Refused, with nothing changed, where fail2ban is installed or
    a file of that name that is not ours is in the way; links already there are kept."""
    target = (target or gardien_executable()).resolve()
    if not target.is_file():
        raise GardienError(f"{target}: no such gardien executable")
    fail2ban = _real_fail2ban(target, (str(directory), *system_directories))
    if fail2ban is not None:
        raise GardienError(
            f"fail2ban is installed ({fail2ban}): its commands are left alone; switch with "
            "'gardien migrate', remove fail2ban, then run this again"
        )
    if not directory.is_dir():
        raise GardienError(f"{directory}: no such directory")
    made = []
    for name in DROP_IN_COMMANDS:
        path = directory / name
        if not _ours(path, target):
            path.symlink_to(target)
        made.append(DropIn(path, target))
    return made


def remove(directory: Path, target: Path | None = None) -> list[Path]:
    """Remove the drop-in links of ``directory`` that point to gardien (and nothing else)."""
    target = (target or gardien_executable()).resolve()
    removed = []
    for name in DROP_IN_COMMANDS:
        path = directory / name
        if _ours(path, target):
            path.unlink()
            removed.append(path)
    return removed

"""What ``gardien migrate`` reports besides what it writes: the settings it cannot carry over,
and the files of fail2ban's it copies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileCopy", "NotCarried"]


@dataclass(frozen=True)
class NotCarried:
    """A setting of fail2ban's that gardien does not take over, and why."""

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass(frozen=True)
class FileCopy:
    """A file of fail2ban's configuration copied under gardien's."""

    source: Path
    target: Path

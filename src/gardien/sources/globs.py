"""fail2ban ``logpath`` entries: glob patterns, each perhaps followed by ``head`` or ``tail``.

fail2ban reads ``logpath = /var/log/auth.log`` or, one per line, several paths and patterns;
a trailing word ``tail`` starts reading the files at their end instead of their start.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable

from gardien.sources.files import StartMode

__all__ = ["expand_logpaths", "has_glob", "parse_logpath_entry"]

_GLOB_CHARACTERS = re.compile(r"[*?[]")


def has_glob(pattern: str) -> bool:
    """Whether ``pattern`` has glob characters (``*``, ``?``, ``[``)."""
    return _GLOB_CHARACTERS.search(pattern) is not None


def parse_logpath_entry(entry: str) -> tuple[str, StartMode]:
    """The pattern of one ``logpath`` entry and where to start reading its files.

    ``"/var/log/x.log tail"`` gives ``("/var/log/x.log", "tail")``; without an option word the
    start is ``"head"``. Only ``head`` and ``tail`` are option words, so that paths may contain
    spaces.
    """
    entry = entry.strip()
    words = entry.rsplit(None, 1)
    if len(words) == 2 and words[1].lower() in ("head", "tail"):
        option: StartMode = "tail" if words[1].lower() == "tail" else "head"
        return words[0], option
    return entry, "head"


def expand_logpaths(patterns: str | Iterable[str]) -> list[str]:
    """The files ``logpath`` entries name now, sorted and without repeats.

    ``patterns`` is the option's value (entries one per line) or its entries. A pattern with glob
    characters gives the files it matches (existing files, not directories), which may be none:
    the watcher expands it again as files appear. A plain path is kept even when missing, to be
    waited for.
    """
    if isinstance(patterns, str):
        patterns = patterns.splitlines()
    found: set[str] = set()
    for entry in patterns:
        if not entry.strip():
            continue
        pattern, _start = parse_logpath_entry(entry)
        if not has_glob(pattern):
            found.add(pattern)
            continue
        for path in glob.glob(pattern):
            # a dangling symbolic link or a directory cannot be followed
            if os.path.exists(path) and not os.path.isdir(path):
                found.add(path)
    return sorted(found)

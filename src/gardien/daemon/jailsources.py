"""Which log source a jail reads, opening it, and what to say when it cannot be read.

A jail reads its ``logpath`` files, or the systemd journal: with ``backend = systemd``, or with
``auto`` on a host that keeps a journal, when its filter has a ``journalmatch`` and its log
files (plain paths, no globs) do not exist -- Debian 12 without rsyslog has no
/var/log/auth.log. Otherwise a missing file is waited for.

Two kinds of problems, told apart so that the daemon can act on each:

- :func:`check_source` finds mistakes in the configuration (``backend = systemd`` without a
  journalmatch, a journalmatch that is not ``FIELD=value`` terms, ``journalfiles`` together with
  ``journalpath``): a :class:`~gardien.errors.ConfigError`, which stops a start before anything
  is touched, as ``gardien config check`` reports it;
- :func:`open_journal` and :func:`open_file` meet the host as it is (permission denied, no
  journal, a directory where the log should be): a :class:`~gardien.errors.SourceError` whose
  message says what could not be read and how to fix it. The daemon then leaves that jail out
  and runs the others.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

from gardien.config.values import parse_spec
from gardien.errors import ConfigError, SourceError
from gardien.model import Checkpoint
from gardien.settings import FilterSpec, JailSettings, Spec
from gardien.sources.files import FileSource, StartMode
from gardien.sources.globs import has_glob, parse_logpath_entry
from gardien.sources.journal import JournalMatch, JournalSource

__all__ = [
    "JOURNAL_DIRECTORIES",
    "JournalOptions",
    "check_source",
    "journalmatch_of",
    "open_file",
    "open_journal",
    "uses_journal",
]

#: where journald keeps the system journal (volatile, persistent)
JOURNAL_DIRECTORIES = ("/run/log/journal", "/var/log/journal")


@dataclass(frozen=True)
class JournalOptions:
    """Which journal ``backend = systemd[...]`` reads: given ``files``, a ``directory``, or the
    system journal (both ``None``)."""

    files: tuple[str, ...] | None = None
    directory: str | None = None

    @classmethod
    def of(cls, backend: Spec) -> JournalOptions:
        """The options of ``systemd[journalfiles="a b", journalpath=DIR]``."""
        files = tuple(f for f in backend.params.get("journalfiles", "").split() if f) or None
        directory = backend.params.get("journalpath") or None
        if files is not None and directory is not None:
            raise ConfigError("give journalfiles or journalpath, not both", option="backend")
        return cls(files, directory)


def journalmatch_of(settings: JailSettings, spec: FilterSpec) -> tuple[str, ...]:
    """The jail's ``journalmatch`` lines, else its filter's."""
    own = settings.options.get("journalmatch", "")
    return tuple(line.strip() for line in own.split("\n") if line.strip()) or spec.journalmatch


def _backend(settings: JailSettings) -> Spec:
    return parse_spec(settings.backend or "auto")


def check_source(settings: JailSettings, journalmatch: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a source that no host could read as configured."""
    backend = _backend(settings)
    name = backend.name.lower()
    if name == "systemd":
        if not journalmatch:
            raise ConfigError(
                "backend systemd needs a journalmatch (in the filter or the jail)",
                option="backend",
            )
        JournalOptions.of(backend)
    if name in ("systemd", "auto") and journalmatch:
        JournalMatch.parse(journalmatch).clauses()


def uses_journal(settings: JailSettings, journalmatch: Sequence[str]) -> bool:
    """Whether the jail reads the journal rather than its files (see the module docstring)."""
    backend = _backend(settings).name.lower()
    if backend == "systemd":
        return True
    if backend != "auto" or not journalmatch:
        return False
    if not any(os.path.isdir(d) for d in JOURNAL_DIRECTORIES):
        return False
    patterns = [parse_logpath_entry(entry)[0] for entry in settings.logpath]
    if any(has_glob(pattern) for pattern in patterns):
        return False
    return not any(os.path.exists(pattern) for pattern in patterns)


def open_journal(
    options: JournalOptions,
    journalmatch: Sequence[str],
    *,
    cursor: str | None,
    since: float | None,
) -> JournalSource:
    """The journal ``options`` name (the jail's backend), read from ``cursor`` (else from
    ``since``); :class:`SourceError` saying why and what to do when it cannot be opened."""
    fix = (
        "check journalfiles/journalpath of its backend"
        if options.files or options.directory
        else "check that systemd-journald runs and that gardien may read its journal, "
        "or give the jail a logpath and backend = auto"
    )
    system = options.files is None and options.directory is None
    if system and not any(os.path.isdir(d) for d in JOURNAL_DIRECTORIES):
        raise SourceError(
            "cannot open the systemd journal: this host keeps none (no "
            f"{' nor '.join(JOURNAL_DIRECTORIES)}); start systemd-journald, or give the "
            "jail a logpath and backend = auto"
        )
    try:
        return JournalSource(
            journalmatch,
            files=options.files,
            directory=options.directory,
            cursor=cursor,
            since=since,
        )
    except ConfigError as error:  # cysystemd cannot be imported: gardien is badly installed
        raise SourceError(f"cannot open the systemd journal: {error.message}") from None
    except OSError as exc:
        raise SourceError(f"{exc.strerror or exc}; {fix}") from None


def open_file(
    settings: JailSettings,
    journalmatch: Sequence[str],
    path: str,
    start: StartMode,
    *,
    checkpoint: Checkpoint | None,
) -> FileSource:
    """``path`` as a source, from ``checkpoint`` (else from its ``start``, and from ``start``
    too when the checkpoint is of a file no longer there); :class:`SourceError` saying why and
    what to do when it cannot be read (a missing file is no error: it is waited for)."""
    try:
        return FileSource(path, start, if_new=start, checkpoint=checkpoint)
    except OSError as exc:
        raise SourceError(
            f"cannot read {path}: {exc.strerror}; {_file_fix(exc, settings, journalmatch)}"
        ) from None


def _file_fix(exc: OSError, settings: JailSettings, journalmatch: Sequence[str]) -> str:
    journal = (
        " or set backend = systemd in jail.local"
        if journalmatch and _backend(settings).name.lower() != "systemd"
        else ""
    )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"fix its permissions{journal}"
    if exc.errno == errno.EISDIR:
        return f"point logpath at a log file{journal}"
    return f"check logpath in jail.local{journal}"

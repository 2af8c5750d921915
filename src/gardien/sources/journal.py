"""Read the systemd journal as fail2ban's ``backend = systemd`` does.

A filter's ``journalmatch`` says which entries to read: ``FIELD=value`` terms separated by spaces
must all hold, ``+`` separates alternatives, and each line of the option is one more
alternative (fail2ban splits each line as a shell would, so values may be quoted). Two terms on
the same field within one alternative accept either value, as in journalctl. Each entry read
becomes the line fail2ban makes of it, ``HOSTNAME IDENTIFIER[PID]: MESSAGE`` (details in
:func:`format_entry`), timed by the entry rather than by a date in the line.

    JournalMatch.parse(journalmatch)  -- clauses() -->  libsystemd's matches
    JournalSource.read_entries()  -->  [JournalLine(line, time, cursor)]  --> LineMatcher.process

The journal is read through libsystemd by one of two readers, chosen when a
:class:`JournalSource` is opened:

- the native core's (``gardien_core.Journal``, see :mod:`gardien._native`), when it is
  installed: it asks libsystemd only for the fields the line is made of, makes the line in
  Rust, asks for a cursor once per batch, and releases the GIL meanwhile;
- else the ``cysystemd`` package (a dependency of gardien), the reference: a whole entry
  object (every field, the cursor, the boot ID) per entry, formatted by :func:`format_entry`.

Both give the same lines, times and cursors. An entry the native reader cannot format exactly
as :func:`format_entry` does is handed back as its raw fields, made into fields as cysystemd
makes them (:func:`fields_of`) and formatted in Python. libsystemd is given the matches as a
conjunction of disjunctions of single terms (each term followed by an AND or an OR, as
cysystemd allows), so :meth:`JournalMatch.clauses` turns fail2ban's "any of these groups" into
that equivalent form.

A :class:`JournalSource` is not thread-safe: use it from one thread at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import importlib
import itertools
import math
import operator
import re
import select
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from gardien import _native
from gardien.errors import ConfigError
from gardien.model import Checkpoint
from gardien.sources.base import Batch
from gardien.sources.journalfiles import (
    Entry,
    FileChain,
    Item,
    LineReader,
    Reader,
    journal_order,
    latest,
    read_after,
)

__all__ = [
    "MAX_CLAUSES",
    "REPLACED_CHECK_SECONDS",
    "Fields",
    "JournalEntries",
    "JournalLine",
    "JournalMatch",
    "JournalSource",
    "fields_of",
    "format_entry",
]

Fields = Mapping[str, str | list[str]]
"""A journal entry's fields; a field the entry repeats has the list of its values."""

Term = tuple[str, str]
"""One ``FIELD=value`` term of a journalmatch, as (field, value)."""

MAX_CLAUSES = 256
"""The most clauses :meth:`JournalMatch.clauses` makes: their number is the product of the
number of distinct fields of each alternative, which real journalmatches keep small."""

# journald's own rule for field names; fail2ban hands terms to libsystemd unchecked
_FIELD = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
REPLACED_CHECK_SECONDS = 1.0
"""How often, at most, a :class:`JournalSource` reading given files looks whether one was
replaced (rotated) while it waits: libsystemd may not tell."""

_NO_TIMEOUT = (1 << 64) - 1  # sd_journal_get_timeout(): "no timeout"
_INVALIDATE = 2  # sd_journal_process(): journal files were added or removed
_SYSTEM = 4  # sd_journal_open(): SD_JOURNAL_SYSTEM, the system's files and not every user's
_MAX_FIELD = 1 << 20  # cysystemd stops reading an entry's fields at one longer than this
_CHUNK = 4096  # entries asked of the native reader at a time, when no maximum is given


class JournalLine(NamedTuple):
    """One journal entry as a log line: ``time`` in seconds since the epoch, ``cursor`` to save
    and give back to :class:`JournalSource` to resume after it. The native reader asks for a
    cursor once per read: the last line of each :meth:`JournalSource.read_entries` has its
    cursor, the others may have ``""`` (:meth:`JournalSource.cursor` is the one to save).
    A named tuple: a backlog makes hundreds of thousands of them."""

    line: str
    time: float
    cursor: str = ""

    @property
    def date_text(self) -> str:
        """The time as fail2ban puts it before a journal line (local ISO 8601, then a space):
        the ``date_text`` to give :meth:`LineMatcher.process` along with ``date=time``."""
        return date_text(self.time)


def date_text(when: float) -> str:
    """``datetime.fromtimestamp(when, UTC).astimezone().isoformat() + " "``, the local time
    of each second worked out once (entries come many to a second): the microseconds are
    rounded as ``datetime`` rounds them (half to even), the offset is that of the second."""
    fraction, whole = math.modf(when)
    micro = round(fraction * 1_000_000)
    if micro >= 1_000_000:
        whole += 1
        micro -= 1_000_000
    elif micro < 0:
        whole -= 1
        micro += 1_000_000
    key = (whole, time.timezone, time.altzone, time.tzname)
    parts = _SECONDS.get(key)
    if parts is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        local = datetime.fromtimestamp(whole, UTC).astimezone().isoformat()
        parts = _SECONDS[key] = (local[:19], local[19:] + " ")
    if micro:
        return f"{parts[0]}.{micro:06d}{parts[1]}"
    return parts[0] + parts[1]


#: the local time of a second, as (date and time, offset and a space), by second and zone
_SECONDS: dict[tuple[float, int, int, tuple[str, str]], tuple[str, str]] = {}


@dataclass(frozen=True)
class JournalMatch:
    """Which journal entries a filter reads: those matching any of ``groups``, a group being
    terms that must all hold (terms on the same field: any of their values). Without groups,
    every entry."""

    groups: tuple[tuple[Term, ...], ...] = ()

    @classmethod
    def parse(cls, lines: Sequence[str] | str) -> JournalMatch:
        """Read a ``journalmatch`` option, one alternative (or several, separated by ``+``) per
        line. A ``+`` with nothing on one side is ignored, as fail2ban does.

        Raises :class:`ConfigError` naming the term that is not ``FIELD=value`` with ``FIELD``
        in upper-case letters, digits and ``_``.
        """
        if isinstance(lines, str):
            lines = [lines]
        groups: list[tuple[Term, ...]] = []
        for text in lines:
            try:
                words = shlex.split(text)
            except ValueError as error:
                raise ConfigError(
                    f"cannot split {text!r} into terms: {error}", option="journalmatch"
                ) from None
            group: list[Term] = []
            for word in [*words, "+"]:
                if word != "+":
                    group.append(_parse_term(word))
                elif group:
                    groups.append(tuple(group))
                    group = []
        return cls(tuple(groups))

    def __str__(self) -> str:
        return " + ".join(
            " ".join(shlex.quote(f"{field}={value}") for field, value in group)
            for group in self.groups
        )

    def matches(self, fields: Fields) -> bool:
        """Whether an entry with these fields is one to read (what the journal decides when it
        is given :meth:`clauses`)."""
        if not self.groups:
            return True
        return any(
            all(_has_any(fields, field, values) for field, values in _by_field(group).items())
            for group in self.groups
        )

    def clauses(self) -> tuple[tuple[str, ...], ...]:
        """The same choice as clauses that must all hold, each true when any of its
        ``FIELD=value`` terms is: the form cysystemd can give to libsystemd. ``()`` means every
        entry.

        "A or B" with A and B each "all of these" becomes, by distribution, one clause per way of
        picking one condition of each group. Raises :class:`ConfigError` beyond
        :data:`MAX_CLAUSES`.
        """
        if not self.groups:
            return ()
        choices = [
            [tuple(f"{field}={value}" for value in values) for field, values in fields.items()]
            for fields in map(_by_field, self.groups)
        ]
        if math.prod(len(choice) for choice in choices) > MAX_CLAUSES:
            raise ConfigError(
                f"{self} has too many alternatives to give to the journal "
                f"(more than {MAX_CLAUSES} clauses once distributed)",
                option="journalmatch",
            )
        clauses = [
            tuple(dict.fromkeys(term for part in pick for term in part))
            for pick in itertools.product(*choices)
        ]
        sets = [frozenset(clause) for clause in clauses]
        kept: dict[frozenset[str], tuple[str, ...]] = {}
        for clause, terms in zip(clauses, sets, strict=True):
            # a clause holding all the terms of another one adds nothing to it
            if terms not in kept and not any(other < terms for other in sets):
                kept[terms] = clause
        return tuple(kept.values())


def _parse_term(word: str) -> Term:
    field, equals, value = word.partition("=")
    if not equals or not _FIELD.fullmatch(field) or "\0" in value:
        raise ConfigError(
            f"{word!r} is not a FIELD=value term (FIELD in upper-case letters, digits and _, "
            "not starting with a digit, at most 64 characters; or + between alternatives)",
            option="journalmatch",
        )
    return field, value


def _by_field(group: tuple[Term, ...]) -> dict[str, tuple[str, ...]]:
    values: dict[str, dict[str, None]] = {}
    for field, value in group:
        values.setdefault(field, {})[value] = None
    return {field: tuple(found) for field, found in values.items()}


def _has_any(fields: Fields, field: str, values: tuple[str, ...]) -> bool:
    found = fields.get(field)
    if found is None:
        return False
    if isinstance(found, str):
        return found in values
    return any(value in values for value in found)


# formatting


def format_entry(
    fields: Fields, *, realtime_usec: int, monotonic_usec: int = 0, cursor: str = ""
) -> JournalLine:
    """The line fail2ban makes of a journal entry, with the entry's time.

    The line is, separated by spaces:

    - ``_HOSTNAME``, when the entry has one;
    - ``SYSLOG_IDENTIFIER`` (else ``_COMM``), when there is one, followed by ``[SYSLOG_PID]``
      (else ``[_PID]``; a PID reading as 0 counts as none, one reading as a number, ``0x1f``
      included, is written in decimal) and ``:``; a ``kernel:`` without PID is followed by the
      seconds since boot as ``[%12.6f]``, from ``_SOURCE_MONOTONIC_TIMESTAMP`` else
      ``monotonic_usec``;
    - ``MESSAGE`` (its values joined by spaces when repeated; nothing when missing);

    with each newline written ``\\n``. The time is ``_SOURCE_REALTIME_TIMESTAMP`` (when the
    sender gave it) else ``realtime_usec`` (the entry's ``__REALTIME_TIMESTAMP``).
    """
    elements: list[str] = []
    hostname = _first(fields, "_HOSTNAME")
    if hostname:
        elements.append(hostname)
    identifier = _first(fields, "SYSLOG_IDENTIFIER") or _first(fields, "_COMM")
    if identifier:
        identifier += _pid_text(fields) + ":"
        elements.append(identifier)
        if identifier == "kernel:":
            since_boot = _usec(fields, "_SOURCE_MONOTONIC_TIMESTAMP", monotonic_usec)
            elements.append(f"[{since_boot / 1_000_000:12.6f}]")
    message = fields.get("MESSAGE", "")
    elements.append(message if isinstance(message, str) else " ".join(message))
    line = " ".join(elements).replace("\n", "\\n")
    when = _usec(fields, "_SOURCE_REALTIME_TIMESTAMP", realtime_usec)
    return JournalLine(line, when / 1_000_000, cursor)


def _first(fields: Fields, name: str) -> str:
    value = fields.get(name, "")
    if isinstance(value, str):
        return value
    return value[0] if value else ""


def _pid_text(fields: Fields) -> str:
    for name in ("SYSLOG_PID", "_PID"):
        text = _first(fields, name)
        if not text:
            continue
        try:
            number = int(text)
        except ValueError:
            pass
        else:
            if number == 0:
                continue  # fail2ban reads the PID as a number, and 0 as no PID
            return f"[{number}]"
        try:
            return f"[{int(text, 0)}]"
        except ValueError:
            return f"[{text}]"
    return ""


def _usec(fields: Fields, name: str, default: int) -> int:
    try:
        return int(_first(fields, name))
    except ValueError:
        return default


def fields_of(raw: Sequence[bytes]) -> dict[str, str | list[str]]:
    """An entry's fields from its raw ``FIELD=value`` data, as cysystemd makes them: UTF-8 with
    errors replaced, a list for a field repeated, and nothing from the first field without
    ``=`` or longer than 1 MiB on."""
    fields: dict[str, str | list[str]] = {}
    for data in raw:
        if len(data) > _MAX_FIELD:
            break
        name, equals, value = data.decode(errors="replace").partition("=")
        if not equals:
            break
        found = fields.get(name)
        if found is None:
            fields[name] = value
        elif isinstance(found, list):
            found.append(value)
        else:
            fields[name] = [found, value]
    return fields


@dataclass(frozen=True)
class _Entry:
    """A whole entry from the native reader, as cysystemd's ``JournalEntry`` gives it."""

    cursor: bytes
    data: Fields
    realtime_usec: int
    monotonic_usec: int

    def get_realtime_usec(self) -> int:
        return self.realtime_usec

    def get_monotonic_usec(self) -> int:
        return self.monotonic_usec


class _NativeReader:
    """The native core's ``Journal`` as a :class:`~gardien.sources.journalfiles.LineReader`:
    whole entries for :meth:`next` and :meth:`previous`, lines for :meth:`read_lines`."""

    def __init__(self, journal: Any) -> None:
        self.journal = journal
        self.read_lines = journal.read_lines
        self.seek_head = journal.seek_head
        self.seek_tail = journal.seek_tail
        self.seek_cursor = journal.seek_cursor
        self.seek_realtime_usec = journal.seek_realtime_usec
        self.process_events = journal.process_events

    @property
    def fd(self) -> int:
        fd: int = self.journal.fd
        return fd

    @property
    def timeout(self) -> int:
        timeout: int = self.journal.timeout
        return timeout

    def next(self) -> Entry | None:
        return self._entry(self.journal.next_entry())

    def previous(self) -> Entry | None:
        return self._entry(self.journal.previous_entry())

    @staticmethod
    def _entry(whole: tuple[list[bytes], bytes, int, int] | None) -> Entry | None:
        if whole is None:
            return None
        raw, cursor, realtime, monotonic = whole
        return _Entry(cursor, fields_of(raw), realtime, monotonic)


def _formatted(raw: list[bytes], realtime: int, monotonic: int) -> JournalLine:
    """An entry the native reader handed back as its raw fields, formatted here."""
    return format_entry(fields_of(raw), realtime_usec=realtime, monotonic_usec=monotonic)


# reading


class JournalSource:
    """The entries of the systemd journal that ``match`` (a ``journalmatch``) selects, as lines.

    The system journal is read, or the journal ``files`` (or the journal ``directory``) given.
    Reading starts after the entry of a saved ``cursor`` (see :meth:`cursor`): nothing is read
    twice across a restart (when that entry is gone, libsystemd starts at the nearest one).
    Without a cursor, or with a text that is not one, reading starts at the first entry at or
    after ``since`` (seconds since the epoch), or else after the entries there now.

    Given files are followed across rotation, as a directory is: when journald archives
    ``NAME.journal`` (renames it ``NAME@SEQNUM_ID-SEQNUM-TIME.journal``) and starts a new
    ``NAME.journal``, the archived file is read to its end, then the new one from its start.
    Started from a cursor, the source first reads the files archived from a given file since
    the cursor's entry was written (those named as journald names them), so a restart across a
    rotation misses nothing either. Several given files are read in journal order (details in
    :mod:`gardien.sources.journalfiles`).

    To follow the journal, read until nothing comes back, then wait: :meth:`wait` blocks,
    :meth:`wait_async` awaits; or watch :meth:`fileno` yourself (readable: call
    :meth:`process_events`), looking at the journal anyway after :meth:`poll_timeout` seconds.

    Raises :class:`ConfigError` for a bad ``match`` or without ``cysystemd``, ``OSError`` when
    the journal cannot be opened or read. Call :meth:`close` (or use ``with``) to release it.
    """

    def __init__(
        self,
        match: Sequence[str] | str = (),
        *,
        files: Sequence[str] | None = None,
        directory: str | None = None,
        cursor: str | None = None,
        since: float | None = None,
    ) -> None:
        if files is not None and directory is not None:
            raise ValueError("give journal files or a journal directory, not both")
        if files is not None and (isinstance(files, str) or not files):
            raise ValueError("files must be a non-empty list of journal files")
        self.match = JournalMatch.parse(match)
        self._clauses = self.match.clauses()
        self._core = _journal_core()
        self._cysystemd: Any = None if self._core is not None else _cysystemd()
        self._files = tuple(files) if files else None
        where = f"journal files {', '.join(files)}" if files else directory or "the system journal"
        self._where = where
        self._closed = False
        # given files: one chain each; else one reader on the directory or the system journal
        self._chains: list[FileChain] = []
        self._heads: dict[int, Entry] = {}  # an entry read ahead from each chain, when merging
        self._reader: Reader | None = None
        self._merged: select.epoll | None = None  # the chains' descriptors, as one
        self._merged_readers: tuple[int, ...] = ()
        with _journal_errors(f"cannot open {where}"):
            if self._files:
                self._chains = [FileChain(path, self._open_file) for path in self._files]
            else:
                self._reader = self._open_journal(directory)
        self._cursor = cursor
        self._skip: str | None = None  # the saved cursor's entry, when next() finds it again
        self._start(cursor, since)

    def __enter__(self) -> JournalSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JournalSource({str(self.match)!r}, {self._where})"

    @property
    def description(self) -> str:
        """What is read: ``the system journal (_COMM=sshd + _COMM=sshd-session)``."""
        return f"{self._where} ({self.match})" if self.match.groups else self._where

    def close(self) -> None:
        """Release the journal; the source cannot be read any more (its cursor still can)."""
        self._closed = True
        # cysystemd closes the journal when its reader is freed
        self._reader = None
        self._chains = []
        self._heads.clear()
        if self._merged is not None:
            self._merged.close()
            self._merged = None

    def cursor(self) -> str | None:
        """Where reading stands, to be saved and given back as ``cursor`` after a restart: the
        cursor of the last entry read or skipped, ``None`` while there is none."""
        return self._cursor

    def seek_after(self, cursor: str | None) -> None:
        """Go on after the entry of ``cursor`` (as a source opened with it would), or, for
        ``None``, after the entries there now."""
        self._skip = None
        self._heads.clear()
        self._cursor = cursor
        if self._files:
            # the chains start again from their paths: one may be reading an archived file
            with _journal_errors(f"cannot open {self._where}"):
                self._chains = [FileChain(path, self._open_file) for path in self._files]
            self._merged_readers = ()
        self._start(cursor, None)

    def read_entries(self, max_entries: int | None = None) -> list[JournalLine]:
        """The entries added since the last call (at most ``max_entries``), in journal order.

        A backlog is read in bounded chunks by calling again until nothing comes back. Given
        files that were replaced (rotated) are opened again here (so :meth:`fileno` may
        change).
        """
        if max_entries is not None and max_entries < 1:
            raise ValueError("max_entries must be positive")
        lines: list[JournalLine] = []
        with self._errors():
            if self._core is not None and len(self._chains) <= 1:
                return self._read_lines(max_entries)
            while max_entries is None or len(lines) < max_entries:
                entry = self._next()
                if entry is None:
                    break
                cursor = _text(entry.cursor)
                self._cursor = cursor
                if self._skip is not None:
                    skip, self._skip = self._skip, None
                    if cursor == skip:
                        continue  # read before the restart
                lines.append(
                    format_entry(
                        entry.data,
                        realtime_usec=entry.get_realtime_usec(),
                        monotonic_usec=entry.get_monotonic_usec(),
                        cursor=cursor,
                    )
                )
        return lines

    def _read_lines(self, max_entries: int | None) -> list[JournalLine]:
        """:meth:`read_entries` through the native reader, of one reader or one chain."""
        items: list[Item] = []
        while max_entries is None or len(items) < max_entries:
            asked = _CHUNK if max_entries is None else max_entries - len(items)
            if self._reader is not None:
                reader = cast("LineReader", self._reader)
                got, read, cursor = read_after(reader, asked, self._skip)
                if read:
                    self._skip = None
                    self._cursor = cursor
            else:
                chain = self._chains[0]
                got = chain.read_lines(asked)
                read = len(got)
                self._cursor = chain.last
            items += got
            if read < asked:
                break
        lines = [JournalLine(*item) if len(item) == 2 else _formatted(*item) for item in items]
        if lines and self._cursor is not None:
            lines[-1] = lines[-1]._replace(cursor=self._cursor)
        return lines

    # waiting

    def fileno(self) -> int:
        """A descriptor that becomes readable when the journal may have changed; then call
        :meth:`process_events`. It changes when :meth:`read_entries` opens given files again
        after a rotation: ask for it again after reading."""
        with self._errors():
            if self._reader is not None:
                return self._reader.fd
            if len(self._chains) == 1:
                return self._chains[0].reader.fd
            return self._merged_fd()

    def process_events(self) -> bool:
        """Take in the journal's change notifications (without it :meth:`fileno` stays
        readable); whether entries may have been added or journal files changed."""
        with self._errors():
            if self._reader is None:
                # every chain takes its notifications in: no stopping at the first
                events = [chain.reader.process_events() for chain in self._chains]
                return any(events)
            event = self._reader.process_events()
        if event == _INVALIDATE and self._cursor is not None and self._skip is None:
            # journal files were added or removed (rotation, vacuuming): where next() goes
            # from may be gone, so find the last entry read again, as a restart would
            self._start(self._cursor, None)
        return event != 0

    def poll_timeout(self) -> float | None:
        """Seconds after which to look at the journal even without a notification (journal
        files on a network file system), ``None`` when notifications are enough.

        Watching given files, libsystemd watches their directories, so a rotation makes
        :meth:`fileno` readable too; :meth:`wait` and :meth:`wait_async` look at the files at
        least every :data:`REPLACED_CHECK_SECONDS` seconds anyway.
        """
        self.fileno()  # libsystemd knows only once it watches the files
        with self._errors():
            deadlines = [reader.timeout for reader in self._readers()]
        deadlines = [deadline for deadline in deadlines if deadline != _NO_TIMEOUT]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) / 1_000_000 - time.monotonic())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the journal changes, or for ``timeout`` seconds (``None``: no limit);
        whether it may have new entries (``False`` on a timeout or an unrelated change).
        Given files that were replaced count as a change, noticed within
        :data:`REPLACED_CHECK_SECONDS` seconds."""
        for step in self._steps(timeout):
            poller = select.poll()
            poller.register(self.fileno(), select.POLLIN)
            limit, journal_due = self._limit(step)
            ready = poller.poll(None if limit is None else math.ceil(limit * 1000))
            if self.process_events() or (journal_due and not ready) or self._replaced():
                return True
        return False

    async def wait_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait`, without blocking the event loop."""
        loop = asyncio.get_running_loop()
        for step in self._steps(timeout):
            fd = self.fileno()
            changed: asyncio.Future[None] = loop.create_future()

            def wake(changed: asyncio.Future[None] = changed) -> None:
                if not changed.done():
                    changed.set_result(None)

            limit, journal_due = self._limit(step)
            loop.add_reader(fd, wake)
            try:
                async with asyncio.timeout(limit):
                    await changed
            except TimeoutError:
                if self.process_events() or journal_due or self._replaced():
                    return True
            else:
                if self.process_events() or self._replaced():
                    return True
            finally:
                loop.remove_reader(fd)
        return False

    # internals

    def _open_journal(self, directory: str | None) -> Reader:
        """A reader on the directory or the system journal, with the match's filters."""
        if self._core is not None:
            journal = self._core.Journal
            if directory is not None:
                return self._filtered_natively(journal.open_directory(directory))
            return self._filtered_natively(journal.open_system(_SYSTEM))
        reader: Any = self._cysystemd.JournalReader()
        if directory is not None:
            reader.open_directory(directory)
        else:
            # fail2ban's default: the system's journal files, not every user's
            reader.open(self._cysystemd.JournalOpenMode.SYSTEM)
        return self._filtered(reader)

    def _open_file(self, path: str) -> Reader:
        """A reader on one journal file (see :mod:`gardien.sources.journalfiles` for why one),
        with the match's filters."""
        if self._core is not None:
            return self._filtered_natively(self._core.Journal.open_files([path]))
        reader: Any = self._cysystemd.JournalReader()
        reader.open_files(path)
        return self._filtered(reader)

    def _filtered_natively(self, journal: Any) -> Reader:
        """The native journal with the match's filters, as cysystemd gives them to libsystemd:
        each term of a clause but the last followed by an OR, the last by an AND."""
        for clause in self._clauses:
            for index, term in enumerate(clause):
                journal.add_match(term.encode())
                if index < len(clause) - 1:
                    journal.add_disjunction()
                else:
                    journal.add_conjunction()
        return _NativeReader(journal)

    def _filtered(self, reader: Any) -> Reader:
        for clause in self._clauses:
            rules = [self._cysystemd.Rule(*term.split("=", 1)) for term in clause]
            # each term but the last is ORed with the next; the clause is ANDed with the next
            reader.add_filter(functools.reduce(operator.or_, rules))
        filtered: Reader = reader
        return filtered

    def _readers(self) -> list[Reader]:
        if self._reader is not None:
            return [self._reader]
        return [chain.reader for chain in self._chains]

    def _next(self) -> Entry | None:
        """The next entry: of the one reader, or the first in journal order of the chains'."""
        if self._reader is not None:
            return self._reader.next()
        if len(self._chains) == 1:
            return self._chains[0].next()
        first: tuple[FileChain, Entry, str] | None = None
        for chain in self._chains:
            entry = self._heads.get(id(chain))
            if entry is None:
                entry = chain.next()
            if entry is None:
                continue
            self._heads[id(chain)] = entry
            cursor = _text(entry.cursor)
            if first is None or journal_order(cursor, first[2]) < 0:
                first = (chain, entry, cursor)
        if first is None:
            return None
        del self._heads[id(first[0])]
        return first[1]

    def _merged_fd(self) -> int:
        """One descriptor readable when any chain's is (the chains' readers change)."""
        readers = tuple(id(chain.reader) for chain in self._chains)
        if self._merged is None or readers != self._merged_readers:
            if self._merged is not None:
                self._merged.close()
            self._merged = select.epoll()
            for chain in self._chains:
                self._merged.register(chain.reader.fd, select.EPOLLIN)
            self._merged_readers = readers
        return self._merged.fileno()

    def _replaced(self) -> bool:
        """Whether a given file is now another file than the one read (rotated)."""
        with self._errors():
            return any(chain.replaced() for chain in self._chains)

    def _start(self, cursor: str | None, since: float | None) -> None:
        if cursor is not None:
            try:
                with self._errors():
                    if self._reader is not None:
                        self._reader.seek_cursor(cursor.encode("ascii"))
                        self._skip = cursor
                    for chain in self._chains:
                        chain.start_at_cursor(cursor)
            except (OSError, UnicodeEncodeError):
                self._cursor = None  # not a cursor at all: start as if none was saved
            else:
                return
        with self._errors():
            if since is not None:
                if self._reader is not None:
                    self._reader.seek_realtime_usec(max(0, int(since * 1_000_000)))
                for chain in self._chains:
                    chain.start_at(since)
                return
            if self._reader is None:
                self._cursor = latest([chain.start_at_end() for chain in self._chains])
                return
            reader = self._reader
            # libsystemd versions disagree on where next() goes after seek_tail(), and some
            # step back two entries in previous(): go near the end, then read to it
            reader.seek_tail()
            last = reader.previous()
            if last is None:
                reader.seek_head()  # few or no entries match: start over
            else:
                self._cursor = _text(last.cursor)
            while (entry := reader.next()) is not None:
                self._cursor = _text(entry.cursor)

    def _steps(self, timeout: float | None) -> Iterator[float | None]:
        """How long each wait of :meth:`wait` lasts: all of ``timeout``, or with given files
        (whose replacement no notification may announce) slices of at most
        :data:`REPLACED_CHECK_SECONDS` until ``timeout`` has passed."""
        if self._files is None:
            yield None if timeout is None else max(0.0, timeout)
            return
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            yield REPLACED_CHECK_SECONDS if left is None else min(left, REPLACED_CHECK_SECONDS)
            if left is not None and left <= REPLACED_CHECK_SECONDS:
                return

    def _limit(self, timeout: float | None) -> tuple[float | None, bool]:
        """How long to wait, and whether it is the journal that asks to be looked at then."""
        journal = self.poll_timeout()
        if journal is not None and (timeout is None or journal <= timeout):
            return journal, True
        return (None if timeout is None else max(0.0, timeout)), False

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Raise ValueError when closed; the journal's errors as OSError."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        with _journal_errors(f"cannot read {self._where}"):
            yield


def _text(cursor: bytes) -> str:
    return cursor.decode("ascii", "replace")


@contextlib.contextmanager
def _journal_errors(doing: str) -> Iterator[None]:
    """Raise what cysystemd raises as OSError: it raises SystemError(strerror, "EINVAL") for
    libsystemd's errors, and OSError without errno for a missing file or directory."""
    try:
        yield
    except (OSError, SystemError) as error:
        raise _os_error(error, doing) from None


def _journal_core() -> Any:
    """The native core, when it is installed and has the journal reader."""
    core = _native.core()
    return core if core is not None and hasattr(core, "Journal") else None


def _cysystemd() -> Any:
    """cysystemd's reader module, or a ConfigError saying how to get it."""
    try:
        return importlib.import_module("cysystemd.reader")
    except ImportError as error:
        raise ConfigError(
            "reading the systemd journal needs the cysystemd package, a dependency of gardien "
            f"that cannot be imported ({error}): reinstall gardien (pip install cysystemd)",
            option="backend",
        ) from error


def _os_error(error: OSError | SystemError, doing: str) -> OSError:
    if isinstance(error, OSError) and error.errno is not None:
        return OSError(error.errno, f"{doing}: {error.strerror}")
    message = str(error.args[0]) if error.args else type(error).__name__
    name = str(error.args[1]) if len(error.args) > 1 else ""
    code = getattr(errno, name, None)
    if code is None and "not found" in message:
        code = errno.ENOENT
    if code is None:
        return OSError(f"{doing}: {message}")
    return OSError(code, f"{doing}: {message}")


class JournalEntries:
    """A :class:`JournalSource` as a :class:`~gardien.sources.base.Source` of
    :class:`JournalLine`: batches of at most ``batch`` entries, read by a thread of its own so
    that the event loop never waits for the journal; the checkpoint is the cursor.

    While a batch is being matched the thread already reads the next one (when the one just
    read was full: a backlog), so that reading and matching overlap; :meth:`resume` and
    :meth:`close` wait for that read first."""

    key = "journal"

    def __init__(self, journal: JournalSource, *, batch: int = 4096) -> None:
        self.journal = journal
        self.batch = batch
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._ahead: concurrent.futures.Future[tuple[list[JournalLine], str | None]] | None = None

    @property
    def description(self) -> str:
        return self.journal.description

    def __repr__(self) -> str:
        return f"JournalEntries({self.journal!r})"

    def resume(self, checkpoint: Checkpoint | None) -> None:
        self._drop_ahead()
        self.journal.seek_after(None if checkpoint is None else checkpoint.state)

    def _read_batch(self) -> tuple[list[JournalLine], str | None]:
        entries = self.journal.read_entries(self.batch)
        return entries, self.journal.cursor()

    def _drop_ahead(self) -> None:
        """Wait for a read ahead and forget it: the journal then stands after it, which the
        caller moves from (or closes)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            with contextlib.suppress(Exception):
                ahead.result()

    async def read(self) -> Batch[JournalLine] | None:
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            ahead = self._reader.submit(self._read_batch)
        entries, cursor = await asyncio.wrap_future(ahead)
        if not entries:
            return None
        if len(entries) >= self.batch:
            self._ahead = self._reader.submit(self._read_batch)
        return Batch(entries, None if cursor is None else Checkpoint(self.key, cursor))

    async def wait(self, timeout: float) -> None:
        if self._ahead is not None:
            return  # a read is under way: no need to wait for the journal
        await self.journal.wait_async(timeout)

    def close(self) -> None:
        self._drop_ahead()
        self._reader.shutdown(wait=False)
        self.journal.close()

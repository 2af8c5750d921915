"""Given journal files followed across rotation, for :class:`.journal.JournalSource`.

journald archives ``NAME.journal`` by renaming it ``NAME@SEQNUM_ID-HEAD-TIME.journal`` (``HEAD``:
the sequence number of its first entry, in hexadecimal) and starts a new ``NAME.journal``. A
:class:`FileChain` reads what one path holds over time: the archived files still to read,
oldest first, then the file at the path. An archived file gets no more entries, so once one is
read to its end the next one is read; the file at the path is followed until it is replaced.

    path replaced?  --(stat: another inode)-->  the renamed file, found by its inode, read
    to its end, then the files archived after it (by name), then the new file at the path

Each reader is opened on one file: cysystemd's ``open_files`` does not keep the paths it gives
libsystemd alive (all but the last are freed before libsystemd reads them), so several files
in one reader can fail to open, or open another file. Files of several chains are merged in
journal order by :func:`journal_order`, as libsystemd merges the files of one reader.

A newly opened file is read after the last entry read from the chain (libsystemd finds its place
by sequence number: the files archived from one path share a sequence-number ID), else after
the saved cursor it started from (from another file, maybe: then by time), else from ``since``,
else from its first entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, cast

__all__ = [
    "Entry",
    "FileChain",
    "Item",
    "LineReader",
    "OpenFile",
    "Reader",
    "journal_order",
    "latest",
    "read_after",
]

Fields = Mapping[str, str | list[str]]

Identity = tuple[int, int]
"""A file as (device, inode): what stays when journald renames it."""

# journald's name for a file it archived: NAME@SEQNUM_ID-FIRST_SEQNUM-FIRST_REALTIME.journal
_ARCHIVED = re.compile(
    r"(?P<id>[0-9a-f]{32})-(?P<head>[0-9a-f]{16})-(?P<time>[0-9a-f]{16})\.journal"
)


class Entry(Protocol):
    """What is used of cysystemd's ``JournalEntry``."""

    @property
    def cursor(self) -> bytes: ...

    @property
    def data(self) -> Fields: ...

    def get_realtime_usec(self) -> int: ...

    def get_monotonic_usec(self) -> int: ...


class Reader(Protocol):
    """What is used of cysystemd's ``JournalReader``."""

    @property
    def fd(self) -> int: ...

    @property
    def timeout(self) -> int: ...

    def next(self) -> Entry | None: ...

    def previous(self) -> Entry | None: ...

    def seek_head(self) -> bool: ...

    def seek_tail(self) -> bool: ...

    def seek_cursor(self, cursor: bytes) -> bool: ...

    def seek_realtime_usec(self, usec: int) -> bool: ...

    def process_events(self) -> int: ...


Item = tuple[str, float] | tuple[list[bytes], int, int]
"""An entry read by :meth:`LineReader.read_lines`: its line and time in seconds, or, for an
entry to format in Python, its raw ``FIELD=value`` fields, realtime and monotonic times (in
microseconds)."""


class LineReader(Reader, Protocol):
    """A reader that also gives entries as lines, many at a time (the native core's)."""

    def read_lines(
        self, max_entries: int, skip: bytes | None = None
    ) -> tuple[list[Item], int, bytes | None]:
        """At most ``max_entries`` next entries as items; then how many entries were read and
        the cursor of the last one. When the first entry read is that of cursor ``skip``, it
        is read but not given."""
        ...


OpenFile = Callable[[str], Reader]
"""Opens a reader on one journal file, with the filters to apply; raises ``OSError`` or
``SystemError`` (cysystemd's) when it cannot."""


class FileChain:
    """One given journal file, followed across rotation (see the module's docstring).

    Opening raises what ``open_file`` raises when the file at ``path`` cannot be opened. Then
    place the chain with one of :meth:`start_at_cursor`, :meth:`start_at` or
    :meth:`start_at_end`, and call :meth:`next` until it returns ``None``.
    """

    def __init__(self, path: str, open_file: OpenFile) -> None:
        self.path = path
        self._open_file = open_file
        # the file expected last at the path: taken before opening, so a rotation between the
        # two is seen as one
        self.identity = _identity(path)
        self.reader = open_file(path)
        self._on_path = True  # whether the reader reads the file at the path (not an archive)
        self._queue: list[str] = []  # archived files to read before the one at the path
        self.last: str | None = None  # the cursor of the last entry read from the chain
        self._start_cursor: str | None = None
        self._since: float | None = None
        self._skip: str | None = None  # the cursor to start after, when next() finds it
        self._replaced_before_end = False

    def start_at_cursor(self, cursor: str) -> None:
        """Read after the entry of ``cursor``, from the files archived from the path since it was
        written when there are. Raises ``SystemError`` or ``UnicodeEncodeError`` when ``cursor``
        is not one (then nothing changed)."""
        self.reader.seek_cursor(cursor.encode("ascii"))
        self._start_cursor = self._skip = cursor
        place = _place_of_cursor(cursor)
        archives = _archived_since(self.path, place) if place is not None else []
        if archives:
            self._queue = archives
            self._on_path = False
            self._advance()

    def start_at(self, since: float) -> None:
        """Read from the first entry at or after ``since`` (seconds since the epoch)."""
        self._since = since
        self.reader.seek_realtime_usec(_usec(since))

    def start_at_end(self) -> str | None:
        """Read what comes after the entries there now; the cursor of the last one, if any."""
        reader = self.reader
        # libsystemd versions disagree on where next() goes after seek_tail(), and some step
        # back two entries in previous(): go near the end, then read to it
        reader.seek_tail()
        last = reader.previous()
        if last is None:
            reader.seek_head()  # few or no entries match: start over
        else:
            self.last = _text(last.cursor)
        while (entry := reader.next()) is not None:
            self.last = _text(entry.cursor)
        return self.last

    def next(self) -> Entry | None:
        """The next entry of the chain, ``None`` when there is none for now."""
        while True:
            entry = self.reader.next()
            if entry is not None:
                cursor = _text(entry.cursor)
                self.last = cursor
                if self._skip is not None:
                    skip, self._skip = self._skip, None
                    if cursor == skip:
                        continue  # the entry to start after
                return entry
            if not self._move_on():
                return None

    def read_lines(self, max_entries: int) -> list[Item]:
        """What :meth:`next` would give for at most ``max_entries`` entries, as the items of
        :meth:`LineReader.read_lines`, for a chain of readers that have that method."""
        items: list[Item] = []
        while len(items) < max_entries:
            asked = max_entries - len(items)
            got, read, cursor = read_after(cast("LineReader", self.reader), asked, self._skip)
            if read:
                self._skip = None
                self.last = cursor
                items += got
            if read < asked and not self._move_on():
                break
        return items

    def _move_on(self) -> bool:
        """After the reader's last entry: whether there may be more to read now (in an archived
        file after the one read, or in the file that replaced it at the path)."""
        if not self._on_path:
            return self._advance()
        if self._replaced_before_end:
            self._replaced_before_end = False
            self._enqueue_archived(self.identity)
            return True
        if self.replaced():
            # journald wrote the file's last entries before renaming it: read them first
            self._replaced_before_end = True
            return True
        return False

    def replaced(self) -> bool:
        """Whether the file at the path is another one than the one expected (journald archived
        it and started a new one); a path missing for now is not replaced yet."""
        now = _identity(self.path)
        return now is not None and now != self.identity

    def _enqueue_archived(self, identity: Identity | None) -> None:
        """Read, before the file at the path, the one that was there (libsystemd drops a renamed
        file from a reader, maybe before its last entries were read) and those archived
        after it."""
        moved = _find_moved(self.path, identity)
        if moved is not None:
            place = _place_of_archive(moved)
        else:  # removed already, or renamed elsewhere
            place = _place_of_cursor(self.last) if self.last is not None else None
        later = _archived_since(self.path, place) if place is not None else []
        seen = {identity, *map(_identity, self._queue)}
        self._queue += [moved] if moved is not None else []
        self._queue += [archive for archive in later if _identity(archive) not in seen]
        self.identity = _identity(self.path)
        self._on_path = False

    def _advance(self) -> bool:
        """Go on to the next file, the one read being read to its end (an archived file);
        ``False`` when there is none for now (the path is missing, or is a file journald is
        still creating)."""
        while self._queue:
            archive = self._queue.pop(0)
            try:
                self._read(self._open_file(archive))
            except (OSError, SystemError):
                continue  # removed since (vacuumed): nothing to read there
            return True
        if _identity(self.path) != self.identity:
            self._enqueue_archived(self.identity)  # replaced again while the archives were read
            if self._queue:
                return self._advance()
        expected = self.identity
        try:
            reader = self._open_file(self.path)
        except (OSError, SystemError):
            return False
        if _identity(self.path) != expected:
            return True  # replaced while it was opened: the next call reads what was there
        self._read(reader)
        self._on_path = True
        return True

    def _read(self, reader: Reader) -> None:
        """Read ``reader`` from now on, from where the chain stands."""
        cursor = self.last if self.last is not None else self._start_cursor
        if cursor is not None:
            reader.seek_cursor(cursor.encode("ascii"))
            self._skip = cursor
        elif self._since is not None:
            reader.seek_realtime_usec(_usec(self._since))
        else:
            reader.seek_head()  # nothing read before matched: all of it is to read
        self.reader = reader


def read_after(
    reader: LineReader, max_entries: int, skip: str | None
) -> tuple[list[Item], int, str | None]:
    """At most ``max_entries`` items of ``reader`` (the first entry left out when it is that
    of cursor ``skip``); how many entries were read, and the cursor of the last one as text
    (``None`` when none was)."""
    got, read, cursor = reader.read_lines(
        max_entries, None if skip is None else skip.encode("ascii")
    )
    return got, read, None if cursor is None or not read else _text(cursor)


def journal_order(first: str, second: str) -> int:
    """Negative, zero or positive as the entry of cursor ``first`` comes before, with or after
    that of ``second``: by sequence number when both have the same sequence-number ID, else by
    monotonic time when both are of the same boot, else by real time (libsystemd's order)."""
    one, other = _fields(first), _fields(second)
    for same, number in (("s", "i"), ("b", "m"), ("", "t")):
        if one.get(same) == other.get(same):
            try:
                return _sign(int(one[number], 16) - int(other[number], 16))
            except (KeyError, ValueError):
                continue
    return 0


def _sign(number: int) -> int:
    return (number > 0) - (number < 0)


def _fields(cursor: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in cursor.split(";"))


Place = tuple[str, int, int]
"""Where an entry stands: sequence-number ID, sequence number, real time (microseconds)."""


def _place_of_cursor(cursor: str) -> Place | None:
    """Where a cursor's entry stands (its ``s=``, ``i=`` and ``t=``)."""
    fields = _fields(cursor)
    try:
        return fields["s"], int(fields["i"], 16), int(fields["t"], 16)
    except (KeyError, ValueError):
        return None


def _place_of_archive(path: str) -> Place | None:
    """Where the first entry of a file journald archived stands, from the file's name."""
    archived = _ARCHIVED.fullmatch(os.path.basename(path).partition("@")[2])
    if archived is None:
        return None
    return archived["id"], int(archived["head"], 16), int(archived["time"], 16)


def _archived_since(path: str, place: Place) -> list[str]:
    """The files journald archived from ``path`` that may hold the entry at ``place`` or later
    ones, oldest first: of those named ``NAME@ID-HEAD-TIME.journal`` beside ``NAME.journal``,
    the last one starting at or before ``place`` and those after it. A file starts before
    ``place`` by its sequence number ``HEAD`` when it has the same ID, else by its real time
    ``TIME`` (the files of one journald do not all share an ID: ``user-UID.journal`` has its
    own)."""
    directory, name = os.path.split(path)
    stem = name.removesuffix(".journal")
    if stem == name:
        return []  # not named as journald names its files
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    archives: list[tuple[int, str, bool]] = []  # by real time: (time, file, starts before)
    for other in names:
        archived = _ARCHIVED.fullmatch(other, len(stem) + 1)
        if not other.startswith(stem + "@") or archived is None:
            continue
        head, when = int(archived["head"], 16), int(archived["time"], 16)
        before = head <= place[1] if archived["id"] == place[0] else when <= place[2]
        archives.append((when, os.path.join(directory, other), before))
    archives.sort()
    starts = [index for index, (_, _, before) in enumerate(archives) if before]
    return [archive for _, archive, _ in archives[starts[-1] if starts else 0 :]]


def _identity(path: str) -> Identity | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _find_moved(path: str, identity: Identity | None) -> str | None:
    """Where the file once at ``path`` is now, when it is still a journal file beside it."""
    if identity is None:
        return None
    directory = os.path.dirname(path) or "."
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".journal") and entry.inode() == identity[1]:
                    found = os.path.join(directory, entry.name)
                    if _identity(found) == identity and found != path:
                        return found
    except OSError:
        pass
    return None


def _usec(seconds: float) -> int:
    return max(0, int(seconds * 1_000_000))


def _text(cursor: bytes) -> str:
    return cursor.decode("ascii", "replace")


def latest(cursors: Sequence[str | None]) -> str | None:
    """The cursor of the last entry in journal order among ``cursors`` (``None``: none)."""
    found: str | None = None
    for cursor in cursors:
        if cursor is not None and (found is None or journal_order(cursor, found) > 0):
            found = cursor
    return found

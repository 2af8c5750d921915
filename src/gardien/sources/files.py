"""Follow one log file as it grows, across rotations, without losing or repeating a line.

A :class:`FileTail` keeps the file open and reads it by offset (``os.pread``). Each call to
:meth:`FileTail.read_lines` first looks at what the path names now, then reads the open file to
its end, then, if the path names another file, moves to it:

- rename + create (logrotate's default): the old file is read to its end through the
  descriptor still open (a writer may add lines after the rename), then the new one from 0;
- delete + recreate: the same, the deleted file being still readable through the descriptor;
- copytruncate: the same file, smaller than what was read (or, when it grew again before we
  looked, with another first line): read again from 0;
- a missing file is waited for, and read from its start when it appears.

Two rotations between two reads lose the file in the middle, as with every log reader that does
not look for rotated names; and copytruncate itself loses what was written between logrotate's
copy and its truncation.

The first line identifies a file across restarts (inodes are reused): a saved
:class:`FilePosition` is resumed only when the file's first line hashes the same. When the file
at the path is another one (it was rotated while gardien was not running, or before the position
of what was read was stored), the rotated file is looked for beside it (``NAME.1``,
``NAME-20261203``: the same inode, or for copytruncate the same first line and at least as long),
read from the saved offset to its end, and then the file at the path from its start: a crash
around a rotation neither loses nor repeats a line.

:class:`FileSource` is the :class:`~gardien.sources.base.Source` the daemon follows: batches of
lines, each with its :class:`~gardien.model.Checkpoint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from gardien.matching.scan import decode
from gardien.model import Checkpoint
from gardien.sources.base import Batch

__all__ = [
    "MAX_LINE_BYTES",
    "READ_SIZE",
    "FilePosition",
    "FileSource",
    "FileTail",
    "StartMode",
    "position_from_state",
    "position_state",
]

MAX_LINE_BYTES = 1 << 20
"""Lines longer than this are cut to their first ``MAX_LINE_BYTES`` bytes."""

READ_SIZE = 1 << 20
"""Bytes asked of the kernel per read."""

StartMode = Literal["head", "tail"]


@dataclass(frozen=True)
class FilePosition:
    """How far a file was read, saved so that a restarted daemon continues where it stopped.

    ``offset`` is the byte after the last line returned; ``first_line_hash`` is the hex SHA-256
    of the file's first line (without its newline), ``""`` while the file has no complete line.
    """

    path: str
    inode: int
    offset: int
    first_line_hash: str


class FileTail:
    """The complete lines added to the file at ``path`` since the last read.

    ``start`` says where to begin in the file found at ``path`` now: ``"head"`` (its start, as
    fail2ban does by default), ``"tail"`` (after its last complete line), or a saved
    :class:`FilePosition`, resumed when it still describes this file (same first line, offset
    within the file); when it does not, the file is new and ``if_new`` says where to begin. A
    position saved before the file had a complete line consumed nothing: it resumes at 0. A file
    that appears later, or replaces this one, is always read from its start.

    A missing file is waited for; other errors (permission denied, a directory) are raised as
    ``OSError``. Call :meth:`close` (or use ``with``) to release the descriptor.
    """

    def __init__(
        self,
        path: str,
        start: FilePosition | StartMode = "head",
        *,
        if_new: StartMode = "head",
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        if not isinstance(start, FilePosition) and start not in ("head", "tail"):
            raise ValueError(f"start must be 'head', 'tail' or a FilePosition, not {start!r}")
        if if_new not in ("head", "tail"):
            raise ValueError(f"if_new must be 'head' or 'tail', not {if_new!r}")
        self.path = path
        self.max_line_bytes = max_line_bytes
        self._fd: int | None = None
        self._identity = (0, 0)  # (st_dev, st_ino) of the open file
        self._offset = 0  # after the last line returned
        self._read_at = 0  # next byte to read: _offset plus the pending line
        self._pending = bytearray()  # start of the incomplete line, at most max_line_bytes
        self._pending_size = 0  # its real size, perhaps beyond what was kept
        self._first: tuple[str, int] | None = None  # hash and length of the first line
        self._closed = False
        fd = self._open()
        if fd is None:
            return
        if isinstance(start, FilePosition):
            if self._resume(fd, start) or self._resume_rotated(start):
                return
            start = if_new
        if start == "tail":
            self._offset = self._read_at = self._last_line_end(fd)
            self._first_line()  # to know the file again after a copytruncate

    def __enter__(self) -> FileTail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileTail({self.path!r}, offset={self._offset})"

    def close(self) -> None:
        """Release the file; the tail cannot be read any more (its position still can)."""
        self._closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def position(self) -> FilePosition:
        """Where reading stands, to be saved and given back as ``start`` after a restart."""
        first = self._first_line()
        return FilePosition(self.path, self._identity[1], self._offset, first[0] if first else "")

    def read_lines(self, max_bytes: int | None = None) -> list[tuple[str, int]]:
        """The complete lines written since the last call, each with the offset after it.

        Lines are decoded as UTF-8 (invalid bytes become U+FFFD) without their line ending; an
        incomplete last line is kept until its newline arrives.

        About ``max_bytes`` bytes are read (all there is when ``None``), more only when needed
        to complete one line: a backlog is read in bounded chunks by calling again until no line
        comes back, which means nothing complete is left to read.
        """
        lines: list[tuple[str, int]] = []
        self._read(max_bytes, lines, False)
        return lines

    def read_block(self, max_bytes: int | None = None) -> bytes:
        """:meth:`read_lines` as one block of raw bytes: the complete lines, each (cut to
        ``max_line_bytes``) followed by a newline, not decoded; ``b""`` when none came. No
        Python loop over the lines: what the native core reads."""
        chunks: list[bytes] = []
        self._read(max_bytes, chunks, True)
        return b"".join(chunks)

    def _read(self, max_bytes: int | None, lines: list[Any], raw: bool) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        budget = max_bytes
        if self._fd is None:
            self._open()
        while (fd := self._fd) is not None:
            named = _identity_at(self.path)
            if self._was_truncated(fd):
                self._finish_pending(lines, raw)
                self._reset(0)
            budget, at_end = self._read_to_end(fd, lines, budget, raw)
            if not at_end or named is None or named == self._identity:
                return
            # the path names another file now, and this one is read to its end
            self._finish_pending(lines, raw)
            os.close(fd)
            self._fd = None
            self._identity = (0, 0)
            self._reset(0)
            self._open()

    # opening and identifying

    def _open(self) -> int | None:
        """Open the file at the path now, at offset 0; None when there is none."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            raise IsADirectoryError(21, "Is a directory", self.path)
        self._fd = fd
        self._identity = (info.st_dev, info.st_ino)
        self._reset(0)
        return fd

    def _reset(self, offset: int) -> None:
        self._offset = self._read_at = offset
        self._pending.clear()
        self._pending_size = 0
        self._first = None

    def _resume(self, fd: int, saved: FilePosition) -> bool:
        """Continue from ``saved`` if it describes the open file; whether it did."""
        if not saved.first_line_hash:
            return True  # nothing of that file was consumed: this one starts at 0 either way
        first = self._first_line()
        if first is None or first[0] != saved.first_line_hash:
            return False
        if saved.offset > os.fstat(fd).st_size:
            return False
        self._offset = self._read_at = saved.offset
        return True

    def _resume_rotated(self, saved: FilePosition) -> bool:
        """Continue from ``saved`` in the file it describes, found rotated beside the path
        (see the module docstring); whether it was found. The file at the path is read next."""
        if not saved.first_line_hash:
            return False
        directory, name = os.path.split(self.path)
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            return False
        candidates = [
            os.path.join(directory, other)
            for other in names
            if other != name
            and other[len(name) : len(name) + 1] in (".", "-", "_")
            and other.startswith(name)
            and not other.endswith((".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z"))
        ]
        same_inode = [c for c in candidates if _identity_at(c) == (self._identity[0], saved.inode)]
        for candidate in same_inode + [c for c in candidates if c not in same_inode]:
            try:
                fd = os.open(candidate, os.O_RDONLY)
            except OSError:
                continue
            info = os.fstat(fd)
            head = _read_first_line(fd, self.max_line_bytes) if stat.S_ISREG(info.st_mode) else None
            if (
                head is not None
                and hashlib.sha256(head).hexdigest() == saved.first_line_hash
                and info.st_size >= saved.offset
            ):
                if self._fd is not None:
                    os.close(self._fd)
                self._fd = fd
                self._identity = (info.st_dev, info.st_ino)
                self._reset(saved.offset)
                self._first = (saved.first_line_hash, len(head))
                return True
            os.close(fd)
        return False

    def _first_line(self) -> tuple[str, int] | None:
        """Hash and length of the open file's first line, or None while it is incomplete."""
        if self._first is None and self._fd is not None:
            head = _read_first_line(self._fd, self.max_line_bytes)
            if head is not None:
                self._first = (hashlib.sha256(head).hexdigest(), len(head))
        return self._first

    def _was_truncated(self, fd: int) -> bool:
        """Whether the open file was cut (copytruncate), perhaps growing again since."""
        if self._read_at == 0:
            self._first = None  # nothing read: whatever the file holds now is read from 0
            return False
        if os.fstat(fd).st_size < self._read_at:
            return True
        if self._first is None:
            return False
        digest, length = self._first
        head = os.pread(fd, length + 1, 0)
        if length < self.max_line_bytes and head[length:] != b"\n":
            return True
        return hashlib.sha256(head[:length]).hexdigest() != digest

    def _last_line_end(self, fd: int) -> int:
        """The offset after the last newline of the open file (its size if it has none near
        its end): where ``tail`` starts, so that a line being written is read whole."""
        size = os.fstat(fd).st_size
        end = size
        while end > 0 and size - end < self.max_line_bytes:
            start = max(0, end - 65536)
            block = os.pread(fd, end - start, start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
        return 0 if end == 0 else size

    # reading

    def _read_to_end(
        self, fd: int, lines: list[Any], budget: int | None, raw: bool
    ) -> tuple[int | None, bool]:
        """Read ``fd`` to its end, or until ``budget`` is spent and ``lines`` has one.

        Returns the budget left and whether the end was reached.
        """
        while True:
            size = READ_SIZE
            if budget is not None:
                if budget <= 0 and lines:
                    return budget, False
                # past the budget, read on in small steps to the end of the line
                size = min(READ_SIZE, budget) if budget > 0 else 65536
            data = os.pread(fd, size, self._read_at)
            if not data:
                return budget, True
            if budget is not None:
                budget -= len(data)
            if raw:
                self._take_block(data, lines)
            else:
                self._take(data, lines)

    def _take(self, data: bytes, lines: list[tuple[str, int]]) -> None:
        """Split ``data`` (read at ``_read_at``) into lines, keeping the incomplete end."""
        limit = self.max_line_bytes
        parts = data.split(b"\n")
        rest = parts.pop()
        end = self._read_at
        for index, part in enumerate(parts):
            start = end - self._pending_size if index == 0 else end
            end += len(part) + 1
            if index == 0 and self._pending_size:
                self._pending += part[: limit - len(self._pending)]
                raw = bytes(self._pending)
                self._pending.clear()
                self._pending_size = 0
            else:
                raw = part[:limit]
            if start == 0:
                self._first = (hashlib.sha256(raw).hexdigest(), len(raw))
            lines.append((decode(raw), end))
        self._read_at += len(data)
        if parts:
            self._offset = end
        self._keep_pending(rest)

    def _take_block(self, data: bytes, chunks: list[bytes]) -> None:
        """:meth:`_take` for :meth:`read_block`: the complete lines of ``data`` as chunks of
        raw lines, each ending with a newline; the same offsets, first line and pending end."""
        last = data.rfind(b"\n")
        if last >= 0:
            limit = self.max_line_bytes
            first = data.find(b"\n")
            start = self._read_at - self._pending_size
            if self._pending_size:
                self._pending += data[:first][: limit - len(self._pending)]
                head = bytes(self._pending)
                self._pending.clear()
                self._pending_size = 0
            else:
                head = data[:first][:limit]
            if start == 0:
                self._first = (hashlib.sha256(head).hexdigest(), len(head))
            chunks.append(head + b"\n")
            body = data[first + 1 : last + 1]
            if len(body) > limit and max(map(len, body.split(b"\n"))) > limit:
                parts = body.split(b"\n")
                parts.pop()
                body = b"".join([part[:limit] + b"\n" for part in parts])
            if body:
                chunks.append(body)
            self._offset = self._read_at + last + 1
        self._read_at += len(data)
        self._keep_pending(data[last + 1 :])

    def _keep_pending(self, rest: bytes) -> None:
        """Keep ``rest``, the start of a line whose end is not written yet (at most
        ``max_line_bytes`` of it, and its real size)."""
        if rest:
            self._pending += rest[: self.max_line_bytes - len(self._pending)]
            self._pending_size += len(rest)

    def _finish_pending(self, lines: list[Any], raw: bool = False) -> None:
        """The file is left for good: its unfinished last line is a line all the same."""
        if self._pending_size:
            if raw:
                lines.append(bytes(self._pending) + b"\n")
            else:
                lines.append((decode(bytes(self._pending)), self._read_at))
            self._offset = self._read_at
            self._pending.clear()
            self._pending_size = 0


def _identity_at(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_dev, info.st_ino)


def _read_first_line(fd: int, limit: int) -> bytes | None:
    """The first line of ``fd`` without its newline (at most ``limit`` bytes), or None while
    it is incomplete."""
    data = b""
    while len(data) < limit:
        block = os.pread(fd, min(65536, limit + 1 - len(data)), len(data))
        if not block:
            return None
        newline = block.find(b"\n")
        if newline >= 0:
            return data + block[:newline]
        data += block
    return data[:limit]


def position_state(position: FilePosition) -> str:
    """The checkpoint text of ``position`` (its path is in the checkpoint's source key)."""
    return json.dumps(
        {
            "inode": position.inode,
            "offset": position.offset,
            "first_line_hash": position.first_line_hash,
        },
        sort_keys=True,
    )


def position_from_state(path: str, state: str) -> FilePosition | None:
    """The position a checkpoint text of :func:`position_state` stands for; ``None`` for a
    text that is not one."""
    try:
        fields = json.loads(state)
        inode, offset = int(fields["inode"]), int(fields["offset"])
        first_line_hash = str(fields["first_line_hash"])
    except (ValueError, TypeError, KeyError):
        return None
    if offset < 0:
        return None
    return FilePosition(path, inode % (1 << 64), offset, first_line_hash)  # stored signed


class RawLines(Sequence[str]):
    """The lines of a block of whole raw lines (:meth:`FileTail.read_block`), decoded as
    :meth:`FileTail.read_lines` decodes them when first asked; :attr:`block` for the native
    core, which reads the bytes themselves."""

    __slots__ = ("_count", "_lines", "block")

    def __init__(self, block: bytes) -> None:
        self.block = block
        self._count = block.count(b"\n")
        self._lines: list[str] | None = None

    def _decoded(self) -> list[str]:
        if self._lines is None:
            parts = self.block.split(b"\n")
            parts.pop()
            self._lines = [decode(part) for part in parts]
        return self._lines

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._decoded()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (RawLines, list, tuple)):
            return self._decoded() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RawLines({self._decoded()!r})"


class FileSource:
    """One log file as a :class:`~gardien.sources.base.Source` of lines (texts without their
    newline). ``start`` and ``if_new`` are :class:`FileTail`'s, for a file without a checkpoint
    and a file the checkpoint does not describe. Call :meth:`notify` when the file may have
    changed (the watcher says so); :meth:`wait` returns then, or after its timeout.
    """

    def __init__(
        self,
        path: str,
        start: StartMode = "head",
        *,
        if_new: StartMode = "head",
        checkpoint: Checkpoint | None = None,
        max_bytes: int = 4 << 20,
    ) -> None:
        self.path = path
        self.start: StartMode = start
        self.if_new: StartMode = if_new
        self.max_bytes = max_bytes
        self._changed = asyncio.Event()
        self.tail = FileTail(path, self._start_of(checkpoint), if_new=if_new)
        # the last checkpoint a batch carried (the stored one at first): a position the store
        # lacks (a first start at the file's end) is stored by the first read
        self._given = checkpoint

    def _start_of(self, checkpoint: Checkpoint | None) -> FilePosition | StartMode:
        position = None if checkpoint is None else position_from_state(self.path, checkpoint.state)
        return position or self.start

    @property
    def key(self) -> str:
        return f"file:{self.path}"

    @property
    def description(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"FileSource({self.path!r})"

    def resume(self, checkpoint: Checkpoint | None) -> None:
        tail = FileTail(self.path, self._start_of(checkpoint), if_new=self.if_new)
        self.tail.close()
        self.tail = tail
        self._given = checkpoint

    def checkpoint(self) -> Checkpoint:
        """Where reading stands now."""
        return Checkpoint(self.key, position_state(self.tail.position()))

    async def read(self) -> Batch[str] | None:
        block = self.tail.read_block(max_bytes=self.max_bytes)
        checkpoint = self.checkpoint()
        if not block and checkpoint == self._given:
            return None
        # no lines but another file (rotated to an empty one): its checkpoint all the same
        self._given = checkpoint
        return Batch(RawLines(block), checkpoint)

    def notify(self) -> None:
        """The file may have changed: a :meth:`wait` returns."""
        self._changed.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        self._changed.clear()

    def close(self) -> None:
        self.tail.close()

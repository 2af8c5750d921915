"""Learn which log files changed, without reading them: inotify, or polling where it fails.

A :class:`FileWatcher` watches the *directories* of its paths, so that a file being created,
renamed or deleted is seen as well as one being written. Paths may be glob patterns (a
``logpath`` that matched nothing yet); a change is then reported for each file that matches.

inotify (through :mod:`asyncinotify`) is used where it works; a directory that cannot be
watched (missing yet, inotify watch limit reached, a pattern with glob characters in its
directory part) is polled every ``poll_interval`` seconds instead, and a missing directory is
watched as soon as it appears. Without inotify at all everything is polled. Polling compares
each file's inode, size and modification time, in a worker thread: the event loop never waits
for the file system.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import glob
import os
import stat
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal

from gardien.sources.globs import has_glob

if TYPE_CHECKING:
    from asyncinotify import Event, Inotify

__all__ = ["FileWatcher"]

Signature = tuple[int, int, int, int]
"""A file as polling sees it: (device, inode, size, modification time in ns)."""

# add_watch failing with these means "no such directory (yet)"; other errors mean "poll it"
_GONE = (errno.ENOENT, errno.ENOTDIR)


class FileWatcher:
    """An async iterator of the sets of watched paths that changed (created, written, renamed,
    truncated or deleted).

    Changes that come together are reported together: after the first one the watcher waits
    ``batch_delay`` seconds for more, and changes that happen while the consumer is busy wait
    for its next ``__anext__``. A change means "look at this file": reading it may find nothing
    new. Changes from before :meth:`start` (or ``async with``) are not reported: read the files
    once after starting.

    ``use_inotify=False`` forces polling, every ``poll_interval`` seconds.
    """

    def __init__(
        self,
        paths: Iterable[str] = (),
        *,
        poll_interval: float = 1.0,
        use_inotify: bool = True,
        batch_delay: float = 0.02,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if batch_delay < 0:
            raise ValueError("batch_delay must not be negative")
        self.poll_interval = poll_interval
        self.batch_delay = batch_delay
        self._use_inotify = use_inotify
        self._entries: set[str] = set()
        self._inotify: Inotify | None = None
        self._by_directory: dict[str, set[str]] = {}  # absolute directory -> entries in it
        self._watched: dict[str, int] = {}  # watched directory -> watch descriptor
        self._directories_of: dict[int, set[str]] = {}  # watch descriptor -> directories
        self._missing: set[str] = set()  # directories to watch once they exist
        self._unwatchable: set[str] = set()  # directories inotify refused to watch
        self._polled: set[str] = set()  # entries found by polling
        self._signatures: dict[str, Signature] = {}
        self._changed: set[str] = set()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        self._started = False
        self._closed = False
        for path in paths:
            self._entries.add(path)

    @property
    def mode(self) -> Literal["inotify", "polling"]:
        """``"inotify"`` when inotify works (some directories may still be polled)."""
        return "polling" if self._inotify is None else "inotify"

    @property
    def paths(self) -> frozenset[str]:
        """The paths and patterns watched."""
        return frozenset(self._entries)

    def add(self, path: str) -> None:
        """Watch ``path`` (a file or a glob pattern) too."""
        if path in self._entries:
            return
        self._entries.add(path)
        if self._started:
            self._place(path)

    def discard(self, path: str) -> None:
        """Stop reporting changes to ``path``."""
        self._entries.discard(path)
        self._polled.discard(path)
        for entries in self._by_directory.values():
            entries.discard(path)

    async def start(self) -> None:
        """Begin watching; changes from now on are reported."""
        if self._started:
            return
        self._started = True
        if self._use_inotify:
            self._inotify = _new_inotify()
        for entry in self._entries:
            self._place(entry)
        self._signatures = await asyncio.to_thread(_scan, list(self._polled))
        self._spawn(self._poll())
        if self._inotify is not None:
            self._spawn(self._read_events(self._inotify))

    async def close(self) -> None:
        """Stop watching and release inotify; iteration ends."""
        self._closed = True
        self._wakeup.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    async def __aenter__(self) -> FileWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> FileWatcher:
        return self

    async def __anext__(self) -> frozenset[str]:
        if self._closed:
            raise StopAsyncIteration
        await self.start()
        while not self._changed:
            if self._closed:
                raise StopAsyncIteration
            if self._failure is not None:
                raise self._failure
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.batch_delay:
            await asyncio.sleep(self.batch_delay)
        changed = frozenset(self._changed)
        self._changed.clear()
        return changed

    # placing entries

    def _place(self, entry: str) -> None:
        """Watch the directory of ``entry`` with inotify, or poll ``entry``."""
        directory = os.path.dirname(entry)
        if self._inotify is None or has_glob(directory):
            self._polled.add(entry)
            return
        key = os.path.abspath(directory or os.curdir)
        self._by_directory.setdefault(key, set()).add(entry)
        if key not in self._watched and not self._watch_directory(key):
            self._polled.add(entry)

    def _watch_directory(self, directory: str) -> bool:
        """Add an inotify watch on ``directory``; whether it is watched."""
        from asyncinotify import Mask

        if self._inotify is None or directory in self._unwatchable:
            return False
        mask = (
            Mask.MODIFY
            | Mask.ATTRIB
            | Mask.CREATE
            | Mask.DELETE
            | Mask.MOVED_FROM
            | Mask.MOVED_TO
            | Mask.DELETE_SELF
            | Mask.MOVE_SELF
            | Mask.ONLYDIR
        )
        try:
            watch = self._inotify.add_watch(directory, mask)
        except OSError as error:
            if error.errno in _GONE:
                self._missing.add(directory)
            else:
                self._unwatchable.add(directory)  # watch limit, permissions: poll it
            return False
        self._missing.discard(directory)
        self._watched[directory] = watch.wd
        self._directories_of.setdefault(watch.wd, set()).add(directory)
        self._polled.difference_update(self._by_directory.get(directory, ()))
        return True

    def _lose_directory(self, wd: int) -> None:
        """The watched directory went away: poll its entries until it comes back."""
        for directory in self._directories_of.pop(wd, set()):
            self._watched.pop(directory, None)
            self._missing.add(directory)
            entries = self._by_directory.get(directory, set())
            self._polled.update(entries)
            self._report(entry for entry in entries if not has_glob(entry))

    # reporting

    def _report(self, paths: Iterable[str]) -> None:
        before = len(self._changed)
        self._changed.update(paths)
        if len(self._changed) != before:
            self._wakeup.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            self._wakeup.set()

    async def _read_events(self, inotify: Inotify) -> None:
        try:
            async for event in inotify:
                self._handle(event)
        except OSError:
            self._fall_back_to_polling()

    def _fall_back_to_polling(self) -> None:
        """inotify broke down: poll everything, and look at everything once."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._watched.clear()
        self._directories_of.clear()
        self._missing.clear()
        self._polled = set(self._entries)
        self._spawn(self._report_all())

    def _handle(self, event: Event) -> None:
        from asyncinotify import Mask

        if Mask.Q_OVERFLOW in event.mask:
            # events were lost: every file may have changed
            self._spawn(self._report_all())
            return
        watch = event.watch
        if watch is None or watch.wd not in self._directories_of:
            return
        if event.name is None:
            if event.mask & (Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.IGNORED):
                if Mask.MOVE_SELF in event.mask and self._inotify is not None:
                    with contextlib.suppress(OSError):
                        self._inotify.rm_watch(watch)
                self._lose_directory(watch.wd)
            return
        name = str(event.name)
        for directory in self._directories_of[watch.wd]:
            for entry in self._by_directory.get(directory, ()):
                base = os.path.basename(entry)
                if not has_glob(base):
                    if base == name:
                        self._report((entry,))
                elif _name_matches(name, base):
                    self._report((os.path.join(os.path.dirname(entry), name),))

    async def _report_all(self) -> None:
        entries = list(self._entries)
        found = await asyncio.to_thread(_scan, entries)
        self._report(entry for entry in entries if not has_glob(entry))
        self._report(found)

    async def _poll(self) -> None:
        """Every ``poll_interval``: compare polled files, and watch directories that appeared."""
        while True:
            await asyncio.sleep(self.poll_interval)
            entries = list(self._polled)
            missing = list(self._missing)
            if not entries and not missing:
                continue
            current, appeared = await asyncio.to_thread(_poll_round, entries, missing)
            previous = self._signatures
            self._signatures = current
            self._report(path for path, sign in current.items() if previous.get(path) != sign)
            self._report(path for path in previous if path not in current)
            watched_now = [d for d in appeared if self._watch_directory(d)]
            if watched_now:
                # files created before the watch was in place: report what is there now
                entries = [e for d in watched_now for e in self._by_directory.get(d, ())]
                found = await asyncio.to_thread(_scan, entries)
                self._report(found)


def _new_inotify() -> Inotify | None:
    """An inotify instance, or None where inotify cannot be used."""
    try:
        from asyncinotify import InitFlags, Inotify
    except (ImportError, OSError, RuntimeError):
        return None
    try:
        # the package's NONBLOCK flag is O_CLOEXEC by mistake: ask for O_NONBLOCK ourselves
        return Inotify(flags=InitFlags(os.O_CLOEXEC | os.O_NONBLOCK))
    except (OSError, AttributeError):
        return None


def _name_matches(name: str, pattern: str) -> bool:
    """Whether a file ``name`` matches a glob ``pattern`` as :func:`glob.glob` would (names
    starting with a dot only match patterns that do)."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def _scan(entries: Iterable[str]) -> dict[str, Signature]:
    """The signature of each existing file named or matched by ``entries``."""
    found: dict[str, Signature] = {}
    for entry in entries:
        paths = glob.glob(entry) if has_glob(entry) else [entry]
        for path in paths:
            try:
                info = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISDIR(info.st_mode):
                found[path] = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return found


def _poll_round(entries: list[str], missing: list[str]) -> tuple[dict[str, Signature], list[str]]:
    """The polled files' signatures, and which of the ``missing`` directories exist now."""
    return _scan(entries), [directory for directory in missing if os.path.isdir(directory)]

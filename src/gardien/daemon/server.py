"""The daemon: the one place where sources, matching, jails, actions and the store meet.

Lifecycle (``gardien run``):

1. **start**: read and check the whole configuration (a broken one stops here, before anything
   is touched); open the control socket (its commands are :mod:`gardien.daemon.commands`; a
   daemon already running is found here, before the firewall is touched); for each jail, open
   its log files or journal, give it back its active bans (with their remaining time) and apply
   them through its actions; start watching the log files. A jail whose source cannot be read
   on this host (permission denied, no journal) is left out with one error line saying why and
   what to do, and the others run: ``gardien status`` lists it as not started. Any other
   failure undoes what was started: no firewall rule, chain, set or table is left behind.
2. **main loop**: read what the watched files gained, match it, count failures, ban; once a
   second, lift the bans that are over; now and then save file positions and purge old history.
3. **stop** (SIGTERM, SIGINT, ``gardien stop``): stop watching, save positions, stop the jails'
   actions (their firewall objects go, unless ``keepbans``), close the socket and the store.
   Bans stay in the store (and, with ``keepbans`` and kernel timeouts, in the firewall), so a
   restart loses nothing. A second SIGINT exits at once.

SIGHUP (or ``gardien reload``) re-reads the configuration; a broken one is refused and the
running one stays in force. Under systemd (``Type=notify``) the daemon reports READY, RELOADING
and STOPPING through ``$NOTIFY_SOCKET`` (:mod:`gardien.daemon.notify`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fnmatch
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gardien import __version__
from gardien.actions import Action, FirewallRegistry
from gardien.actions.firewall import kernel_place
from gardien.backends.base import Firewall
from gardien.clock import Clock, SystemClock
from gardien.config.daemon import DaemonSettings, load_daemon_settings
from gardien.config.jails import JailSettings
from gardien.daemon.assembly import FeedPlan, assemble
from gardien.daemon.commands import Commands
from gardien.daemon.control import ControlServer
from gardien.daemon.jailsources import open_file, open_journal, uses_journal
from gardien.daemon.logs import set_log_level, switch_log_target
from gardien.daemon.notify import Notifier
from gardien.errors import ConfigError, GardienError, SourceError
from gardien.jails import Jail
from gardien.matching.filter import LineMatcher, LineResult
from gardien.model import Address, Ban, Unban
from gardien.sources.files import FilePosition, FileTail, StartMode
from gardien.sources.globs import expand_logpaths, has_glob, parse_logpath_entry
from gardien.sources.hub import CURSOR_PREFIX, FeedUpdate, HubFeed, cursor_from_text
from gardien.sources.journal import JournalSource
from gardien.sources.watch import FileWatcher
from gardien.store.base import BanStore

if TYPE_CHECKING:
    from gardien.daemon.metrics import MetricsEndpoint

__all__ = ["Daemon", "JailRuntime"]

logger = logging.getLogger("gardien.daemon")
READ_CHUNK = 4 << 20  # bytes read from one file before the loop looks at others
TICK = 1.0  # seconds between expiry checks
PURGE_EVERY = 3600.0
FEED_CHUNK = 2000  # addresses of a hub's list banned between two looks at the rest of the loop


@dataclass
class JailRuntime:
    """A running jail: its settings, decisions, matcher, actions and files."""

    settings: JailSettings
    jail: Jail
    matcher: LineMatcher | None  # None for a jail fed by a hub, which reads no log
    actions: list[Action]
    tails: dict[str, FileTail] = field(default_factory=dict)
    #: glob patterns of logpath, so that files created later are followed too
    patterns: dict[str, StartMode] = field(default_factory=dict)
    journalmatch: tuple[str, ...] = ()
    journal: JournalSource | None = None
    feed: HubFeed | None = None
    #: for the metrics endpoint; added once per chunk, not per line, to keep matching fast
    lines_read: int = 0
    matching_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.settings.name


class Daemon:
    """gardien's server. ``store`` is opened by the caller (SQLite in production)."""

    def __init__(
        self,
        config_dir: Path,
        store: BanStore,
        *,
        settings: DaemonSettings | None = None,
        clock: Clock | None = None,
        socket_path: str | None = None,
        use_inotify: bool = True,
        firewalls: Callable[[str], Firewall] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.store = store
        self.settings = settings or load_daemon_settings(config_dir)
        self.clock = clock or SystemClock()
        self.socket_path = socket_path or self.settings.socket
        self.jails: dict[str, JailRuntime] = {}
        #: jails left out because their source cannot be read: name -> why and what to do
        self.failed: dict[str, str] = {}
        self.notifier = notifier or Notifier.from_environment()
        self._use_inotify = use_inotify
        self.firewalls = firewalls or FirewallRegistry()
        self._watcher: FileWatcher | None = None
        self._control: ControlServer | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # one change of state at a time (loop, control, reload)
        self._journal_tasks: dict[str, asyncio.Future[None]] = {}
        self._metrics: MetricsEndpoint | None = None

    # ---- building ------------------------------------------------------------------------
    def _build(self) -> dict[str, JailRuntime]:
        """Every enabled jail, fully checked (:func:`~gardien.daemon.assembly.assemble`);
        raises the first problem before anything runs. A jail with ``backend = hub[...]`` has
        no filter and no log: its bans come from the hub."""
        assembly = assemble(
            self.config_dir,
            firewalls=self.firewalls,
            clock=self.clock,
            keep_bans=self.settings.keepbans,
        )
        assembly.raise_first_problem()
        built: dict[str, JailRuntime] = {}
        for name, plan in assembly.plans.items():
            settings = plan.settings
            jail = Jail(settings, clock=self.clock, history=self._history, ignore=plan.ignore)
            matcher = None
            if plan.filter is not None:
                matcher = plan.filter.matcher(clock=self.clock, log_timezone=settings.logtimezone)
            built[name] = JailRuntime(
                settings,
                jail,
                matcher,
                list(plan.actions),
                journalmatch=plan.journalmatch,
                feed=plan.source.feed if isinstance(plan.source, FeedPlan) else None,
            )
        return built

    def _history(self, jail: str, address: Address, overall: bool) -> int:
        return self.store.ban_count(address, None if overall else jail)

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Build, listen, start the jails, watch. Raises (and leaves nothing behind) on a bad
        start; a jail whose source cannot be read is left out (:attr:`failed`)."""
        built = self._build()
        self._control = ControlServer(self.socket_path, Commands(self))
        await self._control.start()
        async with self._lock:  # commands wait until every jail has started
            for name, runtime in built.items():
                try:
                    started = await self._start_jail(runtime)
                except GardienError as error:
                    raise _in_jail(error, name) from None
                if started:
                    self.jails[name] = runtime
        if self.settings.metrics is not None:
            # imported here: prometheus_client takes longer to import than the rest of the CLI
            from gardien.daemon.metrics import MetricsEndpoint

            self._metrics = MetricsEndpoint(self, *self.settings.metrics)
            self._metrics.start()
        # a short batch delay: a failure line must become a ban within milliseconds
        self._watcher = FileWatcher(
            self._watched_paths(), use_inotify=self._use_inotify, batch_delay=0.001
        )
        await self._watcher.start()
        logger.info("gardien %s started: %s", __version__, self.summary())
        await self._read_all()

    def summary(self) -> str:
        """``2 jail(s): asterisk, sshd`` (and those not started), for logs and systemd."""
        text = f"{len(self.jails)} jail(s): {', '.join(self.jails) or 'none'}"
        if self.failed:
            text += f"; not started: {', '.join(self.failed)}"
        return text

    async def _start_jail(self, runtime: JailRuntime) -> bool:
        """Open the jail's sources, then start its actions with the store's active bans.

        ``False`` (logged, recorded in :attr:`failed`, nothing of the jail left open) when a
        source cannot be read. Any other error is raised once what this jail started is undone.
        """
        now = self.clock.now()
        self.failed.pop(runtime.name, None)
        try:
            await self._open_sources(runtime, now)
        except SourceError as error:
            self._close_sources(runtime)
            self.failed[runtime.name] = str(error)
            logger.error("[%s] jail not started: %s", runtime.name, error)
            return False
        started: list[Action] = []
        try:
            bans = await asyncio.to_thread(self.store.active_bans, now, runtime.name)
            restored = runtime.jail.restore(bans, now=now)
            for action in runtime.actions:
                started.append(action)  # stopped below even if its start fails half way
                await action.start()
                await action.restore(restored)  # the firewall holds exactly the store's bans
        except BaseException:
            await self._stop_actions(runtime.name, started)
            self._close_sources(runtime)
            raise
        if restored:
            logger.info("[%s] restored %d ban(s)", runtime.name, len(restored))
        return True

    async def _open_sources(self, runtime: JailRuntime, now: float) -> None:
        """The jail's journal, or its log files (missing ones are waited for)."""
        if runtime.feed is not None:
            return
        if uses_journal(runtime.settings, runtime.journalmatch):
            cursor = await asyncio.to_thread(self.store.journal_cursor, runtime.name)
            runtime.journal = open_journal(
                runtime.settings,
                runtime.journalmatch,
                cursor=cursor,
                since=None if cursor else now - runtime.settings.findtime,
            )
            logger.info("[%s] reading %s", runtime.name, runtime.journal.description)
            return
        for entry in runtime.settings.logpath:
            pattern, mode = parse_logpath_entry(entry)
            if has_glob(pattern):
                runtime.patterns[pattern] = mode
            for path in expand_logpaths([pattern]):
                saved = await asyncio.to_thread(self.store.file_position, runtime.name, path)
                start: FilePosition | StartMode = saved if saved is not None else mode
                runtime.tails[path] = open_file(
                    runtime.settings, runtime.journalmatch, path, start, if_new=mode
                )
                if not os.path.exists(path):
                    logger.info("[%s] %s does not exist yet: waiting for it", runtime.name, path)

    @staticmethod
    def _close_sources(runtime: JailRuntime) -> None:
        for tail in runtime.tails.values():
            tail.close()
        runtime.tails.clear()
        runtime.patterns.clear()
        if runtime.journal is not None:
            runtime.journal.close()
            runtime.journal = None

    @staticmethod
    async def _stop_actions(jail: str, actions: Sequence[Action]) -> None:
        """Stop each action (the last started first); a failure is logged and the others are
        still stopped, so that one stuck firewall call leaves no other jail's rules behind."""
        for action in reversed(actions):
            try:
                await action.stop()
            except GardienError as error:
                logger.error("[%s] action %s failed to stop: %s", jail, action.name, error)

    async def _follow_journal(self, runtime: JailRuntime) -> None:
        """Read the journal of one jail as entries arrive (one thread reads it)."""
        source = runtime.journal
        if source is None:
            return
        loop = asyncio.get_running_loop()
        reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="journal")
        try:
            while True:
                entries = await loop.run_in_executor(reader, source.read_entries, 1000)
                if not entries:
                    await source.wait_async(1.0)
                    continue
                if runtime.matcher is None:
                    return
                async with self._lock:
                    process = runtime.matcher.process
                    started = time.perf_counter()
                    bans = self._decide(
                        runtime,
                        (
                            process(entry.line, date=entry.time, date_text=entry.date_text)
                            for entry in entries
                        ),
                    )
                    runtime.matching_seconds += time.perf_counter() - started
                    runtime.lines_read += len(entries)
                    if bans:
                        await self._apply(runtime, bans)
                    cursor = source.cursor()
                    if cursor:
                        await asyncio.to_thread(
                            self.store.save_journal_cursor, runtime.name, cursor
                        )
        except OSError as exc:  # the journal went away under us: say so once, keep the rest
            logger.error(
                "[%s] stopped reading the systemd journal: %s; reload once it is back",
                runtime.name,
                exc.strerror or exc,
            )
        finally:
            reader.shutdown(wait=False)

    def _watched_paths(self) -> list[str]:
        paths = {path for runtime in self.jails.values() for path in runtime.tails}
        paths |= {pattern for runtime in self.jails.values() for pattern in runtime.patterns}
        return sorted(paths)

    def _follow_new_files(self, changed: frozenset[str]) -> None:
        """Start following files that appeared and match a jail's logpath glob."""
        for runtime in self.jails.values():
            for path in changed:
                if path in runtime.tails:
                    continue
                for pattern in runtime.patterns:
                    if fnmatch.fnmatchcase(path, pattern) and os.path.isfile(path):
                        try:
                            runtime.tails[path] = FileTail(path, "head")
                        except OSError as exc:
                            logger.error(
                                "[%s] cannot read %s: %s", runtime.name, path, exc.strerror
                            )
                        else:
                            logger.info("[%s] following new file %s", runtime.name, path)
                        break

    async def run(self) -> None:
        """The main loop, until :meth:`request_stop`; then the stop (see :meth:`_shutdown`)."""
        changes = asyncio.ensure_future(self._watch())
        ticks = asyncio.ensure_future(self._tick())
        for runtime in self.jails.values():
            self._start_journal_task(runtime)
        self.notifier.ready(f"running: {self.summary()}")
        try:
            await self._stopping.wait()
        finally:
            self.notifier.stopping()
            for task in (changes, ticks, *self._journal_tasks.values()):
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:  # a bug: shown, but the firewall is still cleaned up
                    logger.exception("a task of the main loop failed")
            await self._shutdown()

    def _start_journal_task(self, runtime: JailRuntime) -> None:
        if runtime.journal is not None:
            self._journal_tasks[runtime.name] = asyncio.ensure_future(self._follow_journal(runtime))
        elif runtime.feed is not None:  # a hub feed: its task lives beside the journal ones
            self._journal_tasks[runtime.name] = asyncio.ensure_future(self._follow_feed(runtime))

    async def _follow_feed(self, runtime: JailRuntime) -> None:
        """Ban what the hub lists, from the cursor saved at the last update."""
        if runtime.feed is None:
            return
        saved = await asyncio.to_thread(self.store.journal_cursor, runtime.name)
        await runtime.feed.follow(
            cursor_from_text(saved), lambda update: self._apply_feed(runtime, update)
        )

    async def _apply_feed(self, runtime: JailRuntime, update: FeedUpdate) -> None:
        """Ban what the hub added, lift what it removed (a whole list: lift what it lacks),
        through the jail, store first; then save the cursor. In chunks, so that a first list
        of a million addresses does not hold the loop."""
        jail = runtime.jail
        added, removed = update.added, update.removed
        if update.full:
            listed = set(added)
            removed = tuple(b.address for b in jail.active_bans() if b.address not in listed)
        ignored = 0
        for start in range(0, len(added), FEED_CHUNK):
            async with self._lock:
                bans = []
                for address in added[start : start + FEED_CHUNK]:
                    if jail.banned(address) is not None:
                        continue
                    if jail.ignore.contains(address) is not None:
                        ignored += 1
                        continue
                    bans.append(jail.ban(address))
                if bans:
                    await self._apply(runtime, bans)
            await asyncio.sleep(0)
        for start in range(0, len(removed), FEED_CHUNK):
            async with self._lock:
                unbans = [jail.unban(a) for a in removed[start : start + FEED_CHUNK]]
                lifted = [replace(u, reason="hub") for u in unbans if u is not None]
                if lifted:
                    await self._lift(runtime, lifted)
            await asyncio.sleep(0)
        if ignored:
            logger.info("[%s] %d address(es) of the hub's list ignored", runtime.name, ignored)
        await asyncio.to_thread(
            self.store.save_journal_cursor, runtime.name, f"{CURSOR_PREFIX}{update.cursor}"
        )

    def request_stop(self) -> None:
        self._stopping.set()

    async def abort(self) -> None:
        """Undo a start that failed half way, or what follows it (socket, jails, watcher)."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop watching, save positions, close the socket, stop every jail's actions (their
        firewall objects go, unless keepbans); each step runs even if one before failed."""
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)
            self._metrics = None
        if self._watcher is not None:
            await self._watcher.close()
        try:
            await self._save_positions()
        except GardienError as error:
            logger.error("cannot save the log positions: %s", error)
        if self._control is not None:
            await self._control.stop()
        for runtime in self.jails.values():
            self._close_sources(runtime)
            await self._stop_actions(runtime.name, runtime.actions)
        logger.info("gardien stopped")

    async def _watch(self) -> None:
        if self._watcher is None:
            return
        async for changed in self._watcher:
            async with self._lock:
                self._follow_new_files(changed)
            await self._read_all(changed)

    async def _tick(self) -> None:
        last_purge = self.clock.now()
        while True:
            await asyncio.sleep(TICK)
            now = self.clock.now()
            async with self._lock:
                await self._expire(now)
            await self._read_all()  # catches what a lost notification would miss
            if now - last_purge >= PURGE_EVERY:
                await asyncio.to_thread(self.store.purge, now - self.settings.dbpurgeage)
                last_purge = now

    # ---- the pipeline ----------------------------------------------------------------------
    async def _read_all(self, changed: frozenset[str] | None = None) -> None:
        async with self._lock:
            for runtime in self.jails.values():
                bans: list[Ban] = []
                for path, tail in runtime.tails.items():
                    if changed is not None and path not in changed:
                        continue
                    while True:
                        try:
                            lines = tail.read_lines(max_bytes=READ_CHUNK)
                        except OSError as exc:
                            logger.error(
                                "[%s] cannot read %s: %s", runtime.name, path, exc.strerror
                            )
                            break
                        if not lines:
                            break
                        bans += self._match(runtime, lines)
                        await asyncio.sleep(0)  # let the control socket answer meanwhile
                if bans:
                    await self._apply(runtime, bans)

    def _match(self, runtime: JailRuntime, lines: Sequence[tuple[str, int]]) -> list[Ban]:
        if runtime.matcher is None:  # a hub feed has no files
            return []
        process = runtime.matcher.process
        started = time.perf_counter()
        bans = self._decide(runtime, (process(line) for line, _offset in lines))
        runtime.matching_seconds += time.perf_counter() - started
        runtime.lines_read += len(lines)
        return bans

    @staticmethod
    def _decide(runtime: JailRuntime, results: Iterable[LineResult]) -> list[Ban]:
        """The bans the failures of these matched lines lead to."""
        bans: list[Ban] = []
        for result in results:
            for failure in result.failures:
                ban = runtime.jail.add_failure(failure)
                if ban is not None:
                    bans.append(ban)
        return bans

    async def _apply(self, runtime: JailRuntime, bans: list[Ban]) -> None:
        """Store first (a ban is never lost), then act."""
        await asyncio.to_thread(self.store.add_bans, bans)
        for ban in bans:
            logger.log(25, "[%s] Ban %s", runtime.name, ban.address)
        for action in runtime.actions:
            try:
                await action.ban(bans)
            except GardienError as error:
                logger.error("[%s] action %s failed to ban: %s", runtime.name, action.name, error)

    async def _lift(self, runtime: JailRuntime, unbans: list[Unban]) -> None:
        addresses = [unban.address for unban in unbans]
        await asyncio.to_thread(self.store.remove_bans, runtime.name, addresses)  # one commit
        for unban in unbans:
            logger.log(25, "[%s] Unban %s (%s)", runtime.name, unban.address, unban.reason)
        for action in runtime.actions:
            try:
                await action.unban(unbans)
            except GardienError as error:
                logger.error("[%s] action %s failed to unban: %s", runtime.name, action.name, error)

    async def _expire(self, now: float) -> None:
        for runtime in self.jails.values():
            unbans = runtime.jail.expire(now)
            if unbans:
                await self._lift(runtime, unbans)

    async def _save_positions(self) -> None:
        for runtime in self.jails.values():
            for tail in runtime.tails.values():
                position = tail.position()
                await asyncio.to_thread(self.store.save_file_position, runtime.name, position)

    # ---- changes asked for on the control socket ------------------------------------------
    # (with the attributes config_dir, settings, socket_path, clock, jails and failed, this is
    # the daemon's side of :class:`~gardien.daemon.interface.DaemonControl`)
    @contextlib.asynccontextmanager
    async def changes(self) -> AsyncIterator[None]:
        """Hold the daemon's state still around a command that changes it: one change at a
        time (the pipeline, a reload, a command). Methods that say *inside changes()* expect
        it held."""
        async with self._lock:
            yield

    def log_files(self, name: str) -> list[str]:
        """The log files running jail ``name`` follows now."""
        return list(self.jails[name].tails)

    def log_sources(self, name: str) -> int:
        """How many log files or journals running jail ``name`` reads."""
        runtime = self.jails[name]
        return len(runtime.tails) + (runtime.journal is not None)

    async def ban_addresses(self, name: str, addresses: Sequence[Address]) -> list[Ban]:
        """Ban ``addresses`` in jail ``name`` (``set JAIL banip``), the way the pipeline bans:
        store first, then actions. The caller has checked them (none ignored nor banned
        already). Inside changes()."""
        runtime = self.jails[name]
        bans = [runtime.jail.ban(address) for address in addresses]
        if bans:
            await self._apply(runtime, bans)
        return bans

    async def unban_addresses(
        self, name: str, addresses: Sequence[Address], *, reason: str = "manual"
    ) -> int:
        """Lift the bans of ``addresses`` in jail ``name`` (``unban``, ``set JAIL unbanip``),
        store first, then actions; those not banned are passed over. How many were lifted.
        Inside changes()."""
        runtime = self.jails[name]
        unbans = [unban for unban in map(runtime.jail.unban, addresses) if unban is not None]
        if unbans:
            await self._lift(runtime, [replace(unban, reason=reason) for unban in unbans])
        return len(unbans)

    async def reconfigure(self, only: str | None) -> str:
        """:meth:`reload` for a caller that holds :meth:`changes` already."""
        return await self._reload(only)

    def retune_jail(self, name: str, settings: JailSettings) -> None:
        """Give running jail ``name`` new settings (``set JAIL bantime|findtime|maxretry|
        maxmatches``): its bans and ignore list are kept, the failures it counted are not.
        Inside changes()."""
        runtime = self.jails[name]
        jail = Jail(settings, clock=self.clock, history=self._history, ignore=runtime.jail.ignore)
        jail.restore(runtime.jail.active_bans(), now=self.clock.now())
        runtime.settings, runtime.jail = settings, jail

    def set_dbpurgeage(self, seconds: float) -> float:
        """Keep ban history for ``seconds`` from now on (``set dbpurgeage``)."""
        self.settings = replace(self.settings, dbpurgeage=seconds)
        return seconds

    async def stop_jail(self, name: str) -> None:
        """Stop one jail (fail2ban's ``stop JAIL``): its sources close, its actions stop (their
        firewall objects go, unless keepbans); its bans stay in the store, so ``start JAIL``
        (a reload of that jail) restores them. The caller holds the lock."""
        runtime = self.jails.pop(name)
        task = self._journal_tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for tail in runtime.tails.values():
            await asyncio.to_thread(self.store.save_file_position, name, tail.position())
        self._close_sources(runtime)
        await self._stop_actions(name, runtime.actions)
        logger.info("[%s] jail stopped", name)

    def add_logpath(self, name: str, path: str, from_tail: bool) -> list[str]:
        """Follow one more file in jail ``name`` (``set JAIL addlogpath FILE [tail]``), from
        its start or its end; the jail's files are returned. The file must exist."""
        runtime = self.jails[name]
        if runtime.matcher is None or runtime.journal is not None:
            raise ConfigError(f"jail {name!r} reads no log files: it cannot follow {path}")
        if path not in runtime.tails:
            if not os.path.isfile(path):
                raise SourceError(f"{path}: no such log file")
            runtime.tails[path] = open_file(
                runtime.settings,
                runtime.journalmatch,
                path,
                "tail" if from_tail else "head",
                if_new="head",
            )
            if self._watcher is not None:
                self._watcher.add(path)
            logger.info("[%s] following %s", name, path)
        return list(runtime.tails)

    def remove_logpath(self, name: str, path: str) -> list[str]:
        """Stop following ``path`` in jail ``name`` (``set JAIL dellogpath FILE``; a file not
        followed is no error, as in fail2ban); the jail's files are returned."""
        runtime = self.jails[name]
        tail = runtime.tails.pop(path, None)
        if tail is not None:
            tail.close()
            logger.info("[%s] no longer following %s", name, path)
        return list(runtime.tails)

    def set_loglevel(self, level: str) -> str:
        """Change the log level now (``set loglevel``); the level's name is returned."""
        name = set_log_level(level)
        self.settings = replace(self.settings, loglevel=name)
        return name

    def set_logtarget(self, target: str) -> str:
        """Send the log to ``target`` from now on (``set logtarget``)."""
        settings = replace(self.settings, logtarget=target)
        switch_log_target(settings)
        self.settings = settings
        return target

    # ---- reload ----------------------------------------------------------------------------
    async def reload(self, only: str | None = None) -> str:
        """Re-read the configuration (SIGHUP): see :meth:`_reload`."""
        async with self._lock:
            return await self._reload(only)

    async def _reload(self, only: str | None) -> str:
        """Re-read the configuration; refuse a broken one, keeping the running one. Jails not
        started for want of a readable source are tried again."""
        self.notifier.reloading()
        try:
            return await self._reload_jails(only)
        finally:
            self.notifier.ready(f"running: {self.summary()}")

    async def _reload_jails(self, only: str | None) -> str:
        try:
            self.settings = load_daemon_settings(self.config_dir)
            built = self._build()
        except GardienError as error:
            raise ConfigError(f"reload refused, the running configuration stays: {error}") from None
        if only is not None and only not in built:
            raise ConfigError(f"unknown jail {only!r} in the new configuration")
        await self._save_positions()
        names = [only] if only else sorted(set(self.jails) | set(self.failed) | set(built))
        for name in names:
            old = self.jails.pop(name, None)
            self.failed.pop(name, None)
            task = self._journal_tasks.pop(name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if old is not None:
                self._close_sources(old)
            new = built.get(name)
            started = new is not None and await self._start_jail(new)
            if old is not None:
                # the new jail's firewall actions took over the sets and rules they share with
                # the old ones (set up again and made to hold the store's bans, in place): only
                # what the new jail no longer uses is taken down, so its bans never lapse
                kept = {kernel_place(a) for a in new.actions} if started and new else set()
                kept.discard(None)
                await self._stop_actions(
                    name, [a for a in old.actions if kernel_place(a) not in kept]
                )
            if started and new is not None:
                self.jails[name] = new
                if self._watcher is not None:  # running: follow its journal now
                    self._start_journal_task(new)
        if self._watcher is not None:
            for path in self._watched_paths():
                self._watcher.add(path)
        logger.info("configuration reloaded (%s)", only or "all jails")
        return "OK"


def _in_jail(error: GardienError, jail: str) -> GardienError:
    """``error`` saying which jail it is about."""
    if isinstance(error, ConfigError):
        return error.located(section=jail)
    try:
        return type(error)(f"[{jail}] {error}")
    except TypeError:  # an error class with more to it than a message
        return error


def install_signal_handlers(daemon: Daemon, loop: asyncio.AbstractEventLoop) -> list[int]:
    """SIGTERM/SIGINT stop (a second SIGINT exits at once), SIGHUP reloads."""
    interrupted = False

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:
            os._exit(130)
        interrupted = True
        daemon.request_stop()

    def on_hangup() -> None:
        async def reload() -> None:
            try:
                await daemon.reload()
            except GardienError as error:
                logger.error("%s", error)

        loop.create_task(reload())

    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    return [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]

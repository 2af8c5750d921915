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
2. **main loop**: one follow task per source of each jail (a log file, the journal, a hub's
   list: each a :class:`~gardien.sources.base.Source`) reads a batch, matches it, counts
   failures and decides bans, then stores the bans, the jail's changed pending failures and the
   source's checkpoint in one transaction, then acts (firewall, notifications). So after a
   crash nothing older than the last batch is read again and no failure inside ``findtime`` is
   forgotten. Once a second, the bans that are over are lifted; now and then old history is
   purged.
3. **stop** (SIGTERM, SIGINT, ``gardien stop``): stop watching, stop the jails' actions (their
   firewall objects go, unless ``keepbans``), close the socket and the store. Bans, pending
   failures and checkpoints are in the store already (and, with ``keepbans`` and kernel
   timeouts, the bans in the firewall), so a restart loses nothing. A second SIGINT exits at
   once.

SIGHUP (or ``gardien reload``) re-reads the configuration; a broken one is refused and the
running one stays in force. Under systemd (``Type=notify``) the daemon reports READY, RELOADING
and STOPPING through ``$NOTIFY_SOCKET`` (:mod:`gardien.daemon.notify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from gardien._version import __version__
from gardien.actions import Action, FirewallRegistry
from gardien.actions.firewall import kernel_place
from gardien.backends.base import Firewall
from gardien.clock import Clock, SystemClock
from gardien.config.daemon import load_daemon_settings
from gardien.daemon.assembly import FeedPlan, FilesPlan, JournalPlan, assemble
from gardien.daemon.assembly import Source as SourcePlan
from gardien.daemon.commands import Commands
from gardien.daemon.control import ControlServer
from gardien.daemon.jailsources import open_file, open_journal
from gardien.daemon.logs import set_log_level, switch_log_target
from gardien.daemon.notify import Notifier
from gardien.errors import ConfigError, GardienError, SourceError, StoreError
from gardien.jails import Jail
from gardien.matching import native
from gardien.matching.filter import LineMatcher, LineResult
from gardien.matching.native import NativeScanner
from gardien.matching.scan import Prefilter
from gardien.model import Address, Ban, Checkpoint, Unban
from gardien.settings import DaemonSettings, JailSettings
from gardien.sources.base import Batch, Source
from gardien.sources.files import FileSource, RawLines, StartMode
from gardien.sources.globs import expand_logpaths
from gardien.sources.hub import FeedUpdate, HubFeed
from gardien.sources.journal import JournalEntries, JournalLine
from gardien.sources.watch import FileWatcher
from gardien.store.base import BanStore, Progress

if TYPE_CHECKING:
    from gardien.daemon.metrics import MetricsEndpoint

__all__ = ["Daemon", "JailRuntime"]

logger = logging.getLogger("gardien.daemon")
READ_CHUNK = 4 << 20  # bytes of a file in one batch
TICK = 1.0  # seconds between expiry checks
POLL = 1.0  # seconds a source waits at most before it is looked at anyway (a lost notification)
PURGE_EVERY = 3600.0
FEED_CHUNK = 2000  # addresses of a hub's list banned between two looks at the rest of the loop


@dataclass
class JailRuntime:
    """A running jail: its settings, decisions, matcher, actions and files."""

    settings: JailSettings
    jail: Jail
    matcher: LineMatcher | None  # None for a jail fed by a hub, which reads no log
    actions: list[Action]
    #: what the jail reads, by :attr:`~gardien.sources.base.Source.key`
    sources: dict[str, Source[object]] = field(default_factory=dict)
    #: glob patterns of logpath, so that files created later are followed too
    patterns: dict[str, StartMode] = field(default_factory=dict)
    #: what the assembly planned it to read: files, the journal, or a hub feed
    plan: SourcePlan = field(default_factory=lambda: FilesPlan(()))
    journalmatch: tuple[str, ...] = ()
    #: the last checkpoint stored of each source: where a source resumes after a failed batch
    checkpoints: dict[str, Checkpoint | None] = field(default_factory=dict)
    #: for the metrics endpoint; added once per batch, not per line, to keep matching fast
    lines_read: int = 0
    matching_seconds: float = 0.0
    #: the native core matching for ``matcher`` (None: not installed, or the filter needs
    #: the Python engine; see ``gardien config check``)
    scanner: NativeScanner | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def over_budget(self) -> int:
        """Lines given up on after their step budget (counted missed), since the jail
        started."""
        return self.scanner.over_budget if self.scanner is not None else 0

    @property
    def tails(self) -> dict[str, FileSource]:
        """The log files followed, by path."""
        return {s.path: s for s in self.sources.values() if isinstance(s, FileSource)}

    @property
    def journal(self) -> JournalEntries | None:
        """The journal, when the jail reads it."""
        source = self.sources.get(JournalEntries.key)
        return source if isinstance(source, JournalEntries) else None


#: Python's cycle collector in the daemon: a young generation 20 times the default's, so that
#: the short-lived tuples and dicts of matching (reference counting frees them: they make no
#: cycles) no longer set it off every 700 allocations
COLLECTOR_THRESHOLD = (14_000, 10, 10)


def settle_collector() -> None:
    """Once the daemon has started: what it built to start (configuration, compiled filters,
    modules) lives as long as it does, so the cycle collector stops walking it
    (``gc.freeze``), and runs less often (:data:`COLLECTOR_THRESHOLD`). Cycles are still
    collected; a reload's new objects are collected as usual."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLD)


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
        self._started = asyncio.Event()  # the jails of the start are all started (or left out)
        #: one follow task per source: (jail, source key) -> task
        self._follow_tasks: dict[tuple[str, str], asyncio.Future[None]] = {}
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
            scanner = None
            if plan.filter is not None:
                matcher = plan.filter.matcher(clock=self.clock, log_timezone=settings.logtimezone)
                # only the lines holding one of the filter's words are matched; the others
                # still date the undated lines after them (see NativeScanner.process)
                prefilter = Prefilter.for_filter(plan.filter)
                scanner = native.scanner_for(matcher, prefilter.words if prefilter else None)
            built[name] = JailRuntime(
                settings,
                jail,
                matcher,
                list(plan.actions),
                plan=plan.source,
                journalmatch=plan.journalmatch,
                scanner=scanner,
            )
        return built

    def _history(self, jail: str, address: Address, overall: bool) -> int:
        return self.store.ban_count(address, None if overall else jail)

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self, listening: Callable[[], None] | None = None) -> None:
        """Build, listen, start the jails, watch. Raises (and leaves nothing behind) on a bad
        start; a jail whose source cannot be read is left out (:attr:`failed`).

        ``listening`` is called once the control socket is this daemon's, before any jail
        starts (``gardien run`` writes its pid file there, so that a daemon that answers
        ``ping`` has its pid file, and a second daemon, refused the socket, never writes it);
        an exception from it stops the start."""
        built = self._build()
        self._control = ControlServer(self.socket_path, Commands(self))
        await self._control.start()
        if listening is not None:
            listening()
        async with self._lock:  # commands wait until every jail has started
            for name, runtime in built.items():
                try:
                    started = await self._start_jail(runtime)
                except GardienError as error:
                    raise _in_jail(error, name) from None
                if started:
                    self.jails[name] = runtime
        self._started.set()
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
        for runtime in self.jails.values():
            self._start_following(runtime)
        settle_collector()  # before the followers' first batch
        logger.info("gardien %s started: %s", __version__, self.summary())

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
            pending = await asyncio.to_thread(self.store.pending_failures, runtime.name)
            counting = runtime.jail.restore_pending(pending, now=now)
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
        if counting:
            logger.info(
                "[%s] still counting the failures of %d address(es)", runtime.name, counting
            )
        return True

    async def _open_sources(self, runtime: JailRuntime, now: float) -> None:
        """What the jail's plan says it reads (a hub feed, the journal, or log files: missing
        ones are waited for), each from its stored checkpoint."""
        name = runtime.name
        plan = runtime.plan
        if isinstance(plan, FeedPlan):
            checkpoint = await asyncio.to_thread(self.store.checkpoint, name, HubFeed.key)
            plan.feed.resume(checkpoint)
            self._add_source(runtime, plan.feed, checkpoint)
            return
        if isinstance(plan, JournalPlan):
            checkpoint = await asyncio.to_thread(self.store.checkpoint, name, JournalEntries.key)
            journal = open_journal(
                plan.options,
                plan.journalmatch,
                cursor=None if checkpoint is None else checkpoint.state,
                since=None if checkpoint else now - runtime.settings.findtime,
            )
            source = JournalEntries(journal)
            self._add_source(runtime, source, checkpoint)
            logger.info("[%s] reading %s", name, source.description)
            return
        for logpath in plan.paths:
            if logpath.glob:
                runtime.patterns[logpath.pattern] = logpath.start
            for path in expand_logpaths([logpath.pattern]):
                checkpoint = await asyncio.to_thread(self.store.checkpoint, name, f"file:{path}")
                tail = open_file(
                    runtime.settings,
                    runtime.journalmatch,
                    path,
                    logpath.start,
                    checkpoint=checkpoint,
                )
                self._add_source(runtime, tail, checkpoint)
                if not os.path.exists(path):
                    logger.info("[%s] %s does not exist yet: waiting for it", name, path)

    @staticmethod
    def _add_source(
        runtime: JailRuntime, source: Source[object], checkpoint: Checkpoint | None
    ) -> None:
        runtime.sources[source.key] = source
        runtime.checkpoints[source.key] = checkpoint

    @staticmethod
    def _close_sources(runtime: JailRuntime) -> None:
        for source in runtime.sources.values():
            source.close()
        runtime.sources.clear()
        runtime.patterns.clear()

    @staticmethod
    async def _stop_actions(jail: str, actions: Sequence[Action]) -> None:
        """Stop each action (the last started first); a failure is logged and the others are
        still stopped, so that one stuck firewall call leaves no other jail's rules behind."""
        for action in reversed(actions):
            try:
                await action.stop()
            except GardienError as error:
                logger.error("[%s] action %s failed to stop: %s", jail, action.name, error)

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
                            source = FileSource(path, "head")
                        except OSError as exc:
                            logger.error(
                                "[%s] cannot read %s: %s", runtime.name, path, exc.strerror
                            )
                        else:
                            self._add_source(runtime, source, None)
                            self._follow(runtime, source)
                            logger.info("[%s] following new file %s", runtime.name, path)
                        break

    async def run(self) -> None:
        """The main loop, until :meth:`request_stop`; then the stop (see :meth:`_shutdown`)."""
        changes = asyncio.ensure_future(self._watch())
        ticks = asyncio.ensure_future(self._tick())
        self.notifier.ready(f"running: {self.summary()}")
        try:
            await self._stopping.wait()
        finally:
            self.notifier.stopping()
            for task in (changes, ticks):
                await _cancelled(task)
            await self._stop_following()
            await self._shutdown()

    # ---- following sources -----------------------------------------------------------------
    def _start_following(self, runtime: JailRuntime) -> None:
        for source in runtime.sources.values():
            self._follow(runtime, source)

    def _follow(self, runtime: JailRuntime, source: Source[object]) -> None:
        key = (runtime.name, source.key)
        if key not in self._follow_tasks:
            self._follow_tasks[key] = asyncio.ensure_future(self._follow_source(runtime, source))

    async def _stop_following(self, jail: str | None = None, source: str | None = None) -> None:
        """Cancel the follow tasks of ``jail`` (of its ``source`` only), or of every jail."""
        for key in list(self._follow_tasks):
            if (jail is None or key[0] == jail) and (source is None or key[1] == source):
                await _cancelled(self._follow_tasks.pop(key))

    async def _follow_source(self, runtime: JailRuntime, source: Source[object]) -> None:
        """Read ``source`` batch by batch for ever (until cancelled): see the module docstring."""
        failing = False  # an error was logged: log the next one only after a success
        while True:
            try:
                batch = await source.read()
            except OSError as exc:
                if isinstance(source, JournalEntries):  # the journal went away: say so once
                    logger.error(
                        "[%s] stopped reading the systemd journal: %s; reload once it is back",
                        runtime.name,
                        exc.strerror or exc,
                    )
                    return
                if not failing:
                    logger.error(
                        "[%s] cannot read %s: %s",
                        runtime.name,
                        source.description,
                        exc.strerror or exc,
                    )
                failing = True
                await source.wait(POLL)
                continue
            if batch is None:
                await source.wait(POLL)
                continue
            failing = False
            async with self._lock:
                if self.jails.get(runtime.name) is not runtime:
                    return  # stopped or replaced meanwhile
                try:
                    await self._take(runtime, source, batch)
                except GardienError as error:
                    logger.error("[%s] cannot take in %s: %s", runtime.name, source.key, error)
                    source.resume(runtime.checkpoints.get(source.key))
                    if isinstance(source, HubFeed):
                        source.retry_later()
            await asyncio.sleep(0)  # let the control socket answer meanwhile

    async def _take(
        self, runtime: JailRuntime, source: Source[object], batch: Batch[object]
    ) -> None:
        """Match and decide one batch, store its progress, act. The caller holds the lock."""
        if isinstance(source, HubFeed):
            for update in cast("Sequence[FeedUpdate]", batch.records):
                await self._apply_feed(runtime, update)
            await self._apply(runtime, [], checkpoint=batch.checkpoint)
            return
        matcher = runtime.matcher
        if matcher is None:  # pragma: no cover - only a hub feed has no matcher
            return
        process = matcher.process
        scanner = runtime.scanner
        started = time.perf_counter()
        results: Iterable[LineResult]
        if isinstance(source, JournalEntries):
            entries = cast("Sequence[JournalLine]", batch.records)
            if scanner is not None:
                results = scanner.process(
                    [e.line for e in entries],
                    [e.time for e in entries],
                    lambda index: entries[index].date_text,
                )
            else:
                results = (process(e.line, date=e.time, date_text=e.date_text) for e in entries)
        elif scanner is not None:
            lines = cast("Sequence[str]", batch.records)
            if isinstance(lines, RawLines):
                results = scanner.process_block(lines.block)
            else:
                results = scanner.process(lines)
        else:
            results = (process(line) for line in cast("Sequence[str]", batch.records))
        bans = self._decide(runtime, results)
        runtime.matching_seconds += time.perf_counter() - started
        runtime.lines_read += len(batch.records)
        await self._apply(runtime, bans, checkpoint=batch.checkpoint)

    async def _apply_feed(self, runtime: JailRuntime, update: FeedUpdate) -> None:
        """Ban what the hub added, lift what it removed (a whole list: lift what it lacks),
        through the jail, store first. In chunks, each stored on its own, so that a first list
        of a million addresses does not hold the store or the firewall in one piece; the
        cursor is stored by the caller once all of it is. The caller holds the lock."""
        jail = runtime.jail
        added, removed = update.added, update.removed
        if update.full:
            listed = set(added)
            removed = tuple(b.address for b in jail.active_bans() if b.address not in listed)
        ignored = 0
        for start in range(0, len(added), FEED_CHUNK):
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
        for start in range(0, len(removed), FEED_CHUNK):
            unbans = [jail.unban(a) for a in removed[start : start + FEED_CHUNK]]
            lifted = [replace(u, reason="hub") for u in unbans if u is not None]
            if lifted:
                await self._lift(runtime, lifted)
        if ignored:
            logger.info("[%s] %d address(es) of the hub's list ignored", runtime.name, ignored)

    def request_stop(self) -> None:
        self._stopping.set()

    async def abort(self) -> None:
        """Undo a start that failed half way, or what follows it (socket, jails, watcher)."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop watching and following, close the socket, stop every jail's actions (their
        firewall objects go, unless keepbans); each step runs even if one before failed."""
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)
            self._metrics = None
        if self._watcher is not None:
            await self._watcher.close()
        await self._stop_following()
        if self._control is not None:
            await self._control.stop()
        for runtime in self.jails.values():
            self._close_sources(runtime)
            try:
                await self._store_pending(runtime)
            except StoreError as error:
                logger.error("[%s] cannot store its pending failures: %s", runtime.name, error)
            await self._stop_actions(runtime.name, runtime.actions)
        logger.info("gardien stopped")

    async def _watch(self) -> None:
        if self._watcher is None:
            return
        async for changed in self._watcher:
            async with self._lock:
                self._follow_new_files(changed)
                for runtime in self.jails.values():
                    for source in runtime.sources.values():
                        if isinstance(source, FileSource) and source.path in changed:
                            source.notify()

    async def _tick(self) -> None:
        last_purge = self.clock.now()
        while True:
            await asyncio.sleep(TICK)
            now = self.clock.now()
            async with self._lock:
                await self._expire(now)
            if now - last_purge >= PURGE_EVERY:
                await asyncio.to_thread(self.store.purge, now - self.settings.dbpurgeage)
                last_purge = now

    # ---- the pipeline ----------------------------------------------------------------------
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

    async def _apply(
        self, runtime: JailRuntime, bans: list[Ban], *, checkpoint: Checkpoint | None = None
    ) -> None:
        """Store first (a ban is never lost): the bans, the jail's pending failures that
        changed, and ``checkpoint``, in one transaction; then act. When the store fails, the
        bans are carried out all the same (they hold in memory and in the firewall), the error
        is raised once they are, and the checkpoint stays where it was: a restart reads the
        batch again."""
        pending, settled = runtime.jail.take_pending()
        progress = Progress(
            runtime.name, bans, checkpoint=checkpoint, pending=pending, settled=settled
        )
        failed: StoreError | None = None
        try:
            await asyncio.to_thread(self.store.save_progress, progress)
        except StoreError as error:
            failed = error
        else:
            if checkpoint is not None:
                runtime.checkpoints[checkpoint.source] = checkpoint
        for ban in bans:
            logger.log(25, "[%s] Ban %s", runtime.name, ban.address)
        for action in runtime.actions if bans else ():  # most batches ban nobody
            try:
                await action.ban(bans)
            except GardienError as error:
                logger.error("[%s] action %s failed to ban: %s", runtime.name, action.name, error)
        if failed is not None:
            raise failed

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

    async def _store_pending(self, runtime: JailRuntime) -> None:
        """Store what changed in the jail's pending failures outside any batch (expiry, manual
        bans), so that the jail that replaces it finds them as they are."""
        await self._apply(runtime, [])

    async def _expire(self, now: float) -> None:
        for runtime in self.jails.values():
            unbans = runtime.jail.expire(now)
            if unbans:
                await self._lift(runtime, unbans)

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

    async def until_started(self) -> None:
        """Return once the jails of the start are all started (or left out)."""
        await self._started.wait()

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
        maxmatches``): its bans, ignore list and pending failures are kept. Inside changes()."""
        runtime = self.jails[name]
        jail = Jail(settings, clock=self.clock, history=self._history, ignore=runtime.jail.ignore)
        jail.restore(runtime.jail.active_bans(), now=self.clock.now())
        jail.take_over_pending(runtime.jail)
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
        await self._stop_following(name)
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
            source = open_file(
                runtime.settings,
                runtime.journalmatch,
                path,
                "tail" if from_tail else "head",
                checkpoint=None,
            )
            self._add_source(runtime, source, None)
            if self._watcher is not None:
                self._watcher.add(path)
                self._follow(runtime, source)
            logger.info("[%s] following %s", name, path)
        return list(runtime.tails)

    def remove_logpath(self, name: str, path: str) -> list[str]:
        """Stop following ``path`` in jail ``name`` (``set JAIL dellogpath FILE``; a file not
        followed is no error, as in fail2ban); the jail's files are returned."""
        runtime = self.jails[name]
        source = runtime.tails.get(path)
        if source is not None:
            task = self._follow_tasks.pop((name, source.key), None)
            if task is not None:
                task.cancel()  # it waits for the lock the caller holds, or for the file
            del runtime.sources[source.key]
            source.close()
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
        names = [only] if only else sorted(set(self.jails) | set(self.failed) | set(built))
        for name in names:
            old = self.jails.pop(name, None)
            self.failed.pop(name, None)
            await self._stop_following(name)
            if old is not None:
                await self._store_pending(old)
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
                if self._watcher is not None:  # running: follow its sources now
                    self._start_following(new)
        if self._watcher is not None:
            for path in self._watched_paths():
                self._watcher.add(path)
        logger.info("configuration reloaded (%s)", only or "all jails")
        return "OK"


async def _cancelled(task: asyncio.Future[None]) -> None:
    """Cancel ``task`` and wait for it to end; a bug it raised is shown, not raised."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # a bug: shown, but the rest is still stopped and cleaned up
        logger.exception("a task of the main loop failed")


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

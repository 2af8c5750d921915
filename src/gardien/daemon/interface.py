"""The daemon as its control socket and its metrics endpoint see it: :class:`DaemonControl`.

:class:`~gardien.daemon.commands.Commands` (with :class:`~gardien.daemon.options.Options`) and
:class:`~gardien.daemon.metrics.MetricsEndpoint` are typed against this protocol, not against
:class:`~gardien.daemon.server.Daemon`, and use none of the daemon's private members: what they
may read and change is all here, and a test double is a small class.

A command that changes state holds :meth:`DaemonControl.changes` around what it does, so it
never interleaves with the pipeline or a reload; the methods that say *inside changes()* expect
it held. A ban or unban asked for through :meth:`DaemonControl.ban_addresses` and
:meth:`DaemonControl.unban_addresses` goes the way of one decided by the pipeline (store first,
then actions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gardien.clock import Clock
from gardien.model import Address, Ban
from gardien.settings import DaemonSettings, JailSettings

if TYPE_CHECKING:
    from gardien.daemon.server import JailRuntime

__all__ = ["DaemonControl"]


class DaemonControl(Protocol):
    """What the control commands and the metrics endpoint may read and change of a daemon."""

    # ---- read --------------------------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        """The configuration directory it reads (and reloads)."""
        ...

    @property
    def settings(self) -> DaemonSettings:
        """The daemon's settings in force."""
        ...

    @property
    def socket_path(self) -> str:
        """Its control socket."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock its jails count with."""
        ...

    @property
    def jails(self) -> Mapping[str, JailRuntime]:
        """The running jails, by name (read them, do not add or remove one)."""
        ...

    @property
    def failed(self) -> Mapping[str, str]:
        """Jails not started because their source cannot be read: name -> why."""
        ...

    def log_files(self, name: str) -> list[str]:
        """The log files running jail ``name`` follows now."""
        ...

    def log_sources(self, name: str) -> int:
        """How many log files or journals running jail ``name`` reads."""
        ...

    async def until_started(self) -> None:
        """Return once the jails of the start are all started (or left out), at once after:
        ``status`` and the other reading commands then see them all."""
        ...

    # ---- change ------------------------------------------------------------------------
    def changes(self) -> AbstractAsyncContextManager[None]:
        """Hold it around a change of state: one at a time (pipeline, reload, command)."""
        ...

    def request_stop(self) -> None:
        """Stop the daemon soon (its main loop ends, then its shutdown)."""
        ...

    async def ban_addresses(self, name: str, addresses: Sequence[Address]) -> list[Ban]:
        """Ban ``addresses`` in jail ``name``, checked by the caller (none ignored nor banned
        already); the bans made. Inside changes()."""
        ...

    async def unban_addresses(
        self, name: str, addresses: Sequence[Address], *, reason: str = "manual"
    ) -> int:
        """Lift the bans of ``addresses`` in jail ``name`` (those not banned are passed
        over); how many were lifted. Inside changes()."""
        ...

    async def reconfigure(self, only: str | None) -> str:
        """Re-read the configuration, of every jail or ``only`` one; a broken one is refused
        (:class:`~gardien.errors.ConfigError`) and the running one stays. Inside changes()."""
        ...

    async def stop_jail(self, name: str) -> None:
        """Stop running jail ``name``, its bans kept in the store. Inside changes()."""
        ...

    def retune_jail(self, name: str, settings: JailSettings) -> None:
        """Give running jail ``name`` new counting and ban times (``settings``), keeping its
        bans and the failures it counts. Inside changes()."""
        ...

    def add_logpath(self, name: str, path: str, from_tail: bool) -> list[str]:
        """Follow one more file in jail ``name``; its files. Inside changes()."""
        ...

    def remove_logpath(self, name: str, path: str) -> list[str]:
        """Stop following ``path`` in jail ``name``; its files. Inside changes()."""
        ...

    def set_loglevel(self, level: str) -> str:
        """Log at ``level`` from now on; the level's name."""
        ...

    def set_logtarget(self, target: str) -> str:
        """Log to ``target`` from now on."""
        ...

    def set_dbpurgeage(self, seconds: float) -> float:
        """Keep ban history for ``seconds`` from now on."""
        ...

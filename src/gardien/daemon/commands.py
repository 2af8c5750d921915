"""The control commands: what each request of the control socket (``status``, ``get``, ``set``,
``banned``, ``unban``, ``reload``, ``stop``, ``flushlogs``...: fail2ban-client's names) does to
a running :class:`~gardien.daemon.server.Daemon`.

:class:`Commands` is the :class:`~gardien.daemon.control.ControlHandler` the daemon gives its
control socket; the socket, the wire format and the checks on a request's shape are in
:mod:`gardien.daemon.control`. A command that changes state takes the daemon's lock, so it never
interleaves with the pipeline or a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gardien import __version__
from gardien.config.values import parse_duration
from gardien.daemon.control import Request
from gardien.daemon.logs import reopen_log_files
from gardien.errors import ConfigError, JailError
from gardien.jails import Jail
from gardien.model import Address, parse_address

if TYPE_CHECKING:
    from gardien.daemon.server import Daemon, JailRuntime

__all__ = ["Commands"]


class Commands:
    """Answers the control socket's requests for ``daemon``; a companion of the daemon, it
    uses the daemon's lock and its ``_apply``/``_lift``/``_reload`` so that a ban or unban
    asked for here goes through the same path (store first, then actions) as one decided by
    the pipeline."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    async def handle(self, request: Request) -> Any:
        """Answer one control request (see :mod:`gardien.daemon.control`)."""
        command, args = request.command, request.args
        if command == "ping":
            return "pong"
        if command == "version":
            return __version__
        if command == "stop":
            asyncio.get_running_loop().call_soon(self._daemon.request_stop)
            return "Shutdown successful"
        if command == "status":
            if args:
                return self._status(args[0])
            return {"jails": list(self._daemon.jails), "not_started": dict(self._daemon.failed)}
        if command == "get":
            return self._get(args)
        if command == "flushlogs":
            return self._flush_logs()
        async with self._daemon._lock:
            if command == "set":
                return await self._set(args)
            if command == "banned":
                return self._banned(args)
            if command == "unban":
                return await self._unban_everywhere(args)
            if command == "reload":
                return await self._daemon._reload(args[0] if args else None)
        raise ConfigError(f"unknown command {command!r}")

    @staticmethod
    def _flush_logs() -> str:
        """Reopen the log file (logrotate's postrotate); nothing to do when there is none."""
        reopened = reopen_log_files()
        if not reopened:
            return "gardien does not log to a file (logtarget): nothing to reopen"
        return f"log file reopened: {', '.join(reopened)}"

    def _jail(self, name: str) -> JailRuntime:
        runtime = self._daemon.jails.get(name)
        if runtime is None and name in self._daemon.failed:
            raise JailError(f"jail {name!r} is not running: {self._daemon.failed[name]}")
        if runtime is None:
            raise ConfigError(
                f"unknown jail {name!r} (running: {', '.join(self._daemon.jails) or 'none'})"
            )
        return runtime

    def _status(self, name: str) -> dict[str, Any]:
        runtime = self._jail(name)
        status = runtime.jail.status(self._daemon.clock.now())
        return {
            "jail": name,
            "currently_failed": status.currently_failed,
            "total_failed": status.total_failed,
            "files": list(runtime.tails),
            "currently_banned": status.currently_banned,
            "total_banned": status.total_banned,
            "banned": [str(address) for address in status.banned],
        }

    def _get(self, args: Sequence[str]) -> Any:
        if len(args) == 1:
            option = args[0].lower()
            daemon = {
                "dbpurgeage": self._daemon.settings.dbpurgeage,
                "dbfile": self._daemon.settings.dbfile,
                "socket": self._daemon.socket_path,
                "pidfile": self._daemon.settings.pidfile,
                "loglevel": self._daemon.settings.loglevel,
                "logtarget": self._daemon.settings.logtarget,
            }
            if option not in daemon:
                raise ConfigError(
                    f"unknown option {args[0]!r} (daemon options: {', '.join(daemon)})"
                )
            return daemon[option]
        runtime = self._jail(args[0])
        settings = runtime.settings
        option = args[1].lower()
        values: dict[str, Any] = {
            "bantime": settings.bantime,
            "findtime": settings.findtime,
            "maxretry": settings.maxretry,
            "maxmatches": settings.maxmatches,
            "ignoreip": list(runtime.jail.ignore.entries),
            "ignoreself": settings.ignoreself,
            "logpath": list(runtime.tails),
            "usedns": settings.usedns,
            "backend": settings.backend,
            "banip": [str(a) for a in runtime.jail.status(self._daemon.clock.now()).banned],
            "actions": [str(a) for a in settings.actions],
            "filter": str(settings.filter),
        }
        if option not in values:
            raise ConfigError(
                f"unknown option {args[1]!r} for jail {args[0]!r} (options: {', '.join(values)})"
            )
        return values[option]

    @staticmethod
    def _addresses(texts: Sequence[str]) -> list[Address]:
        """Every text as an address, or an error naming the first that is not (so that a
        request with one bad address changes nothing)."""
        found: list[Address] = []
        for text in texts:
            address = parse_address(text)
            if address is None:
                raise JailError(f"{text!r} is not an IP address")
            found.append(address)
        return found

    async def _set(self, args: Sequence[str]) -> Any:
        if args[0].lower() == "dbpurgeage" and len(args) == 2:
            self._daemon.settings = replace(
                self._daemon.settings, dbpurgeage=parse_duration(args[1])
            )
            return self._daemon.settings.dbpurgeage
        if len(args) < 3:
            raise ConfigError("set takes JAIL OPTION VALUE..., or dbpurgeage VALUE")
        runtime = self._jail(args[0])
        option, values = args[1].lower(), args[2:]
        if option == "banip":
            addresses = self._addresses(values)
            for address in addresses:  # check all before banning any
                reason = runtime.jail.ignore.contains(address)
                if reason is not None:
                    raise JailError(f"{address} is not banned: it is ignored ({reason})")
            bans = [runtime.jail.ban(address) for address in addresses]
            await self._daemon._apply(runtime, bans)
            return len(bans)
        if option == "unbanip":
            addresses = self._addresses(values)
            unbans = [u for u in (runtime.jail.unban(a) for a in addresses) if u is not None]
            if len(unbans) < len(addresses):
                missing = [str(a) for a in addresses if all(u.address != a for u in unbans)]
                if not unbans:
                    raise JailError(f"not banned in {runtime.name}: {', '.join(missing)}")
            await self._daemon._lift(runtime, [replace(u, reason="manual") for u in unbans])
            return len(unbans)
        if option in ("addignoreip", "delignoreip"):
            changed = 0
            for value in values:
                changed += (
                    runtime.jail.ignore.add(value)
                    if option == "addignoreip"
                    else runtime.jail.ignore.remove(value)
                )
            return list(runtime.jail.ignore.entries)
        if option in ("bantime", "findtime", "maxretry") and len(values) == 1:
            return await self._retune(runtime, option, values[0])
        raise ConfigError(
            f"cannot set {args[1]!r} on jail {runtime.name!r} (banip, unbanip, "
            "addignoreip, delignoreip, bantime, findtime, maxretry)"
        )

    async def _retune(self, runtime: JailRuntime, option: str, value: str) -> Any:
        """Change bantime/findtime/maxretry of a running jail, keeping its bans."""
        settings = runtime.settings
        number: float
        if option == "maxretry":
            try:
                count = int(value)
            except ValueError:
                raise ConfigError(f"maxretry must be a whole number, got {value!r}") from None
            if count < 1:
                raise ConfigError("maxretry must be 1 or more")
            settings, number = replace(settings, maxretry=count), count
        elif option == "findtime":
            number = parse_duration(value)
            if number <= 0:
                raise ConfigError("findtime must be longer than 0 seconds")
            settings = replace(settings, findtime=number)
        else:
            number = parse_duration(value)
            settings = replace(settings, bantime=number)
        jail = Jail(
            settings,
            clock=self._daemon.clock,
            history=self._daemon._history,
            ignore=runtime.jail.ignore,
        )
        jail.restore(runtime.jail.active_bans(), now=self._daemon.clock.now())
        runtime.settings, runtime.jail = settings, jail
        return number

    def _banned(self, args: Sequence[str]) -> Any:
        wanted = set(self._addresses(args)) if args else None
        result: dict[str, list[str]] = {}
        for runtime in self._daemon.jails.values():
            for ban in runtime.jail.active_bans():
                if wanted is None or ban.address in wanted:
                    result.setdefault(str(ban.address), []).append(runtime.name)
        return [{"ip": ip, "jails": jails} for ip, jails in sorted(result.items())]

    async def _unban_everywhere(self, args: Sequence[str]) -> int:
        everything = list(args) == ["--all"]
        addresses = None if everything else set(self._addresses(args))
        total = 0
        for runtime in self._daemon.jails.values():
            targets = [
                b.address
                for b in runtime.jail.active_bans()
                if addresses is None or b.address in addresses
            ]
            unbans = [u for u in (runtime.jail.unban(a) for a in targets) if u is not None]
            if unbans:
                await self._daemon._lift(runtime, [replace(u, reason="manual") for u in unbans])
            total += len(unbans)
        return total

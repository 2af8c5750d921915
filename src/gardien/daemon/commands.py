"""The control commands: what each request of the control socket (``status``, ``stats``,
``banned``, ``unban``, ``reload``, ``start``/``stop`` of a jail, ``flushlogs``...:
fail2ban-client's names) does to a running :class:`~gardien.daemon.server.Daemon`; ``get`` and
``set`` of options are in :mod:`gardien.daemon.options`.

:class:`Commands` is the :class:`~gardien.daemon.control.ControlHandler` the daemon gives its
control socket; the socket, the wire format and the checks on a request's shape are in
:mod:`gardien.daemon.control`. It sees the daemon through
:class:`~gardien.daemon.interface.DaemonControl` only; a command that changes state holds the
daemon's ``changes()``, so it never interleaves with the pipeline or a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gardien._version import __version__
from gardien.daemon.control import Request
from gardien.daemon.interface import DaemonControl
from gardien.daemon.logs import reopen_log_files
from gardien.daemon.options import Options, parse_addresses
from gardien.errors import ConfigError, JailError, UnknownJailError

if TYPE_CHECKING:
    from gardien.daemon.server import JailRuntime

__all__ = ["Commands"]


class Commands:
    """Answers the control socket's requests for ``daemon``: a ban or unban asked for here
    goes through the same path (store first, then actions) as one decided by the pipeline."""

    #: the status flavors of fail2ban-client (``status JAIL short``); cymru needs whois
    #: lookups at Team Cymru, which gardien does not make
    FLAVORS = ("basic", "short", "stats")

    def __init__(self, daemon: DaemonControl) -> None:
        self._daemon = daemon
        self._options = Options(daemon)

    async def handle(self, request: Request) -> Any:
        """Answer one control request (see :mod:`gardien.daemon.control`)."""
        command, args = request.command, request.args
        daemon = self._daemon
        if command == "ping":
            return "pong"
        if command == "version":
            return __version__
        if command == "echo":
            return list(args)
        if command == "stop" and not args:
            asyncio.get_running_loop().call_soon(daemon.request_stop)
            return "Shutdown successful"
        # the socket answers while the jails start (ping says the daemon is up); what reads
        # or changes the jails waits until they have all started
        await daemon.until_started()
        if command == "status":
            return self._status_command(args)
        if command == "stats":
            return {name: self._stats(runtime) for name, runtime in daemon.jails.items()}
        if command == "get":
            return self._options.get(args)
        if command == "flushlogs":
            return self._flush_logs()
        async with daemon.changes():
            if command == "set":
                return await self._options.set(args)
            if command == "banned":
                return self._banned(args)
            if command == "unban":
                return await self._unban_everywhere(args)
            if command == "reload":
                return await self._reload(args)
            if command == "stop":
                self._options.jail(args[0])
                await daemon.stop_jail(args[0])
                return None
            if command == "start":
                if args[0] in daemon.jails:
                    raise JailError(f"jail {args[0]!r} is already running")
                await self._reload_one(args[0])
                return None
        raise ConfigError(f"unknown command {command!r}")

    @staticmethod
    def _flush_logs() -> str:
        """Reopen the log file (logrotate's postrotate): fail2ban's ``rolled over``, or its
        ``flushed`` when the daemon does not log to a file."""
        return "rolled over" if reopen_log_files() else "flushed"

    def _status_command(self, args: Sequence[str]) -> Any:
        daemon = self._daemon
        if not args:
            return {"jails": list(daemon.jails), "not_started": dict(daemon.failed)}
        flavor = args[1].lower() if len(args) > 1 else "basic"
        if flavor not in self.FLAVORS:
            raise ConfigError(
                f"status flavor {args[1]!r}: gardien shows {', '.join(self.FLAVORS)} "
                "(cymru needs whois lookups at Team Cymru, which gardien does not make)"
            )
        if args[0] == "--all":
            return {
                "jails": list(daemon.jails),
                "not_started": dict(daemon.failed),
                "status": {name: self._status(name) for name in daemon.jails},
            }
        return self._status(args[0])

    def _status(self, name: str) -> dict[str, Any]:
        runtime = self._options.jail(name)
        status = runtime.jail.status(self._daemon.clock.now())
        return {
            "jail": name,
            "currently_failed": status.currently_failed,
            "total_failed": status.total_failed,
            "over_budget": runtime.over_budget,
            "files": self._daemon.log_files(name),
            "currently_banned": status.currently_banned,
            "total_banned": status.total_banned,
            "banned": [str(address) for address in status.banned],
        }

    def _stats(self, runtime: JailRuntime) -> dict[str, Any]:
        status = runtime.jail.status(self._daemon.clock.now())
        return {
            "backend": runtime.settings.backend,
            "failed": [status.currently_failed, status.total_failed],
            "banned": [status.currently_banned, status.total_banned],
        }

    def _banned(self, args: Sequence[str]) -> Any:
        """``banned``: ``[{"ip", "jails"}]`` (for IPs given, or all); ``banned --by-jail``:
        each jail's banned addresses in the order of their bans, as fail2ban lists them."""
        jails = self._daemon.jails.values()
        if list(args) == ["--by-jail"]:
            return {r.name: [str(b.address) for b in r.jail.active_bans()] for r in jails}
        wanted = set(parse_addresses(args)) if args else None
        result: dict[str, list[str]] = {}
        for runtime in jails:
            for ban in runtime.jail.active_bans():
                if wanted is None or ban.address in wanted:
                    result.setdefault(str(ban.address), []).append(runtime.name)
        return [{"ip": ip, "jails": names} for ip, names in sorted(result.items())]

    async def _reload(self, args: Sequence[str]) -> str:
        """``reload [--restart] [--unban] [--all] [--if-exists] [JAIL]``. gardien's reload
        restarts the jails it reloads (their bans kept), so ``--restart`` changes nothing and
        ``--all`` is what it always does; ``--unban`` lifts their bans first."""
        flags = {a for a in args if a.startswith("--")}
        names = [a for a in args if not a.startswith("--")]
        unknown = flags - {"--restart", "--unban", "--all", "--if-exists"}
        if unknown or len(names) > 1:
            raise ConfigError(
                "reload takes [--restart] [--unban] [--all] [--if-exists] [JAIL], got "
                + " ".join(args)
            )
        only = names[0] if names else None
        daemon = self._daemon
        absent = only is not None and only not in daemon.jails and only not in daemon.failed
        if absent and "--if-exists" in flags:
            return "OK"
        if "--unban" in flags:
            for runtime in list(daemon.jails.values()):
                if only is None or runtime.name == only:
                    await self._lift_all(runtime)
        return await daemon.reconfigure(only)

    async def _reload_one(self, name: str) -> str:
        try:
            return await self._daemon.reconfigure(name)
        except ConfigError as error:
            if "unknown jail" in str(error):
                raise UnknownJailError(f"unknown jail {name!r} in the configuration") from None
            raise

    async def _lift_all(self, runtime: JailRuntime) -> int:
        addresses = [ban.address for ban in runtime.jail.active_bans()]
        return await self._daemon.unban_addresses(runtime.name, addresses)

    async def _unban_everywhere(self, args: Sequence[str]) -> int:
        everything = list(args) == ["--all"]
        addresses = None if everything else set(parse_addresses(args))
        total = 0
        for runtime in list(self._daemon.jails.values()):
            targets = [
                b.address
                for b in runtime.jail.active_bans()
                if addresses is None or b.address in addresses
            ]
            total += await self._daemon.unban_addresses(runtime.name, targets)
        return total

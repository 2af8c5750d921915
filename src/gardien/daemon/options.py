"""``get`` and ``set`` of the control socket: the options of the daemon and of its jails, with
fail2ban-client's names (``get sshd bantime``, ``set sshd banip IP...``, ``set loglevel DEBUG``).

A companion of :class:`~gardien.daemon.commands.Commands`: the results are plain JSON values
(numbers, lists, ``[ip, start, end]`` rows), which the CLI prints as fail2ban-client does. An
option fail2ban can change at run time but gardien cannot (its regexes, actions, date pattern...
are compiled once from the configuration) is refused with one line saying to change the
configuration and reload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gardien.config.jails import jail_filter
from gardien.config.values import parse_duration
from gardien.daemon.interface import DaemonControl
from gardien.errors import ConfigError, JailError, UnknownJailError
from gardien.model import Address, parse_address

if TYPE_CHECKING:
    from gardien.daemon.server import JailRuntime

__all__ = ["CHECK", "FIXED_AT_START", "Options"]

#: first word after ``banip``/``unbanip`` asking to check a batch without changing anything
#: (the CLI checks every batch of a long list before sending any, so one bad address bans none)
CHECK = "--check"

#: what fail2ban can change in a running jail and gardien cannot (reload instead)
FIXED_AT_START = frozenset(
    {
        "idle",
        "ignoreself",
        "ignorecommand",
        "ignorecache",
        "logencoding",
        "addjournalmatch",
        "deljournalmatch",
        "addfailregex",
        "delfailregex",
        "addignoreregex",
        "delignoreregex",
        "datepattern",
        "usedns",
        "maxlines",
        "addaction",
        "delaction",
        "action",
        "attempt",
    }
)
_NOT_AT_RUN_TIME = (
    "gardien compiles it once from the configuration: change the jail's configuration "
    "and run `gardien reload {jail}`"
)
_DAEMON_GET = ("loglevel", "logtarget", "syslogsocket", "dbfile", "dbpurgeage", "dbmaxmatches")


def parse_addresses(texts: Sequence[str]) -> list[Address]:
    """Every text as an address, or a :class:`JailError` naming the first that is not (so
    that a request with one bad address changes nothing)."""
    found: list[Address] = []
    for position, text in enumerate(texts, 1):
        address = parse_address(text)
        if address is None:
            raise JailError(f"{text!r} is not an IP address (address {position} of {len(texts)})")
        found.append(address)
    return found


class Options:
    """Reads and changes the options of ``daemon`` and its jails."""

    def __init__(self, daemon: DaemonControl) -> None:
        self._daemon = daemon

    def jail(self, name: str) -> JailRuntime:
        """The running jail ``name``, or an error saying why there is none."""
        daemon = self._daemon
        runtime = daemon.jails.get(name)
        if runtime is None and name in daemon.failed:
            raise JailError(f"jail {name!r} is not running: {daemon.failed[name]}")
        if runtime is None:
            raise UnknownJailError(
                f"unknown jail {name!r} (running: {', '.join(daemon.jails) or 'none'})"
            )
        return runtime

    # ---- get -----------------------------------------------------------------------------
    def get(self, args: Sequence[str]) -> Any:
        """The value ``get [JAIL] OPTION ...`` asks for."""
        if len(args) == 1:
            return self._get_daemon(args[0].lower())
        runtime = self.jail(args[0])
        option, rest = args[1].lower(), args[2:]
        settings = runtime.settings
        now = self._daemon.clock.now()
        if option == "banned":
            if not rest:
                return [str(ban.address) for ban in runtime.jail.active_bans()]
            flags = [int(runtime.jail.banned(a) is not None) for a in parse_addresses(rest)]
            return flags[0] if len(flags) == 1 else flags
        if option == "banip":  # ordered by end of ban, as fail2ban does
            bans = sorted(
                runtime.jail.active_bans(),
                key=lambda b: (float("inf") if b.end is None else b.end, b.start),
            )
            return [[str(b.address), b.start, b.end] for b in bans if b.remaining(now) != 0]
        if option in ("action", "actionproperties", "actionmethods"):
            raise ConfigError(
                f"get {option}: gardien's actions are built in (not fail2ban's command "
                "actions), so they have no commands, properties or methods to show"
            )
        simple: dict[str, Any] = {
            "bantime": settings.bantime,
            "findtime": settings.findtime,
            "maxretry": settings.maxretry,
            "maxmatches": settings.maxmatches,
            "ignoreip": list(runtime.jail.ignore.entries),
            "ignoreself": settings.ignoreself,
            "ignorecommand": settings.ignorecommand or False,
            "logpath": self._daemon.log_files(runtime.name),
            "logencoding": "UTF-8"
            if settings.logencoding.lower() == "auto"
            else settings.logencoding,
            "journalmatch": _journal_groups(runtime.journalmatch),
            "usedns": settings.usedns,
            "backend": settings.backend,
            "actions": [spec.name for spec in settings.actions],
            "filter": str(settings.filter),
        }
        if option in simple:
            return simple[option]
        if option in ("failregex", "ignoreregex", "datepattern", "maxlines"):
            if runtime.matcher is None:
                raise ConfigError(f"jail {runtime.name!r} is fed by a hub: it has no filter")
            spec = jail_filter(settings, self._daemon.config_dir)
            if option == "maxlines":
                return spec.maxlines
            if option == "datepattern":
                return [None, spec.datepattern or "Default Detectors"]
            sources = spec.failregex if option == "failregex" else spec.ignoreregex
            return [source.pattern for source in sources]
        raise ConfigError(
            f"unknown option {args[1]!r} for jail {args[0]!r} (options: banned, banip, "
            f"{', '.join(simple)}, failregex, ignoreregex, datepattern, maxlines)"
        )

    def _get_daemon(self, option: str) -> Any:
        settings = self._daemon.settings
        values: dict[str, Any] = {
            "loglevel": settings.loglevel,
            "logtarget": settings.logtarget,
            "syslogsocket": "auto",
            "dbfile": settings.dbfile,
            "dbpurgeage": settings.dbpurgeage,
            "dbmaxmatches": None,
            "socket": self._daemon.socket_path,
            "pidfile": settings.pidfile,
        }
        if option not in values:
            raise ConfigError(f"unknown option {option!r} (daemon options: {', '.join(values)})")
        if option == "dbmaxmatches":
            raise ConfigError(
                "dbmaxmatches: gardien keeps each jail's maxmatches lines with a ban "
                "(get JAIL maxmatches)"
            )
        return values[option]

    # ---- set -----------------------------------------------------------------------------
    async def set(self, args: Sequence[str]) -> Any:
        """Carry out ``set [JAIL] OPTION VALUE...`` (the caller holds the daemon's lock)."""
        option = args[0].lower()
        if len(args) == 2 and option in (*_DAEMON_GET, "socket", "pidfile"):
            return self._set_daemon(option, args[1])
        if len(args) < 3:
            raise ConfigError("set takes JAIL OPTION VALUE..., or a daemon OPTION VALUE")
        runtime = self.jail(args[0])
        option, values = args[1].lower(), list(args[2:])
        if option == "banip":
            return await self._ban(runtime, values)
        if option == "unbanip":
            return await self._unban(runtime, values)
        if option in ("addignoreip", "delignoreip"):
            for value in values:
                if option == "addignoreip":
                    runtime.jail.ignore.add(value)
                else:
                    runtime.jail.ignore.remove(value)
            return list(runtime.jail.ignore.entries)
        if option == "addlogpath" and len(values) in (1, 2):
            where = values[1].lower() if len(values) == 2 else "head"
            if where not in ("head", "tail"):
                raise ConfigError(f"addlogpath: {values[1]!r} is neither 'head' nor 'tail'")
            return self._daemon.add_logpath(runtime.name, values[0], where == "tail")
        if option == "dellogpath" and len(values) == 1:
            return self._daemon.remove_logpath(runtime.name, values[0])
        if option in ("bantime", "findtime", "maxretry", "maxmatches") and len(values) == 1:
            return self._retune(runtime, option, values[0])
        if option in FIXED_AT_START:
            raise ConfigError(f"set {option}: " + _NOT_AT_RUN_TIME.format(jail=runtime.name))
        raise ConfigError(
            f"cannot set {args[1]!r} on jail {runtime.name!r} (banip, unbanip, addignoreip, "
            "delignoreip, addlogpath, dellogpath, bantime, findtime, maxretry, maxmatches)"
        )

    def _set_daemon(self, option: str, value: str) -> Any:
        daemon = self._daemon
        if option == "dbpurgeage":
            return daemon.set_dbpurgeage(parse_duration(value))
        if option == "loglevel":
            return daemon.set_loglevel(value)
        if option == "logtarget":
            return daemon.set_logtarget(value)
        raise ConfigError(
            f"set {option}: gardien reads it once at start: change it in gardien.conf "
            "(or fail2ban.local) and restart the daemon"
        )

    async def _ban(self, runtime: JailRuntime, values: list[str]) -> int:
        """Ban the addresses; all are checked before any is banned. The count is of those
        newly banned (an address banned already keeps its ban), as fail2ban counts."""
        check = bool(values) and values[0] == CHECK
        addresses = parse_addresses(values[1:] if check else values)
        jail = runtime.jail
        fresh: list[Address] = []
        for address in addresses:
            reason = jail.ignore.contains(address)
            if reason is not None:
                raise JailError(f"{address} is not banned: it is ignored ({reason})")
            if jail.banned(address) is None:
                fresh.append(address)
        fresh = list(dict.fromkeys(fresh))
        if check:
            return len(fresh)
        bans = await self._daemon.ban_addresses(runtime.name, fresh)
        return len(bans)

    async def _unban(self, runtime: JailRuntime, values: list[str]) -> int:
        """Lift the bans; ``--report-absent`` refuses (and lifts none) if one is not banned."""
        check = bool(values) and values[0] == CHECK
        values = values[1:] if check else values
        report_absent = bool(values) and values[0] == "--report-absent"
        addresses = parse_addresses(values[1:] if report_absent else values)
        absent = [str(a) for a in addresses if runtime.jail.banned(a) is None]
        if report_absent and absent:
            raise JailError(f"not banned in {runtime.name}: {', '.join(absent)}")
        if check:
            return len(addresses) - len(absent)
        return await self._daemon.unban_addresses(runtime.name, addresses)

    def _retune(self, runtime: JailRuntime, option: str, value: str) -> Any:
        """Change bantime/findtime/maxretry/maxmatches of a running jail, keeping its bans."""
        settings = runtime.settings
        number: float
        if option in ("maxretry", "maxmatches"):
            try:
                count = int(value)
            except ValueError:
                raise ConfigError(f"{option} must be a whole number, got {value!r}") from None
            if count < (1 if option == "maxretry" else 0):
                raise ConfigError(f"{option} must be {1 if option == 'maxretry' else 0} or more")
            if option == "maxretry":
                settings = replace(settings, maxretry=count)
            else:
                settings = replace(settings, maxmatches=count)
            number = count
        elif option == "findtime":
            number = parse_duration(value)
            if number <= 0:
                raise ConfigError("findtime must be longer than 0 seconds")
            settings = replace(settings, findtime=number)
        else:
            number = parse_duration(value)
            settings = replace(settings, bantime=number)
        self._daemon.retune_jail(runtime.name, settings)
        return number


def _journal_groups(journalmatch: Sequence[str]) -> list[list[str]]:
    """``journalmatch`` split at its ``+`` (fail2ban's groups of matches)."""
    groups: list[list[str]] = [[]]
    for word in journalmatch:
        if word == "+":
            groups.append([])
        else:
            groups[-1].append(word)
    return [group for group in groups if group]

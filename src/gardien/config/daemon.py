"""Daemon settings: ``gardien.conf`` (``[Definition]``, with ``[DEFAULT]`` as fallback).

A fail2ban directory has no ``gardien.conf``; its ``fail2ban.conf`` holds the same options
(``socket``, ``pidfile``, ``dbfile``, ``dbpurgeage``, ``loglevel``, ``logtarget``) and is read
instead, so that ``gardien -c /etc/fail2ban`` works as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gardien.config.ini import Located
from gardien.config.reader import ConfigSet, resource_files
from gardien.config.values import parse_bool, parse_duration
from gardien.errors import ConfigError

__all__ = ["LOG_LEVELS", "DaemonSettings", "load_daemon_settings"]

SECTION = "Definition"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
_FAIL2BAN_LEVELS = {"0": "CRITICAL", "1": "ERROR", "2": "WARNING", "3": "INFO", "4": "DEBUG"}


@dataclass(frozen=True)
class DaemonSettings:
    """Where the daemon keeps its socket, pid file and database, and how it logs."""

    socket: str = "/run/gardien/gardien.sock"
    pidfile: str = "/run/gardien/gardien.pid"
    dbfile: str = "/var/lib/gardien/gardien.sqlite3"
    dbpurgeage: float = 86400.0  # seconds; ban history older than this is purged
    loglevel: str = "INFO"
    logtarget: str = "STDERR"
    keepbans: bool = False  # leave bans in the firewall at stop (they carry kernel timeouts)
    files: tuple[str, ...] = ()


def load_daemon_settings(config_dir: str | os.PathLike[str]) -> DaemonSettings:
    """Read ``gardien.conf`` (else ``fail2ban.conf``) under ``config_dir``; defaults otherwise."""
    directory = Path(config_dir)
    files = resource_files(directory, "gardien") or resource_files(directory, "fail2ban")
    if not files:
        return DaemonSettings()
    config = ConfigSet.read_files(files)
    defaults = DaemonSettings()

    def text(option: str, default: str) -> tuple[str, Located | None]:
        located = config.raw(SECTION, option)
        if located is None:
            return default, None
        try:
            return config.interpolate(SECTION, located).strip(), located
        except ConfigError as error:
            raise error.located(path=located.path, line=located.line, option=option) from None

    def invalid(located: Located | None, option: str, message: str) -> ConfigError:
        return ConfigError(
            message,
            path=located.path if located else None,
            line=located.line if located else None,
            section=SECTION,
            option=option,
        )

    purge_text, purge_at = text("dbpurgeage", "")
    dbpurgeage = defaults.dbpurgeage
    if purge_text:
        try:
            dbpurgeage = parse_duration(purge_text)
        except ConfigError as error:
            raise invalid(purge_at, "dbpurgeage", error.message) from None
    level, level_at = text("loglevel", defaults.loglevel)
    level = _FAIL2BAN_LEVELS.get(level, level.upper())
    if level in ("NOTSET", "TRACEDEBUG", "HEAVYDEBUG") or level.isdigit():
        level = "DEBUG"
    if level not in LOG_LEVELS:
        raise invalid(
            level_at,
            "loglevel",
            f"unknown log level {level!r}: expected one of " + ", ".join(LOG_LEVELS),
        )
    keep_text, keep_at = text("keepbans", "no")
    try:
        keepbans = parse_bool(keep_text)
    except ConfigError as error:
        raise invalid(keep_at, "keepbans", error.message) from None
    return DaemonSettings(
        keepbans=keepbans,
        socket=text("socket", defaults.socket)[0],
        pidfile=text("pidfile", defaults.pidfile)[0],
        dbfile=text("dbfile", defaults.dbfile)[0],
        dbpurgeage=dbpurgeage,
        loglevel=level,
        logtarget=text("logtarget", defaults.logtarget)[0],
        files=tuple(config.files),
    )

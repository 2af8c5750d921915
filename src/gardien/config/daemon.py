"""Daemon settings: ``gardien.conf`` (``[Definition]``, with ``[DEFAULT]`` as fallback).

A fail2ban directory has no ``gardien.conf``; its ``fail2ban.conf`` holds the same options
(``socket``, ``pidfile``, ``dbfile``, ``dbpurgeage``, ``loglevel``, ``logtarget``) and is read
instead, so that ``gardien -c /etc/fail2ban`` works as it is.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from gardien.config.ini import Located
from gardien.config.reader import ConfigSet, resource_files
from gardien.config.values import parse_bool, parse_duration
from gardien.errors import ConfigError
from gardien.settings import DaemonSettings  # re-exported: it was defined here

__all__ = [
    "LOG_LEVELS",
    "DaemonSettings",
    "daemon_settings_from_files",
    "load_daemon_settings",
    "parse_metrics_address",
]

SECTION = "Definition"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
_FAIL2BAN_LEVELS = {"0": "CRITICAL", "1": "ERROR", "2": "WARNING", "3": "INFO", "4": "DEBUG"}


def load_daemon_settings(config_dir: str | os.PathLike[str]) -> DaemonSettings:
    """Read ``gardien.conf`` (else ``fail2ban.conf``) under ``config_dir``; defaults otherwise."""
    directory = Path(config_dir)
    files = resource_files(directory, "gardien") or resource_files(directory, "fail2ban")
    return daemon_settings_from_files(files)


def daemon_settings_from_files(files: list[str]) -> DaemonSettings:
    """The daemon settings ``files`` (read in order, as ``gardien.conf`` and its overrides)
    give; the defaults when there is none."""
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
    metrics_text, metrics_at = text("metrics", "")
    try:
        metrics = parse_metrics_address(metrics_text) if metrics_text else None
    except ConfigError as error:
        raise invalid(metrics_at, "metrics", error.message) from None
    return DaemonSettings(
        keepbans=keepbans,
        metrics=metrics,
        socket=text("socket", defaults.socket)[0],
        pidfile=text("pidfile", defaults.pidfile)[0],
        dbfile=text("dbfile", defaults.dbfile)[0],
        dbpurgeage=dbpurgeage,
        loglevel=level,
        logtarget=text("logtarget", defaults.logtarget)[0],
        files=tuple(config.files),
    )


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` of the metrics endpoint (``127.0.0.1:9191``, ``[::1]:9191``,
    ``localhost:9191``) as ``(host, port)``; raises :class:`ConfigError` unless the host is a
    loopback address: the endpoint has no authentication and shows what the jails see."""
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not host:
        raise ConfigError(f"expected HOST:PORT such as 127.0.0.1:9191, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"write an IPv6 address in brackets, as in [::1]:9191, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not port_text.isdigit() or not 1 <= port <= 65535:
        raise ConfigError(f"the port must be a number from 1 to 65535, got {port_text!r}")
    if host.lower() == "localhost":
        return "localhost", port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{host!r} is not an IP address: use 127.0.0.1, [::1] or localhost"
        ) from None
    loopback = (
        address.is_loopback if address.version == 4 else address == ipaddress.IPv6Address("::1")
    )
    if not loopback:
        raise ConfigError(
            f"{host} is not a loopback address: the endpoint has no authentication, so it "
            "listens on 127.0.0.1, [::1] or localhost only; to scrape it from elsewhere, put a "
            "reverse proxy (with TLS and authentication) or an SSH tunnel in front of it"
        )
    return str(address), port

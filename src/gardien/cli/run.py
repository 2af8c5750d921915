"""``gardien run``: the daemon, in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import click

from gardien.config.daemon import load_daemon_settings, parse_metrics_address
from gardien.daemon.logs import configure_logging
from gardien.daemon.server import Daemon, install_signal_handlers
from gardien.errors import ConfigError, GardienError
from gardien.store import SQLiteBanStore

logger = logging.getLogger("gardien.daemon")


@click.command()
@click.option("--dbfile", metavar="PATH", help="Ban database (default: dbfile in gardien.conf).")
@click.option("--pidfile", metavar="PATH", help="Pid file (default: pidfile in gardien.conf).")
@click.option(
    "--logtarget",
    metavar="TARGET",
    help="STDERR, STDOUT, SYSLOG, SYSTEMD-JOURNAL or a file (default: gardien.conf).",
)
@click.option("--loglevel", metavar="LEVEL", help="CRITICAL ... DEBUG (default: gardien.conf).")
@click.option("--poll", is_flag=True, help="Watch files by polling instead of inotify.")
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics there; loopback only (default: metrics in gardien.conf).",
)
@click.pass_obj
def run(
    obj: dict[str, Any],
    dbfile: str | None,
    pidfile: str | None,
    logtarget: str | None,
    loglevel: str | None,
    poll: bool,
    metrics: str | None,
) -> None:
    """Run the daemon in the foreground until SIGTERM, SIGINT or `gardien stop`.

    The whole configuration is checked first: a broken one is reported (file:line) and the
    daemon does not start. SIGHUP reloads it.
    """
    config_dir: Path = obj["config_dir"]
    settings = load_daemon_settings(config_dir)
    changes: dict[str, Any] = {}
    if dbfile:
        changes["dbfile"] = dbfile
    if pidfile:
        changes["pidfile"] = pidfile
    if logtarget:
        changes["logtarget"] = logtarget
    if loglevel:
        changes["loglevel"] = loglevel.upper()
    if metrics:
        try:
            changes["metrics"] = parse_metrics_address(metrics)
        except ConfigError as error:
            raise ConfigError(error.message, option="--metrics") from None
    if changes:
        from dataclasses import replace

        settings = replace(settings, **changes)
    handler = configure_logging(settings)
    try:
        asyncio.run(_serve(config_dir, settings, obj.get("socket"), not poll))
    finally:
        logging.getLogger("gardien").removeHandler(handler)


async def _serve(config_dir: Path, settings: Any, socket: str | None, inotify: bool) -> None:
    store = SQLiteBanStore(settings.dbfile)
    daemon = Daemon(config_dir, store, settings=settings, socket_path=socket, use_inotify=inotify)
    pidfile = Path(settings.pidfile)

    def write_pidfile() -> None:
        try:
            pidfile.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            pidfile.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the pid file: {exc.strerror}", path=str(pidfile)
            ) from None

    try:
        try:
            await daemon.start(listening=write_pidfile)
        except GardienError:
            await daemon.abort()
            raise
        install_signal_handlers(daemon, asyncio.get_running_loop())
        await daemon.run()
    finally:
        with contextlib.suppress(OSError):
            if pidfile.read_text().strip() == str(os.getpid()):
                pidfile.unlink()
        store.close()

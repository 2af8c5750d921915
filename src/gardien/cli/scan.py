"""``gardien scan LOG...``: find the addresses old logs would have had banned, try other
settings on them, and ban the offenders through the running daemon."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gardien.cli.regex import parse_now
from gardien.clock import FakeClock, SystemClock
from gardien.config.jails import jail_filter, load_jails
from gardien.config.values import parse_duration
from gardien.daemon.control import ControlClient, batches
from gardien.daemon.host import own_addresses, resolve
from gardien.errors import ConfigError, ControlError, GardienError
from gardien.jails import IgnoreList
from gardien.matching.filter import Filter
from gardien.model import Address
from gardien.offenders import (
    FoundFailures,
    WhatIfRow,
    WouldBan,
    good_addresses,
    order_logs,
    read_failures,
    replay,
    scan_settings,
    what_if,
)
from gardien.settings import JailSettings
from gardien.tester import resolve_filter

__all__ = ["scan"]

WHAT_IF_KEYS = ("maxretry", "findtime")
#: addresses per ``set JAIL banip`` request
BAN_BATCH = 200


@click.command()
@click.argument("logs", metavar="LOG...", nargs=-1, required=True)
@click.option(
    "--filter",
    "filter_",
    metavar="FILTER",
    help="Filter name, file or raw failregex, as for gardien regex "
    "(default: the filter of --jail or --ban).",
)
@click.option(
    "--jail",
    metavar="NAME",
    help="Take filter, findtime, maxretry, bantime and ignoreip from this configured jail.",
)
@click.option("--findtime", metavar="DURATION", help="Window of failures (default 10m).")
@click.option("--maxretry", type=int, metavar="N", help="Failures that ban (default 5).")
@click.option("--bantime", metavar="DURATION", help="Ban length, for repeated bans (default 10m).")
@click.option(
    "--ignoreip",
    metavar="ADDR",
    multiple=True,
    help="Never ban this address or network (repeatable).",
)
@click.option(
    "--now",
    "now_text",
    metavar="ISO-TIME",
    help="Reference time for year-less dates (default: now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--what-if",
    "what_if_specs",
    metavar="SETTING=V1,V2",
    multiple=True,
    help="Count the bans for each combination: maxretry=3,5,10 findtime=10m,1h.",
)
@click.option(
    "--good",
    "good_file",
    metavar="FILE",
    help="Addresses and networks known to be legitimate (one per line), counted in --what-if.",
)
@click.option(
    "--ban",
    "ban_jail",
    metavar="JAIL",
    help="Ban, through the running daemon, the offenders not banned in JAIL already.",
)
@click.pass_obj
def scan(
    obj: dict[str, Any],
    logs: tuple[str, ...],
    filter_: str | None,
    jail: str | None,
    findtime: str | None,
    maxretry: int | None,
    bantime: str | None,
    ignoreip: tuple[str, ...],
    now_text: str | None,
    as_json: bool,
    what_if_specs: tuple[str, ...],
    good_file: str | None,
    ban_jail: str | None,
) -> None:
    """Read old logs (plain or .gz, in any order) and report who would have been banned.

    Files are read oldest first (by modification time, which log rotation keeps), and the
    failures go through a jail as in the daemon: same window, same ignoreip, and an address
    is banned again only once its ban is over.

    \b
    Examples:
      gardien scan /var/log/auth.log* --filter sshd
      gardien scan /var/log/asterisk/messages* --jail asterisk \
          --what-if maxretry=3,5,10 findtime=10m,1h
      gardien scan /var/log/mail.log* --jail postfix-sasl --ban postfix-sasl
    """
    config_dir = Path(obj["config_dir"])
    logs, what_if_specs = _split_what_if(logs, what_if_specs)
    axes = _parse_what_if(what_if_specs)
    if good_file is not None and not axes:
        raise ConfigError("--good is used with --what-if")
    good = good_addresses(good_file) if good_file is not None else None
    order_logs(logs)  # a missing file is reported before anything else is done
    client: ControlClient | None = None
    if ban_jail is not None:
        client = _daemon_client(obj)
        client.call("status", ban_jail)  # running, and has this jail: checked before the work
    settings, compiled = _settings_and_filter(config_dir, jail or ban_jail, filter_)
    settings = scan_settings(
        settings,
        findtime=_duration("--findtime", findtime),
        maxretry=maxretry,
        bantime=_duration("--bantime", bantime),
        ignoreip=ignoreip,
    )
    clock = FakeClock(parse_now(now_text)) if now_text else SystemClock()
    configured = jail is not None or ban_jail is not None
    ignore = IgnoreList.from_settings(
        settings,
        clock=clock,
        own_addresses=own_addresses if configured else None,
        resolve=resolve if configured else None,
    )
    found = _read(compiled, logs, clock, show_progress=sys.stderr.isatty())
    bans = replay(found, settings, ignore=ignore)
    grid = (
        what_if(
            found,
            axes.get("maxretry") or [settings.maxretry],
            axes.get("findtime") or [settings.findtime],
            ignore=ignore,
            good=good,
        )
        if axes
        else []
    )
    outcome = None
    if ban_jail is not None and client is not None:
        outcome = _ban_offenders(client, ban_jail, bans)
    if as_json:
        click.echo(json.dumps(_as_json(found, settings, compiled, bans, grid, outcome)))
    else:
        _print_report(found, settings, compiled, bans, grid, outcome)
    if outcome is not None and outcome.failed:
        raise click.exceptions.Exit(1)


# ---- options -------------------------------------------------------------------------------


def _split_what_if(
    logs: tuple[str, ...], specs: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Accept ``--what-if maxretry=3,5 findtime=10m,1h``: the words after the first setting
    arrive as LOG arguments; those that name a setting and no file are settings."""
    if not specs:
        return logs, specs
    kept, moved = [], []
    for word in logs:
        key = word.split("=", 1)[0]
        if "=" in word and key in WHAT_IF_KEYS and not os.path.exists(word):
            moved.append(word)
        else:
            kept.append(word)
    if not kept:
        raise click.UsageError("Missing argument 'LOG...'.")
    return tuple(kept), (*specs, *moved)


def _parse_what_if(specs: Sequence[str]) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        for word in spec.split():
            key, equals, values = word.partition("=")
            key = key.strip().lower()
            if not equals or key not in WHAT_IF_KEYS:
                raise ConfigError(
                    f"--what-if {word!r}: expected maxretry=N,N... or findtime=DURATION,..."
                )
            parsed: list[Any] = []
            for value in (v.strip() for v in values.split(",")):
                if not value:
                    raise ConfigError(f"--what-if {word!r}: empty value")
                if key == "maxretry":
                    if not value.isdigit() or int(value) < 1:
                        raise ConfigError(
                            f"--what-if {word!r}: maxretry must be a whole number of 1 or more"
                        )
                    parsed.append(int(value))
                else:
                    try:
                        seconds = parse_duration(value)
                    except ConfigError as error:
                        raise ConfigError(f"--what-if {word!r}: {error.message}") from None
                    if seconds <= 0:
                        raise ConfigError(f"--what-if {word!r}: findtime must be longer than 0")
                    parsed.append(seconds)
            axes.setdefault(key, [])
            axes[key] += [p for p in parsed if p not in axes[key]]
    return axes


def _duration(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ConfigError as error:
        raise ConfigError(f"{option} {text!r}: {error.message}") from None


def _settings_and_filter(
    config_dir: Path, jail: str | None, filter_argument: str | None
) -> tuple[JailSettings | None, Filter]:
    settings = None
    if jail is not None:
        found = {s.name: s for s in load_jails(config_dir)}
        settings = found.get(jail)
        if settings is None:
            raise ConfigError(
                f"no jail {jail!r} in {config_dir} (jails: {', '.join(sorted(found)) or 'none'})"
            )
    if filter_argument is not None:
        return settings, Filter(resolve_filter(filter_argument, config_dir))
    if settings is None:
        raise ConfigError("give the filter to use: --filter NAME (or --jail NAME)")
    try:
        spec = jail_filter(settings, config_dir)
    except ConfigError as error:
        raise error.located(section=settings.name, option="filter") from None
    return settings, Filter(spec)


def _daemon_client(obj: dict[str, Any]) -> ControlClient:
    from gardien.config.daemon import load_daemon_settings

    socket = obj.get("socket") or load_daemon_settings(Path(obj["config_dir"])).socket
    return ControlClient(socket)


def _read(
    compiled: Filter, logs: Sequence[str], clock: FakeClock | SystemClock, *, show_progress: bool
) -> FoundFailures:
    if not show_progress:
        return read_failures(compiled, logs, clock=clock)
    total = sum(os.path.getsize(path) for path in logs)
    with click.progressbar(
        length=total, label="Reading logs", file=sys.stderr, show_eta=True
    ) as bar:
        return read_failures(compiled, logs, clock=clock, progress=bar.update)


# ---- banning through the daemon ------------------------------------------------------------


@dataclass
class BanOutcome:
    """What ``--ban`` did: addresses newly banned, banned already, refused (with why)."""

    jail: str
    banned: list[str]
    already: list[str]
    refused: list[tuple[str, str]]
    failed: str | None = None  # the error that stopped it, if one did


def _ban_offenders(client: ControlClient, jail: str, bans: Sequence[WouldBan]) -> BanOutcome:
    wanted = list(dict.fromkeys(str(ban.address) for ban in bans))
    outcome = BanOutcome(jail, [], [], [])
    try:
        current = (
            [  # in requests within the control socket's bounds
                item for request in batches(("banned",), wanted) for item in client.call(*request)
            ]
            if wanted
            else []
        )
        already = {item["ip"] for item in current if jail in item.get("jails", [])}
        outcome.already = [ip for ip in wanted if ip in already]
        todo = [ip for ip in wanted if ip not in already]
        for start in range(0, len(todo), BAN_BATCH):
            batch = todo[start : start + BAN_BATCH]
            try:
                client.call("set", jail, "banip", *batch)
                outcome.banned += batch
            except ControlError:
                raise
            except GardienError:
                # the daemon bans all or none of a request: find which it refuses, and why
                for ip in batch:
                    try:
                        client.call("set", jail, "banip", ip)
                        outcome.banned.append(ip)
                    except ControlError:
                        raise
                    except GardienError as error:
                        outcome.refused.append((ip, str(error)))
    except GardienError as error:
        outcome.failed = str(error)
    return outcome


# ---- output ------------------------------------------------------------------------------


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _human_time(epoch: float | None) -> str:
    if epoch is None:
        return "for ever"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _human_duration(seconds: float) -> str:
    if seconds < 0:
        return "for ever"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _as_json(
    found: FoundFailures,
    settings: JailSettings,
    compiled: Filter,
    bans: Sequence[WouldBan],
    grid: Sequence[WhatIfRow],
    outcome: BanOutcome | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bans": [
            {
                "ip": str(ban.address),
                "time": _iso(ban.time),
                "epoch": ban.time,
                "failures": ban.failures,
                "end": _iso(ban.end),
            }
            for ban in bans
        ],
        "lines": found.lines,
        "files": found.files,
        "filter": compiled.name,
        "failures": found.failures,
        "addresses": len(found.times),
        "unusable": found.unusable,
        "settings": {
            "findtime": settings.findtime,
            "maxretry": settings.maxretry,
            "bantime": settings.bantime,
        },
    }
    if grid:
        result["what_if"] = [
            {
                "maxretry": row.maxretry,
                "findtime": row.findtime,
                "offenders": row.offenders,
                "ignored": row.ignored,
                "good": row.good,
                "banned": row.banned,
            }
            for row in grid
        ]
    if outcome is not None:
        result["ban"] = {
            "jail": outcome.jail,
            "banned": outcome.banned,
            "already": outcome.already,
            "refused": [{"ip": ip, "reason": reason} for ip, reason in outcome.refused],
            "error": outcome.failed,
        }
    return result


def _print_report(
    found: FoundFailures,
    settings: JailSettings,
    compiled: Filter,
    bans: Sequence[WouldBan],
    grid: Sequence[WhatIfRow],
    outcome: BanOutcome | None,
) -> None:
    echo = click.echo
    files = len(found.files)
    echo(
        f"Scanned {files} file{'s' if files != 1 else ''}, {found.lines:,} lines, "
        f"with filter {compiled.name}, in {found.elapsed:.2f} s"
    )
    echo(
        f"Found {found.failures:,} failures from {len(found.times):,} addresses"
        + (f" ({found.unusable:,} more without an address or a date)" if found.unusable else "")
    )
    echo(
        f"Settings: findtime {_human_duration(settings.findtime)}, "
        f"maxretry {settings.maxretry}, bantime {_human_duration(settings.bantime)}"
    )
    if grid:
        echo("")
        echo("What if:")
        header = ("maxretry", "findtime", "offenders", "ignored", "known good", "banned")
        rows = [
            (
                str(row.maxretry),
                _human_duration(row.findtime),
                str(row.offenders),
                str(row.ignored),
                str(row.good),
                str(row.banned),
            )
            for row in grid
        ]
        _table(header, rows)
        echo("(offenders reach maxretry within findtime; ignored ones are never banned;")
        echo(" known good ones (--good) would be banned wrongly)")
    else:
        echo("")
        if not bans:
            echo("No address would have been banned.")
        else:
            by_address = _by_address(bans)
            echo(
                f"Would have banned {len(by_address):,} "
                f"address{'es' if len(by_address) != 1 else ''} "
                f"({len(bans):,} ban{'s' if len(bans) != 1 else ''}; --json lists every ban):"
            )
            _table(
                ("address", "bans", "first ban", "last ban", "failures"),
                [
                    (
                        str(address),
                        str(len(made)),
                        _human_time(made[0].time),
                        _human_time(made[-1].time),
                        str(sum(ban.failures for ban in made)),
                    )
                    for address, made in by_address.items()
                ],
            )
    if outcome is not None:
        echo("")
        echo(
            f"Banned in {outcome.jail}: {len(outcome.banned)} new, "
            f"{len(outcome.already)} banned already, {len(outcome.refused)} refused"
        )
        for ip, reason in outcome.refused:
            echo(f"  refused {ip}: {reason}")
        if outcome.failed:
            click.echo(
                f"gardien: error: banning stopped after {len(outcome.banned)} "
                f"address(es): {outcome.failed}",
                err=True,
            )


def _by_address(bans: Sequence[WouldBan]) -> dict[Address, list[WouldBan]]:
    """The bans of each address, addresses in the order of their first ban."""
    grouped: dict[Address, list[WouldBan]] = {}
    for ban in bans:
        grouped.setdefault(ban.address, []).append(ban)
    return grouped


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )

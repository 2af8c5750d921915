"""``gardien stats``: attack statistics from the daemon's ban store, as a table, JSON, CSV or
graphs."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import click

from gardien.config.daemon import load_daemon_settings
from gardien.errors import ConfigError, StoreError

__all__ = ["stats"]


@click.command()
@click.option(
    "--dbfile",
    metavar="PATH",
    help="The ban store to read (default: dbfile in gardien.conf or fail2ban.conf of -c).",
)
@click.option(
    "--jail",
    "jails",
    multiple=True,
    metavar="NAME",
    help="Only the bans of this jail (repeat for several).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Start: an ISO date or time (2026-11-01, 2026-11-01T08:00) or a duration back from "
    "now (15d, 12h). Default: the first ban.",
)
@click.option("--until", metavar="WHEN", help="End, as --since. Default: now.")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many addresses and networks to list.",
)
@click.option("--utc", is_flag=True, help="Hours, night and day in UTC instead of local time.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--csv", "as_csv", is_flag=True, help="Print the hourly series: hour,bans,cumulative_unique."
)
@click.option(
    "--plot",
    metavar="FILE",
    help="Also draw bans per hour and cumulative unique addresses, with trends (.png or .svg).",
)
@click.pass_obj
def stats(
    obj: dict[str, Any],
    dbfile: str | None,
    jails: tuple[str, ...],
    since: str | None,
    until: str | None,
    top: int,
    utc: bool,
    as_json: bool,
    as_csv: bool,
    plot: str | None,
) -> None:
    """Attack statistics from the ban store: bans per hour and unique banned addresses over
    time with their trends, night (20:00-08:00) against day, weekdays against week-end, per
    jail, top addresses and /24 networks, repeat offenders.

    \b
    Examples:
      gardien stats --since 15d
      gardien stats --jail asterisk --since 2026-11-01 --until 2026-11-16 --plot bans.png
      gardien stats --json | jq .night
      gardien stats --csv > hourly.csv
    """
    from gardien.stats import compute_stats, open_store, render_csv, render_json, render_text
    from gardien.stats.times import parse_when

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be used together")
    if plot is not None:
        from gardien.stats.plot import check_plot_target

        check_plot_target(plot)  # before any work: a wrong name costs nothing
    tz = dt.UTC if utc else None
    now = time.time()
    start = None if since is None else parse_when(since, now, tz, "--since")
    end = now if until is None else parse_when(until, now, tz, "--until")
    if start is not None and start >= end:
        raise ConfigError(f"{since!r} is not before {until or 'now'!r}", option="--since")

    path = dbfile or load_daemon_settings(Path(obj["config_dir"])).dbfile
    if path in ("", ":memory:", "None"):
        raise StoreError(
            f"the daemon keeps no ban store (dbfile = {path or 'empty'}); see --dbfile"
        )
    with open_store(path) as reader, reader.snapshot():
        result = compute_stats(reader, since=start, until=end, jails=jails, tz=tz, top=top)

    if as_json:
        click.echo(render_json(result))
    elif as_csv:
        click.echo(render_csv(result), nl=False)
    else:
        click.echo(render_text(result))
    if plot is not None:
        from gardien.stats.plot import write_plot

        write_plot(result, plot)

"""``gardien config check|show``: test and display the configuration gardien would use."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from gardien.config.daemon import load_daemon_settings
from gardien.config.jails import jail_filter, load_jails
from gardien.daemon.assembly import JailPlan, assemble, pretend_firewalls
from gardien.errors import ConfigError
from gardien.matching import native, risk, translate
from gardien.matching.filter import Filter
from gardien.settings import DaemonSettings, JailSettings


@click.group()
def config() -> None:
    """Test or show the configuration (daemon settings and jails).

    \b
    Examples:
      gardien config check
      gardien -c /etc/fail2ban config show sshd
      gardien config show --json | jq '.jails[] | select(.enabled) | .name'
    """


def _filter_of(jail: JailSettings, config_dir: Path) -> Filter:
    """The compiled filter of ``jail`` (errors say which jail)."""
    try:
        return Filter(jail_filter(jail, config_dir))
    except ConfigError as error:
        raise error.located(section=jail.name, option="filter") from None


@config.command()
@click.option("--all", "all_jails", is_flag=True, help="Also check the jails that are disabled.")
@click.pass_obj
def check(obj: dict[str, Any], all_jails: bool) -> None:
    """Read every configuration file, compile the filter and check the actions of every enabled
    jail.

    Prints what was checked and exits with status 0, or prints every problem found (with
    file:line) and exits with status 1.
    """
    config_dir: Path = obj["config_dir"]
    problems: list[ConfigError] = []
    try:
        load_daemon_settings(config_dir)
    except ConfigError as error:
        problems.append(error)
    # action names and parameters are checked without touching the firewall
    assembly = assemble(config_dir, firewalls=pretend_firewalls(), include_disabled=all_jails)
    problems += assembly.problems
    if problems:
        for problem in problems:
            click.echo(f"gardien: error: {problem}", err=True)
        click.echo(f"{len(problems)} problem(s) in {config_dir}", err=True)
        raise click.exceptions.Exit(1)
    jails = assembly.jails
    enabled = sum(1 for jail in jails if jail.enabled)
    click.echo(
        f"OK: {config_dir}: {len(jails)} jails ({enabled} enabled), "
        f"{len(assembly.plans)} filters compiled"
    )
    _engines(assembly.plans.values())
    _risks(assembly.plans.values())


def _engines(plans: Iterable[JailPlan]) -> None:
    """Say which jails' filters the native core cannot match (the Python engine then does,
    with no time bound per line), or that the core is not installed."""
    filtered = [(plan.name, plan.filter) for plan in plans if plan.filter is not None]
    if not filtered:
        return
    if not native.available():
        click.echo(
            "note: the native matching core is not installed (or GARDIEN_NO_NATIVE is set): "
            "every filter is matched by the Python engine, without a time bound per line"
        )
        return
    for name, compiled in filtered:
        reason = native.unsupported(compiled)
        if reason is not None:
            click.echo(
                f"note: jail {name}: filter {compiled.name!r} is matched by the Python "
                f"engine (no time bound per line): {reason}"
            )


def _risks(plans: Iterable[JailPlan]) -> None:
    """Warn, once per regex, about those at risk of catastrophic backtracking, naming
    file:line and the jails using them."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for plan in plans:
        compiled = plan.filter
        if compiled is None:
            continue
        regexes = [("prefregex", compiled.prefregex)] if compiled.prefregex else []
        regexes += [("failregex", regex) for regex in compiled.failregex]
        regexes += [("ignoreregex", regex) for regex in compiled.ignoreregex]
        in_core = native.available() and native.unsupported(compiled) is None
        for kind, regex in regexes:
            source = regex.source
            why = risk.ambiguous_repeat(regex.regex.pattern, regex.regex.flags)
            if why is None:
                continue
            if not in_core:
                bound = "the Python engine matches it, and may spend seconds or more on one line"
            elif translate.gate(regex.regex.pattern, regex.regex.flags) is None:
                bound = "the native core matches it in linear time; the Python engine would not"
            else:
                bound = (
                    "the native core gives up on such a line after "
                    f"{native.BACKTRACK_LIMIT:,} steps"
                )
            where = f"{source.path}:{source.line}: " if source.path else ""
            found.setdefault((f"{where}{kind}", why, bound), []).append(plan.name)
    for (what, why, bound), jails in found.items():
        click.echo(
            f"warning: {what} of jail {', '.join(jails)} is at risk of catastrophic "
            f"backtracking: {why}; {bound}"
        )


def _jail_record(jail: JailSettings, filter_path: str | None) -> dict[str, Any]:
    return {
        "name": jail.name,
        "enabled": jail.enabled,
        "filter": str(jail.filter),
        "filter_file": filter_path,
        "actions": [str(action) for action in jail.actions],
        "logpath": list(jail.logpath),
        "backend": jail.backend,
        "findtime": jail.findtime,
        "maxretry": jail.maxretry,
        "bantime": jail.bantime,
        "ignoreip": list(jail.ignoreip),
        "ignoreself": jail.ignoreself,
        "usedns": jail.usedns,
        "bantime_increment": jail.increment.enabled,
        "defined_at": f"{jail.path}:{jail.line}" if jail.path else None,
    }


def _daemon_record(settings: DaemonSettings) -> dict[str, Any]:
    return {
        "socket": settings.socket,
        "pidfile": settings.pidfile,
        "dbfile": settings.dbfile,
        "dbpurgeage": settings.dbpurgeage,
        "loglevel": settings.loglevel,
        "logtarget": settings.logtarget,
    }


@config.command()
@click.argument("jail_names", metavar="[JAIL]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def show(obj: dict[str, Any], jail_names: tuple[str, ...], as_json: bool) -> None:
    """Show the effective settings: the daemon's and each jail's (or only the JAILs named)."""
    config_dir: Path = obj["config_dir"]
    settings = load_daemon_settings(config_dir)
    jails = load_jails(config_dir)
    known = {jail.name for jail in jails}
    unknown = [name for name in jail_names if name not in known]
    if unknown:
        raise ConfigError(
            f"no jail named {', '.join(map(repr, unknown))} in {config_dir} "
            f"(jails: {', '.join(sorted(known)) or 'none'})"
        )
    selected = [jail for jail in jails if not jail_names or jail.name in jail_names]
    records = []
    for jail in selected:
        path = None
        if (jail.enabled or jail_names) and not jail.hub_feed:
            path = _filter_of(jail, config_dir).spec.path
        records.append(_jail_record(jail, path))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "config_dir": str(config_dir),
                    "daemon": _daemon_record(settings),
                    "jails": records,
                },
                indent=2,
            )
        )
        return
    if not jail_names:
        click.echo(f"configuration: {config_dir}")
        for key, value in _daemon_record(settings).items():
            click.echo(f"  {key:10s} {value}")
        click.echo("")
    for record in records:
        state = "enabled" if record["enabled"] else "disabled"
        click.echo(f"[{record['name']}] {state}   ({record['defined_at']})")
        click.echo(
            f"  filter     {record['filter']}"
            + (f"   ({record['filter_file']})" if record["filter_file"] else "")
        )
        for action in record["actions"]:
            click.echo(f"  action     {action}")
        for path in record["logpath"]:
            click.echo(f"  logpath    {path}")
        click.echo(f"  backend    {record['backend']}")
        click.echo(
            f"  maxretry   {record['maxretry']} within {record['findtime']:g} s, "
            f"ban for {record['bantime']:g} s"
            + (" (increasing)" if record["bantime_increment"] else "")
        )
        if record["ignoreip"]:
            click.echo(f"  ignoreip   {' '.join(record['ignoreip'])}")

"""``gardien migrate``: switch from fail2ban to gardien in one command."""

from __future__ import annotations

from typing import Any

import click

from gardien.migrate import build_plan, execute

DEFAULT_SOURCE = "/etc/fail2ban"


@click.command()
@click.option(
    "--from",
    "source",
    default=DEFAULT_SOURCE,
    show_default=True,
    metavar="DIR",
    help="fail2ban's configuration directory.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.pass_obj
def migrate(obj: dict[str, Any], source: str, dry_run: bool) -> None:
    """Move a running fail2ban to gardien: its jails, filters and settings into gardien's
    configuration directory (-c, /etc/gardien), its bans (with their remaining time and ban
    counts) and ban history into gardien's store; then start gardien, which puts the bans in
    the kernel, stop fail2ban and remove its chains. The server is protected at every moment.

    Running it again changes nothing. What cannot be carried over is listed with the reason.
    """
    target = obj["config_dir_given"]
    plan = build_plan(source, target)
    header = "gardien migrate: plan" + (" (dry run: nothing changed)" if dry_run else "")
    click.echo(header)
    for line in plan.describe():
        click.echo(line)
    if dry_run or plan.nothing_to_do:
        return
    click.echo("migrating:")
    execute(plan, lambda step: click.echo(f"  {step}"))
    click.echo(f"done: gardien runs the jails {', '.join(plan.translation.jails) or '(none)'}")

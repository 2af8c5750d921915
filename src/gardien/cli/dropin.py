"""``gardien compat install|remove``: the ``fail2ban-client`` and ``fail2ban-regex`` drop-in
commands for an installation from source (the Debian package ``gardien-fail2ban-compat``
ships them in /usr/bin)."""

from __future__ import annotations

from pathlib import Path

import click

from gardien import dropin

__all__ = ["compat"]

_DIRECTORY = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/usr/local/bin"),
    show_default=True,
    help="Where the commands go.",
)


@click.group()
def compat() -> None:
    """fail2ban-client and fail2ban-regex commands that run gardien, for existing scripts."""


@compat.command()
@_DIRECTORY
def install(directory: Path) -> None:
    """Link fail2ban-client and fail2ban-regex to gardien in DIR (refused where fail2ban is
    installed: its commands are never hidden)."""
    for made in dropin.install(directory):
        click.echo(f"{made.path} -> {made.target}")


@compat.command()
@_DIRECTORY
def remove(directory: Path) -> None:
    """Remove the links that gardien compat install made in DIR."""
    removed = dropin.remove(directory)
    for path in removed:
        click.echo(f"removed {path}")
    if not removed:
        click.echo(f"no gardien drop-in command in {directory}")

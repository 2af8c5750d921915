"""The ``gardien`` command: a thin layer over the typed API.

Every option can also be set from the environment with the ``GARDIEN_`` prefix
(``GARDIEN_CONFIG_DIR=/etc/fail2ban gardien regex ...``). Errors gardien can explain are printed
as one ``gardien: error: ...`` line with exit status 1; usage mistakes exit with 2.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from gardien._version import __version__
from gardien.config.filters import bundled_config_dir
from gardien.errors import GardienError

__all__ = ["DEFAULT_CONFIG_DIR", "cli", "main"]

DEFAULT_CONFIG_DIR = "/etc/gardien"


#: the commands, imported when used (``module:attribute``): ``gardien set`` need not import the
#: daemon, the hub client or the migration to start
_LAZY: dict[str, str] = {
    "regex": "gardien.cli.regex:regex",
    "scan": "gardien.cli.scan:scan",
    "stats": "gardien.cli.stats:stats",
    "audit": "gardien.cli.audit:audit",
    "run": "gardien.cli.run:run",
    "config": "gardien.cli.config:config",
    "firewall": "gardien.cli.firewall:firewall",
    "hub": "gardien.cli.hub:hub",
    "compat": "gardien.cli.dropin:compat",
    "migrate": "gardien.cli.migrate:migrate",
    **dict.fromkeys(
        [
            "status",
            "statistics",
            "get",
            "set",
            "banned",
            "unban",
            "reload",
            "restart",
            "start",
            "stop",
            "flushlogs",
            "ping",
            "echo",
            "version",
            "add",
        ],
        "gardien.cli.client:CLIENT_COMMANDS",
    ),
}


class _Group(click.Group):
    """Turns gardien's own errors into one clear line and a non-zero exit, and imports each
    command of :data:`_LAZY` when it is first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _LAZY:
            _load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GardienError as error:
            click.echo(f"gardien: error: {error}", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # `gardien regex ... | head`
            sys.stderr.close()
            ctx.exit(0)


@click.group(
    cls=_Group,
    context_settings={"auto_envvar_prefix": "GARDIEN", "help_option_names": ["-h", "--help"]},
)
@click.option(
    "-c",
    "--config-dir",
    default=DEFAULT_CONFIG_DIR,
    show_default=True,
    metavar="DIR",
    help="Configuration directory (a fail2ban one such as /etc/fail2ban works as is). "
    "gardien's bundled defaults are used when it does not exist.",
)
@click.option(
    "-s",
    "--socket",
    metavar="PATH",
    help="Control socket of the daemon (default: 'socket' in gardien.conf).",
)
@click.version_option(__version__, prog_name="gardien")
@click.pass_context
def cli(ctx: click.Context, config_dir: str, socket: str | None) -> None:
    """gardien: intrusion prevention with fail2ban-compatible filters, fast."""
    ctx.obj = {
        "config_dir": resolve_config_dir(ctx, config_dir),
        "config_dir_given": Path(config_dir),  # gardien migrate creates it when missing
        "socket": socket,
    }


def resolve_config_dir(ctx: click.Context, config_dir: str) -> Path:
    """The directory to read: the one given, or gardien's bundled defaults when the default
    directory does not exist. A directory given explicitly must exist."""
    path = Path(config_dir)
    if path.is_dir():
        return path
    source = ctx.get_parameter_source("config_dir")
    if source is click.core.ParameterSource.DEFAULT:
        return bundled_config_dir()
    click.echo(f"gardien: error: {config_dir}: no such configuration directory", err=True)
    raise click.exceptions.Exit(1)


#: names under which the ``gardien`` executable is fail2ban's commands (:mod:`gardien.cli.compat`)
_DROP_INS = ("fail2ban-client", "fail2ban-regex")


def _load(name: str) -> None:
    """Import the command ``name`` of :data:`_LAZY` and add it to :data:`cli`."""
    module_name, _, attribute = _LAZY[name].partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    commands = found if isinstance(found, tuple) else (found,)
    for command in commands:
        if command.name == name:
            cli.add_command(command)
            return
    raise LookupError(f"{_LAZY[name]} has no command {name!r}")  # a mistake in _LAZY


def _register() -> None:
    """Add every command to :data:`cli` now (for what walks ``cli.commands``: the manual
    pages' generator, the documentation tests)."""
    for name in _LAZY:
        if name not in cli.commands:
            _load(name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gardien`` script and ``python -m gardien``; run through a link named
    ``fail2ban-client`` or ``fail2ban-regex``, it is that command (:mod:`gardien.cli.compat`)."""
    if argv is None and Path(sys.argv[0]).name in _DROP_INS:
        from gardien.cli.compat import main as compat_main

        compat_main()
        return
    cli.main(args=argv, prog_name="gardien")

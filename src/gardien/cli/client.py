"""The client verbs: ``status``, ``get``, ``set``, ``banned``, ``unban``, ``reload``, ``stop``,
``flushlogs``, ``ping``, ``version``. They only speak the control protocol to the running
daemon; the output follows fail2ban-client's so that scripts and habits carry over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gardien.config.daemon import load_daemon_settings
from gardien.daemon.control import ControlClient

__all__ = ["CLIENT_COMMANDS"]


def _client(obj: dict[str, Any]) -> ControlClient:
    socket = obj.get("socket")
    if not socket:
        socket = load_daemon_settings(Path(obj["config_dir"])).socket
    return ControlClient(socket)


def _print_value(value: Any) -> None:
    """A value alone, as fail2ban-client's get prints it (lists one item per line)."""
    if isinstance(value, list):
        for item in value:
            click.echo(item)
    elif isinstance(value, float) and value.is_integer():
        click.echo(int(value))
    elif isinstance(value, dict):
        click.echo(json.dumps(value))
    else:
        click.echo(value)


def _tree(title: str, rows: list[tuple[str, Any]]) -> None:
    click.echo(title)
    for index, (label, value) in enumerate(rows):
        branch = "`-" if index == len(rows) - 1 else "|-"
        click.echo(f"{branch} {label}")
        if isinstance(value, list):
            for sub_index, (sub_label, sub_value) in enumerate(value):
                prefix = "   " if index == len(rows) - 1 else "|  "
                sub_branch = "`-" if sub_index == len(value) - 1 else "|-"
                click.echo(f"{prefix}{sub_branch} {sub_label}\t{sub_value}")


@click.command()
@click.argument("jail", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(obj: dict[str, Any], jail: str | None, as_json: bool) -> None:
    """Show the jails, or one JAIL's failures and bans."""
    result = _client(obj).call("status", *([jail] if jail else []))
    if as_json:
        click.echo(json.dumps(result))
        return
    if jail is None:
        jails = result.get("jails", [])
        rows: list[tuple[str, Any]] = [
            (f"Number of jail:\t{len(jails)}", None),
            (f"Jail list:\t{', '.join(jails)}", None),
        ]
        if result.get("not_started"):  # their source cannot be read: `status JAIL` says why
            rows.append((f"Not started:\t{', '.join(result['not_started'])}", None))
        _tree("Status", rows)
        return
    _tree(
        f"Status for the jail: {result['jail']}",
        [
            (
                "Filter",
                [
                    ("Currently failed:", result["currently_failed"]),
                    ("Total failed:", result["total_failed"]),
                    ("File list:", " ".join(result["files"])),
                ],
            ),
            (
                "Actions",
                [
                    ("Currently banned:", result["currently_banned"]),
                    ("Total banned:", result["total_banned"]),
                    ("Banned IP list:", " ".join(result["banned"])),
                ],
            ),
        ],
    )


@click.command(name="get")
@click.argument("words", nargs=-1, required=True, metavar="[JAIL] OPTION")
@click.pass_obj
def get_command(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    """Print the value of OPTION (of JAIL, or of the daemon: dbpurgeage, dbfile...).

    Durations are printed in seconds, as fail2ban does: `gardien get sshd bantime` -> 600.
    """
    if len(words) > 2:
        raise click.UsageError("get takes [JAIL] OPTION")
    _print_value(_client(obj).call("get", *words))


@click.command(name="set")
@click.argument("words", nargs=-1, required=True, metavar="[JAIL] OPTION VALUE...")
@click.pass_obj
def set_command(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    """Change a setting or act on a jail.

    \b
    gardien set JAIL banip IP...        ban addresses now
    gardien set JAIL unbanip IP...      lift their bans
    gardien set JAIL addignoreip ADDR   never ban ADDR (address, range or name)
    gardien set JAIL delignoreip ADDR
    gardien set JAIL bantime 1h         (also findtime, maxretry...)
    gardien set dbpurgeage 2d
    """
    if len(words) < 2:
        raise click.UsageError("set takes [JAIL] OPTION VALUE...")
    _print_value(_client(obj).call("set", *words))


@click.command()
@click.argument("addresses", nargs=-1, metavar="[IP]...")
@click.pass_obj
def banned(obj: dict[str, Any], addresses: tuple[str, ...]) -> None:
    """List banned addresses with their jails (or say in which jails the IPs are banned)."""
    result = _client(obj).call("banned", *addresses)
    click.echo(json.dumps(result))


@click.command()
@click.argument("addresses", nargs=-1, metavar="IP...")
@click.option("--all", "everything", is_flag=True, help="Lift every ban in every jail.")
@click.pass_obj
def unban(obj: dict[str, Any], addresses: tuple[str, ...], everything: bool) -> None:
    """Lift the bans of the IPs in every jail (or of everybody with --all)."""
    if everything == bool(addresses):
        raise click.UsageError("give IP addresses or --all (not both)")
    _print_value(_client(obj).call("unban", *(["--all"] if everything else addresses)))


@click.command()
@click.argument("jail", required=False)
@click.pass_obj
def reload(obj: dict[str, Any], jail: str | None) -> None:
    """Re-read the configuration (of one JAIL); a broken one is refused, the running one kept."""
    _print_value(_client(obj).call("reload", *([jail] if jail else [])))


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the daemon to exit (0: do not wait).",
)
@click.pass_obj
def stop(obj: dict[str, Any], timeout: float) -> None:
    """Stop the daemon and wait until it has exited, its firewall rules removed (so that a
    service manager's ExecStop=gardien stop returns when the firewall is clean)."""
    client = _client(obj)
    result = client.call("stop")
    if timeout > 0:
        client.wait_for_exit(timeout)
    _print_value(result)


@click.command()
@click.pass_obj
def flushlogs(obj: dict[str, Any]) -> None:
    """Make the daemon reopen its log file (logtarget), as logrotate's postrotate needs."""
    _print_value(_client(obj).call("flushlogs"))


@click.command()
@click.pass_obj
def ping(obj: dict[str, Any]) -> None:
    """Check that the daemon answers."""
    _print_value(_client(obj).call("ping"))


@click.command()
@click.pass_obj
def version(obj: dict[str, Any]) -> None:
    """The running daemon's version."""
    _print_value(_client(obj).call("version"))


CLIENT_COMMANDS = (
    status,
    get_command,
    set_command,
    banned,
    unban,
    reload,
    stop,
    flushlogs,
    ping,
    version,
)

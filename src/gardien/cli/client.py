"""The client verbs: fail2ban-client's commands (``status``, ``get``, ``set``, ``banned``,
``unban``, ``reload``, ``start``, ``restart``, ``stop``, ``statistics``, ``flushlogs``, ``ping``,
``echo``, ``version``, ``add``). They speak only the control protocol to the running daemon (or
start one) and print what fail2ban-client prints (:mod:`gardien.cli.f2b_output`), so that
scripts and habits carry over; errors are gardien's one line on stderr with exit status 1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from gardien.cli.f2b_output import render
from gardien.cli.f2b_requests import NOT_SUPPORTED, execute
from gardien.config.daemon import load_daemon_settings
from gardien.daemon.control import ControlClient
from gardien.errors import ControlError

__all__ = ["CLIENT_COMMANDS", "restart_daemon", "start_daemon"]


def _client(obj: dict[str, Any]) -> ControlClient:
    socket = obj.get("socket")
    if not socket:
        socket = load_daemon_settings(Path(obj["config_dir"])).socket
    return ControlClient(socket, timeout=obj.get("timeout") or 30.0)


def _utf8() -> bool:
    return (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "") == "utf8"


def _run(obj: dict[str, Any], words: Sequence[str]) -> Any:
    """Send ``words`` and print the answer as fail2ban-client does; the answer is returned."""
    result = execute(_client(obj), words)
    click.echo(render(words, result, utf8=_utf8()))
    return result


def start_daemon(obj: dict[str, Any], timeout: float = 30.0) -> None:
    """Start ``gardien run`` in the background (fail2ban-client's ``start``) and return once it
    answers; :class:`ControlError` when one runs already or when it stops at once (with what
    it said)."""
    client = _client(obj)
    try:
        client.call("ping")
    except ControlError:
        pass
    else:
        raise ControlError("Server already running")
    command = [sys.executable, "-m", "gardien", "-c", str(obj["config_dir"])]
    if obj.get("socket"):
        command += ["-s", str(obj["socket"])]
    # its log goes where logtarget says; a log to stderr has nobody to read it in the background
    process = subprocess.Popen(
        [*command, "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ControlError(
                f"the daemon stopped at start (exit status {process.returncode}): "
                f"`gardien -c {obj['config_dir']} run` in the foreground says why"
            )
        try:
            client.call("ping")
            return
        except ControlError:
            time.sleep(0.1)
    raise ControlError(f"the daemon did not answer within {timeout:g} s of its start")


def restart_daemon(obj: dict[str, Any], timeout: float = 30.0) -> None:
    """Stop the daemon, wait until it has exited, start it again (fail2ban's ``restart``)."""
    client = _client(obj)
    click.echo(render(["stop"], client.call("stop")))
    client.wait_for_exit(timeout)
    start_daemon(obj, timeout)


@click.command()
@click.argument("words", nargs=-1, metavar="[JAIL|--all] [FLAVOR]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(obj: dict[str, Any], words: tuple[str, ...], as_json: bool) -> None:
    """Show the jails, or one JAIL's failures and bans (FLAVOR: basic or short); --all: every
    jail's, in fail2ban 1.1's tree."""
    if len(words) > 2:
        raise click.UsageError("status takes [JAIL|--all] [FLAVOR]")
    if as_json:
        click.echo(json.dumps(_client(obj).call("status", *words)))
        return
    _run(obj, ["status", *words])


@click.command()
@click.pass_obj
def statistics(obj: dict[str, Any]) -> None:
    """One table of the jails: backend, failures and bans, current and total (fail2ban 1.1's
    `stats`, which is `gardien stats`' name for attack trends)."""
    _run(obj, ["statistics"])


@click.command(name="get", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True, metavar="[JAIL] OPTION [VALUE]...")
@click.pass_obj
def get_command(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    """Print the value of OPTION (of JAIL, or of the daemon: loglevel, logtarget, dbfile,
    dbpurgeage...), as fail2ban-client does.

    \b
    gardien get sshd bantime            600 (durations in seconds)
    gardien get sshd banip [SEP|--with-time]
    gardien get sshd banned [IP...]     the banned addresses, or 1/0 for each IP
    gardien get sshd logpath            (also ignoreip, maxretry, findtime, actions...)
    """
    _run(obj, ["get", *words])


@click.command(name="set", context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True, metavar="[JAIL] OPTION VALUE...")
@click.pass_obj
def set_command(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    """Change a setting or act on a jail.

    \b
    gardien set JAIL banip IP...        ban addresses now (any number of them)
    gardien set JAIL unbanip [--report-absent] IP...
    gardien set JAIL addignoreip ADDR   never ban ADDR (address, range or name)
    gardien set JAIL delignoreip ADDR
    gardien set JAIL addlogpath FILE [tail]   (and dellogpath FILE)
    gardien set JAIL bantime 1h         (also findtime, maxretry, maxmatches)
    gardien set loglevel DEBUG          (also logtarget, dbpurgeage)
    """
    if len(words) < 2:
        raise click.UsageError("set takes [JAIL] OPTION VALUE...")
    _run(obj, ["set", *words])


@click.command()
@click.argument("addresses", nargs=-1, metavar="[IP]...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of fail2ban's lists.")
@click.pass_obj
def banned(obj: dict[str, Any], addresses: tuple[str, ...], as_json: bool) -> None:
    """The banned addresses of each jail (or, for each IP, the jails it is banned in)."""
    if as_json:
        click.echo(json.dumps(execute(_client(obj), ["banned", *addresses])))
        return
    _run(obj, ["banned", *addresses])


@click.command()
@click.argument("addresses", nargs=-1, metavar="IP...")
@click.option("--all", "everything", is_flag=True, help="Lift every ban in every jail.")
@click.pass_obj
def unban(obj: dict[str, Any], addresses: tuple[str, ...], everything: bool) -> None:
    """Lift the bans of the IPs in every jail (or of everybody with --all); prints how many."""
    if everything == bool(addresses):
        raise click.UsageError("give IP addresses or --all (not both)")
    _run(obj, ["unban", *(["--all"] if everything else addresses)])


def _reload_words(jail: str | None, **flags: bool) -> list[str]:
    words = [f"--{name.replace('_', '-')}" for name, given in flags.items() if given]
    return [*words, *([jail] if jail else [])]


@click.command()
@click.argument("jail", required=False)
@click.option("--restart", is_flag=True, help="Accepted; gardien's reload restarts the jails.")
@click.option("--unban", is_flag=True, help="Lift the bans of the jails reloaded.")
@click.option("--all", "all_jails", is_flag=True, help="Accepted: every jail is reloaded.")
@click.option("--if-exists", is_flag=True, help="No error when JAIL is not configured.")
@click.pass_obj
def reload(
    obj: dict[str, Any],
    jail: str | None,
    restart: bool,
    unban: bool,
    all_jails: bool,
    if_exists: bool,
) -> None:
    """Re-read the configuration (of one JAIL); a broken one is refused, the running one kept."""
    words = _reload_words(jail, restart=restart, unban=unban, all=all_jails, if_exists=if_exists)
    _run(obj, ["reload", *words])


@click.command()
@click.argument("jail", required=False)
@click.option("--unban", is_flag=True, help="Lift the jail's bans.")
@click.option("--if-exists", is_flag=True, help="No error when JAIL is not configured.")
@click.pass_obj
def restart(obj: dict[str, Any], jail: str | None, unban: bool, if_exists: bool) -> None:
    """Restart the daemon (stop, wait, start), or one JAIL (reload --restart JAIL)."""
    if jail is None:
        restart_daemon(obj)
        click.echo("Server ready")
        return
    _run(obj, ["reload", *_reload_words(jail, restart=True, unban=unban, if_exists=if_exists)])


@click.command()
@click.argument("jail", required=False)
@click.pass_obj
def start(obj: dict[str, Any], jail: str | None) -> None:
    """Start the daemon in the background (under systemd: systemctl start gardien), or start
    one JAIL of the configuration that is not running."""
    if jail is None:
        start_daemon(obj)
        click.echo("Server ready")
        return
    _run(obj, ["start", jail])


@click.command()
@click.argument("jail", required=False)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the daemon to exit (0: do not wait).",
)
@click.pass_obj
def stop(obj: dict[str, Any], jail: str | None, timeout: float) -> None:
    """Stop the daemon and wait until it has exited, its firewall rules removed (so that a
    service manager's ExecStop=gardien stop returns when the firewall is clean); or stop one
    JAIL (its bans stay in the store: start JAIL restores them)."""
    if jail is not None:
        _run(obj, ["stop", jail])
        return
    client = _client(obj)
    result = client.call("stop")
    if timeout > 0:
        client.wait_for_exit(timeout)
    click.echo(render(["stop"], result))


@click.command()
@click.pass_obj
def flushlogs(obj: dict[str, Any]) -> None:
    """Make the daemon reopen its log file (logtarget), as logrotate's postrotate needs."""
    _run(obj, ["flushlogs"])


@click.command()
@click.pass_obj
def ping(obj: dict[str, Any]) -> None:
    """Check that the daemon answers (Server replied: pong)."""
    _run(obj, ["ping"])


@click.command()
@click.argument("words", nargs=-1)
@click.pass_obj
def echo(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    """The daemon says WORDS back (fail2ban's internal echo)."""
    _run(obj, ["echo", *words])


@click.command()
@click.pass_obj
def version(obj: dict[str, Any]) -> None:
    """The running daemon's version."""
    _run(obj, ["version"])


@click.command(name="add")
@click.argument("words", nargs=-1, metavar="JAIL BACKEND")
@click.pass_obj
def add_command(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    """Not supported:"""  # completed below from NOT_SUPPORTED
    _run(obj, ["add", *words])


add_command.help = f"Not supported: {NOT_SUPPORTED['add']}."

CLIENT_COMMANDS = (
    status,
    statistics,
    get_command,
    set_command,
    banned,
    unban,
    reload,
    restart,
    start,
    stop,
    flushlogs,
    ping,
    echo,
    version,
    add_command,
)

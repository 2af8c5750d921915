"""``gardien hub``: the shared blocklist service and its database.

Every subcommand takes ``--database URL`` (or ``GARDIEN_HUB_DATABASE``). Commands that write
bring the schema up to date first, so ``gardien hub agent add`` works on a new SQLite file;
those that only read ask for ``gardien hub migrate`` instead of creating anything. The hub's
modules are imported inside the commands: ``gardien --help`` stays fast and works without
the ``[hub]`` extra.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gardien.errors import HubError

if TYPE_CHECKING:
    from gardien.hub.store import HubStore

__all__ = ["database_option", "hub", "open_store"]

_F = TypeVar("_F", bound=Callable[..., Any])


def database_option(function: _F) -> _F:
    """The ``--database URL`` option every ``gardien hub`` subcommand takes."""
    return click.option(
        "--database",
        envvar="GARDIEN_HUB_DATABASE",
        required=True,
        metavar="URL",
        help="The hub's database: sqlite:///PATH or postgresql://USER:PASSWORD@HOST/NAME "
        "(env GARDIEN_HUB_DATABASE).",
    )(function)


def _missing_hub(error: ImportError) -> HubError:
    """What to install when the hub's dependencies are missing."""
    return HubError(
        f"gardien hub needs the [hub] extra ({error.name} is missing): "
        "pip install 'gardien[hub]', or with the Debian package: apt install gardien-hub"
    )


def open_store(database: str, *, migrate: bool = False, **options: Any) -> HubStore:
    """The hub's store at ``database`` (schema brought up to date if ``migrate``); a clear
    error when the ``[hub]`` extra is missing."""
    try:
        from gardien.hub.store import HubStore
    except ImportError as error:
        raise _missing_hub(error) from None
    store = HubStore(database, **options)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@click.group()
def hub() -> None:
    """The hub: a shared blocklist that many gardien servers report to and read from."""


@hub.command()
@database_option
def migrate(database: str) -> None:
    """Create the hub's tables, or bring them up to date (safe to run again)."""
    with open_store(database) as store:
        before, after = store.migrate()
    if before == after:
        click.echo(f"{store.url}: schema up to date (revision {after})")
    else:
        click.echo(f"{store.url}: schema upgraded from revision {before or 'none'} to {after}")


# ---- agents ------------------------------------------------------------------------------


@hub.group()
def agent() -> None:
    """Enrol, list and disable agents (the gardien servers that report to the hub)."""


@agent.command("add")
@click.argument("name")
@click.option(
    "--network",
    metavar="CIDR",
    help="The network the agent's reports count under (default: the /24 or /48 of the "
    "address each report comes from).",
)
@database_option
def agent_add(name: str, network: str | None, database: str) -> None:
    """Enrol agent NAME and print its token, once, alone on the last line."""
    with open_store(database, migrate=True) as store:
        info, token = store.add_agent(name, network)
    where = f"network {info.network}" if info.network else "network: /24 or /48 of its address"
    click.echo(f"agent {info.name} enrolled ({where}); its token, shown only this once:")
    click.echo(token)


@agent.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_option
def agent_list(as_json: bool, database: str) -> None:
    """List the enrolled agents."""
    with open_store(database) as store:
        agents = store.agents()
    if as_json:
        click.echo(json.dumps([info.__dict__ for info in agents], indent=2))
        return
    if not agents:
        click.echo("no agents (enrol one with `gardien hub agent add NAME`)")
        return
    _table(
        ("NAME", "NETWORK", "ENROLLED", "LAST SEEN", "FROM", "STATE"),
        [
            (
                info.name,
                info.network or "-",
                _when(info.created),
                _when(info.last_seen),
                info.last_address or "-",
                "disabled" if info.disabled else "enabled",
            )
            for info in agents
        ],
    )


@agent.command("disable")
@click.argument("name")
@database_option
def agent_disable(name: str, database: str) -> None:
    """Refuse agent NAME's token from now on."""
    with open_store(database, migrate=True) as store:
        found = store.disable_agent(name)
    if not found:
        raise HubError(f"no agent named {name!r}")
    click.echo(f"agent {name} disabled")


# ---- allowlist ---------------------------------------------------------------------------


@hub.group()
def allow() -> None:
    """Ranges the hub never lists (yours, your customers'); private ranges never are."""


@allow.command("add")
@click.argument("cidr")
@click.option("--comment", default="", metavar="TEXT", help="Why (shown in lists).")
@database_option
def allow_add(cidr: str, comment: str, database: str) -> None:
    """Never list CIDR; listed addresses inside it leave the blocklist now."""
    with open_store(database, migrate=True) as store:
        entry = store.allow(cidr, comment)
    click.echo(f"{entry.network} added to the allowlist")


@allow.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_option
def allow_list(as_json: bool, database: str) -> None:
    """List the allowlist."""
    with open_store(database) as store:
        entries = store.allowlist()
    if as_json:
        click.echo(json.dumps([entry.__dict__ for entry in entries], indent=2))
        return
    if not entries:
        click.echo("the allowlist is empty")
        return
    _table(
        ("NETWORK", "ADDED", "COMMENT"),
        [(entry.network, _when(entry.created), entry.comment) for entry in entries],
    )


@allow.command("remove")
@click.argument("cidr")
@database_option
def allow_remove(cidr: str, database: str) -> None:
    """Take CIDR off the allowlist."""
    with open_store(database, migrate=True) as store:
        found = store.disallow(cidr)
    if not found:
        raise HubError(f"{cidr} is not in the allowlist")
    click.echo(f"{cidr} removed from the allowlist")


# ---- dashboard users ---------------------------------------------------------------------


@hub.group()
def user() -> None:
    """Dashboard users: each logs in with a password and an authenticator (TOTP) code."""


def _password_from_file(path: str) -> str:
    """The first line of ``path``, which only its owner (and root) may read."""
    import os
    import stat

    try:
        with open(path, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                raise HubError(
                    f"{path}: readable by others (chmod 600 {path}): refusing the password in it"
                )
            first = file.readline()
    except OSError as error:
        raise HubError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise HubError(f"{path}: not UTF-8 text") from None
    return first.rstrip("\r\n")


@user.command("add")
@click.argument("name")
@click.option(
    "--password-file",
    metavar="FILE",
    help="Read the password from the first line of FILE (mode 600) instead of asking twice.",
)
@database_option
def user_add(name: str, password_file: str | None, database: str) -> None:
    """Create dashboard user NAME: set a password and print a new TOTP secret.

    \b
    Example:
      gardien hub user add alice --database sqlite:////var/lib/gardien/hub.sqlite3
    """
    try:
        from gardien.hub.passwords import (
            MIN_PASSWORD_LENGTH,
            Passwords,
            new_totp_secret,
            provisioning_uri,
        )
        from gardien.hub.store import NAME_PATTERN
    except ImportError as error:
        raise _missing_hub(error) from None

    if not NAME_PATTERN.match(name):  # before asking for a password
        raise HubError(f"{name!r} is not a valid user name (letters, digits, '_.@-', up to 64)")
    if password_file is not None:
        password = _password_from_file(password_file)
    else:
        password = click.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise HubError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    secret = new_totp_secret()
    with open_store(database, migrate=True) as store:
        store.add_user(name, Passwords().hash(password), secret)
    click.echo(f"user {name} created. Add this account to an authenticator app (TOTP):")
    click.echo(f"  secret: {secret}")
    click.echo(f"  uri:    {provisioning_uri(name, secret)}")
    click.echo("(as a QR code: qrencode -t ansiutf8 'URI'). The dashboard asks for its code.")


@user.command("list")
@database_option
def user_list(database: str) -> None:
    """List the dashboard users."""
    with open_store(database) as store:
        users = store.users()
    if not users:
        click.echo("no users (create one with `gardien hub user add NAME`)")
        return
    now = time.time()
    _table(
        ("NAME", "CREATED", "LAST LOGIN", "FAILED", "STATE"),
        [
            (
                info.name,
                _when(info.created),
                _when(info.last_login),
                str(info.failed_logins),
                f"locked until {_when(info.locked_until)}"
                if info.locked_until is not None and info.locked_until > now
                else "active",
            )
            for info in users
        ],
    )


@user.command("remove")
@click.argument("name")
@database_option
def user_remove(name: str, database: str) -> None:
    """Delete dashboard user NAME and end their sessions."""
    with open_store(database, migrate=True) as store:
        found = store.remove_user(name)
    if not found:
        raise HubError(f"no user named {name!r}")
    click.echo(f"user {name} removed")


# ---- pruning ------------------------------------------------------------------------------


@hub.command()
@database_option
@click.option(
    "--retention",
    default="90d",
    show_default=True,
    metavar="DURATION",
    help="Forget reports older than this, and addresses neither listed nor reported since.",
)
@click.option(
    "--journal-retention",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Forget blocklist changes older than this (the newest always stays).",
)
@click.option(
    "--window",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="The hub's consensus window: reports within it are always kept.",
)
def prune(database: str, retention: str, journal_retention: str, window: str) -> None:
    """Forget old reports, stale addresses and old blocklist changes now (`gardien hub serve`
    does it every hour by itself).

    \b
    Example:
      gardien hub prune --database sqlite:////var/lib/gardien/hub.sqlite3 --retention 30d
    """
    from gardien.hub.model import Consensus

    window_seconds = _seconds(window, "--window")
    consensus = Consensus(
        window=window_seconds,
        report_retention=_retention(retention, window_seconds),
        journal_retention=_seconds(journal_retention, "--journal-retention"),
    )
    with open_store(database, consensus=consensus) as store:
        from gardien.hub.app import check_schema

        check_schema(database)
        result = store.prune()
    click.echo(
        f"{store.url}: removed {result.reports} reports, {result.addresses} addresses, "
        f"{result.changes} blocklist changes"
    )


# ---- serving -----------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as ``(host, port)``; :class:`ConfigError` if not."""
    import ipaddress

    from gardien.errors import ConfigError

    host, colon, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            host = ""
    elif ":" in host or "[" in host or "]" in host:
        host = ""
    valid_host = bool(host) and all(c.isalnum() or c in ".-_:" for c in host)
    if not colon or not valid_host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{text!r} is not HOST:PORT (127.0.0.1:8080, 0.0.0.0:8080, [::]:8080)",
            option="--listen",
        )
    return host, int(port)


def _seconds(text: str, option: str) -> float:
    from gardien.config.values import parse_duration
    from gardien.errors import ConfigError

    try:
        seconds = parse_duration(text)
    except ConfigError as error:
        raise ConfigError(error.message, option=option) from None
    if seconds <= 0:
        raise ConfigError(f"{text!r}: a duration above zero is needed", option=option)
    return seconds


def _retention(text: str, window: float) -> float:
    """``--retention`` in seconds; raised to the consensus window, with a note, when shorter
    (reports that still count towards listing are never forgotten)."""
    seconds = _seconds(text, "--retention")
    if seconds < window:
        click.echo(
            f"gardien: note: --retention {text} is shorter than --window: reports are kept "
            f"{window:g} s, the window",
            err=True,
        )
    return max(seconds, window)


def _check_bind(host: str, port: int) -> None:
    """Fail with one clear line now if the address cannot be listened on (uvicorn would log
    a traceback-like report and exit)."""
    import socket

    from gardien.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error}", option="--listen") from None


@hub.command()
@database_option
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Address and port to serve on ([::]:8080 for IPv6). Put TLS in a reverse proxy.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes serving requests (they share the database; use PostgreSQL beyond one).",
)
@click.option(
    "--min-agents",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="Distinct agents that must report an address before it is listed.",
)
@click.option(
    "--min-networks",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="Distinct reporter networks those agents must come from.",
)
@click.option(
    "--window",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="How far back reports count towards listing (600, 12h, 7d, 2w).",
)
@click.option(
    "--ttl",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="How long a listed address stays listed after its last report.",
)
@click.option(
    "--retention",
    default="90d",
    show_default=True,
    metavar="DURATION",
    help="How long reports are kept, and addresses neither listed nor reported since "
    "(never less than --window).",
)
@click.option(
    "--journal-retention",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="How long blocklist changes are kept for delta sync; agents further behind get "
    "the whole list again.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    metavar="RATE",
    help="Requests a second each agent may make, per hub process (0: no limit).",
)
@click.option(
    "--burst",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Requests an agent may make at once before --rate-limit applies.",
)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Behind a reverse proxy or load balancer: take the client address from "
    "X-Forwarded-For (and the scheme from X-Forwarded-Proto), when the request comes from "
    "--forwarded-allow-ips.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    metavar="LIST",
    help="Comma-separated addresses of the proxies trusted with --proxy-headers ('*': any).",
)
def serve(
    database: str,
    listen: str,
    workers: int,
    min_agents: int,
    min_networks: int,
    window: str,
    ttl: str,
    retention: str,
    journal_retention: str,
    rate_limit: float,
    burst: int,
    proxy_headers: bool,
    forwarded_allow_ips: str,
) -> None:
    """Serve the hub: the JSON API for agents (/api/v1), the dashboard, /health.

    \b
    Examples:
      gardien hub serve --database sqlite:////var/lib/gardien/hub.sqlite3
      gardien hub serve --database postgresql://hub:secret@db/hub --listen 0.0.0.0:8080 \\
          --workers 4 --proxy-headers --forwarded-allow-ips 10.0.0.5
    """
    import os

    host, port = parse_listen(listen)
    window_seconds = _seconds(window, "--window")
    ttl_seconds = _seconds(ttl, "--ttl")
    retention_seconds = _retention(retention, window_seconds)
    journal_seconds = _seconds(journal_retention, "--journal-retention")
    store = open_store(database)  # a clear error for a bad URL or a missing [hub] extra
    store.close()
    from gardien.hub.app import check_schema
    from gardien.hub.model import Consensus
    from gardien.hub.settings import SETTINGS_ENVIRONMENT, HubSettings

    check_schema(database)
    _check_bind(host, port)
    settings = HubSettings(
        consensus=Consensus(
            min_agents=min_agents,
            min_networks=min_networks,
            window=window_seconds,
            ttl=ttl_seconds,
            report_retention=retention_seconds,
            journal_retention=journal_seconds,
        ),
        rate_limit=rate_limit,
        burst=float(burst),
    )
    # uvicorn's worker processes build the application from the environment they inherit.
    os.environ[SETTINGS_ENVIRONMENT] = json.dumps(
        {"database": database, "settings": json.loads(settings.to_json())}
    )
    import uvicorn

    uvicorn.run(
        "gardien.hub.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
        server_header=False,
        timeout_graceful_shutdown=10,
    )

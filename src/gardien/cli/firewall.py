"""``gardien firewall``: check rulesets (``lint``), write them from a policy (``render``),
apply them with a rollback unless confirmed (``apply``, ``confirm``), and remove what the
jails put in the firewall (``clear``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from click.decorators import FC

from gardien.errors import ConfigError, ControlError
from gardien.firewall import SEVERITIES, lint
from gardien.firewall.apply import DEFAULT_STATE_DIR, apply_policy, confirm, rollback_after
from gardien.firewall.lint import NOT_A_RULESET
from gardien.firewall.policy import load_policy
from gardien.firewall.render import BACKENDS, FAMILIES, render
from gardien.severity import fails


@click.group()
def firewall() -> None:
    """Check firewall rulesets, and write them from a policy.

    \b
    Examples:
      iptables-save | gardien firewall lint
      gardien firewall lint rules.sh --asterisk /etc/asterisk
      nft list ruleset | gardien firewall lint --json -
      gardien firewall render policy.toml > policy.nft
      gardien firewall apply policy.toml --confirm 60 && gardien firewall confirm
    """


def _read(source: str) -> str:
    """The text of FILE, or of standard input for ``-``; binary input is refused."""
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{NOT_A_RULESET} (binary data)") from None


@firewall.command(name="lint")
@click.argument("source", metavar="[FILE|-]", default="-")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="warning",
    show_default=True,
    help="Exit with status 1 when a finding is at least this severe.",
)
@click.option(
    "--asterisk",
    "asterisk_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Asterisk's configuration directory: also check the SIP port against sip.conf and "
    "pjsip.conf.",
)
def lint_command(source: str, as_json: bool, fail_on: str, asterisk_dir: Path | None) -> None:
    """Check iptables-save output, nft list ruleset output or a script of iptables commands
    (read from FILE, or standard input), without running anything.

    Exits with status 1 when a finding reaches --fail-on, else 0.
    """
    name = "<stdin>" if source == "-" else source
    try:
        findings = lint(_read(source), asterisk_dir=asterisk_dir)
    except ConfigError as error:
        raise error.located(path=name) from None  # a message about the input names it
    if as_json:
        click.echo(json.dumps({"findings": [asdict(f) for f in findings]}, indent=2))
    elif not findings:
        click.echo(f"{name}: no findings")
    for severity in () if as_json else SEVERITIES:
        group = [f for f in findings if f.severity == severity]
        if group:
            click.echo(f"{severity}s ({len(group)}):")
        for finding in group:
            click.echo(f"  {name}:{finding.line}: {finding.id}: {finding.message}")
            click.echo(f"      fix: {finding.fix}")
    if fails(findings, fail_on):
        raise click.exceptions.Exit(1)


def _backend_option(help_text: str) -> Callable[[FC], FC]:
    """``--backend nftables|iptables``, as render and apply take it."""
    return click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default="nftables",
        show_default=True,
        help=help_text,
    )


def _asterisk_option(help_text: str) -> Callable[[FC], FC]:
    """``--asterisk DIR``: where the asterisk preset reads its ports, for render and apply."""
    return click.option(
        "--asterisk",
        "asterisk_dir",
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help=help_text,
    )


@firewall.command(name="render")
@click.argument("policy_file", metavar="POLICY")
@_backend_option("nftables: an nft -f script; iptables: iptables-restore input.")
@click.option(
    "--family",
    type=click.Choice(FAMILIES),
    default="both",
    show_default=True,
    help="iptables only: IPv4 (iptables-restore), IPv6 (ip6tables-restore) or both, the IPv6 "
    "part after a comment line.",
)
@_asterisk_option(
    "Asterisk's configuration directory: the asterisk preset takes its SIP ports from "
    "sip.conf / pjsip.conf and its RTP range from rtp.conf."
)
def render_command(policy_file: str, backend: str, family: str, asterisk_dir: Path | None) -> None:
    """Write the firewall rules of the TOML policy POLICY to standard output, without running
    anything. Check them with gardien firewall lint, apply them with nft -f or iptables-restore.
    """
    policy = load_policy(policy_file, asterisk_dir=asterisk_dir)
    click.echo(render(policy, backend, family=family), nl=False)


_state_dir_option = click.option(
    "--state-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where the saved ruleset and the pending rollback's token are kept (mode 0700).",
)


@firewall.command(name="apply")
@click.argument("policy_file", metavar="POLICY")
@_backend_option(
    "nftables: nft -f (one transaction); iptables: iptables-restore and ip6tables-restore."
)
@click.option(
    "--confirm",
    "confirm_seconds",
    metavar="SECONDS",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Restore the saved ruleset after SECONDS unless gardien firewall confirm is run; "
    "0: no rollback.",
)
@click.option("--force", is_flag=True, help="Apply even a policy that cuts this SSH session.")
@_asterisk_option("Asterisk's configuration directory, as for render.")
@_state_dir_option
def apply_command(
    policy_file: str,
    backend: str,
    confirm_seconds: int,
    force: bool,
    asterisk_dir: Path | None,
    state_dir: Path,
) -> None:
    """Apply the TOML policy POLICY: save the ruleset in force, replace it in one transaction,
    and restore the saved one after --confirm seconds unless gardien firewall confirm is run.

    Refuses a policy that would cut the current SSH session (SSH_CONNECTION) unless --force.
    """
    policy = load_policy(policy_file, asterisk_dir=asterisk_dir)
    applied = apply_policy(
        policy,
        backend,
        state_dir=state_dir,
        confirm=confirm_seconds,
        force=force,
        ssh_connection=os.environ.get("SSH_CONNECTION"),
    )
    saved = (
        "kept the ruleset saved before the unconfirmed change"
        if applied.kept_save
        else (f"saved the previous ruleset in {state_dir}")
    )
    click.echo(f"applied {policy_file} ({backend}); {saved}")
    if applied.confirm:
        state = "" if state_dir == DEFAULT_STATE_DIR else f" --state-dir {state_dir}"
        click.echo(
            f"it will be rolled back in {applied.confirm} s unless you run: "
            f"gardien firewall confirm{state}"
        )
    else:
        click.echo("no rollback (--confirm 0)")


@firewall.command(name="confirm")
@_state_dir_option
def confirm_command(state_dir: Path) -> None:
    """Keep the rules gardien firewall apply put in force: cancel the pending rollback."""
    confirm(state_dir)
    click.echo("confirmed: the applied rules stay in force")


@firewall.command(name="_rollback", hidden=True)
@_state_dir_option
@click.option("--after", type=float, required=True)
def rollback_command(state_dir: Path, after: float) -> None:
    """Started by apply, detached: restore the saved ruleset after --after seconds unless
    confirmed."""
    rollback_after(state_dir, after)


@firewall.command(name="clear")
@click.pass_obj
def clear_command(obj: dict[str, Any]) -> None:
    """Remove every table, set, chain and rule that the jails' firewall actions put in the
    firewall, their bans included (whatever keepbans says). Refused while the daemon runs:
    stop it first. The Debian package runs it when it is removed."""
    from gardien.actions.cleanup import clear_firewall
    from gardien.config.daemon import load_daemon_settings
    from gardien.daemon.control import ControlClient

    config_dir = Path(obj["config_dir"])
    socket = obj.get("socket") or load_daemon_settings(config_dir).socket
    try:
        ControlClient(socket, timeout=5).call("ping")
    except ControlError:
        pass  # not running: the firewall is ours to clear
    else:
        raise ConfigError(f"the daemon answers on {socket}: stop it first (gardien stop)")
    failed = 0
    for cleared in clear_firewall(config_dir):
        if cleared.error is None:
            click.echo(f"cleared [{cleared.jail}] {cleared.backend} {cleared.name}")
        else:
            failed += 1
            click.echo(
                f"gardien: error: [{cleared.jail}] {cleared.backend} {cleared.name}: "
                f"{cleared.error}",
                err=True,
            )
    if failed:
        raise click.exceptions.Exit(1)

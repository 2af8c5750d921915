"""``gardien audit asterisk|postfix|jails``: hardening checks with file:line and fixes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from gardien.audit import SEVERITIES, Finding, fails, render_json, render_text

__all__ = ["audit", "report"]


@click.group()
def audit() -> None:
    """Check the configuration of the protected services and of the jails.

    \b
    Examples:
      gardien audit asterisk /etc/asterisk
      gardien audit postfix --json
      gardien -c /etc/fail2ban audit jails --fail-on error
    """


def report(findings: Sequence[Finding], what: str, as_json: bool, fail_on: str) -> None:
    """Print the findings and exit non-zero when one reaches ``fail_on``."""
    click.echo(render_json(findings) if as_json else render_text(findings, what))
    if fails(findings, fail_on):
        raise click.exceptions.Exit(1)


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` and ``--fail-on`` for every audit."""
    function = click.option(
        "--json", "as_json", is_flag=True, help='Print {"findings": [...]} as JSON.'
    )(function)
    return click.option(
        "--fail-on",
        type=click.Choice(SEVERITIES),
        default="warning",
        show_default=True,
        help="Exit 1 when a finding is at least this serious.",
    )(function)


@audit.command()
@click.argument(
    "directory", default="/etc/postfix", metavar="[DIR]", type=click.Path(file_okay=False)
)
@common_options
@click.pass_obj
def postfix(obj: dict[str, Any], directory: str, as_json: bool, fail_on: str) -> None:
    """Check the Postfix configuration in DIR (default /etc/postfix): SASL authentication
    without TLS, an open relay, a relay password file readable by others, and no enabled jail
    banning SASL failures (in the configuration directory given by -c)."""
    from gardien.audit.postfix import audit_postfix

    findings = audit_postfix(directory, obj["config_dir"])
    report(findings, f"postfix {directory}", as_json, fail_on)


@audit.command()
@common_options
@click.pass_obj
def jails(obj: dict[str, Any], as_json: bool, fail_on: str) -> None:
    """Check the enabled jails of the configuration directory (-c): ignoreip without loopback
    or without the current SSH client, bantime longer than dbpurgeage, missing logs, filters
    matching nothing in their log, unusual maxretry or findtime."""
    from gardien.audit.jails import audit_jails

    findings = audit_jails(obj["config_dir"])
    report(findings, f"jails {obj['config_dir']}", as_json, fail_on)


@audit.command()
@click.argument("directory", default="/etc/asterisk", required=False)
@common_options
@click.pass_obj
def asterisk(obj: dict[str, Any], directory: str, as_json: bool, fail_on: str) -> None:
    """Check an Asterisk configuration (DIR, default /etc/asterisk): guest calls, account
    enumeration, SIP on 5060, accounts without an address ACL, weak identifiers and secrets,
    logins equal to extensions, and a security log read by a jail. Secrets are never printed.
    """
    from gardien.audit.asterisk import audit_asterisk
    from gardien.config.jails import load_jails

    jails = load_jails(obj["config_dir"])
    report(audit_asterisk(directory, jails=jails), f"asterisk {directory}", as_json, fail_on)

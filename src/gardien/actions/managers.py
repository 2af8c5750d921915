"""fail2ban's actions for firewall managers (``ufw``, ``firewallcmd-*``) carried out by gardien's
own nftables table, which works beside them.

fail2ban drives ufw and firewalld through their command-line tools, one process per ban. gardien
does not: it keeps its bans in its own table ``inet gardien``, whose chains run at priority
``filter - 1``, before ufw's and firewalld's. A drop there is final whatever those managers
accept later, and neither manager touches a table it did not create, so both keep working as
configured. The settings that choose *what* is blocked carry over:

==========================  ===============================================================
action                      what gardien blocks
==========================  ===============================================================
``ufw``                     every port, or the ports of ``application=NAME`` read from
                            ufw's profiles (``/etc/ufw/applications.d``); ``blocktype``
                            ``reject`` (default) or ``deny`` (= drop)
``firewallcmd-allports``    every port
``firewallcmd-multiport``,  ``port`` for ``protocol`` (``firewallcmd-ipset``: every port
``firewallcmd-new``,        when ``actiontype=<allports>``)
``firewallcmd-ipset``,
``firewallcmd-rich-rules``,
``firewallcmd-rich-logging``
==========================  ===============================================================

The firewalld settings that place a rule inside firewalld (``zone``, ``service``, ``family``,
the ``INPUT_direct`` chain) have no meaning in gardien's table and are accepted silently.
"""

from __future__ import annotations

import configparser
import logging
from collections.abc import Callable
from pathlib import Path

from gardien.errors import ConfigError
from gardien.settings import Spec

__all__ = ["MANAGER_ACTIONS", "UFW_APPLICATIONS", "manager_notice", "translate_manager_action"]

logger = logging.getLogger("gardien.actions")

#: ufw's application profiles (``ufw app info NAME`` reads them)
UFW_APPLICATIONS = Path("/etc/ufw/applications.d")

#: firewall-manager action -> the manager's name, for the notice
MANAGER_ACTIONS: dict[str, str] = {
    "ufw": "ufw",
    "firewallcmd-allports": "firewalld",
    "firewallcmd-ipset": "firewalld",
    "firewallcmd-multiport": "firewalld",
    "firewallcmd-new": "firewalld",
    "firewallcmd-rich-logging": "firewalld",
    "firewallcmd-rich-rules": "firewalld",
}
#: parameters of fail2ban's ufw and firewallcmd actions that place rules inside the manager
_MANAGER_ONLY = frozenset(
    {
        # ufw
        "application",
        "add",
        "insertpos",
        "destination",
        "comment",
        "kill-mode",
        "kill",
        # firewalld
        "zone",
        "service",
        "family",
        "rejecttype",
        "rich-blocktype",
        "rich-suffix",
        "rich-addr",
        "actiontype",
        "allports",
        "multiport",
        "ipsettype",
        "timeout",
        "maxelem",
        "familyopt",
        "chain",
    }
)


def translate_manager_action(spec: Spec, applications: Path | None = None) -> tuple[Spec, str]:
    """The nftables action that blocks what ``spec`` (a ``ufw`` or ``firewallcmd-*`` action)
    blocks, and a sentence saying so; :class:`ConfigError` for a setting that cannot hold.
    ``applications``: ufw's profiles directory (default :data:`UFW_APPLICATIONS`)."""
    applications = applications or UFW_APPLICATIONS
    params = {k.lower(): v.strip() for k, v in spec.params.items()}
    kept = {k: v for k, v in params.items() if k not in _MANAGER_ONLY and k != "blocktype"}
    blocktype = _blocktype(spec, params.get("blocktype", ""))
    if blocktype:
        kept["blocktype"] = blocktype
    if spec.name == "ufw":
        ports = _ufw_application_ports(params.get("application", ""), applications)
        if ports is None:  # ufw denies "from IP to any": every port of every protocol
            kept.pop("port", None)
            kept["protocol"] = "all"
            return Spec("nftables-allports", kept), "every port"
        port_list, protocol = ports
        kept.update(port=",".join(port_list), protocol=protocol)
        return Spec("nftables-multiport", kept), (
            f"the ports of ufw application {params['application']!r}: {kept['port']}/{protocol}"
        )
    all_ports = spec.name == "firewallcmd-allports" or (
        spec.name == "firewallcmd-ipset" and "allports" in params.get("actiontype", "")
    )
    if all_ports or not kept.get("port"):
        kept.pop("port", None)
        return Spec("nftables-allports", kept), "every port"
    protocol = kept.get("protocol", "tcp")
    return Spec("nftables-multiport", kept), f"port {kept['port']}/{protocol}"


def _blocktype(spec: Spec, text: str) -> str:
    """fail2ban's blocktype for these actions -> gardien's (``DROP``/``REJECT``), '' if unset."""
    word = text.split(maxsplit=1)[0].lower() if text.strip() else ""
    if not word:
        return ""
    if word in ("reject",):
        return "REJECT"
    if word in ("deny", "drop"):
        return "DROP"
    raise ConfigError(
        f"action {spec.name!r}: blocktype {text!r} is not one gardien carries out "
        "(reject, deny or drop)"
    )


def _ufw_application_ports(name: str, applications: Path) -> tuple[list[str], str] | None:
    """The ports of ufw's application profile ``name`` (``ports=22/tcp`` or ``80,443/tcp``,
    ``5060:5061/udp``, several separated by ``|``), or None for every port: no application
    given, or a profile gardien cannot read (logged)."""
    if not name:
        return None
    profiles = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        files = sorted(p for p in applications.iterdir() if p.is_file())
        profiles.read(files, encoding="utf-8")
    except (OSError, configparser.Error) as error:
        logger.warning("ufw application %r: cannot read %s (%s)", name, applications, error)
        return None
    if not profiles.has_section(name) or not profiles.get(name, "ports", fallback=""):
        logger.warning(
            "ufw application %r is not in %s: every port of the offender is blocked",
            name,
            applications,
        )
        return None
    ports: list[str] = []
    protocols: set[str] = set()
    for part in profiles.get(name, "ports").split("|"):
        numbers, _, protocol = part.strip().partition("/")
        ports += [p.strip() for p in numbers.split(",") if p.strip()]
        protocols.add(protocol.strip().lower() or "all")
    # one rule blocks one protocol: a profile mixing tcp and udp is blocked on both
    return ports, protocols.pop() if len(protocols) == 1 else "all"


def manager_notice(
    spec: Spec, jail: str, blocks: str, once: Callable[[str], bool] | None = None
) -> None:
    """Say, once per manager and start (``once(manager)`` true the first time), that its
    actions go through gardien's own table; what each jail blocks is said at debug level."""
    manager = MANAGER_ACTIONS[spec.name]
    logger.debug("[%s] action %s blocks %s, in table inet gardien", jail, spec.name, blocks)
    if once is not None and not once(manager):
        return
    logger.warning(
        "action %s (jail %s and any other): gardien bans in its own nftables table "
        "(inet gardien), which runs before %s's rules and leaves them as they are",
        spec.name,
        jail,
        manager,
    )

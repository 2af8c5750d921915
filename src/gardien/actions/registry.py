"""From ``action = name[params]`` to an :class:`~gardien.actions.base.Action`."""

from __future__ import annotations

from collections.abc import Sequence

from gardien.actions.base import Action
from gardien.actions.log import LogAction
from gardien.config.values import Spec
from gardien.errors import ConfigError

__all__ = ["FIREWALL_ACTIONS", "build_action", "build_actions"]

#: fail2ban's firewall actions, which gardien's nftables/ipset/iptables backends will implement
FIREWALL_ACTIONS = frozenset(
    {
        "iptables",
        "iptables-allports",
        "iptables-multiport",
        "iptables-multiport-log",
        "iptables-new",
        "iptables-xt_recent-echo",
        "iptables-ipset",
        "iptables-ipset-proto4",
        "iptables-ipset-proto6",
        "iptables-ipset-proto6-allports",
        "nftables",
        "nftables-allports",
        "nftables-multiport",
        "firewallcmd-allports",
        "firewallcmd-ipset",
        "firewallcmd-multiport",
        "firewallcmd-new",
        "firewallcmd-rich-logging",
        "firewallcmd-rich-rules",
        "shorewall",
        "ufw",
    }
)


#: parameters fail2ban's jail.conf passes to every ban action; the dry run accepts and ignores
#: them, so that ``banaction = log`` works with ``action_ = %(banaction)s[port=...]``
FIREWALL_PARAMETERS = frozenset(
    {
        "name",
        "port",
        "protocol",
        "chain",
        "blocktype",
        "bantime",
        "actname",
    }
)


def build_action(spec: Spec, jail: str) -> Action:
    """The action ``spec`` names for ``jail``; :class:`ConfigError` when gardien has none."""
    if spec.name == "log":
        unknown = set(spec.params) - {"level"} - FIREWALL_PARAMETERS
        if unknown:
            raise ConfigError(
                f"action 'log' has no parameter {sorted(unknown)[0]!r} "
                "(it takes level=debug|info|warning|error)"
            )
        level = spec.params.get("level", "warning")
        if level.lower() not in LogAction.LEVELS:
            raise ConfigError(
                f"action 'log': unknown level {level!r} (debug, info, notice, warning or error)"
            )
        return LogAction(jail, level=level)
    if spec.name in FIREWALL_ACTIONS:
        raise ConfigError(
            f"action {spec.name!r} is a firewall action, which this version of gardien cannot "
            "carry out yet (the nftables, ipset and iptables backends come next); use "
            "action = log for a dry run"
        )
    raise ConfigError(f"unknown action {spec.name!r} (gardien knows: log)")


def build_actions(specs: Sequence[Spec], jail: str) -> list[Action]:
    """All the actions of a jail; the first one gardien cannot carry out stops the start."""
    return [build_action(spec, jail) for spec in specs]

"""Actions: what a jail does with its ban decisions (firewall backends, notifiers, logging).

An action is named in a jail as in fail2ban (``action = iptables-allports[name=asterisk,
protocol=all]``); :func:`build_action` turns that specification into an object with the small
:class:`Action` protocol. Firewall backends arrive in a later release: until then, naming one
makes the jail fail at start with a message that says so, and ``action = log`` is the dry run.
"""

from gardien.actions.base import Action
from gardien.actions.firewall import FirewallAction, block_spec
from gardien.actions.log import LogAction
from gardien.actions.registry import (
    FIREWALL_ACTIONS,
    FirewallRegistry,
    build_action,
    build_actions,
)

__all__ = [
    "FIREWALL_ACTIONS",
    "Action",
    "FirewallAction",
    "FirewallRegistry",
    "LogAction",
    "block_spec",
    "build_action",
    "build_actions",
]

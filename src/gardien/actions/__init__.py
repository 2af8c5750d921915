"""Actions: what a jail does with its ban decisions (firewall backends, notifiers, logging).

An action is named in a jail as in fail2ban (``action = iptables-allports[name=asterisk,
protocol=all]``); :func:`build_action` turns that specification into an object with the small
:class:`Action` protocol: firewall backends (:mod:`gardien.actions.firewall`), the dry run
``log``, and notifiers that never delay a ban: ``mail`` and fail2ban's ``sendmail-*``/``mail-*``
names (:mod:`gardien.actions.mail`), and ``webhook`` (:mod:`gardien.actions.webhook`); and
``hub``, which reports bans to a gardien hub through an on-disk queue (:mod:`gardien.actions.hub`).
"""

from gardien.actions.base import Action
from gardien.actions.firewall import FirewallAction, block_spec
from gardien.actions.hub import HubAction, hub_action
from gardien.actions.log import LogAction
from gardien.actions.mail import MAIL_ACTIONS, MailAction, mail_action
from gardien.actions.registry import (
    FIREWALL_ACTIONS,
    FirewallRegistry,
    build_action,
    build_actions,
)
from gardien.actions.webhook import WebhookAction, webhook_action

__all__ = [
    "FIREWALL_ACTIONS",
    "MAIL_ACTIONS",
    "Action",
    "FirewallAction",
    "FirewallRegistry",
    "HubAction",
    "LogAction",
    "MailAction",
    "WebhookAction",
    "block_spec",
    "build_action",
    "build_actions",
    "hub_action",
    "mail_action",
    "webhook_action",
]

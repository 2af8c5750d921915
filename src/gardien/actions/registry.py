"""From ``action = name[params]`` to an :class:`~gardien.actions.base.Action`."""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
from collections.abc import Callable, Sequence

from gardien.actions.base import Action
from gardien.actions.firewall import BACKEND_OF, firewall_action
from gardien.actions.hub import hub_action
from gardien.actions.log import LogAction
from gardien.actions.mail import MAIL_ACTIONS, mail_action
from gardien.actions.managers import MANAGER_ACTIONS, manager_notice, translate_manager_action
from gardien.actions.webhook import webhook_action
from gardien.backends.base import Firewall
from gardien.clock import Clock
from gardien.errors import BackendError, ConfigError
from gardien.settings import MailRelay, Spec

__all__ = ["FIREWALL_ACTIONS", "FirewallRegistry", "build_action", "build_actions"]

logger = logging.getLogger("gardien.actions")

#: firewall actions of fail2ban that gardien does not carry out (another firewall manager)
UNSUPPORTED = frozenset({"shorewall"})
#: fail2ban actions with a mechanism of their own that gardien does not reproduce
DIFFERENT = frozenset({"iptables-xt_recent-echo"})
FIREWALL_ACTIONS = frozenset(BACKEND_OF) | frozenset(MANAGER_ACTIONS) | UNSUPPORTED | DIFFERENT
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
_BACKEND_CLASSES = {
    "nftables": ("gardien.backends.nftables", "NftablesFirewall"),
    "ipset": ("gardien.backends.ipset", "IpsetFirewall"),
    "iptables": ("gardien.backends.iptables", "IptablesFirewall"),
}


class FirewallRegistry:
    """One instance of each backend, made when a jail first needs it."""

    def __init__(self, factories: dict[str, Callable[[], Firewall]] | None = None) -> None:
        self._factories = factories
        self._made: dict[str, Firewall] = {}
        self._noticed: set[str] = set()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is asked about: one notice per start, not per jail."""
        with self._lock:
            if key in self._noticed:
                return False
            self._noticed.add(key)
            return True

    def __call__(self, backend: str) -> Firewall:
        with self._lock:
            found = self._made.get(backend)
            if found is None:
                found = self._made[backend] = self._make(backend)
            return found

    def _make(self, backend: str) -> Firewall:
        if self._factories is not None:
            if backend not in self._factories:
                raise ConfigError(f"firewall backend {backend!r} is not available here")
            return self._factories[backend]()
        try:
            return _instantiate(backend)
        except BackendError as error:
            if backend != "nftables":
                raise ConfigError(f"the {backend} backend cannot start: {error}") from None
            # nftables is the default where available; without libnftables, ipset and
            # iptables block the same addresses and ports
            fallback = "ipset" if shutil.which("ipset") else "iptables"
            if not shutil.which("iptables-restore"):
                raise ConfigError(
                    f"the nftables backend cannot start ({error}), and "
                    "iptables is not installed either"
                ) from None
            logger.warning("nftables unavailable (%s): using %s instead", error, fallback)
            try:
                return _instantiate(fallback)
            except BackendError as second:
                raise ConfigError(f"no firewall backend can start: {error}; {second}") from None


def _instantiate(backend: str) -> Firewall:
    module_name, class_name = _BACKEND_CLASSES[backend]
    module = importlib.import_module(module_name)
    firewall: Firewall = getattr(module, class_name)()
    return firewall


def build_action(
    spec: Spec,
    jail: str,
    *,
    firewalls: Callable[[str], Firewall] | None = None,
    clock: Clock | None = None,
    keep_bans: bool = False,
    mail_relay: MailRelay | None = None,
) -> Action:
    """The action ``spec`` names for ``jail``; :class:`ConfigError` when gardien has none.

    Building sends and changes nothing: that waits for the action's ``start()``. Mail actions
    go through ``mail_relay`` (the ``[mail]`` section of gardien.conf; its defaults if None).
    """
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
    if spec.name in BACKEND_OF:
        return firewall_action(
            spec, jail, firewalls or FirewallRegistry(), clock=clock, keep_bans=keep_bans
        )
    if spec.name in MANAGER_ACTIONS:
        equivalent, blocks = translate_manager_action(spec)
        registry = firewalls or FirewallRegistry()
        action = firewall_action(equivalent, jail, registry, clock=clock, keep_bans=keep_bans)
        action.name = spec.name
        once = registry.first_time if isinstance(registry, FirewallRegistry) else None
        manager_notice(spec, jail, blocks, once)
        return action
    if spec.name in MAIL_ACTIONS:
        return mail_action(spec, jail, mail_relay, clock=clock)
    if spec.name == "webhook":
        return webhook_action(spec, jail, clock=clock)
    if spec.name == "hub":
        return hub_action(spec, jail, clock=clock)
    if spec.name in DIFFERENT:
        raise ConfigError(
            f"action {spec.name!r} works with the iptables 'recent' module, which gardien does "
            "not use; use iptables-multiport or nftables-multiport"
        )
    if spec.name in UNSUPPORTED:
        raise ConfigError(
            f"action {spec.name!r} drives the Shorewall firewall manager, which gardien does not; "
            "use nftables-multiport, nftables-allports, iptables-multiport, iptables-allports "
            "or iptables-ipset"
        )
    raise ConfigError(
        f"unknown action {spec.name!r} (gardien knows: log, mail, webhook, hub, "
        + ", ".join(sorted(BACKEND_OF))
        + ", and fail2ban's sendmail-* and mail-* actions)"
    )


def build_actions(
    specs: Sequence[Spec],
    jail: str,
    *,
    firewalls: Callable[[str], Firewall] | None = None,
    clock: Clock | None = None,
    keep_bans: bool = False,
    mail_relay: MailRelay | None = None,
) -> list[Action]:
    """All the actions of a jail; the first one gardien cannot carry out stops the start."""
    return [
        build_action(
            spec,
            jail,
            firewalls=firewalls,
            clock=clock,
            keep_bans=keep_bans,
            mail_relay=mail_relay,
        )
        for spec in specs
    ]

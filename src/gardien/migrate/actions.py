"""fail2ban's actions as gardien carries them out.

Firewall actions (``iptables-*``, ``iptables-ipset-*``, ``nftables``, ``firewallcmd-*``,
``ufw``, ``shorewall``) become gardien's ``nftables-multiport`` or ``nftables-allports`` with the
same ``name``, ``port``, ``protocol``, ``chain`` and ``blocktype``: gardien bans in its own table,
``inet gardien``, while fail2ban's ``f2b-*`` chains are removed during the switch (gardien's
iptables backend would name its chains the same way). Mail, webhook and log actions are kept
when gardien can build them; the others are listed as not carried over, with the reason.
"""

from __future__ import annotations

from gardien.actions import FirewallRegistry, build_action, managers
from gardien.actions.firewall import BACKEND_OF
from gardien.actions.registry import DIFFERENT, UNSUPPORTED
from gardien.backends import MemoryFirewall
from gardien.errors import ConfigError
from gardien.migrate.notes import NotCarried
from gardien.settings import JailSettings, Spec

__all__ = ["migrated_actions"]

_FIREWALL_KEPT = ("name", "port", "protocol", "chain", "blocktype")
#: parameters of fail2ban's firewall actions that change nothing in what is blocked
_FIREWALL_HARMLESS = frozenset(
    {"type", "bantime", "actname", "iptables", "lockingopt", "table", "table_family"}
    | {"addr_type", "returntype", "known/chain", "chain_hook", "chain_priority"}
)
_PRETEND = FirewallRegistry(dict.fromkeys(("nftables", "ipset", "iptables"), MemoryFirewall))


def migrated_actions(
    jail: JailSettings,
    mail_relay: object,
    changes: list[str],
    notes: list[NotCarried],
) -> list[str]:
    """The jail's actions as gardien writes them; those it cannot carry out are noted."""
    out: list[str] = []
    for spec in jail.actions:
        translated = _firewall_action(jail, spec, changes, notes)
        if translated is not None:
            if translated:
                out.append(translated)
            continue
        try:
            build_action(spec, jail.name, firewalls=_PRETEND, mail_relay=mail_relay)  # type: ignore[arg-type]
        except ConfigError as error:
            notes.append(NotCarried(f"[{jail.name}] action {spec}", error.message))
            continue
        out.append(str(spec))
    return out


def _is_firewall(name: str) -> bool:
    return (
        name in BACKEND_OF
        or name in UNSUPPORTED
        or name in DIFFERENT
        or name.startswith(("iptables", "ip6tables", "nftables", "firewallcmd"))
        or name in ("ufw", "shorewall", "pf", "npf", "ipfw")
    )


def _firewall_action(
    jail: JailSettings, spec: Spec, changes: list[str], notes: list[NotCarried]
) -> str | None:
    """gardien's nftables action for a firewall action of fail2ban (``""``: dropped, noted);
    ``None`` when ``spec`` is not a firewall action."""
    name = spec.name
    if not _is_firewall(name):
        return None
    params = {key.lower(): value.strip() for key, value in spec.params.items()}
    if name in ("pf", "npf", "ipfw"):
        notes.append(NotCarried(f"[{jail.name}] action {spec}", "a BSD firewall: not on Linux"))
        return ""
    blocktype = params.get("blocktype", "").split()
    if blocktype and blocktype[0].upper() == "RETURN":
        notes.append(
            NotCarried(
                f"[{jail.name}] action {spec}",
                "blocktype RETURN turns a ban into a permission, which gardien does not do",
            )
        )
        return ""
    all_ports = (
        name.endswith("-allports")
        or params.get("type", "").lower() == "allports"
        or name in ("ufw", "shorewall", "iptables-xt_recent-echo")
        or params.get("protocol", "").lower() == "all"
    )
    if name == "ufw" and params.get("application"):
        # the ports of ufw's profile, as gardien's own ufw action reads them
        translated, blocks = managers.translate_manager_action(
            Spec(name, {**params, "blocktype": ""})
        )
        if translated.name == "nftables-multiport":
            kept = {k: v for k, v in translated.params.items() if k in _FIREWALL_KEPT}
            if params.get("blocktype", "").lower() == "deny":
                kept["blocktype"] = "DROP"
            text = str(Spec("nftables-multiport", kept))
            changes.append(f"[{jail.name}] action {spec} -> {text} ({blocks})")
            return text
        notes.append(
            NotCarried(
                f"[{jail.name}] action {spec} application={params['application']}",
                f"no such profile in {managers.UFW_APPLICATIONS}: every port is blocked",
            )
        )
    kept = {key: params[key] for key in _FIREWALL_KEPT if params.get(key)}
    if kept.get("chain", "").startswith("<"):
        del kept["chain"]  # fail2ban's '<known/chain>': the default, INPUT
    if all_ports:
        kept.pop("port", None)  # fail2ban's allports blocks every port of ``protocol``
    if name in ("ufw", "shorewall", "iptables-xt_recent-echo"):
        kept["protocol"] = "all"  # these block the address whatever the protocol
    ignored = sorted(set(params) - set(_FIREWALL_KEPT) - _FIREWALL_HARMLESS - {"application"})
    if ignored:
        notes.append(
            NotCarried(
                f"[{jail.name}] action {name} parameter(s) {', '.join(ignored)}",
                "gardien builds its own rules; these have no effect",
            )
        )
    new = Spec("nftables-allports" if all_ports else "nftables-multiport", kept)
    text = str(new)
    if name not in ("nftables-multiport", "nftables-allports") or str(spec) != text:
        changes.append(f"[{jail.name}] action {spec} -> {text}")
    return text

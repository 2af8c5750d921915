"""``lint``: the mistakes people make in firewall rulesets, found before they cost anything.

Reads ``iptables-save`` output, ``nft list ruleset`` output or a shell script of ``iptables``
commands (split, never run), tells them apart, and returns :class:`Finding` objects::

    lint(Path("rules.sh").read_text(), asterisk_dir=Path("/etc/asterisk"))
"""

from __future__ import annotations

from pathlib import Path

from gardien.errors import ConfigError
from gardien.firewall._asterisk import sip_ports
from gardien.firewall._iptables import looks_like_save, looks_like_script, read_save, read_script
from gardien.firewall._model import Chain, Finding, PortRange, Rule
from gardien.firewall._nft import looks_like_nft, read_nft
from gardien.severity import SEVERITIES, Severity

__all__ = ["NOT_A_RULESET", "SEVERITIES", "Finding", "Severity", "lint"]

NOT_A_RULESET = (
    "not iptables-save output, nft list ruleset output nor a shell script of iptables commands"
)

#: ports that administer a server, and what usually listens there
ADMIN_PORTS = {
    22: "SSH",
    23: "telnet",
    3306: "MySQL",
    5038: "the Asterisk manager (AMI)",
    5432: "PostgreSQL",
    8080: "a web administration",
    10000: "Webmin",
}
_TARGETS = frozenset(("ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "NFLOG", "QUEUE", "MARK"))
#: ports that usually carry SIP, to recognise the SIP rule among the accepts
_SIP_LIKE = frozenset(range(5060, 5100)) | {5160, 5161}


def lint(text: str, *, asterisk_dir: Path | None = None) -> list[Finding]:
    """The findings of a ruleset, sorted by line.

    ``asterisk_dir`` (``/etc/asterisk``) also compares the SIP port the rules accept with the one
    Asterisk listens on. Raises :class:`~gardien.errors.ConfigError` when ``text`` is none of the
    three formats, or the Asterisk directory cannot be read.
    """
    if "\x00" in text or not text.strip():
        raise ConfigError(NOT_A_RULESET)
    asterisk = sip_ports(asterisk_dir) if asterisk_dir is not None else None
    findings: list[Finding] = []
    families: list[tuple[list[Chain], dict[str, Chain]]] = []
    if looks_like_nft(text):
        nft = read_nft(text)
        findings += nft.findings
        families.append((nft.input_chains, nft.chains))
    elif looks_like_save(text) or looks_like_script(text):
        rulesets = [read_save(text)] if looks_like_save(text) else read_script(text)
        for ruleset in rulesets:
            findings += ruleset.findings
            if "INPUT" in ruleset.chains:
                families.append(([ruleset.chains["INPUT"]], ruleset.chains))
    else:
        raise ConfigError(NOT_A_RULESET)
    for inputs, chains in families:
        findings += _input_checks(inputs, chains)
        if asterisk is not None:
            findings += _sip_checks(inputs, asterisk)
    return sorted(set(findings), key=lambda f: (f.line, SEVERITIES.index(f.severity), f.id))


def _is_ban_chain(name: str | None, chains: dict[str, Chain]) -> bool:
    """fail2ban's and gardien's chains, and user chains that end in RETURN."""
    if name is None or name in _TARGETS:
        return False
    if name.startswith(("f2b-", "gardien-")):
        return True
    chain = chains.get(name)
    if chain is None:  # created at start by fail2ban or gardien, so not in the saved rules
        return name != name.upper()
    return bool(chain.rules) and chain.rules[-1].verdict == "RETURN"


def _overlaps(first: tuple[PortRange, ...] | None, second: tuple[PortRange, ...] | None) -> bool:
    if first is None or second is None:
        return True
    return any(a <= d and c <= b for a, b in first for c, d in second)


def _same_traffic(accept: Rule, jump: Rule) -> bool:
    """Some packet that ``jump`` sends to its ban chain can match ``accept``."""
    protocols = {accept.protocol, jump.protocol}
    if None not in protocols and len(protocols) > 1:
        return False
    return _overlaps(accept.ports, jump.ports)


def _input_checks(inputs: list[Chain], chains: dict[str, Chain]) -> list[Finding]:
    findings: list[Finding] = []
    drops = final = None
    for chain in inputs:
        reported: set[int] = set()
        for position, rule in enumerate(chain.rules):
            if rule.verdict in ("DROP", "REJECT") and rule.unconditional and final is None:
                final = rule
            if not _is_ban_chain(rule.verdict, chains):
                continue
            for accept in chain.rules[:position]:
                if (
                    accept.verdict == "ACCEPT"
                    and accept.open_to_all
                    and accept.line not in reported
                    and _same_traffic(accept, rule)
                ):
                    reported.add(accept.line)
                    findings.append(
                        Finding(
                            "accept-before-ban-chain",
                            "error",
                            accept.line,
                            f"this ACCEPT comes before the jump to {rule.verdict} "
                            f"(line {rule.line}): the packets it accepts never reach the bans",
                            f"move the jump to {rule.verdict} above this rule (fail2ban "
                            "inserts its jump first with -I), or accept after the ban chain",
                        )
                    )
        if chain.policy in ("DROP", "REJECT"):
            drops = chain
    if not inputs:
        return findings
    first = inputs[0]
    where = first.policy_line or (first.rules[0].line if first.rules else 1)
    rules = [rule for chain in inputs for rule in chain.rules]
    if drops is None and final is None:
        findings.append(
            Finding(
                "no-final-drop",
                "warning",
                where,
                "the INPUT policy is ACCEPT and no final rule drops: whatever the rules do not "
                "accept is accepted anyway",
                "end INPUT with -A INPUT -j DROP (nft: policy drop;), after accepting "
                "established traffic and the services you offer",
            )
        )
    elif not any(rule.accepts_established for rule in rules):
        line = drops.policy_line if drops is not None and drops.policy_line else where
        if final is not None and (drops is None or drops.policy_line is None):
            line = final.line
        findings.append(
            Finding(
                "no-established",
                "warning",
                line or 1,
                "incoming traffic is dropped but replies to the server's own connections "
                "(established, related) are not accepted: DNS, updates and outgoing calls break",
                "accept them first: -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT "
                "(nft: ct state established,related accept)",
            )
        )
    for rule in rules:
        if (
            rule.verdict != "ACCEPT"
            or not rule.open_to_all
            or rule.ports is None
            or rule.protocol not in (None, "tcp")
        ):
            continue
        for port, service in ADMIN_PORTS.items():
            if any(low <= port <= high for low, high in rule.ports):
                findings.append(
                    Finding(
                        "admin-open-to-all",
                        "warning",
                        rule.line,
                        f"port {port} ({service}) is accepted from any address",
                        "accept it only from your own addresses (-s 203.0.113.0/24, nft: "
                        "ip saddr ...) or through a VPN; bans only slow down guessing",
                    )
                )
    return findings


def _sip_checks(inputs: list[Chain], asterisk: dict[int, str]) -> list[Finding]:
    findings: list[Finding] = []
    listening = ", ".join(f"{port} ({where})" for port, where in sorted(asterisk.items()))
    for chain in inputs:
        for rule in chain.rules:
            if rule.verdict != "ACCEPT" or rule.ports is None or not rule.open_to_all:
                continue
            for low, high in rule.ports:
                if low == high and low in _SIP_LIKE and low not in asterisk:
                    findings.append(
                        Finding(
                            "sip-port-mismatch",
                            "warning",
                            rule.line,
                            f"the rules accept SIP on port {low} but Asterisk listens on "
                            f"{listening}",
                            f"accept the port Asterisk binds ({', '.join(map(str, asterisk))}), "
                            "or change bindport / the transport's bind to match the rules",
                        )
                    )
    return findings

"""Reading ``nft list ruleset`` output, simply: the base chains hooked on input and their rules.

Sets, maps and other blocks are skipped; a rule's words are read left to right, and any match
not understood makes the rule ``restricted`` (see :class:`gardien.firewall._model.Rule`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from gardien.firewall._model import SERVICES, Chain, Finding, Rule, host_with_mask, parse_ports

__all__ = ["NftRuleset", "looks_like_nft", "read_nft"]

_TABLE = re.compile(r"^table\s+(ip|ip6|inet|arp|bridge|netdev)\s+\S+\s*\{$")
_CHAIN = re.compile(r"^chain\s+(\S+)\s*\{$")
_HOOK = re.compile(r"\bhook\s+(\w+)")
_POLICY = re.compile(r"\bpolicy\s+(\w+)")
_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT", "return": "RETURN"}


@dataclass
class NftRuleset:
    """The input base chains (as ``INPUT``-like chains), the other chains, and the findings."""

    input_chains: list[Chain] = field(default_factory=list)
    chains: dict[str, Chain] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def looks_like_nft(text: str) -> bool:
    """``nft list ruleset`` output: its first significant line opens a table."""
    for line in (raw.strip() for raw in text.splitlines()):
        if line and not line.startswith("#"):
            return bool(_TABLE.match(line))
    return False


def _is_address(word: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F.:]+(/[0-9.]+)?", word)) and any(c.isdigit() for c in word)


def _rule(text: str, line: int, findings: list[Finding]) -> Rule:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    words = " ".join(words).replace("{", " ").replace("}", " ").replace(",", " ").split()
    protocol: str | None = None
    ports = None
    sourced = False
    restricted = "!=" in words  # "everyone but ...": not a restriction the checks can judge
    words = [word for word in words if word != "!="]
    interface: str | None = None
    states: set[str] = set()
    verdict: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        following = words[index + 1] if index + 1 < len(words) else ""
        if word in ("ip", "ip6") and following in ("saddr", "daddr"):
            index += 2
            while index < len(words) and _is_address(words[index]):
                finding = host_with_mask(words[index], line, f"{word} {following}")
                if finding:
                    findings.append(finding)
                index += 1
            sourced = sourced or following == "saddr"
            continue
        if word in ("tcp", "udp", "th") and following == "dport":
            protocol = None if word == "th" else word
            index += 2
            values = []
            while index < len(words) and (words[index][0].isdigit() or words[index] in SERVICES):
                values.append(words[index])
                index += 1
            ports = parse_ports(",".join(values), SERVICES)
            restricted = restricted or ports is None
            continue
        if word == "ct" and following == "state":
            index += 2
            if index < len(words) and words[index] == "vmap":
                # ct state vmap { established : accept, related : accept, invalid : drop }
                rest = words[index + 1 :]
                for position in range(len(rest) - 2):
                    if rest[position + 1] == ":" and rest[position + 2] == "accept":
                        states.add(rest[position].upper())
                verdict = "ACCEPT" if states else None
                break
            while index < len(words) and words[index] in (
                "established",
                "related",
                "new",
                "invalid",
                "untracked",
            ):
                states.add(words[index].upper())
                index += 1
            continue
        if word in ("iif", "iifname"):
            interface = following.strip('"')
            index += 2
            continue
        if word in ("meta", "ip") and following in ("l4proto", "protocol"):
            protocol = words[index + 2] if index + 2 < len(words) else None
            index += 3
            continue
        if word == "counter":
            index += 1
            while index + 1 < len(words) and words[index] in ("packets", "bytes"):
                index += 2
            continue
        if word in ("comment", "log"):
            break  # a comment, or a log statement and its arguments, then maybe a verdict
        if word in _VERDICTS:
            verdict = _VERDICTS[word]
            break
        if word in ("jump", "goto"):
            verdict = following
            break
        restricted = True
        index += 1
    if verdict is None:
        for word in reversed(words):
            if word in _VERDICTS:
                verdict = _VERDICTS[word]
                break
    return Rule(line, verdict, protocol, ports, sourced, interface, frozenset(states), restricted)


def read_nft(text: str) -> NftRuleset:
    """The chains of ``nft list ruleset`` output (``INPUT`` stands for every input hook)."""
    ruleset = NftRuleset()
    depth = 0
    chain: Chain | None = None
    chain_depth = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        opens, closes = line.count("{"), line.count("}")
        if chain is not None and depth == chain_depth and opens == closes:
            if hook := _HOOK.search(line):
                if hook[1] == "input" and "type filter" in line:
                    ruleset.input_chains.append(chain)
                    chain.policy, chain.policy_line = "ACCEPT", number
                    if policy := _POLICY.search(line):
                        chain.policy = policy[1].upper()
            elif line not in ("}",):
                chain.rules.append(_rule(line, number, ruleset.findings))
        elif depth == 1 and (match := _CHAIN.match(line)):
            chain = ruleset.chains.setdefault(match[1], Chain(match[1]))
            chain_depth = depth + 1
        depth += opens - closes
        if chain is not None and depth < chain_depth:
            chain = None
    return ruleset

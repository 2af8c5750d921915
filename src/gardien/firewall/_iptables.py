"""Reading ``iptables-save`` output and shell scripts of ``iptables`` commands.

Scripts are split with :func:`shlex.split` and never run. Only the ``filter`` table is kept; the
checks that look at single rules (masks, modules, multiport) run on every table.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from gardien.firewall._model import SERVICES, Chain, Finding, Rule, host_with_mask, parse_ports

__all__ = ["Ruleset", "looks_like_save", "looks_like_script", "read_save", "read_script"]

_LONG = {
    "--append": "-A",
    "--insert": "-I",
    "--policy": "-P",
    "--new-chain": "-N",
    "--flush": "-F",
    "--table": "-t",
    "--source": "-s",
    "--src": "-s",
    "--destination": "-d",
    "--dst": "-d",
    "--protocol": "-p",
    "--match": "-m",
    "--jump": "-j",
    "--goto": "-g",
    "--in-interface": "-i",
    "--destination-port": "--dport",
    "--source-port": "--sport",
    "--destination-ports": "--dports",
    "--source-ports": "--sports",
}
_COMMANDS = frozenset(("iptables", "ip6tables")) | {
    f"{tool}-{variant}" for tool in ("iptables", "ip6tables") for variant in ("legacy", "nft")
}
#: options that change nothing the checks look at
#: findings that mean iptables refuses the command
_REFUSED = frozenset(("protocol-module-mismatch", "multiport-missing"))
_HARMLESS = frozenset(("-d", "-o", "--comment", "-c", "--set-counters", "-w", "--wait"))


@dataclass
class Ruleset:
    """The filter table of one address family, and what the single-rule checks found."""

    chains: dict[str, Chain] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def chain(self, name: str) -> Chain:
        return self.chains.setdefault(name, Chain(name))


@dataclass
class _Option:
    name: str
    values: list[str]
    negated: bool


def _options(tokens: list[str]) -> list[_Option]:
    options: list[_Option] = []
    negated = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "!":  # noqa: S105 - negation, not a password
            negated = True
            continue
        if not token.startswith("-"):
            if options:
                options[-1].values.append(token)
            continue
        name, _, inline = token.partition("=")
        option = _Option(_LONG.get(name, name), [inline] if inline else [], negated)
        negated = False
        while index < len(tokens) and tokens[index] != "!" and not tokens[index].startswith("-"):
            option.values.append(tokens[index])
            index += 1
        options.append(option)
    return options


def _rule(options: list[_Option], line: int, findings: list[Finding]) -> Rule:
    """Reduce one rule's match and target options to a Rule, noting single-rule mistakes."""
    protocol: str | None = None
    modules: list[str] = []
    ports = None
    sourced = restricted = False
    interface: str | None = None
    states: frozenset[str] = frozenset()
    verdict: str | None = None
    port_options: list[_Option] = []
    for option in options:
        value = option.values[0] if option.values else ""
        if verdict is not None:
            break  # what follows the target are the target's options
        if option.name in ("-s", "-d"):
            for address in value.split(","):
                finding = host_with_mask(address, line, option.name)
                if finding:
                    findings.append(finding)
            if option.name == "-s":
                sourced = True
                restricted = restricted or option.negated
        elif option.name == "-p":
            protocol = None if value.lower() in ("all", "0") else value.lower()
            restricted = restricted or option.negated
        elif option.name == "-m":
            modules.append(value.lower())
        elif option.name in ("--state", "--ctstate"):
            states = frozenset(value.upper().split(","))
            restricted = restricted or option.negated
        elif option.name in ("--dport", "--dports", "--sport", "--sports", "--ports"):
            port_options.append(option)
            if option.name in ("--dport", "--dports") and not option.negated:
                ports = parse_ports(value, SERVICES)
                restricted = restricted or ports is None
            else:
                restricted = True
        elif option.name == "-i":
            interface = value
            restricted = restricted or option.negated
        elif option.name in ("-j", "-g"):
            verdict = value
        elif option.name not in _HARMLESS:
            restricted = True
    if protocol in ("tcp", "udp"):
        other = "udp" if protocol == "tcp" else "tcp"
        if other in modules:
            findings.append(
                Finding(
                    "protocol-module-mismatch",
                    "error",
                    line,
                    f"-p {protocol} with -m {other}: iptables refuses the {other} match on "
                    f"{protocol} packets, so this rule is never added",
                    f"write -p {protocol} -m {protocol} (or leave out -m)",
                )
            )
    if "multiport" not in modules:
        for option in port_options:
            value = option.values[0] if option.values else ""
            if option.name.endswith("ports") or "," in value:
                plural = option.name if option.name.endswith("s") else option.name + "s"
                findings.append(
                    Finding(
                        "multiport-missing",
                        "error",
                        line,
                        f"{option.name} {value} needs -m multiport: iptables refuses the rule, "
                        "so these ports are not opened",
                        f"write -m multiport {plural} {value}",
                    )
                )
    return Rule(line, verdict, protocol, ports, sourced, interface, states, restricted)


def _apply(ruleset: Ruleset, options: list[_Option], line: int, table: str) -> None:
    """Carry out one command (``-A``, ``-I``, ``-P``, ``-N``, ``-F``) on ``ruleset``."""
    command = next((o for o in options if o.name in ("-A", "-I", "-P", "-N", "-F")), None)
    if command is None:
        return
    rest = [o for o in options if o is not command and o.name != "-t"]
    findings: list[Finding] = []
    rule = _rule(rest, line, findings)
    if command.name in ("-A", "-I"):
        ruleset.findings += findings
        if any(finding.id in _REFUSED for finding in findings):
            return  # iptables refuses the command: the rule never exists
    if table != "filter":
        return
    name = command.values[0] if command.values else None
    if command.name == "-F":
        for chain in ruleset.chains.values() if name is None else [ruleset.chain(name)]:
            chain.rules.clear()
    elif name is None:
        return
    elif command.name == "-N":
        ruleset.chain(name)
    elif command.name == "-P" and len(command.values) > 1:
        chain = ruleset.chain(name)
        chain.policy, chain.policy_line = command.values[1].upper(), line
    elif command.name == "-A":
        ruleset.chain(name).rules.append(rule)
    elif command.name == "-I":
        position = command.values[1] if len(command.values) > 1 else "1"
        index = int(position) - 1 if position.isdigit() else 0
        ruleset.chain(name).rules.insert(max(index, 0), rule)


_SAVE_LINE = re.compile(r"^(?:\*\w+|:\S+\s+\S+(?:\s+\[\d+:\d+\])?|-[AIN]\s.*|COMMIT)$")


def _significant(text: str) -> list[tuple[int, str]]:
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def looks_like_save(text: str) -> bool:
    """iptables-save output: a ``*table`` line, and nothing but its kinds of lines."""
    lines = _significant(text)
    return any(line.startswith("*") for _, line in lines) and all(
        _SAVE_LINE.match(line) for _, line in lines
    )


def read_save(text: str) -> Ruleset:
    """The filter table of ``iptables-save`` output."""
    ruleset = Ruleset()
    table = "filter"
    for number, line in _significant(text):
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if table == "filter":
                chain = ruleset.chain(name)
                if policy != "-":
                    chain.policy, chain.policy_line = policy.upper(), number
        elif line.startswith("-"):
            try:
                tokens = shlex.split(line)
            except ValueError:
                tokens = line.split()
            _apply(ruleset, _options(tokens), number, table)
    return ruleset


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their backslash continuations joined, numbered by their first line."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        start, line = (number, raw) if pending is None else (pending[0], f"{pending[1]} {raw}")
        pending = None
        if line.endswith("\\"):
            pending = (start, line[:-1])
            continue
        joined.append((start, line))
    if pending is not None:
        joined.append(pending)
    return joined


_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(\S*)$")
_VARIABLE = re.compile(r"^\$\{?([A-Za-z_]\w*)\}?$")


def _commands(text: str) -> list[tuple[int, str, list[str]]]:
    """The iptables commands of a script: (line, family, arguments)."""
    variables: dict[str, str] = {}
    found: list[tuple[int, str, list[str]]] = []
    for number, line in _logical_lines(text):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(tokens) == 1 and (assignment := _ASSIGNMENT.match(tokens[0])):
            variables[assignment[1]] = assignment[2]
            continue
        while tokens and (tokens[0] == "sudo" or _ASSIGNMENT.match(tokens[0])):
            tokens = tokens[1:]
        if not tokens:
            continue
        program = tokens[0]
        if variable := _VARIABLE.match(program):
            program = variables.get(variable[1], program)
        program = program.rsplit("/", 1)[-1]
        if program in _COMMANDS:
            found.append((number, "ipv6" if program.startswith("ip6") else "ipv4", tokens[1:]))
    return found


def looks_like_script(text: str) -> bool:
    """A shell script with at least one iptables or ip6tables command."""
    return bool(_commands(text))


def read_script(text: str) -> list[Ruleset]:
    """The filter tables an iptables script builds: one per address family it uses."""
    rulesets: dict[str, Ruleset] = {}
    for number, family, arguments in _commands(text):
        options = _options(arguments)
        table = next((o.values[0] for o in options if o.name == "-t" and o.values), "filter")
        _apply(rulesets.setdefault(family, Ruleset()), options, number, table)
    return list(rulesets.values())

"""A firewall policy written in TOML: what a server offers, to whom, and which jails guard it.

::

    [defaults]
    inbound = "drop"
    outbound = "accept"
    icmp = true
    established = true

    [[service]]
    name = "sip"
    protocol = "udp"
    ports = ["5060"]
    sources = ["203.0.113.0/24"]
    jails = ["asterisk"]

    [[service]]
    preset = "ssh"
    sources = ["198.51.100.7"]

:func:`load_policy` reads and checks it all, raising :class:`~gardien.errors.ConfigError` that
names the file and the key; :mod:`gardien.firewall.render` turns it into rules.
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gardien.errors import ConfigError
from gardien.firewall._asterisk import _sections, sip_ports
from gardien.firewall._model import SERVICES, PortRange, host_with_mask

__all__ = ["PRESETS", "Network", "Policy", "Rule", "load_policy", "parse_policy"]

Protocol = Literal["tcp", "udp"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Rule:
    """One accepted service (inbound) or destination (outbound).

    ``addresses`` are the sources (inbound) or destinations (outbound); empty means any.
    """

    name: str
    protocols: tuple[Protocol, ...]
    ports: tuple[PortRange, ...]
    addresses: tuple[Network, ...] = ()
    jails: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A whole policy: the defaults, the inbound services and the outbound rules."""

    services: tuple[Rule, ...]
    outbound_rules: tuple[Rule, ...] = ()
    inbound: Literal["drop", "accept"] = "drop"
    outbound: Literal["drop", "accept"] = "accept"
    icmp: bool = True
    established: bool = True
    source: str = "<policy>"


#: presets: protocol and ports of well-known services (asterisk may be read from its config)
PRESETS: dict[str, tuple[tuple[Protocol, ...], tuple[PortRange, ...]]] = {
    "ssh": (("tcp",), ((22, 22),)),
    "asterisk": (("udp",), ((5060, 5060), (10000, 20000))),
    "https": (("tcp",), ((80, 80), (443, 443))),
    "postfix": (("tcp",), ((25, 25), (465, 465), (587, 587))),
}

_DEFAULT_KEYS = frozenset(("inbound", "outbound", "icmp", "established"))
_SERVICE_KEYS = frozenset(("name", "preset", "protocol", "ports", "sources", "jails"))
_OUTBOUND_KEYS = frozenset(("name", "protocol", "ports", "destinations"))


def load_policy(path: Path | str, *, asterisk_dir: Path | None = None) -> Policy:
    """Read and check the policy file at ``path``.

    ``asterisk_dir`` (``/etc/asterisk``) makes the ``asterisk`` preset use the SIP and RTP ports
    Asterisk is configured with instead of 5060 and 10000-20000.
    """
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file", path=str(path)) from None
    return parse_policy(text, source=str(path), asterisk_dir=asterisk_dir)


def parse_policy(
    text: str, *, source: str = "<policy>", asterisk_dir: Path | None = None
) -> Policy:
    """The policy in ``text`` (TOML); ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # its message gives the line and column
        raise ConfigError(f"invalid TOML: {error}", path=source) from None
    try:
        return _policy(data, source, asterisk_dir)
    except ConfigError as error:
        raise error.located(path=source) from None


def _policy(data: Mapping[str, Any], source: str, asterisk_dir: Path | None) -> Policy:
    _no_unknown(data, frozenset(("defaults", "service", "outbound")), None)
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError("must be a table: [defaults]", option="defaults")
    _no_unknown(defaults, _DEFAULT_KEYS, "defaults")
    inbound = _choice(defaults, "inbound", ("drop", "accept"), "drop")
    outbound = _choice(defaults, "outbound", ("drop", "accept"), "accept")
    icmp = _flag(defaults, "icmp")
    established = _flag(defaults, "established")
    services = tuple(
        _service(table, f"service #{number}", asterisk_dir)
        for number, table in enumerate(_tables(data, "service"), 1)
    )
    outbound_rules = tuple(
        _outbound(table, f"outbound #{number}")
        for number, table in enumerate(_tables(data, "outbound"), 1)
    )
    if outbound_rules and outbound != "drop":
        raise ConfigError(
            '[[outbound]] rules need outbound = "drop" (everything else is accepted anyway)',
            section="defaults",
            option="outbound",
        )
    names = [service.name for service in services]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                f"two services are named {name!r}; give each its own name", option="service"
            )
    return Policy(
        services,
        outbound_rules,
        "drop" if inbound == "drop" else "accept",
        "drop" if outbound == "drop" else "accept",
        icmp,
        established,
        source,
    )


def _no_unknown(table: Mapping[str, Any], known: frozenset[str], section: str | None) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown key (known: {', '.join(sorted(known))})", section=section, option=key
            )


def _tables(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"must be an array of tables: [[{key}]]", option=key)
    return tables


def _choice(table: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise ConfigError(
            f"{value!r} is not one of {', '.join(map(repr, choices))}",
            section="defaults",
            option=key,
        )
    return str(value)


def _flag(table: Mapping[str, Any], key: str) -> bool:
    value = table.get(key, True)
    if not isinstance(value, bool):
        raise ConfigError(f"{value!r} is not true or false", section="defaults", option=key)
    return value


def _strings(table: Mapping[str, Any], key: str, section: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ConfigError("must be a list of strings", section=section, option=key)
    return [str(v).strip() for v in value if not isinstance(v, bool)]


def _protocols(table: Mapping[str, Any], section: str) -> tuple[Protocol, ...]:
    value = table.get("protocol")
    if value is None:
        raise ConfigError('missing: "tcp", "udp" or "both"', section=section, option="protocol")
    choices: dict[str, tuple[Protocol, ...]] = {
        "tcp": ("tcp",),
        "udp": ("udp",),
        "both": ("tcp", "udp"),
    }
    if value not in choices:
        raise ConfigError(
            f'{value!r} is not "tcp", "udp" or "both"', section=section, option="protocol"
        )
    return choices[value]


def _port(word: str, protocols: tuple[Protocol, ...], section: str) -> int:
    if word.isdigit():
        number = int(word)
    elif word in SERVICES:
        number = SERVICES[word]
    else:
        try:
            number = socket.getservbyname(word, protocols[0])
        except OSError:
            raise ConfigError(
                f"{word!r} is neither a port number nor a known service name",
                section=section,
                option="ports",
            ) from None
    if not 1 <= number <= 65535:
        raise ConfigError(f"port {number} is not in 1-65535", section=section, option="ports")
    return number


def _ports(
    table: Mapping[str, Any], protocols: tuple[Protocol, ...], section: str
) -> tuple[PortRange, ...]:
    words = _strings(table, "ports", section)
    if not words:
        raise ConfigError(
            'missing: a list such as ["22"] or ["10000-20000"]', section=section, option="ports"
        )
    ranges: list[PortRange] = []
    for word in words:
        low, sep, high = word.partition("-")
        first = _port(low.strip(), protocols, section)
        last = _port(high.strip(), protocols, section) if sep else first
        if last < first:
            raise ConfigError(
                f"range {word!r} ends before it starts; write {last}-{first}",
                section=section,
                option="ports",
            )
        ranges.append((first, last))
    return tuple(ranges)


def _addresses(table: Mapping[str, Any], key: str, section: str) -> tuple[Network, ...]:
    words = _strings(table, key, section) if key in table else ["any"]
    if "any" in words:
        if len(words) > 1:
            raise ConfigError('"any" cannot be listed with addresses', section=section, option=key)
        return ()
    if not words:
        raise ConfigError(
            'an empty list admits no one; write "any" or addresses', section=section, option=key
        )
    networks: list[Network] = []
    for word in words:
        finding = host_with_mask(word, 1, key)
        if finding is not None:
            raise ConfigError(f"{finding.message}; {finding.fix}", section=section, option=key)
        try:
            networks.append(ipaddress.ip_network(word))
        except ValueError:
            raise ConfigError(
                f"{word!r} is not an IP address or network", section=section, option=key
            ) from None
    return tuple(networks)


def _jails(table: Mapping[str, Any], section: str) -> tuple[str, ...]:
    jails = _strings(table, "jails", section)
    for jail in jails:
        if not jail or not all(c.isalnum() or c in "_.-" for c in jail):
            raise ConfigError(f"{jail!r} is not a jail name", section=section, option="jails")
    return tuple(jails)


def _service(table: Mapping[str, Any], section: str, asterisk_dir: Path | None) -> Rule:
    _no_unknown(table, _SERVICE_KEYS, section)
    preset = table.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(
                f"unknown preset {preset!r} (known: {', '.join(PRESETS)})",
                section=section,
                option="preset",
            )
        for key in ("protocol", "ports"):
            if key in table:
                raise ConfigError(
                    f"the preset {preset!r} sets it; remove it or the preset",
                    section=section,
                    option=key,
                )
        protocols, ports = PRESETS[preset]
        if preset == "asterisk" and asterisk_dir is not None:
            ports = _asterisk_ports(asterisk_dir)
    else:
        protocols = _protocols(table, section)
        ports = _ports(table, protocols, section)
    name = table.get("name", preset)
    if not isinstance(name, str) or not name:
        raise ConfigError(
            "missing: a name for the service (or a preset)", section=section, option="name"
        )
    return Rule(
        name, protocols, ports, _addresses(table, "sources", section), _jails(table, section)
    )


def _outbound(table: Mapping[str, Any], section: str) -> Rule:
    _no_unknown(table, _OUTBOUND_KEYS, section)
    protocols = _protocols(table, section)
    name = table.get("name", section)
    if not isinstance(name, str):
        raise ConfigError("must be a string", section=section, option="name")
    return Rule(
        name,
        protocols,
        _ports(table, protocols, section),
        _addresses(table, "destinations", section),
    )


def _asterisk_ports(directory: Path) -> tuple[PortRange, ...]:
    """The SIP ports Asterisk binds and its RTP range (rtp.conf, else 10000-20000)."""
    sip = [(port, port) for port in sorted(sip_ports(directory))]
    rtp = directory / "rtp.conf"
    start, end = 10000, 20000
    if rtp.is_file():
        general = _sections(rtp).get("general", {})
        for key in ("rtpstart", "rtpend"):
            if key in general and not general[key][0].isdigit():
                raise ConfigError(
                    f"{key} = {general[key][0]!r} is not a port",
                    path=str(rtp),
                    line=general[key][1],
                )
        start = int(general.get("rtpstart", (str(start), 0))[0])
        end = int(general.get("rtpend", (str(end), 0))[0])
    return (*sip, (start, end))

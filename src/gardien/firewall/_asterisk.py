"""The SIP ports Asterisk listens on, from ``sip.conf`` (chan_sip) and ``pjsip.conf``."""

from __future__ import annotations

import re
from pathlib import Path

from gardien.errors import ConfigError

__all__ = ["sip_ports"]

_SECTION = re.compile(r"^\[([^\]]+)\]")


def _sections(path: Path) -> dict[str, dict[str, tuple[str, int]]]:
    """``[section]`` -> option -> (value, line); ``;`` comments; templates' ``(!)`` dropped."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", path=str(path)) from None
    sections: dict[str, dict[str, tuple[str, int]]] = {}
    current: dict[str, tuple[str, int]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if match := _SECTION.match(line):
            current = sections.setdefault(match[1].strip(), {})
        elif current is not None and "=" in line:
            name, _, value = line.partition("=")
            current[name.strip().lstrip(">").lower()] = (value.strip().lstrip(">").strip(), number)
    return sections


def _port_of(address: str) -> int | None:
    """The port of ``0.0.0.0:5060`` or ``[::]:5060``; None when there is none."""
    match = re.search(r"(?:\]|^[^:]*):(\d+)$", address)
    return int(match[1]) if match else None


def sip_ports(directory: Path) -> dict[int, str]:
    """Each SIP port Asterisk binds, with where it is set (``sip.conf:12 bindport``)."""
    sip, pjsip = directory / "sip.conf", directory / "pjsip.conf"
    if not sip.is_file() and not pjsip.is_file():
        raise ConfigError(
            "no sip.conf nor pjsip.conf in this Asterisk directory", path=str(directory)
        )
    ports: dict[int, str] = {}
    if sip.is_file():
        general = _sections(sip).get("general", {})
        if "bindport" in general:
            value, line = general["bindport"]
            if value.isdigit():
                ports[int(value)] = f"sip.conf:{line} bindport={value}"
        elif "udpbindaddr" in general:
            value, line = general["udpbindaddr"]
            ports[_port_of(value) or 5060] = f"sip.conf:{line} udpbindaddr={value}"
        else:
            ports[5060] = "sip.conf (bindport not set: 5060)"
    if pjsip.is_file():
        for options in _sections(pjsip).values():
            if options.get("type", ("", 0))[0].lower() != "transport" or "bind" not in options:
                continue
            value, line = options["bind"]
            tls = options.get("protocol", ("", 0))[0].lower() in ("tls", "wss")
            port = _port_of(value) or (5061 if tls else 5060)
            ports.setdefault(port, f"pjsip.conf:{line} bind={value}")
    return ports

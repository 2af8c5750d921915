"""``gardien audit jails``: jail settings that lock the admin out, forget bans, watch nothing or
ban oddly, each pointed at the option's line (or the jail's section line)."""

from __future__ import annotations

import glob
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from gardien.audit.findings import Finding
from gardien.config.daemon import load_daemon_settings
from gardien.config.jails import jail_filter, load_jails
from gardien.config.reader import ConfigSet
from gardien.errors import GardienError
from gardien.matching.filter import Filter
from gardien.settings import JailSettings
from gardien.tester import test_log

__all__ = ["MAX_TESTED_LOG", "audit_jails"]

#: logs larger than this are not run through their filter
MAX_TESTED_LOG = 50 * 1024 * 1024
DAY = 86400.0
_GLOB_CHARS = frozenset("*?[")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(ignoreip: tuple[str, ...]) -> list[Network]:
    networks = []
    for entry in ignoreip:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # a host name: resolved at run time
    return networks


def _covered(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def _duration(seconds: float) -> str:
    if seconds < 0:
        return "for ever"
    for unit, size in (("d", DAY), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class _Auditor:
    def __init__(self, config_dir: Path, environ: Mapping[str, str]) -> None:
        self.config_dir = config_dir
        self.environ = environ
        self.config = ConfigSet.read_resource(config_dir, "jail")
        self.findings: dict[tuple[str, str, int], tuple[Finding, list[str]]] = {}

    def where(self, jail: JailSettings, option: str) -> tuple[str, int]:
        located = self.config.raw(jail.name, option)
        if located is not None and located.path and located.line:
            return located.path, located.line
        path, line = self.config.where(jail.name)
        return path or jail.path or str(self.config_dir / "jail.conf"), line or jail.line or 1

    def add(
        self, jail: JailSettings, option: str, id: str, severity: str, message: str, fix: str
    ) -> None:
        """A finding at ``option`` of ``jail``; jails sharing the line share the finding."""
        file, line = self.where(jail, option)
        key = (id, file, line)
        if key in self.findings:
            self.findings[key][1].append(jail.name)
        else:
            self.findings[key] = (Finding(id, severity, file, line, message, fix), [jail.name])

    def result(self) -> list[Finding]:
        out = []
        for finding, jails in self.findings.values():
            names = ", ".join(dict.fromkeys(jails))
            label = "jail" if len(set(jails)) == 1 else "jails"
            message = f"[{label} {names}] {finding.message}"
            out.append(
                Finding(
                    finding.id, finding.severity, finding.file, finding.line, message, finding.fix
                )
            )
        return out

    def ignoreip(self, jail: JailSettings) -> None:
        networks = _networks(jail.ignoreip)
        missing = [a for a in ("127.0.0.1", "::1") if not _covered(a, networks)]
        if missing:
            self.add(
                jail,
                "ignoreip",
                "jails-ignoreip-no-loopback",
                "warning",
                f"ignoreip does not include the loopback address(es) {', '.join(missing)}: "
                "local services could be banned",
                "set ignoreip = 127.0.0.1/8 ::1 (plus your trusted addresses)",
            )
        session = self.environ.get("SSH_CONNECTION", "").split()
        if session and not _covered(session[0], networks):
            self.add(
                jail,
                "ignoreip",
                "jails-ignoreip-self-lockout",
                "warning",
                f"ignoreip does not include {session[0]}, the address of the current SSH "
                "session: a few failed logins from it would lock you out",
                f"add {session[0]} (or your network) to ignoreip",
            )

    def bantime(self, jail: JailSettings, dbpurgeage: float) -> None:
        if (jail.bantime < 0 or jail.bantime > dbpurgeage) and dbpurgeage > 0:
            self.add(
                jail,
                "bantime",
                "jails-bantime-over-dbpurgeage",
                "warning",
                f"bantime ({_duration(jail.bantime)}) is longer than dbpurgeage "
                f"({_duration(dbpurgeage)}): bans are purged from the database before they "
                "end, and are lost on restart",
                "lower bantime, or raise dbpurgeage in gardien.local (fail2ban.local)",
            )

    def limits(self, jail: JailSettings) -> None:
        if jail.maxretry > 20:
            self.add(
                jail,
                "maxretry",
                "jails-maxretry-unusual",
                "warning",
                f"maxretry = {jail.maxretry} lets an attacker try many times before a ban",
                "use a maxretry between 3 and 10",
            )
        elif jail.maxretry == 1 and "sshd" in (jail.name, jail.filter.name):
            self.add(
                jail,
                "maxretry",
                "jails-maxretry-unusual",
                "warning",
                "maxretry = 1 on sshd bans on a single typo, including your own",
                "use a maxretry between 3 and 10",
            )
        if jail.findtime < 60 or jail.findtime > DAY:
            self.add(
                jail,
                "findtime",
                "jails-findtime-unusual",
                "warning",
                f"findtime ({_duration(jail.findtime)}) is "
                + (
                    "under a minute: slow attacks are never banned"
                    if jail.findtime < 60
                    else "over a day: old failures keep counting (and memory grows)"
                ),
                "use a findtime between 10m and 1d",
            )

    def logs(self, jail: JailSettings) -> None:
        if jail.backend.startswith("systemd"):
            return
        existing: list[str] = []
        for pattern in jail.logpath:
            if _GLOB_CHARS & set(pattern):
                matched = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
                if not matched:
                    self.add(
                        jail,
                        "logpath",
                        "jails-logpath-glob-empty",
                        "info",
                        f"logpath {pattern} matches no file yet",
                        "check the pattern, or ignore this if the service has not logged yet",
                    )
                existing += matched
            elif os.path.isfile(pattern):
                existing.append(pattern)
            else:
                self.add(
                    jail,
                    "logpath",
                    "jails-logpath-missing",
                    "warning",
                    f"logpath {pattern} does not exist: the jail watches nothing",
                    "fix logpath, or use backend = systemd for services logging to the journal",
                )
        tested = [p for p in existing if _size(p) < MAX_TESTED_LOG]
        if not tested:
            return
        try:
            compiled = Filter(jail_filter(jail, self.config_dir))
        except GardienError as error:
            self.add(
                jail,
                "filter",
                "jails-filter-invalid",
                "error",
                f"filter {jail.filter} cannot be loaded: {error}",
                "fix the filter (see gardien config check)",
            )
            return
        for path in tested:
            try:
                report = test_log(compiled, path)
            except (OSError, GardienError):
                continue  # unreadable by this user: nothing to say
            if report.lines and not report.matched:
                self.add(
                    jail,
                    "filter",
                    "jails-filter-matches-nothing",
                    "info",
                    f"filter {jail.filter} matches none of the {report.lines} lines of {path}",
                    f"check with: gardien regex {path} {jail.filter.name}",
                )


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return MAX_TESTED_LOG


def audit_jails(
    config_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> list[Finding]:
    """The findings for the enabled jails configured in ``config_dir``."""
    directory = Path(config_dir)
    dbpurgeage = load_daemon_settings(directory).dbpurgeage
    auditor = _Auditor(directory, os.environ if environ is None else environ)
    for jail in load_jails(directory, only_enabled=True):
        auditor.ignoreip(jail)
        auditor.bantime(jail, dbpurgeage)
        auditor.limits(jail)
        auditor.logs(jail)
    return auditor.result()

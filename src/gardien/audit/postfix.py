"""``gardien audit postfix``: SASL over plain text, open relays, a readable relay password file
and a missing jail for SASL failures, read from ``main.cf`` and ``master.cf``."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gardien.audit.findings import Finding
from gardien.config.jails import load_jails
from gardien.errors import ConfigError

__all__ = ["MainCf", "Service", "audit_postfix", "parse_main_cf", "parse_master_cf"]

#: lookup tables whose source is a plain-text file (``hash:/etc/postfix/sasl_passwd``)
FILE_MAPS = frozenset({"hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash"})
#: restrictions that stop relaying to any destination that is not ours
STOPS_RELAY = frozenset(
    {"reject_unauth_destination", "defer_unauth_destination", "reject", "defer"}
)
#: postfix filter modes that include the SASL failure regexes (fail2ban's meanings: "more", the
#: [postfix] jail's mode, is "normal" and leaves SASL failures to [postfix-sasl])
SASL_MODES = frozenset({"auth", "extra", "aggressive"})
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|\((\w+)\)|(\w+))")


@dataclass(frozen=True)
class Setting:
    value: str
    file: str
    line: int


@dataclass
class MainCf:
    path: str
    settings: dict[str, Setting] = field(default_factory=dict)

    def get(self, name: str) -> Setting | None:
        return self.settings.get(name)


@dataclass
class Service:
    """One ``master.cf`` service with its ``-o name=value`` overrides."""

    name: str
    command: str
    line: int
    overrides: dict[str, Setting] = field(default_factory=dict)


def _read_text(path: Path) -> str:
    """A configuration file as text, or one clear error (unreadable, binary)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror or error}", path=str(path)) from None
    if b"\0" in data:
        raise ConfigError("not a text file (binary content)", path=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines joined with their continuations (lines starting with whitespace); comments and
    blank lines dropped. Each with the number of its first line."""
    joined: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0].isspace() and joined:
            first, previous = joined[-1]
            joined[-1] = (first, f"{previous} {stripped}")
        else:
            joined.append((number, stripped))
    return joined


def parse_main_cf(path: Path) -> MainCf:
    main = MainCf(str(path))
    for number, line in _logical_lines(_read_text(path)):
        name, sep, value = line.partition("=")
        if sep and name.strip():
            main.settings[name.strip()] = Setting(value.strip(), str(path), number)
    return main


def parse_master_cf(path: Path) -> list[Service]:
    services: list[Service] = []
    for number, line in _logical_lines(_read_text(path)):
        fields = line.split()
        if len(fields) < 8:
            continue
        service = Service(fields[0], fields[7], number)
        args = iter(fields[8:])
        for arg in args:
            option = arg[2:] if arg.startswith("-o") and len(arg) > 2 else None
            if arg == "-o":
                option = next(args, None)
            if option and "=" in option:
                key, _, value = option.partition("=")
                service.overrides[key] = Setting(value, str(path), number)
        services.append(service)
    return services


def _expand(value: str, main: MainCf, depth: int = 0) -> str:
    if depth > 10:
        return value

    def variable(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        setting = main.get(name)
        return _expand(setting.value, main, depth + 1) if setting else ""

    return _VARIABLE.sub(variable, value)


def _tokens(value: str, main: MainCf) -> list[str]:
    return [t for t in re.split(r"[\s,{}]+", _expand(value, main)) if t]


def _yes(setting: Setting | None, main: MainCf) -> bool:
    return setting is not None and _expand(setting.value, main).strip().lower() == "yes"


class _Effective:
    """A service's settings: its overrides, else ``main.cf``."""

    def __init__(self, main: MainCf, service: Service | None) -> None:
        self.main = main
        self.overrides = service.overrides if service else {}

    def get(self, name: str) -> Setting | None:
        return self.overrides.get(name) or self.main.get(name)

    def overrides_any(self, *names: str) -> bool:
        return any(name in self.overrides for name in names)


SASL_KEYS = (
    "smtpd_sasl_auth_enable",
    "smtpd_tls_auth_only",
    "smtpd_tls_security_level",
    "smtpd_use_tls",
    "smtpd_enforce_tls",
    "smtpd_tls_wrappermode",
)
RELAY_KEYS = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")


def _sasl_without_tls(settings: _Effective, where: str) -> Finding | None:
    main = settings.main
    enable = settings.get("smtpd_sasl_auth_enable")
    if not _yes(enable, main) or enable is None:
        return None
    if _yes(settings.get("smtpd_tls_wrappermode"), main):
        return None  # TLS from the first byte (smtps)
    level_setting = settings.get("smtpd_tls_security_level")
    level = _expand(level_setting.value, main).strip().lower() if level_setting else ""
    if not level:
        if _yes(settings.get("smtpd_enforce_tls"), main):
            level = "encrypt"
        elif _yes(settings.get("smtpd_use_tls"), main):
            level = "may"
    if level == "encrypt":
        return None
    if level == "may" and _yes(settings.get("smtpd_tls_auth_only"), main):
        return None
    problem = (
        "no TLS is offered (smtpd_tls_security_level is not may or encrypt)"
        if level != "may"
        else "smtpd_tls_auth_only is not yes"
    )
    return Finding(
        "postfix-sasl-without-tls",
        "error",
        enable.file,
        enable.line,
        f"{where}: SASL authentication is enabled but {problem}: passwords can cross the "
        "network in clear text",
        "set smtpd_tls_security_level = may (or encrypt) and smtpd_tls_auth_only = yes, "
        "with a certificate (smtpd_tls_cert_file, smtpd_tls_key_file)",
    )


def _open_relay(settings: _Effective, where: str) -> Finding | None:
    main = settings.main
    relay = settings.get("smtpd_relay_restrictions")
    recipient = settings.get("smtpd_recipient_restrictions")
    if relay is not None and _tokens(relay.value, main):
        checked, name = relay, "smtpd_relay_restrictions"
    elif recipient is not None:
        checked, name = recipient, "smtpd_recipient_restrictions"
    elif relay is not None:  # empty relay restrictions and no recipient restrictions
        checked, name = relay, "smtpd_relay_restrictions"
    else:
        return None  # Postfix's default relay restrictions end with defer_unauth_destination
    for restriction in _tokens(checked.value, main):
        if restriction in STOPS_RELAY:
            return None
        if restriction == "permit":
            problem = "permits everyone before reject_unauth_destination"
            break
    else:
        problem = "lacks reject_unauth_destination"
    return Finding(
        "postfix-open-relay",
        "error",
        checked.file,
        checked.line,
        f"{where}: {name} {problem}: anyone can relay mail through this server",
        f"set {name} = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    )


def _password_file(main: MainCf, config_dir: Path) -> list[Finding]:
    setting = main.get("smtp_sasl_password_maps")
    if setting is None:
        return []
    findings = []
    for table in _tokens(setting.value, main):
        kind, sep, name = table.partition(":")
        if not sep or kind not in FILE_MAPS or not name:
            continue
        source = Path(name) if os.path.isabs(name) else config_dir / name
        try:
            info = source.stat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        where = f"relay passwords of smtp_sasl_password_maps ({main.path}:{setting.line})"
        if info.st_mode & 0o004:
            findings.append(
                Finding(
                    "postfix-sasl-passwords-readable",
                    "error",
                    str(source),
                    1,
                    f"{where} are readable by every user (mode {stat.S_IMODE(info.st_mode):04o})",
                    f"chmod 600 {source} {source}.db; chown root:root {source}",
                )
            )
        elif info.st_mode & 0o040 and info.st_gid != 0:
            findings.append(
                Finding(
                    "postfix-sasl-passwords-readable",
                    "warning",
                    str(source),
                    1,
                    f"{where} are readable by group {info.st_gid}, which is not root",
                    f"chmod 600 {source} {source}.db; chown root:root {source}",
                )
            )
    return findings


def _has_sasl_jail(gardien_dir: Path) -> bool:
    for jail in load_jails(gardien_dir, only_enabled=True):
        name = jail.filter.name
        if name == "postfix-sasl":
            return True
        if name == "postfix":
            mode = jail.filter.params.get("mode") or jail.options.get("mode") or "more"
            if mode.strip() in SASL_MODES:
                return True
    return False


def audit_postfix(config_dir: str | os.PathLike[str], gardien_dir: Path) -> list[Finding]:
    """The findings for the Postfix configuration in ``config_dir`` (usually /etc/postfix)."""
    directory = Path(config_dir)
    main_path = directory / "main.cf"
    if not main_path.exists():
        raise ConfigError(
            "no main.cf here (is this a Postfix configuration directory?)", path=str(directory)
        )
    main = parse_main_cf(main_path)
    master_path = directory / "master.cf"
    services = parse_master_cf(master_path) if master_path.exists() else []
    findings: list[Finding] = []
    for check in (_sasl_without_tls, _open_relay):
        found = check(_Effective(main, None), "main.cf")
        if found:
            findings.append(found)
    for service in services:
        if service.command != "smtpd":
            continue
        settings = _Effective(main, service)
        where = f"master.cf service {service.name}"
        if settings.overrides_any(*SASL_KEYS):
            found = _sasl_without_tls(settings, where)
            if found:
                findings.append(found)
        if settings.overrides_any(*RELAY_KEYS):
            found = _open_relay(settings, where)
            if found:
                findings.append(found)
    findings += _password_file(main, directory)
    if not _has_sasl_jail(gardien_dir):
        findings.append(
            Finding(
                "postfix-no-sasl-jail",
                "warning",
                str(gardien_dir / "jail.local"),
                1,
                "no enabled jail bans Postfix SASL authentication failures (password guessing)",
                "add [postfix-sasl] with enabled = true and filter = postfix[mode=auth] "
                f"to {gardien_dir / 'jail.local'}",
            )
        )
    unique: dict[tuple[str, str, int], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.id, finding.file, finding.line), finding)
    return list(unique.values())

"""``gardien audit asterisk``: the SIP hardening of an Asterisk configuration directory.

Reads ``sip.conf`` (chan_sip), ``pjsip.conf``, ``extensions.conf``, ``logger.conf`` and the
files they ``#include`` with a parser of Asterisk's own syntax (``[section]``,
``[name](template)``, ``[name](!)`` templates, ``[name](+)`` additions, ``key = value`` and
``key => value``, ``;`` and ``;-- --;`` comments, ``\\;`` escapes, ``#include`` and
``#tryinclude`` with wildcards; ``#exec`` is never run). Every finding points at a file and line:
the option's, or the section header's when an option is missing (line 0: the whole file).
Secrets are judged, never printed. Unreadable, binary or broken files and include loops become
findings; a missing directory is a :class:`~gardien.errors.ConfigError`.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from gardien.audit.findings import Finding
from gardien.errors import ConfigError

__all__ = ["Option", "Section", "audit_asterisk", "parse_asterisk_file"]

#: identifiers a scanner tries first (``svwar``, ``sipvicious``): short, common or first names
COMMON_IDENTIFIERS = frozenset(
    {
        "100", "101", "102", "200", "1000", "1001", "abc", "admin", "administrator", "demo",
        "test", "temp", "temporaire", "guest", "user", "sip", "voip", "phone", "office",
        "reception", "accueil", "standard", "support", "sales", "asterisk", "operator",
        "default", "alice", "bob", "john", "jean", "marie", "pierre", "paul", "michel",
        "david", "sophie", "nicolas", "julien", "thomas", "laura", "anne", "marc", "sarah",
        "michael", "james", "robert", "mary", "peter", "philippe", "christophe", "isabelle",
    }
)  # fmt: skip
#: passwords tried first by SIP brute-forcers
COMMON_PASSWORDS = frozenset(
    {
        "password", "passw0rd", "secret", "1234", "12345", "123456", "1234567", "12345678",
        "123456789", "1234567890", "qwerty", "azerty", "letmein", "welcome", "admin",
        "changeme", "asterisk", "voip", "sip", "pass", "motdepasse", "soleil", "bonjour",
        "test", "default", "0000", "1111", "abc123", "password1", "iloveyou",
    }
)  # fmt: skip
MIN_IDENTIFIER = 8
MIN_SECRET = 20
MIN_SECRET_BITS = 64.0  # Shannon estimate over the secret's own characters
SIP_PORT = 5060
TEXT_FILES = ("sip.conf", "pjsip.conf", "extensions.conf", "logger.conf")


class _Jail(Protocol):
    """What the audit reads of a jail (:class:`gardien.settings.JailSettings`)."""

    @property
    def name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def logpath(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    file: str
    line: int


@dataclass
class Section:
    name: str
    file: str
    line: int
    template: bool = False
    options: list[Option] = field(default_factory=list)

    def get(self, key: str) -> Option | None:
        """The last value of ``key`` (inherited ones included)."""
        found = [o for o in self.options if o.key == key]
        return found[-1] if found else None

    def value(self, key: str, default: str = "") -> str:
        option = self.get(key)
        return option.value if option else default

    def has(self, *keys: str) -> bool:
        return any(o.key in keys for o in self.options)


@dataclass
class _Parser:
    directory: Path
    findings: list[Finding] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def problem(self, id_: str, file: str, line: int, message: str, fix: str) -> None:
        self.findings.append(Finding(id_, "error", file, line, message, fix))

    def read(self, path: Path, stack: tuple[Path, ...], where: tuple[str, int]) -> None:
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            self.problem("asterisk-unreadable", *where, f"{path} is a directory, not a file",
                         "include a configuration file")  # fmt: skip
            return
        except OSError as error:
            reason = error.strerror or type(error).__name__
            self.problem("asterisk-unreadable", *where, f"cannot read {path}: {reason}",
                         "make the file readable by the user running the audit")  # fmt: skip
            return
        if b"\0" in data:
            self.problem("asterisk-unreadable", str(path), 0,
                         "binary file, not an Asterisk configuration (it holds NUL bytes)",
                         "restore the text configuration from a backup")  # fmt: skip
            return
        text = data.decode("utf-8", errors="replace")
        self.parse(path, text, (*stack, path.resolve()))

    def parse(self, path: Path, text: str, stack: tuple[Path, ...]) -> None:
        file = str(path)
        current: Section | None = self.sections[-1] if self.sections else None
        in_comment = False
        for number, raw in enumerate(text.splitlines(), 1):
            line, in_comment = _strip_comment(raw, in_comment)
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                self.directive(line, file, number, stack)
                current = self.sections[-1] if self.sections else None
                continue
            if line.startswith("["):
                current = self.header(line, file, number)
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key or re.search(r"\s", key):
                # never quote the line: it may hold a secret
                self.problem("asterisk-syntax", file, number,
                             "line is neither [section], key = value nor a #directive",
                             "fix the line; Asterisk refuses to load this file")  # fmt: skip
                continue
            value = value.removeprefix(">").strip()
            if current is None:
                self.problem("asterisk-syntax", file, number, "option before any [section]",
                             "put the option under a [section]")  # fmt: skip
                continue
            current.options.append(Option(key.lower(), value, file, number))

    def header(self, line: str, file: str, number: int) -> Section | None:
        match = re.fullmatch(r"\[([^\]]+)\]\s*(?:\(([^)]*)\))?", line)
        if not match:
            self.problem("asterisk-syntax", file, number, "broken [section] header",
                         "write [name], [name](template) or [name](!)")  # fmt: skip
            return None
        name = match[1].strip()
        parents = [p.strip() for p in (match[2] or "").split(",") if p.strip()]
        if "+" in parents:  # [name](+): add to the section already defined
            for section in reversed(self.sections):
                if section.name == name:
                    return section
            self.problem("asterisk-syntax", file, number, f"[{name}](+) adds to no section",
                         f"define [{name}] before adding to it")  # fmt: skip
            return None
        section = Section(name, file, number, template="!" in parents)
        for parent in (p for p in parents if p != "!"):
            template = next((s for s in reversed(self.sections) if s.name == parent), None)
            if template is None:
                self.problem("asterisk-syntax", file, number,
                             f"[{name}] inherits from unknown template {parent!r}",
                             f"define [{parent}](!) before [{name}]")  # fmt: skip
                continue
            section.options.extend(template.options)
        self.sections.append(section)
        return section

    def directive(self, line: str, file: str, number: int, stack: tuple[Path, ...]) -> None:
        word, _, argument = line[1:].partition(" ")
        word = word.lower()
        if word == "exec":
            return  # never run a command from an audit
        if word not in ("include", "tryinclude"):
            self.problem("asterisk-syntax", file, number, f"unknown directive #{word}",
                         "use #include, #tryinclude or #exec")  # fmt: skip
            return
        name = argument.strip().strip('"<>').strip()
        if not name:
            self.problem("asterisk-syntax", file, number, f"#{word} without a file name",
                         f"write #{word} file.conf")  # fmt: skip
            return
        pattern = name if Path(name).is_absolute() else str(self.directory / name)
        targets = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not targets and word == "include":
            self.problem("asterisk-unreadable", file, number, f"#include matches no file: {name}",
                         "fix the file name or remove the #include")  # fmt: skip
        for target in map(Path, targets):
            if target.resolve() in stack:
                self.problem("asterisk-include-loop", file, number,
                             f"#include {name} includes a file that includes this one",
                             "remove one of the #include lines of the loop")  # fmt: skip
                continue
            if word == "tryinclude" and not target.exists():
                continue
            self.read(target, stack, (file, number))


def _strip_comment(raw: str, in_comment: bool) -> tuple[str, bool]:
    """``raw`` without ``;`` comments and ``;-- --;`` blocks; ``\\;`` is a literal ``;``."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        if in_comment:
            end = raw.find("--;", i)
            if end < 0:
                return "".join(out), True
            in_comment, i = False, end + 3
            continue
        char = raw[i]
        if char == "\\" and raw[i + 1 : i + 2] == ";":
            out.append(";")
            i += 2
            continue
        if char == ";":
            if raw.startswith(";--", i):
                in_comment, i = True, i + 3
                continue
            break
        out.append(char)
        i += 1
    return "".join(out), in_comment


def parse_asterisk_file(path: Path, directory: Path) -> tuple[list[Section], list[Finding]]:
    """The sections of ``path`` (with its includes, resolved in ``directory``) and the problems
    met while reading them."""
    parser = _Parser(directory)
    parser.read(path, (), (str(path), 0))
    return parser.sections, parser.findings


# --- the checks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    identifier: str
    file: str
    line: int
    secret: Option | None
    aliases: tuple[str, ...] = ()  # other names the secret must not equal


def _weak_identifier(name: str, extensions: set[str]) -> list[str]:
    reasons = []
    lowered = name.lower()
    if len(name) < MIN_IDENTIFIER:
        reasons.append(f"shorter than {MIN_IDENTIFIER} characters")
    if name.isdigit():
        reasons.append("digits only")
    if name in extensions:
        reasons.append("equal to an extension of the dialplan")
    if lowered in COMMON_IDENTIFIERS or lowered.rstrip("0123456789") in COMMON_IDENTIFIERS:
        reasons.append("a common word scanners try first")
    return reasons


def _secret_bits(secret: str) -> float:
    counts = Counter(secret)
    entropy = -sum(c / len(secret) * math.log2(c / len(secret)) for c in counts.values())
    return entropy * len(secret)


def _weak_secret(secret: str, names: Iterable[str]) -> tuple[str, list[str]]:
    """(severity, reasons); never the secret itself."""
    lowered = secret.lower()
    guessable = []
    if any(n and n.lower() in lowered for n in names):
        guessable.append("equal to or containing the identifier")
    if lowered in COMMON_PASSWORDS or lowered.rstrip("0123456789!") in COMMON_PASSWORDS:
        guessable.append("a common password")
    if len(secret) < 8:
        guessable.append("shorter than 8 characters")
    weak = []
    if len(secret) < MIN_SECRET and len(secret) >= 8:
        weak.append(f"shorter than {MIN_SECRET} characters")
    if secret and (_secret_bits(secret) < MIN_SECRET_BITS or secret.isdigit()):
        weak.append("low entropy (few distinct characters or digits only)")
    return ("error" if guessable else "warning"), guessable + weak


def _extensions(sections: Sequence[Section]) -> tuple[set[str], list[tuple[str, Option]]]:
    """The literal extensions of the dialplan, and (extension, option) for every ``Dial`` of
    ``SIP/X`` or ``PJSIP/X`` where X is the extension itself (or ``${EXTEN}``)."""
    names: set[str] = set()
    self_dials: list[tuple[str, Option]] = []
    for section in sections:
        current = ""
        for option in section.options:
            if option.key not in ("exten", "same"):
                continue
            parts = option.value.split(",", 2)
            if option.key == "exten":
                current = parts[0].strip()
                if current and not current.startswith("_"):
                    names.add(current)
                rest = parts[2] if len(parts) > 2 else ""
            else:
                rest = option.value.split(",", 1)[-1]
            if not re.match(r"\s*dial\s*\(", rest, re.IGNORECASE):
                continue
            for target in re.findall(r"\b(?:PJ)?SIP/([^,&)/@\s]+)", rest, re.IGNORECASE):
                if target == current or (target == "${EXTEN}" and not current.startswith("_")):
                    self_dials.append((current, option))
    return names, self_dials


def _check_sip(sections: list[Section], file: str) -> tuple[list[Finding], list[_Account]]:
    findings: list[Finding] = []
    general = next((s for s in sections if s.name.lower() == "general"), None)
    gfile, gline = (general.file, general.line) if general else (file, 0)
    options = general or Section("general", file, 0)
    guest = options.get("allowguest")
    if guest is None or guest.value.lower() != "no":
        findings.append(Finding(
            "asterisk-allowguest", "error", guest.file if guest else gfile,
            guest.line if guest else gline,
            "chan_sip accepts calls from unauthenticated callers (allowguest defaults to yes)",
            "set allowguest = no in [general] of sip.conf",
        ))  # fmt: skip
    reject = options.get("alwaysauthreject")
    if reject is not None and reject.value.lower() != "yes":
        findings.append(Finding(
            "asterisk-alwaysauthreject", "warning", reject.file, reject.line,
            "chan_sip answers differently for unknown and known users: scanners enumerate "
            "the accounts",
            "set alwaysauthreject = yes in [general] of sip.conf",
        ))  # fmt: skip
    port = options.get("bindport")
    if port is None or port.value.strip() == str(SIP_PORT):
        findings.append(Finding(
            "asterisk-sip-port-5060", "info", port.file if port else gfile,
            port.line if port else gline,
            f"chan_sip listens on the standard port {SIP_PORT}, the one every scanner probes",
            "set bindport to another port (and the firewall rules with it), or keep a jail "
            "on the Asterisk log",
        ))  # fmt: skip
    accounts = []
    for section in sections:
        if section is general or section.template:
            continue
        is_account = section.has("secret", "md5secret") or section.value("type").lower() in (
            "peer", "user", "friend")  # fmt: skip
        if not is_account:
            continue
        accounts.append(_Account(section.name, section.file, section.line, section.get("secret")))
        if not section.has("permit", "deny", "acl"):
            findings.append(Finding(
                "asterisk-account-no-acl", "warning", section.file, section.line,
                f"SIP account [{section.name}] can register from any address",
                "add deny = 0.0.0.0/0.0.0.0 and permit = <your network> (or acl = <name>)",
            ))  # fmt: skip
    return findings, accounts


def _check_pjsip(sections: list[Section], file: str) -> tuple[list[Finding], list[_Account]]:
    findings: list[Finding] = []
    live = [s for s in sections if not s.template]
    global_acl = any(s.value("type").lower() == "acl" for s in live)
    auths = {s.name: s for s in live if s.value("type").lower() == "auth"}
    accounts: list[_Account] = []
    for section in live:
        kind = section.value("type").lower()
        if kind == "transport":
            bind = section.get("bind")
            value = bind.value if bind else ""
            port = re.search(r"(?:\]|^[^:]*):(\d+)$", value)
            proto = section.value("protocol", "udp").lower()
            if (port.group(1) if port else ("5061" if proto in ("tls", "wss") else "5060")) == (
                str(SIP_PORT)
            ):
                findings.append(Finding(
                    "asterisk-sip-port-5060", "info", bind.file if bind else section.file,
                    bind.line if bind else section.line,
                    f"transport [{section.name}] listens on the standard port {SIP_PORT}, the "
                    "one every scanner probes",
                    "bind the transport to another port (and the firewall rules with it), or "
                    "keep a jail on the Asterisk log",
                ))  # fmt: skip
        if kind != "endpoint":
            continue
        if section.name.lower() == "anonymous":
            findings.append(Finding(
                "asterisk-pjsip-anonymous", "error", section.file, section.line,
                "the [anonymous] endpoint accepts calls from unauthenticated callers",
                "remove the [anonymous] endpoint from pjsip.conf",
            ))  # fmt: skip
            continue
        auth_option = section.get("auth")
        if auth_option is None:
            continue  # matched by address (identify), not a password account
        acl_keys = ("acl", "permit", "deny", "contact_acl", "contact_permit", "contact_deny")
        if not global_acl and not section.has(*acl_keys):
            findings.append(Finding(
                "asterisk-account-no-acl", "warning", section.file, section.line,
                f"PJSIP endpoint [{section.name}] can register from any address",
                "add deny = 0.0.0.0/0.0.0.0 and permit = <your network> to the endpoint (or "
                "acl = <name>, or a type=acl section)",
            ))  # fmt: skip
        auth = auths.get(auth_option.value.split(",")[0].strip())
        password = auth.get("password") if auth else None
        username = auth.get("username") if auth else None
        aliases = (username.value,) if username else ()
        accounts.append(_Account(section.name, section.file, section.line, password, aliases))
        if username and username.value != section.name:
            accounts.append(_Account(username.value, username.file, username.line, None))
    return findings, accounts


def _check_accounts(accounts: Sequence[_Account], extensions: set[str]) -> list[Finding]:
    findings = []
    for account in accounts:
        reasons = _weak_identifier(account.identifier, extensions)
        if reasons:
            findings.append(Finding(
                "asterisk-weak-identifier", "warning", account.file, account.line,
                f"account identifier {account.identifier!r} is easy to guess: "
                + ", ".join(reasons),
                "rename the account to at least 8 random letters and digits (e.g. "
                "'k7Hq2xW9'), distinct from its extension",
            ))  # fmt: skip
        if account.secret is None:
            continue
        severity, reasons = _weak_secret(account.secret.value,
                                         (account.identifier, *account.aliases))  # fmt: skip
        if reasons:
            findings.append(Finding(
                "asterisk-weak-secret", severity, account.secret.file, account.secret.line,
                "the secret on this line is weak: " + ", ".join(reasons),
                f"use a random secret of at least {MIN_SECRET} characters "
                "(e.g. `openssl rand -base64 24`)",
            ))  # fmt: skip
    return findings


def _check_logger(
    directory: Path, jails: Sequence[_Jail] | None
) -> tuple[list[Finding], list[Finding]]:
    """(problems of reading logger.conf, findings)."""
    path = directory / "logger.conf"
    if not path.exists():
        return [], [Finding(
            "asterisk-logger-security", "warning", str(path), 0,
            "no logger.conf: Asterisk logs no security events, a jail cannot see attacks",
            "create logger.conf with [logfiles] and security_log => notice,security",
        )]  # fmt: skip
    sections, problems = parse_asterisk_file(path, directory)
    logfiles = next((s for s in sections if s.name.lower() == "logfiles"), None)
    good: list[Option] = []
    for option in logfiles.options if logfiles else ():
        levels = {lv.strip().lower() for lv in re.sub(r"^\[[^\]]*\]", "", option.value).split(",")}
        if "*" in levels or {"notice", "security"} <= levels:
            good.append(option)
    if not good:
        return problems, [Finding(
            "asterisk-logger-security", "warning", logfiles.file if logfiles else str(path),
            logfiles.line if logfiles else 0,
            "no log channel carries both notice and security: failed registrations are not "
            "logged where a jail can read them",
            "add security_log => notice,security under [logfiles]",
        )]  # fmt: skip
    if jails is None:
        return problems, []
    logdir = Path("/var/log/asterisk")
    asterisk_conf = directory / "asterisk.conf"
    if asterisk_conf.is_file():
        conf_sections, _ = parse_asterisk_file(asterisk_conf, directory)
        for section in conf_sections:
            if section.name.lower() == "directories" and section.get("astlogdir"):
                logdir = Path(section.value("astlogdir"))
    files = [(o, o.key if o.key.startswith("/") else str(logdir / o.key)) for o in good
             if o.key != "console" and not o.key.startswith("syslog")]  # fmt: skip
    if not files:
        return problems, []  # console or syslog only: which file holds it is not ours to know
    for _, logfile in files:
        for jail in jails:
            if jail.enabled and any(fnmatch.fnmatch(logfile, p) for p in jail.logpath):
                return problems, []
    option, logfile = files[0]
    return problems, [Finding(
        "asterisk-no-jail", "warning", option.file, option.line,
        f"no enabled gardien jail reads {logfile}: SIP brute force goes unbanned",
        f"enable a jail with filter = asterisk and logpath = {logfile}",
    )]  # fmt: skip


def audit_asterisk(directory: str | Path, *, jails: Sequence[_Jail] | None = None) -> list[Finding]:
    """The findings on the Asterisk configuration in ``directory``.

    ``jails`` (from :func:`gardien.config.jails.load_jails`), when given, are searched for a jail
    reading Asterisk's security log; without them that check is skipped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError("no such Asterisk configuration directory", path=str(directory))
    sip, pjsip = directory / "sip.conf", directory / "pjsip.conf"
    if not sip.exists() and not pjsip.exists():
        raise ConfigError("no sip.conf nor pjsip.conf in this Asterisk directory",
                          path=str(directory))  # fmt: skip
    findings: list[Finding] = []
    accounts: list[_Account] = []
    if sip.exists():
        sections, problems = parse_asterisk_file(sip, directory)
        found, sip_accounts = _check_sip(sections, str(sip))
        findings += problems + found
        accounts += sip_accounts
    if pjsip.exists():
        sections, problems = parse_asterisk_file(pjsip, directory)
        found, pjsip_accounts = _check_pjsip(sections, str(pjsip))
        findings += problems + found
        accounts += pjsip_accounts
    extensions: set[str] = set()
    dialplan = directory / "extensions.conf"
    if dialplan.exists():
        sections, problems = parse_asterisk_file(dialplan, directory)
        findings += problems
        extensions, self_dials = _extensions(sections)
        identifiers = {a.identifier for a in accounts}
        reported: set[str] = set()
        for exten, option in self_dials:
            if exten in identifiers and exten not in reported:
                reported.add(exten)
                findings.append(Finding(
                    "asterisk-identifier-is-extension", "warning", option.file, option.line,
                    f"extension {exten} dials the SIP account of the same name: whoever knows "
                    "the extension knows the login",
                    f"rename the account to a random identifier and Dial(PJSIP/<it>) from "
                    f"exten {exten}",
                ))  # fmt: skip
    findings += _check_accounts(accounts, extensions)
    problems, logger = _check_logger(directory, jails)
    findings += problems + logger
    return _redact(findings, [a.secret.value for a in accounts if a.secret])


def _redact(findings: list[Finding], secrets: Sequence[str]) -> list[Finding]:
    """The findings with any secret that shows up in a message (an identifier equal to its
    secret) replaced by ``<secret>``: what is printed never discloses a password."""
    words = [re.escape(s) for s in sorted(set(secrets), key=len, reverse=True) if s]
    if not words:
        return findings
    pattern = re.compile(rf"(?<!\w)(?:{'|'.join(words)})(?!\w)")
    return [
        replace(f, message=pattern.sub("<secret>", f.message), fix=pattern.sub("<secret>", f.fix))
        for f in findings
    ]

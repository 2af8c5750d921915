"""What the configuration says, as typed values: the settings of the daemon, of each jail, of
its filter, of the mail relay and of a hub feed.

These are plain frozen dataclasses, with no parsing and no I/O: :mod:`gardien.config` reads
the files and builds them; the jails, the sources, the actions and the daemon take them. So
every layer can hold a setting without importing the configuration reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "BanTimeIncrement",
    "DaemonSettings",
    "FeedOptions",
    "FilterSpec",
    "JailSettings",
    "MailRelay",
    "RegexSource",
    "Spec",
    "is_hub_backend",
]


@dataclass(frozen=True)
class Spec:
    """A name with parameters, as in ``iptables-allports[name=asterisk, protocol=all]``."""

    name: str
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        inner = ", ".join(
            f'{k}="{v}"' if ("," in v or "]" in v) else f"{k}={v}" for k, v in self.params.items()
        )
        return f"{self.name}[{inner}]"


@dataclass(frozen=True)
class RegexSource:
    """One regular expression of a filter and where it was configured."""

    pattern: str
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class FilterSpec:
    """A filter as configured: everything :class:`gardien.matching.Filter` needs to compile."""

    name: str
    failregex: tuple[RegexSource, ...]
    ignoreregex: tuple[RegexSource, ...] = ()
    prefregex: RegexSource | None = None
    datepattern: str | None = None
    maxlines: int = 1
    usedns: str = "warn"
    journalmatch: tuple[str, ...] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # every file read, includes and overrides too, in order
    path: str | None = None  # the filter's own file
    options_set: frozenset[str] = frozenset()  # of maxlines and datepattern, those it sets
    # JSON log lines (gardien.matching.jsonrules): rules one per line, the time's field paths
    failjson: tuple[RegexSource, ...] = ()
    ignorejson: tuple[RegexSource, ...] = ()
    jsontime: tuple[str, ...] = ()


@dataclass(frozen=True)
class BanTimeIncrement:
    """``bantime.*``: longer bans for addresses banned before."""

    enabled: bool = False
    factor: float = 1.0
    formula: str | None = None
    multipliers: tuple[int, ...] = ()
    maxtime: float | None = None  # seconds
    rndtime: float | None = None  # seconds
    overalljails: bool = False


@dataclass(frozen=True)
class JailSettings:
    """One jail as configured."""

    name: str
    enabled: bool
    filter: Spec
    actions: tuple[Spec, ...]
    logpath: tuple[str, ...]
    backend: str = "auto"
    findtime: float = 600.0
    bantime: float = 600.0  # seconds; -1 means for ever
    maxretry: int = 5
    maxmatches: int = 5
    maxpending: int = 100_000  # addresses with failures counted at once (see gardien.jails.jail)
    ignoreip: tuple[str, ...] = ()
    ignoreself: bool = True
    ignorecommand: str = ""
    usedns: str = "warn"
    logencoding: str = "auto"
    logtimezone: str | None = None  # dates without a zone in its logs are in this one
    increment: BanTimeIncrement = field(default_factory=BanTimeIncrement)
    options: Mapping[str, str] = field(default_factory=dict)
    path: str | None = None
    line: int | None = None

    @property
    def hub_feed(self) -> bool:
        """``backend = hub[...]``: the jail bans what a gardien hub lists; no filter, no log."""
        return is_hub_backend(self.backend)


def is_hub_backend(backend: str) -> bool:
    """Whether a jail's ``backend`` option names the hub feed (``hub`` or ``hub[...]``)."""
    return backend.split("[", 1)[0].strip().lower() == "hub"


@dataclass(frozen=True)
class FeedOptions:
    """The parameters of ``backend = hub[...]``, checked (the token file is not read yet)."""

    url: str
    token_file: str
    every: float = 5.0
    timeout: float = 30.0
    resync: float = 3600.0


@dataclass(frozen=True)
class DaemonSettings:
    """Where the daemon keeps its socket, pid file and database, and how it logs."""

    socket: str = "/run/gardien/gardien.sock"
    pidfile: str = "/run/gardien/gardien.pid"
    dbfile: str = "/var/lib/gardien/gardien.sqlite3"
    dbpurgeage: float = 86400.0  # seconds; ban history older than this is purged
    loglevel: str = "INFO"
    logtarget: str = "STDERR"
    keepbans: bool = False  # leave bans in the firewall at stop (they carry kernel timeouts)
    #: (host, port) of the Prometheus endpoint; ``None``: no endpoint (the default)
    metrics: tuple[str, int] | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class MailRelay:
    """How to reach the SMTP relay the mail alerts go through."""

    host: str = "localhost"
    port: int = 25
    tls: str = "auto"
    #: CA certificates to verify the relay with (PEM); the system's when ``None``
    cafile: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    #: the envelope and From address; ``gardien@<hostname>`` when ``None``
    sender: str | None = None
    #: recipients of alerts whose action names none (comma-separated)
    destemail: str | None = None
    timeout: float = 20.0
    files: tuple[str, ...] = ()

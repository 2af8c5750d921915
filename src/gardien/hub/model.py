"""The hub's values: what agents report, what the hub knows of an address, and the rules of
consensus. Plain frozen dataclasses shared by the store, the API, the dashboard and the agent
side of the daemon; no I/O here.

An address is *listed* (enters the blocklist) only when at least ``min_agents`` distinct
agents from at least ``min_networks`` distinct reporter networks reported it within
``window`` seconds, and it is neither in a built-in never-listed range (anything not globally
routable: loopback, private, link-local, shared, documentation, reserved, multicast) nor in
the administrator's allowlist. A listed address leaves the list ``ttl`` seconds after its last
report. Its *score* adds one per report and halves every ``half_life`` seconds.

The hub forgets, so that its tables stay bounded: reports older than ``report_retention``
(never less than ``window``, or consensus would lose reports it counts), addresses not listed
and not reported for as long, and blocklist journal changes older than ``journal_retention``
(the newest always stays: the cursor never goes back). An agent whose cursor predates what
the journal still holds gets a *reset*: the whole list, to replace its own.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

__all__ = [
    "CATEGORY_PATTERN",
    "JAIL_PATTERN",
    "MAX_REPORTS_PER_REQUEST",
    "AgentInfo",
    "AllowEntry",
    "BlocklistDelta",
    "Consensus",
    "HubStats",
    "IngestResult",
    "PruneResult",
    "Report",
    "Reputation",
    "SessionInfo",
    "UserInfo",
    "category_of_jail",
    "never_listed",
    "reporter_network",
]

#: a jail name as agents send it (fail2ban section names)
JAIL_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
#: an attack category: ssh, sip, smtp-auth, imap, http...
CATEGORY_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9-]{0,31}\Z")
#: reports one POST may carry
MAX_REPORTS_PER_REQUEST = 1000


@dataclass(frozen=True)
class Consensus:
    """When an address is listed, for how long, how its score decays, and how long the hub
    keeps what it was told (seconds)."""

    min_agents: int = 3
    min_networks: int = 3
    window: float = 7 * 86400.0
    ttl: float = 7 * 86400.0
    half_life: float = 7 * 86400.0
    #: reports, and addresses neither listed nor reported, are forgotten after this long
    #: (at least ``window``: see :attr:`kept_reports`)
    report_retention: float = 90 * 86400.0
    #: blocklist changes are kept this long for delta sync; older cursors get a reset
    journal_retention: float = 7 * 86400.0

    @property
    def kept_reports(self) -> float:
        """How long reports are really kept: ``report_retention``, but never less than the
        consensus ``window`` (forgetting a report that still counts would unlist nothing
        and list less)."""
        return max(self.report_retention, self.window)


@dataclass(frozen=True)
class Report:
    """One ban an agent reports: ``ip`` in canonical form, ``time`` seconds since the epoch."""

    ip: str
    jail: str
    category: str
    time: float
    failures: int


@dataclass(frozen=True)
class AgentInfo:
    """An enrolled agent (a server running gardien). ``network`` is the CIDR given at
    enrolment, if any; otherwise each report counts under the /24 (IPv4) or /48 (IPv6) of the
    address it came from."""

    id: int
    name: str
    network: str | None
    created: float
    last_seen: float | None = None
    last_address: str | None = None
    disabled: bool = False


@dataclass(frozen=True)
class IngestResult:
    """What one batch of reports did: how many were stored, which addresses it listed."""

    accepted: int
    listed: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlocklistDelta:
    """What changed in the blocklist after a cursor: ``added`` and ``removed`` (canonical
    addresses, sorted), and ``cursor`` to continue from. With ``reset``, the changes could
    not be told (the cursor predates what the journal still holds, or is from another
    database): ``added`` is then the whole list, which replaces the reader's own."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    cursor: int
    reset: bool = False


@dataclass(frozen=True)
class PruneResult:
    """What one :meth:`HubStore.prune` removed: reports, blocklist journal changes and
    addresses (rows of each table)."""

    reports: int = 0
    changes: int = 0
    addresses: int = 0

    def __bool__(self) -> bool:
        return bool(self.reports or self.changes or self.addresses)


@dataclass(frozen=True)
class Reputation:
    """What the hub knows of one address (``known`` is false when nobody reported it)."""

    ip: str
    known: bool
    reports: int = 0
    agents: int = 0  # distinct agents that reported it, ever
    networks: int = 0  # distinct reporter networks, ever
    recent_agents: int = 0  # within the consensus window
    recent_networks: int = 0
    categories: tuple[str, ...] = ()
    jails: tuple[str, ...] = ()
    first_seen: float | None = None
    last_seen: float | None = None
    score: float = 0.0  # decayed to now
    listed: bool = False
    listed_since: float | None = None
    expires: float | None = None
    allowlisted: str | None = None  # why it is never listed, if it is not


@dataclass(frozen=True)
class AllowEntry:
    """A range the administrator never wants listed."""

    network: str
    comment: str
    created: float


@dataclass(frozen=True)
class UserInfo:
    """A dashboard user: argon2 password hash and TOTP secret (base32)."""

    id: int
    name: str
    password_hash: str
    totp_secret: str
    created: float
    last_login: float | None = None
    failed_logins: int = 0
    locked_until: float | None = None


@dataclass(frozen=True)
class SessionInfo:
    """A dashboard session: ``id`` is the SHA-256 of the cookie value; ``stage`` is
    ``password`` (password checked, TOTP code awaited) or ``full``."""

    id: str
    user_id: int
    stage: str
    csrf: str
    created: float
    expires: float
    address: str


@dataclass(frozen=True)
class HubStats:
    """Trends and tops for the API and the dashboard; times are hour or day starts (UTC)."""

    since: float
    until: float
    reports: int
    addresses: int
    listed: int
    per_hour: tuple[tuple[float, int], ...] = ()
    per_day: tuple[tuple[float, int], ...] = ()
    top_addresses: tuple[tuple[str, int], ...] = ()
    top_categories: tuple[tuple[str, int], ...] = ()
    top_reporters: tuple[tuple[str, int], ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


def never_listed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` can never be listed whatever the reports (a range that is not
    globally routable), or ``None``."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private or reserved range"
    if address.is_reserved or address.is_unspecified:
        return "reserved range"
    if not address.is_global:
        return "not globally routable"
    return None


def reporter_network(agent: AgentInfo, source: str) -> str:
    """The network a report counts under: the agent's enrolment network, else the /24 (IPv4)
    or /48 (IPv6) of ``source``, the address the report came from."""
    if agent.network:
        return agent.network
    address = ipaddress.ip_address(source)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


_CATEGORIES = (
    ("asterisk", "sip"),
    ("sip", "sip"),
    ("freeswitch", "sip"),
    ("sshd", "ssh"),
    ("ssh", "ssh"),
    ("dropbear", "ssh"),
    ("sasl", "smtp-auth"),
    ("postfix", "smtp"),
    ("exim", "smtp"),
    ("sendmail", "smtp"),
    ("dovecot", "imap"),
    ("courier", "imap"),
    ("nginx", "http"),
    ("apache", "http"),
)


def category_of_jail(jail: str) -> str:
    """The attack category a jail's name suggests (``sshd`` -> ``ssh``, ``asterisk`` -> ``sip``,
    ``postfix-sasl`` -> ``smtp-auth``), ``other`` when none does."""
    name = jail.lower()
    for word, category in _CATEGORIES:
        if word in name:
            return category
    return "other"

"""The hub's tables, as SQLAlchemy Core objects on one :data:`metadata`.

Times are REAL seconds since the epoch (UTC); addresses are TEXT in canonical form
(``gardien.model.parse_address``). The same tables serve SQLite and PostgreSQL; the
migrations in ``migrations/versions`` create exactly these (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

__all__ = [
    "addresses",
    "agents",
    "allowlist",
    "blocklist_changes",
    "metadata",
    "reports",
    "sessions",
    "users",
]

metadata = MetaData()

# SQLite only gives an auto-incremented key to a column declared exactly INTEGER PRIMARY KEY;
# PostgreSQL gets a 64-bit key for the tables that grow without bound.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

#: an enrolled agent; only the SHA-256 of its token is kept
agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("network", String(49)),
    Column("created", Float, nullable=False),
    Column("last_seen", Float),
    Column("last_address", String(45)),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
)

#: every ban an agent reported; ``network`` is the reporter network the report counts under
reports = Table(
    "reports",
    metadata,
    Column("id", _BigId, primary_key=True),
    Column("agent_id", Integer, ForeignKey("agents.id"), nullable=False),
    Column("ip", String(45), nullable=False),
    Column("network", String(49), nullable=False),
    Column("jail", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("time", Float, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("received", Float, nullable=False),
    Index("ix_reports_ip_time", "ip", "time"),
    Index("ix_reports_time", "time"),
)

#: what the hub knows of each reported address; ``listed_since IS NOT NULL`` means listed
addresses = Table(
    "addresses",
    metadata,
    Column("ip", String(45), primary_key=True),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("reports", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("score_time", Float, nullable=False),
    Column("categories", Text, nullable=False),  # a JSON array of strings, sorted
    Column("listed_since", Float),
    Column("expires", Float),
    Index("ix_addresses_expires", "expires"),
    # the blocklist is read from this index alone, however many addresses are only known
    Index(
        "ix_addresses_listed",
        "ip",
        sqlite_where=text("listed_since IS NOT NULL"),
        postgresql_where=text("listed_since IS NOT NULL"),
    ),
)

#: the journal of blocklist changes that delta sync reads (``op`` is 'add' or 'remove')
blocklist_changes = Table(
    "blocklist_changes",
    metadata,
    Column("seq", _BigId, primary_key=True),
    Column("ip", String(45), nullable=False),
    Column("op", String(6), nullable=False),
    Column("time", Float, nullable=False),
)

#: ranges the administrator never wants listed
allowlist = Table(
    "allowlist",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("network", String(49), nullable=False, unique=True),
    Column("comment", Text, nullable=False, server_default=""),
    Column("created", Float, nullable=False),
)

#: dashboard users (argon2 password hash, TOTP secret)
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("totp_secret", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("last_login", Float),
    Column("failed_logins", Integer, nullable=False, server_default=text("0")),
    Column("locked_until", Float),
    Column("totp_last_step", BigInteger),
)

#: dashboard sessions, keyed by the SHA-256 of the cookie value
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("stage", String(8), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    Column("address", String(45), nullable=False),
    Index("ix_sessions_expires", "expires"),
)

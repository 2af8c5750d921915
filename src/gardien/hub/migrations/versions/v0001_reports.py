"""The hub's first schema: agents, their reports, what is known of each address, the
blocklist journal and the allowlist.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# frozen copies of the column types: a migration must not change when schema.py does
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables of the first version."""
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("network", sa.String(49)),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float),
        sa.Column("last_address", sa.String(45)),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "reports",
        sa.Column("id", _BigId, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("network", sa.String(49), nullable=False),
        sa.Column("jail", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_index("ix_reports_ip_time", "reports", ["ip", "time"])
    op.create_index("ix_reports_time", "reports", ["time"])
    op.create_table(
        "addresses",
        sa.Column("ip", sa.String(45), primary_key=True),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("reports", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("score_time", sa.Float, nullable=False),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("listed_since", sa.Float),
        sa.Column("expires", sa.Float),
    )
    op.create_index("ix_addresses_expires", "addresses", ["expires"])
    op.create_index(
        "ix_addresses_listed",
        "addresses",
        ["ip"],
        sqlite_where=sa.text("listed_since IS NOT NULL"),
        postgresql_where=sa.text("listed_since IS NOT NULL"),
    )
    op.create_table(
        "blocklist_changes",
        sa.Column("seq", _BigId, primary_key=True),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("op", sa.String(6), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
    )
    op.create_table(
        "allowlist",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("network", sa.String(49), nullable=False, unique=True),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("created", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    for table in ("allowlist", "blocklist_changes", "addresses", "reports", "agents"):
        op.drop_table(table)

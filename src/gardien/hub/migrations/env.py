"""Alembic's entry point for the hub: migrations run on the connection that
``HubStore.migrate()`` hands over in ``config.attributes["connection"]``, inside its
transaction (there is no offline mode)."""

from __future__ import annotations

from alembic import context

from gardien.hub.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()

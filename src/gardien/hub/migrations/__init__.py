"""The hub's Alembic environment; ``HubStore.migrate()`` runs it, no ``alembic.ini`` needed."""

"""Where bans, checkpoints and pending failures outlive the daemon: the :class:`BanStore`
protocol, an SQLite store (the default, one writer thread, versioned schema) and an in-memory
one for tests."""

from gardien.store.base import DEFAULT_MAX_MATCHES, BanStore, Progress
from gardien.store.memory import MemoryBanStore
from gardien.store.migrations import SCHEMA_VERSION
from gardien.store.sqlite import SQLiteBanStore

__all__ = [
    "DEFAULT_MAX_MATCHES",
    "SCHEMA_VERSION",
    "BanStore",
    "MemoryBanStore",
    "Progress",
    "SQLiteBanStore",
]

"""The protocol every action implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gardien.model import Ban, Unban

__all__ = ["Action"]


class Action(Protocol):
    """Something that carries out a jail's decisions. Bans that arrive together are passed
    together, so that a backend can apply them in one transaction."""

    name: str

    async def start(self) -> None:
        """Prepare (create sets, chains...); called once before the first ban."""
        ...

    async def restore(self, bans: Sequence[Ban]) -> None:
        """At start: make what the action holds exactly ``bans`` (the store's active bans):
        leftovers removed, missing ones added."""
        ...

    async def stop(self) -> None:
        """Undo what start did, unless configured to keep bans across a restart."""
        ...

    async def ban(self, bans: Sequence[Ban]) -> None:
        """Apply ``bans``. Banning an address already banned is harmless."""
        ...

    async def unban(self, unbans: Sequence[Unban]) -> None:
        """Lift ``unbans``. Unbanning an address that is not banned is harmless."""
        ...

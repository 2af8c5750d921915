"""The ``log`` action: a dry run that only says what it would do."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gardien.model import Ban, Unban

__all__ = ["LogAction"]

logger = logging.getLogger("gardien.actions.log")


class LogAction:
    """Logs each ban and unban (``action = log``, or ``log[level=warning]``)."""

    LEVELS: Mapping[str, int] = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "notice": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }

    #: batches larger than this are logged as one summary line
    DETAILED = 20

    def __init__(self, jail: str, *, level: str = "warning", name: str = "log") -> None:
        self.name = name
        self.jail = jail
        self.level = self.LEVELS[level.lower()]
        self.banned: dict[str, Ban] = {}

    async def start(self) -> None:
        logger.log(self.level, "[%s] dry run: bans are logged, nothing is blocked", self.jail)

    async def restore(self, bans: Sequence[Ban]) -> None:
        self.banned.clear()
        await self.ban(bans)

    async def stop(self) -> None:
        self.banned.clear()

    async def ban(self, bans: Sequence[Ban]) -> None:
        fresh: list[Ban] = []
        for ban in bans:
            if str(ban.address) not in self.banned:
                self.banned[str(ban.address)] = ban
                fresh.append(ban)
        if len(fresh) > self.DETAILED:  # a restore after a restart: one line, not thousands
            shown = ", ".join(str(ban.address) for ban in fresh[:5])
            logger.log(
                self.level, "[%s] would ban %d addresses (%s, ...)", self.jail, len(fresh), shown
            )
            return
        for ban in fresh:
            lasting = "for ever" if ban.end is None else f"for {ban.end - ban.start:g} s"
            logger.log(
                self.level,
                "[%s] would ban %s %s (%d failures, ban #%d)",
                self.jail,
                ban.address,
                lasting,
                ban.failures,
                ban.count,
            )

    async def unban(self, unbans: Sequence[Unban]) -> None:
        for unban in unbans:
            if self.banned.pop(str(unban.address), None) is not None:
                logger.log(
                    self.level, "[%s] would unban %s (%s)", self.jail, unban.address, unban.reason
                )

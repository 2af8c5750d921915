"""Mail alerts, what they say and when: the :class:`Composer` writes a jail's mails, and the
modes (:class:`EachMode`, :class:`DigestMode`, :class:`ThresholdMode`) decide which bans give
a mail and when. Pure: the modes take the time they are given and send nothing; the action in
:mod:`gardien.actions.mail` queues what they return.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gardien.model import Ban

__all__ = [
    "LISTED",
    "Composer",
    "DigestMode",
    "EachMode",
    "Mode",
    "Notice",
    "ThresholdMode",
]

#: bans listed in one digest or alert mail; the rest are counted
LISTED = 100


# ---- what a mail says ----------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """One mail to send: its subject and text, and the addresses it is about."""

    subject: str
    body: str
    addresses: tuple[str, ...] = ()


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(seconds))


def _span(seconds: float) -> str:
    """``90`` -> ``1 min 30 s``, ``3600`` -> ``1 h``."""
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts) or f"{seconds:g} s"


def _printable(line: str) -> str:
    """A log line (attacker-controlled text) with control characters made harmless."""
    return "".join(char if char.isprintable() or char == "\t" else "?" for char in line)


def _until(ban: Ban) -> str:
    if ban.end is None:
        return "for ever"
    return f"{_when(ban.end)} ({_span(ban.end - ban.start)})"


class Composer:
    """Writes the subjects and texts of a jail's mails."""

    def __init__(self, jail: str, host: str, *, with_lines: bool) -> None:
        self.jail = jail
        self.host = host
        self.with_lines = with_lines

    def each(self, ban: Ban) -> Notice:
        failures = f" after {ban.failures} failures" if ban.failures else ""
        lines = [
            f"gardien on {self.host} banned {ban.address} in jail {self.jail}.",
            "",
            f"  jail:      {self.jail}",
            f"  address:   {ban.address}",
            f"  banned at: {_when(ban.start)}",
            f"  until:     {_until(ban)}",
            f"  failures:  {ban.failures}",
            f"  ban:       #{ban.count}"
            + (" (this address was banned before)" if ban.count > 1 else ""),
        ]
        if self.with_lines:
            lines += ["", "Matched log lines:"]
            lines += [f"  {_printable(line)}" for line in ban.matches] or ["  (none kept)"]
        return Notice(
            f"[gardien] {self.jail}: banned {ban.address}{failures}",
            "\n".join(lines) + "\n",
            (str(ban.address),),
        )

    def listing(self, bans: Sequence[Ban], more: int) -> list[str]:
        """One line per ban (followed by its log lines when asked), then how many more."""
        lines: list[str] = []
        for ban in bans:
            until = "ever" if ban.end is None else _when(ban.end)
            lines.append(
                f"  {_when(ban.start)}  {ban.address!s:<39}  {ban.failures:>4} failures  "
                f"until {until}"
            )
            if self.with_lines:
                lines += [f"      {_printable(line)}" for line in ban.matches]
        if more:
            lines.append(f"  ... and {more} more")
        return lines

    def digest(self, bans: Sequence[Ban], more: int, since: float, now: float) -> Notice:
        total = len(bans) + more
        lines = [
            f"gardien on {self.host}: {total} ban(s) in jail {self.jail} "
            f"from {_when(since)} to {_when(now)}.",
            "",
            *self.listing(bans, more),
        ]
        return Notice(
            f"[gardien] {self.jail}: {total} ban(s) in the last {_span(now - since)}",
            "\n".join(lines) + "\n",
            tuple(str(ban.address) for ban in bans),
        )

    def alert(self, bans: Sequence[Ban], threshold: int, period: float) -> Notice:
        lines = [
            f"gardien on {self.host}: {len(bans)} bans in jail {self.jail} within "
            f"{_span(period)}, the alert threshold ({threshold}).",
            "No further alert is sent until the bans within that period fall below it.",
            "",
            "The latest bans:",
            *self.listing(bans[-LISTED:], max(0, len(bans) - LISTED)),
        ]
        return Notice(
            f"[gardien] {self.jail}: {len(bans)} bans within {_span(period)} "
            f"(alert threshold {threshold})",
            "\n".join(lines) + "\n",
            tuple(str(ban.address) for ban in bans),
        )

    def dropped(self, count: int, addresses: Sequence[str]) -> Notice:
        lines = [
            f"gardien on {self.host}: {count} mail(s) about jail {self.jail} were not sent: too "
            "many were waiting for the relay. The bans themselves took effect.",
        ]
        if addresses:
            lines += ["", "Addresses they were about (first ones):"]
            lines += [f"  {address}" for address in addresses]
        return Notice(
            f"[gardien] {self.jail}: {count} alert mail(s) not sent", "\n".join(lines) + "\n"
        )


# ---- when to mail: the modes (pure, they take the time they are given) ----------------------
class Mode(Protocol):
    """Decides which notices a jail's bans give, and when."""

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        """Notices due because of ``bans``."""
        ...

    def due(self, now: float) -> list[Notice]:
        """Notices due because time passed."""
        ...

    def flush(self, now: float) -> list[Notice]:
        """At stop: what is pending (a digest in progress)."""
        ...


class EachMode:
    """One mail per ban."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        return [self.composer.each(ban) for ban in bans]

    def due(self, now: float) -> list[Notice]:
        return []

    def flush(self, now: float) -> list[Notice]:
        return []


class DigestMode:
    """One mail per period listing its bans (none for a period without bans); also as soon as
    ``size`` bans are waiting when set (fail2ban's ``sendmail-buffered``)."""

    def __init__(
        self, composer: Composer, every: float, *, size: int | None = None, start: float
    ) -> None:
        self.composer = composer
        self.every = every
        self.size = size
        self.since = start
        self.bans: list[Ban] = []
        self.more = 0  # bans beyond the listed ones

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        for ban in bans:
            if len(self.bans) < LISTED:
                self.bans.append(ban)
            else:
                self.more += 1
        if self.size is not None and len(self.bans) + self.more >= self.size:
            return self.flush(now)
        return []

    def due(self, now: float) -> list[Notice]:
        if now - self.since < self.every:
            return []
        return self.flush(now)

    def flush(self, now: float) -> list[Notice]:
        notices = []
        if self.bans:
            notices.append(self.composer.digest(self.bans, self.more, self.since, now))
        self.bans, self.more, self.since = [], 0, now
        return notices


class ThresholdMode:
    """One alert when the bans within ``period`` reach ``threshold``; re-armed when they fall
    below it again."""

    def __init__(self, composer: Composer, threshold: int, period: float) -> None:
        self.composer = composer
        self.threshold = threshold
        self.period = period
        # the count within the period reaches the threshold exactly when the threshold-th
        # latest ban is within it: older ones need not be kept
        self.recent: deque[Ban] = deque(maxlen=threshold)
        self.armed = True

    def _within(self, now: float) -> int:
        return sum(1 for ban in self.recent if ban.start > now - self.period)

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        notices = []
        for ban in bans:
            self.recent.append(ban)
            reached = self._within(now) >= self.threshold
            if reached and self.armed:
                self.armed = False
                inside = [b for b in self.recent if b.start > now - self.period]
                notices.append(self.composer.alert(inside, self.threshold, self.period))
            elif not reached:
                self.armed = True
        return notices

    def due(self, now: float) -> list[Notice]:
        if self._within(now) < self.threshold:
            self.armed = True
        return []

    def flush(self, now: float) -> list[Notice]:
        return []

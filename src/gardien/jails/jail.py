"""A jail: counts failures per address and decides bans and unbans. Pure: no I/O, and the
time comes from the failures themselves or an injected clock.

Counting is an exact sliding window: an address is banned when ``maxretry`` of its failures
lie within ``findtime`` seconds of each other (both ends included). A failure more than
``findtime`` older than the newest one seen for its address is forgotten, so each address
keeps fewer than ``maxretry`` failures in memory. (fail2ban estimates the count from a rate
once the first failure leaves the window; an exact window is easier to reason about and
bans in the same cases for failures that arrive in time order.)

The failures counted and not banned for yet (*pending*) survive a restart: the jail says which
addresses' pending failures changed since it was last asked (:meth:`Jail.take_pending`), the
daemon stores them with the checkpoint of the batch that changed them, and a new jail takes
them back (:meth:`Jail.restore_pending`). Their number is bounded (the jail's ``maxpending``
addresses, 100,000 by default): past it, an address with a single failure is forgotten
first (the one whose failure is the oldest), so that a flood of addresses that fail once
cannot push out the count of one that keeps trying; only when every pending address has
several failures does the oldest of them go.

The jail returns :class:`~gardien.model.Ban` and :class:`~gardien.model.Unban` decisions;
carrying them out (firewall, store, notifications) is the daemon's business.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from gardien.clock import Clock
from gardien.errors import JailError
from gardien.jails.ignore import IgnoreList, normalize_address
from gardien.jails.timing import BanTimePolicy, RandomSource
from gardien.model import Address, Ban, Failure, PendingFailures, Unban, parse_address
from gardien.settings import JailSettings

__all__ = ["DEFAULT_MAX_PENDING", "BanHistory", "Jail", "JailError", "JailStatus"]

DEFAULT_MAX_PENDING = 100_000
"""How many addresses with pending failures a jail keeps (see the module docstring)."""

#: ``history(jail, address, overall)``: how many times ``address`` was banned before, in
#: ``jail`` or (``overall``, for ``bantime.overalljails``) in any jail; usually the ban store
BanHistory = Callable[[str, Address, bool], int]


@dataclass(frozen=True)
class JailStatus:
    """What ``fail2ban-client status <jail>`` shows, plus why failures were dropped."""

    name: str
    currently_failed: int  # addresses with failures within findtime of now
    total_failed: int  # failures counted since the jail started
    currently_banned: int
    total_banned: int  # bans made or restored since the jail started
    banned: tuple[Address, ...]
    ignored: int = 0  # failures dropped because the address is ignored
    invalid: int = 0  # failures dropped because the host is not an address
    last_ignored: tuple[Address, str] | None = None  # the latest, with its reason
    forgotten: int = 0  # addresses whose pending failures were dropped past max_pending


@dataclass
class _Failed:
    """The recent failures of one address: times in order, with their log lines."""

    times: list[float]
    lines: list[tuple[str, ...]]

    def add(self, when: float, lines: tuple[str, ...], findtime: float) -> bool:
        """Add a failure; ``False`` if it is already older than the window."""
        if self.times and when < self.times[-1] - findtime:
            return False
        index = bisect.bisect_right(self.times, when)
        self.times.insert(index, when)
        self.lines.insert(index, lines)
        keep = bisect.bisect_left(self.times, self.times[-1] - findtime)
        del self.times[:keep], self.lines[:keep]
        return True


class Jail:
    """One jail's decisions, built from its :class:`JailSettings`.

    ``ignore`` defaults to the settings' ``ignoreip``/``ignoreself`` without a host-name
    resolver; ``random`` feeds ``bantime.rndtime``; ``history`` tells how often an address was
    banned before this jail started (without it, only this jail's own bans count). Raises
    :class:`~gardien.errors.ConfigError` for ban-time settings it cannot honour.
    """

    def __init__(
        self,
        settings: JailSettings,
        *,
        clock: Clock,
        ignore: IgnoreList | None = None,
        random: RandomSource | None = None,
        history: BanHistory | None = None,
        max_pending: int | None = None,
    ) -> None:
        max_pending = settings.maxpending if max_pending is None else max_pending
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.settings = settings
        self.name = settings.name
        self.clock = clock
        self.ignore = (
            ignore if ignore is not None else IgnoreList.from_settings(settings, clock=clock)
        )
        self.bantime = BanTimePolicy.from_settings(settings, random=random)
        self._history = history
        self._failed: dict[Address, _Failed] = {}
        # the addresses of _failed with one failure, oldest first: an OrderedDict, whose first
        # item is found in constant time however many were taken from its front (a dict's is not)
        self._singles: OrderedDict[Address, None] = OrderedDict()
        self._changed: set[Address] = set()  # whose pending failures changed since take_pending
        self._max_pending = max_pending
        self._forgotten = 0
        self._bans: dict[Address, Ban] = {}
        self._ban_counts: dict[Address, int] = {}  # bans this jail made or restored
        self._total_failed = 0
        self._total_banned = 0
        self._ignored = 0
        self._invalid = 0
        self._last_ignored: tuple[Address, str] | None = None

    # -- failures -------------------------------------------------------------------------

    def add_failure(self, failure: Failure) -> Ban | None:
        """Count ``failure``; return the ban it completes, if any.

        Dropped without counting: hosts that are not addresses and ignored addresses. A
        failure of an address banned now counts in ``total_failed`` (as fail2ban's "Total
        failed" counts it) and no further. A ban starts at the newest failure of the window
        and is not made if it would already be over by the clock's now (old log lines read
        again).
        """
        address = failure.address
        if address is None:
            self._invalid += 1
            return None
        address = normalize_address(address)
        reason = self.ignore.contains(address)
        if reason is not None:
            self._ignored += 1
            self._last_ignored = (address, reason)
            return None
        self._total_failed += 1
        if address in self._bans:
            return None
        when = failure.time if failure.time is not None else self.clock.now()
        failed = self._failed.get(address)
        if failed is None:
            if len(self._failed) >= self._max_pending:
                self._forget_one()
            failed = self._failed[address] = _Failed([], [])
        if not failed.add(when, failure.lines, self.settings.findtime):
            if not failed.times:
                del self._failed[address]
            return None
        self._changed.add(address)
        if len(failed.times) < self.settings.maxretry:
            if len(failed.times) == 1:
                self._singles[address] = None
            else:
                self._singles.pop(address, None)
            return None
        self._drop_pending(address)
        matches = tuple(line for lines in failed.lines for line in lines)
        ban = self._make_ban(address, failed.times[-1], len(failed.times), matches)
        end = ban.end
        if end is not None and end <= self.clock.now():
            return None
        self._record(ban)
        return ban

    # -- bans -----------------------------------------------------------------------------

    def ban(self, address: Address | str, *, now: float | None = None) -> Ban:
        """Ban ``address`` by hand (fail2ban's ``banip``), from ``now`` (default: the clock).

        The ban time grows with earlier bans as for automatic ones. An address banned already
        keeps its ban, which is returned. Raises :class:`JailError` for an ignored address or
        a text that is not an address.
        """
        parsed = self._address(address)
        reason = self.ignore.contains(parsed)
        if reason is not None:
            raise JailError(f"{self.name}: will not ban {parsed}: {reason}")
        existing = self._bans.get(parsed)
        if existing is not None:
            return existing
        self._drop_pending(parsed)
        ban = self._make_ban(parsed, self.clock.now() if now is None else now, 0, ())
        self._record(ban)
        return ban

    def banned(self, address: Address | str) -> Ban | None:
        """The ban of ``address`` in force in this jail, if any."""
        parsed = parse_address(address) if isinstance(address, str) else address
        return None if parsed is None else self._bans.get(normalize_address(parsed))

    def unban(self, address: Address | str) -> Unban | None:
        """Lift the ban of ``address`` (fail2ban's ``unbanip``); ``None`` if it was not banned."""
        parsed = parse_address(address) if isinstance(address, str) else address
        if parsed is None or self._bans.pop(normalize_address(parsed), None) is None:
            return None
        return Unban(self.name, normalize_address(parsed), reason="manual")

    def expire(self, now: float | None = None) -> list[Unban]:
        """Lift the bans over by ``now`` (default: the clock), oldest end first, and forget
        failures that left the window."""
        now = self.clock.now() if now is None else now
        over = sorted(
            (ban for ban in self._bans.values() if ban.end is not None and ban.end <= now),
            key=lambda ban: (ban.end, ban.start),
        )
        for ban in over:
            del self._bans[ban.address]
        horizon = now - self.settings.findtime
        for address in [a for a, failed in self._failed.items() if failed.times[-1] < horizon]:
            self._drop_pending(address)
        return [Unban(self.name, ban.address, reason="expired") for ban in over]

    def active_bans(self) -> list[Ban]:
        """The bans in force, in the order they were made."""
        return list(self._bans.values())

    def restore(self, bans: Iterable[Ban], *, now: float | None = None) -> list[Ban]:
        """Take back bans made before a restart (from the store), as they were: same start and
        end, so the remaining time is what was left. Bans over by ``now``, of addresses now
        ignored or already banned are skipped. Returns the bans restored, to re-apply.
        Raises :class:`JailError` for a ban of another jail.
        """
        now = self.clock.now() if now is None else now
        restored = []
        for ban in bans:
            if ban.jail != self.name:
                raise JailError(f"{self.name}: cannot restore a ban of jail {ban.jail!r}")
            address = normalize_address(ban.address)
            if ban.end is not None and ban.end <= now:
                continue
            if address in self._bans or self.ignore.contains(address) is not None:
                continue
            if address != ban.address:
                ban = replace(ban, address=address)  # noqa: PLW2901
            self._drop_pending(address)
            self._record(ban)
            restored.append(ban)
        return restored

    # -- pending failures -----------------------------------------------------------------

    def take_pending(self) -> tuple[list[PendingFailures], list[Address]]:
        """What changed in the pending failures since the last call: the pending failures of
        the addresses that have some now, and the addresses that no longer have any (banned,
        forgotten, or out of ``findtime``). The daemon stores both with its checkpoint."""
        pending: list[PendingFailures] = []
        settled: list[Address] = []
        for address in self._changed:
            failed = self._failed.get(address)
            if failed is None:
                settled.append(address)
            else:
                pending.append(PendingFailures(address, tuple(failed.times), tuple(failed.lines)))
        self._changed.clear()
        return pending, settled

    def pending_failures(self) -> list[PendingFailures]:
        """The failures counted now and not banned for, oldest address first."""
        return [
            PendingFailures(address, tuple(failed.times), tuple(failed.lines))
            for address, failed in self._failed.items()
        ]

    def take_over_pending(self, old: Jail) -> None:
        """Count on from where ``old`` (the jail this one replaces, with other settings)
        stands, and report to the store what ``old`` had not reported yet."""
        self.restore_pending(old.pending_failures())
        self._changed |= old._changed
        old._changed = set()

    def restore_pending(self, items: Iterable[PendingFailures], *, now: float | None = None) -> int:
        """Take back pending failures stored before a restart, as they were, dropping those out
        of ``findtime`` by ``now`` and those of addresses ignored or banned now; how many
        addresses were taken. Those dropped are reported by the next :meth:`take_pending`."""
        now = self.clock.now() if now is None else now
        horizon = now - self.settings.findtime
        taken = 0
        for item in items:
            address = normalize_address(item.address)
            # a maxretry lowered since: the most recent failures that do not ban by themselves
            limit = max(self.settings.maxretry - 1, 0)
            times = [t for t in item.times if t >= horizon][-limit:] if limit else []
            keep = len(item.times) - len(times)
            if not times or address in self._bans or self.ignore.contains(address) is not None:
                self._changed.add(address)
                continue
            if address not in self._failed and len(self._failed) >= self._max_pending:
                self._forget_one()
            lines = list(item.lines[keep:]) + [()] * (len(times) - len(item.lines[keep:]))
            self._failed.pop(address, None)
            self._failed[address] = _Failed(times, lines[: len(times)])
            if len(times) == 1:
                self._singles[address] = None
            taken += 1
        return taken

    # -- status ---------------------------------------------------------------------------

    def status(self, now: float | None = None) -> JailStatus:
        """Counters for ``gardien status <jail>``; "currently failed" is relative to ``now``."""
        now = self.clock.now() if now is None else now
        horizon = now - self.settings.findtime
        return JailStatus(
            name=self.name,
            currently_failed=sum(
                1 for failed in self._failed.values() if failed.times[-1] >= horizon
            ),
            total_failed=self._total_failed,
            currently_banned=len(self._bans),
            total_banned=self._total_banned,
            banned=tuple(self._bans),
            ignored=self._ignored,
            invalid=self._invalid,
            last_ignored=self._last_ignored,
            forgotten=self._forgotten,
        )

    # -- internals ------------------------------------------------------------------------

    def _address(self, address: Address | str) -> Address:
        parsed = parse_address(address) if isinstance(address, str) else address
        if parsed is None:
            raise JailError(f"{self.name}: {address!r} is not an IP address or network")
        return normalize_address(parsed)

    def _make_ban(
        self, address: Address, start: float, failures: int, matches: tuple[str, ...]
    ) -> Ban:
        count = self._earlier_bans(address) + 1
        seconds = self.bantime.duration(count)
        maxmatches = self.settings.maxmatches
        return Ban(
            jail=self.name,
            address=address,
            start=start,
            end=None if seconds is None else start + seconds,
            count=count,
            failures=failures,
            matches=matches[-maxmatches:] if maxmatches > 0 else (),
        )

    def _drop_pending(self, address: Address) -> None:
        if self._failed.pop(address, None) is not None:
            self._singles.pop(address, None)
            self._changed.add(address)

    def _forget_one(self) -> None:
        """Make room for one more pending address (see the module docstring)."""
        if self._singles:
            victim, _ = self._singles.popitem(last=False)
        else:
            victim = next(iter(self._failed))  # rare: every address failed more than once
        self._drop_pending(victim)
        self._forgotten += 1

    def _earlier_bans(self, address: Address) -> int:
        known = self._ban_counts.get(address, 0)
        if self._history is not None:
            overall = self.settings.increment.overalljails
            known = max(known, self._history(self.name, address, overall))
        return known

    def _record(self, ban: Ban) -> None:
        self._bans[ban.address] = ban
        self._ban_counts[ban.address] = max(self._ban_counts.get(ban.address, 0), ban.count)
        self._total_banned += 1

    def __repr__(self) -> str:
        return f"Jail({self.name!r}, banned={len(self._bans)}, failed={len(self._failed)})"

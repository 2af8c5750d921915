"""From a configuration directory to what the daemon would run: one plan per jail, and every
problem found on the way.

:func:`assemble` is the one place where the configuration is wired together: it reads the mail
relay and the jails, and for each enabled jail compiles its filter, decides which source it
reads (log files, the journal, or a hub feed) and builds its actions. It raises nothing: each
:class:`~gardien.errors.ConfigError` met is collected, located with file:line and the jail's
section, and the next jail is still assembled, so that one bad jail does not hide another's
problem. The daemon (:meth:`gardien.daemon.server.Daemon.start` and its reload) raises the first
problem; ``gardien config check`` prints them all.

Assembling starts nothing: actions are objects built (their ``start()`` is what touches a
firewall), no log file, journal or hub is opened. Only a feed's token file is read. With
:func:`pretend_firewalls`, not even a firewall library is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gardien.actions import Action, FirewallRegistry, build_actions
from gardien.backends.base import Firewall
from gardien.backends.memory import MemoryFirewall
from gardien.clock import Clock, SystemClock
from gardien.config.jails import jail_filter, read_jails
from gardien.config.mail import load_mail_relay
from gardien.config.values import parse_spec
from gardien.daemon.host import own_addresses, resolve
from gardien.daemon.jailsources import JournalOptions, check_source, journalmatch_of, uses_journal
from gardien.errors import ConfigError
from gardien.jails import IgnoreList
from gardien.matching.filter import Filter
from gardien.settings import FeedOptions, JailSettings, MailRelay
from gardien.sources.files import StartMode
from gardien.sources.globs import has_glob, parse_logpath_entry

if TYPE_CHECKING:  # the hub's HTTP client is imported only for a jail fed by a hub
    from gardien.sources.hub import HubFeed

__all__ = [
    "Assembly",
    "FeedPlan",
    "FilesPlan",
    "JailPlan",
    "JournalPlan",
    "LogPath",
    "assemble",
    "pretend_firewalls",
]


@dataclass(frozen=True)
class LogPath:
    """One ``logpath`` entry: a file or a glob, and where a file met for the first time is read
    from (``head`` or ``tail``)."""

    pattern: str
    start: StartMode

    @property
    def glob(self) -> bool:
        """Whether files created later that match :attr:`pattern` are followed too."""
        return has_glob(self.pattern)


@dataclass(frozen=True)
class FilesPlan:
    """The jail reads its log files."""

    paths: tuple[LogPath, ...]


@dataclass(frozen=True)
class JournalPlan:
    """The jail reads the systemd journal (given files, a directory, or the system's)."""

    options: JournalOptions
    journalmatch: tuple[str, ...]


@dataclass(frozen=True)
class FeedPlan:
    """The jail bans what a gardien hub lists (``backend = hub[...]``)."""

    options: FeedOptions
    feed: HubFeed  # built (its token read), not following yet


Source = FilesPlan | JournalPlan | FeedPlan


@dataclass(frozen=True)
class JailPlan:
    """What one jail will be: its settings, filter, source and actions, all checked."""

    settings: JailSettings
    filter: Filter | None  # None for a jail fed by a hub, which reads no log
    journalmatch: tuple[str, ...]
    source: Source
    actions: tuple[Action, ...]  # built, not started
    ignore: IgnoreList

    @property
    def name(self) -> str:
        return self.settings.name


@dataclass(frozen=True)
class Assembly:
    """What :func:`assemble` found: a plan for each jail that has no problem, and the problems."""

    #: every jail read, enabled or not, in file order (a section that cannot be read is a
    #: problem, not a jail)
    jails: tuple[JailSettings, ...]
    plans: Mapping[str, JailPlan]
    mail_relay: MailRelay
    problems: tuple[ConfigError, ...]

    def raise_first_problem(self) -> None:
        """Raise the first problem, if there is one (what the daemon does)."""
        if self.problems:
            raise self.problems[0]


def pretend_firewalls() -> FirewallRegistry:
    """Backends that only remember: firewall actions are checked without a firewall library."""
    return FirewallRegistry(dict.fromkeys(("nftables", "ipset", "iptables"), MemoryFirewall))


def assemble(
    config_dir: Path,
    *,
    firewalls: Callable[[str], Firewall],
    clock: Clock | None = None,
    keep_bans: bool = False,
    include_disabled: bool = False,
) -> Assembly:
    """The plans of the enabled jails under ``config_dir`` (every jail with
    ``include_disabled``) and every problem met; see the module docstring."""
    clock = clock or SystemClock()
    problems: list[ConfigError] = []
    try:
        mail_relay = load_mail_relay(config_dir)
    except ConfigError as error:
        problems.append(error)
        mail_relay = MailRelay()  # the mail actions are still checked, with its defaults
    jails, unreadable = read_jails(config_dir)
    problems += unreadable
    plans: dict[str, JailPlan] = {}
    for settings in jails:
        if not (settings.enabled or include_disabled):
            continue
        found: list[ConfigError] = []
        planned = _filter_and_source(settings, config_dir, found)
        try:
            actions = build_actions(
                settings.actions,
                settings.name,
                firewalls=firewalls,
                clock=clock,
                keep_bans=keep_bans,
                mail_relay=mail_relay,
            )
        except ConfigError as error:
            found.append(_at_jail(error, settings, option="action"))
        try:
            ignore = IgnoreList.from_settings(
                settings, clock=clock, own_addresses=own_addresses, resolve=resolve
            )
        except ConfigError as error:
            found.append(_at_jail(error, settings, option="ignoreip"))
        if found or planned is None:
            problems += found
            continue
        compiled, journalmatch, source = planned
        plans[settings.name] = JailPlan(
            settings, compiled, journalmatch, source, tuple(actions), ignore
        )
    return Assembly(tuple(jails), plans, mail_relay, tuple(problems))


def _filter_and_source(
    settings: JailSettings, config_dir: Path, problems: list[ConfigError]
) -> tuple[Filter | None, tuple[str, ...], Source] | None:
    """The jail's compiled filter, journalmatch and source; ``None`` (and its problem added
    to ``problems``) when one of them is wrong."""
    if settings.hub_feed:
        from gardien.config.jails import feed_options
        from gardien.sources.hub import HubFeed

        try:
            options = feed_options(parse_spec(settings.backend))
            feed = HubFeed.from_options(settings.name, options)  # reads its token file
        except ConfigError as error:
            problems.append(_at_jail(error, settings, option="backend"))
            return None
        return None, (), FeedPlan(options, feed)
    try:
        spec = jail_filter(settings, config_dir)
        compiled = Filter(spec)
    except ConfigError as error:
        problems.append(_at_jail(error, settings, option="filter"))
        return None
    journalmatch = journalmatch_of(settings, spec)
    try:
        # what no host could read as configured; whether this one can is known at the start
        check_source(settings, journalmatch)
    except ConfigError as error:
        problems.append(_at_jail(error, settings))
        return None
    source: Source
    if uses_journal(settings, journalmatch):
        journal = JournalOptions.of(parse_spec(settings.backend or "auto"))
        source = JournalPlan(journal, journalmatch)
    else:
        source = FilesPlan(
            tuple(LogPath(*parse_logpath_entry(entry)) for entry in settings.logpath)
        )
    return compiled, journalmatch, source


def _at_jail(error: ConfigError, settings: JailSettings, option: str | None = None) -> ConfigError:
    """``error`` located at the jail's section, where it does not say better (a line of
    another file, such as the filter's, is not given the jail's line)."""
    same_file = error.path is None or error.path == settings.path
    return error.located(
        path=settings.path,
        line=settings.line if same_file else None,
        section=settings.name,
        option=option,
    )

"""The one exception hierarchy of gardien.

Library code raises these; only the CLI turns them into messages and exit codes.

    GardienError                  base of everything gardien raises on purpose
    ├── ConfigError               a configuration file or value is wrong (has file:line)
    │   ├── FilterError           a filter cannot be built (bad regex, no <HOST>, bad date)
    │   └── UnknownJailError      a command names a jail the daemon does not run
    ├── JailError                 a jail cannot do what it was asked (ban an ignored address...)
    ├── SourceError               a jail's log file or journal cannot be read on this host
    ├── BackendError              a firewall backend failed
    ├── StoreError                the ban store failed
    ├── ControlError              the control socket or protocol failed
    ├── MigrateError              fail2ban's installation cannot be moved to gardien as it is
    └── HubError                  the hub's database, or a hub an agent talks to, failed
        ├── HubUnavailable        a hub cannot answer now (down, 5xx, 429): try again later
        └── HubRefused            a hub refused a request (4xx): the same request will fail again
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "ControlError",
    "FilterError",
    "GardienError",
    "HubError",
    "HubRefused",
    "HubUnavailable",
    "JailError",
    "MigrateError",
    "SourceError",
    "StoreError",
    "UnknownJailError",
]


class GardienError(Exception):
    """Base class of the errors gardien raises for a reason it can explain."""


class ConfigError(GardienError):
    """A configuration problem, located as precisely as we know it.

    ``str(error)`` reads ``file:line: [section] option: message``, leaving out what is unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        section: str | None = None,
        option: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.section = section
        self.option = option
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        what = ""
        if self.section is not None:
            what = f"[{self.section}] "
        if self.option is not None:
            what += f"{self.option}: "
        return f"{where}{what}{self.message}"

    def located(
        self,
        *,
        path: str | None = None,
        line: int | None = None,
        section: str | None = None,
        option: str | None = None,
    ) -> ConfigError:
        """Return a copy that fills in whichever location fields were unknown."""
        return type(self)(
            self.message,
            path=self.path or path,
            line=self.line if self.line is not None else line,
            section=self.section if self.section is not None else section,
            option=self.option if self.option is not None else option,
        )


class FilterError(ConfigError):
    """A filter definition cannot be compiled or used."""


class UnknownJailError(ConfigError):
    """A control command names a jail the daemon does not run; the message starts
    ``unknown jail 'NAME'``, which fail2ban-client's drop-in turns into its own words."""


class JailError(GardienError):
    """A jail was asked for something it cannot do: ban an ignored address or something that is
    not an address, restore another jail's ban."""


class SourceError(GardienError):
    """A jail's log source cannot be read on this host (permission denied, no journal...): the
    message says what and how to fix it. Unlike a :class:`ConfigError`, it does not stop the
    daemon: that jail is left out and the others run."""


class BackendError(GardienError):
    """A firewall backend could not carry out a command."""


class StoreError(GardienError):
    """The ban store could not be read or written."""


class ControlError(GardienError):
    """The control socket could not be reached or answered wrongly."""


class HubError(GardienError):
    """The hub's database failed, or a hub an agent talks to refused or cannot be reached."""


class HubUnavailable(HubError):
    """A hub could not answer now (unreachable, timed out, 5xx, or 429 rate limit): the same
    request may succeed later, after ``retry_after`` seconds if the hub said so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HubRefused(HubError):
    """A hub refused a request (``status``: 400, 401, 403, 404, 413, 422...): sending it again
    unchanged fails again. ``detail`` is the hub's explanation, if it gave one."""

    def __init__(self, message: str, *, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class MigrateError(GardienError):
    """``gardien migrate`` cannot go on: fail2ban's database is unreadable, a file it would
    write is someone else's, or the switch-over failed (the message says what was left as it
    was)."""

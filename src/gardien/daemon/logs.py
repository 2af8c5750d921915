"""The daemon's own log: where it goes (``logtarget``) and how much (``loglevel``).

A log file is reopened on request (``gardien flushlogs``, which logrotate's ``postrotate``
calls once it has renamed the file): the lines that follow go to a new file at the same path.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from dataclasses import replace
from pathlib import Path

from gardien.errors import ConfigError
from gardien.settings import DaemonSettings

__all__ = [
    "LEVELS",
    "NOTICE",
    "LogFile",
    "configure_logging",
    "reopen_log_files",
    "set_log_level",
    "switch_log_target",
]

NOTICE = 25  # between INFO and WARNING, as fail2ban logs bans
logging.addLevelName(NOTICE, "NOTICE")
_FORMAT = "%(asctime)s %(name)-24s %(levelname)-7s %(message)s"


def configure_logging(settings: DaemonSettings) -> logging.Handler:
    """Send gardien's log records to ``settings.logtarget`` at ``settings.loglevel``.

    Targets: ``STDERR``, ``STDOUT``, ``SYSLOG`` (/dev/log), ``SYSTEMD-JOURNAL`` (stderr without
    timestamps: the journal adds its own), or a file path (appended to, created 0600, its
    directory created 0750 when missing: see :class:`LogFile`). Returns the handler
    installed, so that a caller can remove it.
    """
    target = settings.logtarget.strip()
    key = target.upper()
    handler: logging.Handler
    fmt = _FORMAT
    if key == "STDERR":
        handler = logging.StreamHandler(sys.stderr)
    elif key == "STDOUT":
        handler = logging.StreamHandler(sys.stdout)
    elif key == "SYSTEMD-JOURNAL":
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(name)s %(levelname)s %(message)s"
    elif key == "SYSLOG" or key.startswith("SYSLOG"):
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
        except OSError as exc:
            raise ConfigError(f"logtarget SYSLOG: cannot reach /dev/log ({exc.strerror})") from None
        fmt = "gardien[%(process)d]: %(name)s %(levelname)s %(message)s"
    else:
        handler = LogFile(target)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("gardien")
    root.addHandler(handler)
    level = "INFO" if settings.loglevel == "NOTICE" else settings.loglevel
    root.setLevel(NOTICE if settings.loglevel == "NOTICE" else getattr(logging, level))
    return handler


class LogFile(logging.FileHandler):
    """gardien's log file, which :meth:`reopen` opens again at its path (after a rotation).

    The file is created mode 0600 and its directory, when missing, 0750; a path that cannot be
    written is a :class:`ConfigError` naming it and why.
    """

    def __init__(self, path: str) -> None:
        _create(path)
        super().__init__(path, encoding="utf-8")

    def reopen(self) -> None:
        """Close the file and open the one now at the path (made anew when it was renamed)."""
        self.acquire()
        try:
            _create(self.baseFilename)
            stream = self._open()
            old, self.stream = self.stream, stream
            if old is not None:
                old.close()
        finally:
            self.release()


def _create(path: str) -> None:
    directory = Path(path).parent
    try:
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"logtarget {path}: {directory} is not a directory") from None
    except OSError as exc:
        raise ConfigError(
            f"logtarget {path}: cannot create its directory {directory} ({exc.strerror})"
        ) from None
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ConfigError(f"logtarget {path}: cannot write ({exc.strerror})") from None


#: fail2ban's log levels (``set loglevel``), by name; a number from 5 to 50 works too
LEVELS = {
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": NOTICE,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACEDEBUG": 7,
    "HEAVYDEBUG": 5,
}


def set_log_level(level: str) -> str:
    """Log at ``level`` from now on (a name of :data:`LEVELS` or a number from 5 to 50); its
    name is returned. :class:`ConfigError` for any other."""
    text = level.strip().upper()
    if text.isdigit() and 5 <= int(text) <= 50:
        number = int(text)
        text = next((name for name, value in LEVELS.items() if value == number), text)
    elif text in LEVELS:
        number = LEVELS[text]
    else:
        raise ConfigError(
            f"invalid log level {level!r} ({', '.join(LEVELS)}, or a number from 5 to 50)"
        )
    logging.getLogger("gardien").setLevel(number)
    return text


def switch_log_target(settings: DaemonSettings) -> None:
    """Send the log to ``settings.logtarget`` instead of where it went (``set logtarget``);
    a target that cannot be used is refused and the log stays where it was."""
    root = logging.getLogger("gardien")
    old, level = list(root.handlers), root.level
    configure_logging(replace(settings, loglevel="INFO"))  # raises before anything changed
    root.setLevel(level)
    for handler in old:
        root.removeHandler(handler)
        handler.close()


def reopen_log_files() -> list[str]:
    """Reopen every log file gardien writes to (``gardien flushlogs``); their paths, none when
    gardien logs elsewhere (stderr, syslog, the journal)."""
    reopened = []
    for handler in logging.getLogger("gardien").handlers:
        if isinstance(handler, LogFile):
            handler.reopen()
            reopened.append(handler.baseFilename)
    return reopened

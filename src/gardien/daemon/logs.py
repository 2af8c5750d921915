"""The daemon's own log: where it goes (``logtarget``) and how much (``loglevel``)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from gardien.config.daemon import DaemonSettings
from gardien.errors import ConfigError

__all__ = ["NOTICE", "configure_logging"]

NOTICE = 25  # between INFO and WARNING, as fail2ban logs bans
logging.addLevelName(NOTICE, "NOTICE")
_FORMAT = "%(asctime)s %(name)-24s %(levelname)-7s %(message)s"


def configure_logging(settings: DaemonSettings) -> logging.Handler:
    """Send gardien's log records to ``settings.logtarget`` at ``settings.loglevel``.

    Targets: ``STDERR``, ``STDOUT``, ``SYSLOG`` (/dev/log), ``SYSTEMD-JOURNAL`` (stderr without
    timestamps: the journal adds its own), or a file path (appended to, created 0600).
    Returns the handler installed, so that a caller can remove it.
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
        try:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.close(fd)
            handler = logging.FileHandler(target, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"logtarget {target}: cannot write ({exc.strerror})") from None
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("gardien")
    root.addHandler(handler)
    level = "INFO" if settings.loglevel == "NOTICE" else settings.loglevel
    root.setLevel(NOTICE if settings.loglevel == "NOTICE" else getattr(logging, level))
    return handler

"""Telling systemd how the daemon is doing (``Type=notify``): sd_notify's datagrams.

systemd starts a ``Type=notify`` service with ``$NOTIFY_SOCKET`` naming a Unix datagram socket
(a path, or an abstract name written with a leading ``@``) and waits for ``READY=1`` before it
counts the service as started: with gardien, once the jails are started and the control socket
listens, so that ``systemctl start gardien`` returns when bans can be made. Around a reload
the daemon sends ``RELOADING=1`` (with ``MONOTONIC_USEC``, which ``Type=notify-reload`` wants)
then ``READY=1``; at stop, ``STOPPING=1``. ``STATUS=`` lines say which jails run, for
``systemctl status``.

The protocol is one datagram of ``NAME=value`` lines, which a few lines of :mod:`socket` send;
without ``$NOTIFY_SOCKET`` nothing is sent. A notification that cannot be sent is logged and
never stops the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier"]

logger = logging.getLogger("gardien.daemon")


class Notifier:
    """Sends notifications to the service manager listening on ``address`` (``$NOTIFY_SOCKET``);
    does nothing when ``address`` is ``None``."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier of ``$NOTIFY_SOCKET`` (a no-op one when it is unset)."""
        return cls(environ.get("NOTIFY_SOCKET"))

    def ready(self, status: str = "") -> None:
        """Started (or reloaded): ``READY=1``."""
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        """A reload begins: ``RELOADING=1``; :meth:`ready` follows when it is over."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the configuration")

    def stopping(self) -> None:
        """The stop begins: ``STOPPING=1``."""
        self.send("STOPPING=1", "STATUS=stopping: removing the jails' firewall rules")

    def send(self, *lines: str) -> bool:
        """Send one datagram of these ``NAME=value`` lines; whether it was sent."""
        if self.address is None:
            return False
        address = self.address
        if address.startswith("@"):  # an abstract socket: a NUL byte instead of the @
            address = "\0" + address[1:]
        elif not address.startswith("/"):
            logger.warning("NOTIFY_SOCKET=%s: only Unix sockets are supported", self.address)
            self.address = None
            return False
        message = "\n".join(lines).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(message)
        except OSError as exc:
            logger.warning(
                "cannot notify the service manager on %s: %s", self.address, exc.strerror or exc
            )
            return False
        return True

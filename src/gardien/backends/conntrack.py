"""Forgetting the kernel's tracked connections of banned addresses.

A firewall that accepts ``ESTABLISHED`` traffic early (as most do) keeps letting a banned
client's existing flows through: a UDP SIP scanner's "connection" never ends while it keeps
sending, so a ban would never take effect (fail2ban issues #2503 and #3351). Deleting the
client's conntrack entries makes its next packet a new flow, which meets the ban.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Sequence

from gardien.errors import BackendError
from gardien.model import Address

__all__ = ["FORGET_AT_MOST", "forget_banned", "forget_connections"]

logger = logging.getLogger("gardien.backends.conntrack")

_DELETED = re.compile(r"(\d+) flow entr(?:y|ies) ha(?:s|ve) been deleted")
_warned_missing = False


#: a ban batch larger than this is a restore or a flood: one conntrack process per address
#: would cost more than it saves, so such batches leave the connections alone
FORGET_AT_MOST = 256


def forget_connections(addresses: Sequence[Address], *, command_prefix: Sequence[str] = ()) -> int:
    """Delete the tracked connections coming from each of ``addresses``; return how many.

    Runs ``conntrack -D -s ADDRESS`` once per address (``command_prefix``, e.g.
    ``("ip", "netns", "exec", "ns")``, goes before it). An address without connections is not an
    error. Without the ``conntrack`` tool this logs a warning, once, and does nothing: the ban
    itself stands. Other failures raise :class:`~gardien.errors.BackendError`.
    """
    global _warned_missing  # noqa: PLW0603 - warn once per process, not once per ban
    deleted = 0
    for address in addresses:
        argv = [*command_prefix, "conntrack", "-D", "-s", str(address)]
        if address.version == 6:
            argv[len(command_prefix) + 2 : len(command_prefix) + 2] = ["-f", "ipv6"]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            if not _warned_missing:
                _warned_missing = True
                logger.warning(
                    "conntrack is not installed: established connections of banned addresses "
                    "are not cut (apt-get install conntrack)"
                )
            return deleted
        found = _DELETED.search(result.stderr) or _DELETED.search(result.stdout)
        if found is None:
            raise BackendError(
                f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        deleted += int(found.group(1))
    return deleted


def forget_banned(addresses: Sequence[Address], *, command_prefix: Sequence[str] = ()) -> int:
    """What a backend calls after a ban batch: :func:`forget_connections`, unless the batch is
    larger than :data:`FORGET_AT_MOST` (a restore or a flood), when nothing is done."""
    if not 0 < len(addresses) <= FORGET_AT_MOST:
        return 0
    return forget_connections(addresses, command_prefix=command_prefix)

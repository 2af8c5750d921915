"""Remove from the firewall what the jails' firewall actions put there, bans included,
whatever ``keepbans`` says: what ``gardien firewall clear`` does, and what the Debian
package runs when it is removed, so that no gardien table, set or chain outlives it.

It reads the jails of the configuration (every jail, enabled or not: a jail disabled since
the daemon stopped may have left its bans) and tears down each firewall action's objects
through the backend that made them, so that only gardien's own objects are touched (a
fail2ban running beside it keeps its ``f2b-*`` chains unless a gardien jail has the same
name). Tearing down what does not exist does nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gardien.actions.firewall import BACKEND_OF, block_spec
from gardien.actions.registry import FirewallRegistry
from gardien.backends.base import Firewall
from gardien.config.jails import load_jails
from gardien.errors import ConfigError, GardienError

__all__ = ["Cleared", "clear_firewall"]

logger = logging.getLogger("gardien.actions")


@dataclass(frozen=True)
class Cleared:
    """One jail action's objects, removed (``error`` is None) or not (why)."""

    jail: str
    backend: str
    name: str
    error: str | None = None


def clear_firewall(
    config_dir: str | os.PathLike[str],
    *,
    firewalls: Callable[[str], Firewall] | None = None,
) -> list[Cleared]:
    """Tear down every firewall action of every jail under ``config_dir``.

    Raises :class:`ConfigError` when the jails cannot be read at all; a backend that cannot
    start here (its tool missing: then it holds nothing of gardien's) is reported in the
    result, and the others are still cleared.
    """
    registry = firewalls or FirewallRegistry()
    done: list[Cleared] = []
    seen: set[tuple[str, object]] = set()
    for settings in load_jails(Path(config_dir)):
        for spec in settings.actions:
            if spec.name not in BACKEND_OF:
                continue
            backend = BACKEND_OF[spec.name][0]
            try:
                block = block_spec(spec, settings.name)
            except ConfigError as error:
                done.append(Cleared(settings.name, backend, spec.name, str(error)))
                continue
            if (backend, block) in seen:
                continue
            seen.add((backend, block))
            try:
                registry(backend).teardown(block, keep_bans=False)
            except (GardienError, OSError) as error:
                done.append(Cleared(settings.name, backend, block.name, str(error)))
            else:
                done.append(Cleared(settings.name, backend, block.name))
    return done

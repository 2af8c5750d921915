"""``gardien migrate``: move a running fail2ban installation to gardien, its configuration,
bans and ban history, without a moment where the server is unprotected.

- :mod:`gardien.migrate.fail2ban_db`: fail2ban's SQLite database, read-only;
- :mod:`gardien.migrate.translate`: fail2ban's configuration as gardien's files, with
  :mod:`gardien.migrate.actions` and :mod:`gardien.migrate.filters`;
- :mod:`gardien.migrate.notes`: what cannot be carried over, and the files copied;
- :mod:`gardien.migrate.system`: fail2ban's server, gardien's daemon, fail2ban's leftovers;
- :mod:`gardien.migrate.plan`: the plan (a dry run) and the switch-over.
"""

from gardien.migrate.fail2ban_db import Fail2banBans, read_fail2ban_db
from gardien.migrate.plan import Plan, build_plan, execute
from gardien.migrate.translate import NotCarried, Translation, translate

__all__ = [
    "Fail2banBans",
    "NotCarried",
    "Plan",
    "Translation",
    "build_plan",
    "execute",
    "read_fail2ban_db",
    "translate",
]

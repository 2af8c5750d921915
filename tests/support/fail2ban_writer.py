"""Write a fail2ban database with fail2ban's own code (run by the system's python3, where the
Debian package installs the ``fail2ban`` module): ``python3 fail2ban_writer.py DB < bans.json``.

The input is a JSON list of ``{"jail", "ip", "time", "bantime", "count", "failures",
"matches"}``; each is one ban ticket added through ``Fail2BanDb.addBan``, in order, so that a
later ban of the same address in the same jail becomes its current ban (``bips``) and every one
is history (``bans``), as fail2ban records them.
"""

import json
import sys

from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import BanTicket


class _Actions:
    def __init__(self, bantime):
        self.bantime = bantime

    def getBanTime(self):
        return self.bantime


class _Jail:
    """What Fail2BanDb reads of a jail: its name and its actions' ban time."""

    def __init__(self, name):
        self.name = name
        self.actions = _Actions(600)


def main():
    db = Fail2BanDb(sys.argv[1])
    jails = {}
    for item in json.load(sys.stdin):
        jail = jails.get(item["jail"])
        if jail is None:
            jail = jails[item["jail"]] = _Jail(item["jail"])
            db.addJail(jail)
        ticket = BanTicket(item["ip"], item["time"], item.get("matches") or [])
        ticket.setBanTime(item["bantime"])
        ticket.setBanCount(item.get("count", 1), always=True)
        ticket.setAttempt(item.get("failures", 1))
        db.addBan(jail, ticket)
    db.close()


main()

"""fail2ban-client's output: the text it prints for a command and the server's answer.

:func:`render` takes the command words as fail2ban-client takes them (``["status", "sshd"]``,
``["get", "sshd", "banip", "--with-time"]``) and what gardien's daemon answered (see
:func:`gardien.cli.f2b_requests.execute`), and returns the text fail2ban-client 1.0.2 prints
for it, byte for byte (its trees, ``|- ``/```- `` lists, Python-style lists of ``banned``, the
``--with-time`` lines), and fail2ban 1.1's ``status --all`` and ``stats``. The gardien verbs and
the ``fail2ban-client`` drop-in both print through it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = ["render", "stats_table", "time_text"]

_FOREVER = "9999-12-31 23:59:59"


def time_text(stamp: float | None) -> str:
    """A time as fail2ban prints one: local ``YYYY-MM-DD HH:MM:SS``, the year 9999 for ever."""
    if stamp is None or stamp >= 253402214400:
        return _FOREVER
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(stamp)))


def _value(value: Any) -> str:
    """A value printed as fail2ban-client prints the server's (Python's ``str``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict, tuple)):
        return repr(value)
    return str(value)


def _listing(value: Any) -> str:
    return " ".join(map(_value, value)) if isinstance(value, list) else _value(value)


def _jail_tree(status: dict[str, Any], flavor: str, prefix: str = "") -> list[str]:
    """The Filter/Actions tree of one jail's status."""
    actions: list[tuple[str, Any]] = [
        ("Currently banned", status["currently_banned"]),
        ("Total banned", status["total_banned"]),
    ]
    if flavor != "short":
        actions.append(("Banned IP list", status["banned"]))
    filter_rows: list[tuple[str, Any]] = [
        ("Currently failed", status["currently_failed"]),
        ("Total failed", status["total_failed"]),
    ]
    if status.get("over_budget"):  # gardien's: lines given up on after their step budget
        filter_rows.append(("Lines over budget", status["over_budget"]))
    filter_rows.append(("File list", status["files"]))
    groups = [
        ("Filter", filter_rows),
        ("Actions", actions),
    ]
    lines = []
    for index, (title, rows) in enumerate(groups):
        last = index == len(groups) - 1
        lines.append(f"{prefix}{'`-' if last else '|-'} {title}")
        inner = prefix + ("   " if last else "|  ")
        for row_index, (label, value) in enumerate(rows):
            branch = "`-" if row_index == len(rows) - 1 else "|-"
            lines.append(f"{inner}{branch} {label}:\t{_listing(value)}")
    return lines


def _status(words: Sequence[str], result: Any) -> str:
    flavor = words[2].lower() if len(words) > 2 else "basic"
    if len(words) > 1 and words[1] != "--all":
        return "\n".join([f"Status for the jail: {words[1]}", *_jail_tree(result, flavor)])
    jails = result["jails"]
    statuses = result.get("status") if len(words) > 1 else None
    rows = [("Number of jail", len(jails)), ("Jail list", ", ".join(jails))]
    if result.get("not_started"):  # gardien's: jails whose log cannot be read (status JAIL: why)
        rows.append(("Not started", ", ".join(result["not_started"])))
    lines = ["Status"]
    for index, (label, value) in enumerate(rows):
        last = not statuses and index == len(rows) - 1
        lines.append(f"{'`-' if last else '|-'} {label}:\t{value}")
    if statuses:
        lines.append("`- Status for the jails:")
        for index, (name, status) in enumerate(statuses.items(), 1):
            last = index == len(statuses)
            lines.append(f"   {'`-' if last else '|-'} Jail: {name}")
            lines += _jail_tree(status, flavor, "      " if last else "   |  ")
    return "\n".join(lines)


def stats_table(result: dict[str, Any], *, utf8: bool) -> str:
    """fail2ban 1.1's ``stats`` table: one row per jail, backend, failures and bans (current
    and total); box-drawing characters when the output is UTF-8, ASCII otherwise."""
    if not result:
        return "No jails found."
    bar, line, cross_top, cross, cross_mid, cross_low, thin, thin_line = (
        ("\u2551", "\u2550", "\u255f", "\u256b", "\u256c", "\u2569", "\u2502", "\u2500")
        if utf8
        else ("|", "-", "|", "x", "x", "-", "|", "-")
    )
    rows = [
        [name, item["backend"], *item["failed"], *item["banned"]] for name, item in result.items()
    ]
    widths = [
        max(least, *(len(str(row[i])) for row in rows))
        for i, least in enumerate((8, 8, 3, 3, 3, 3))
    ]
    left = [f"{{:<{widths[0]}}}", f"{{:<{widths[1]}}}"]
    pair = [
        f"{{:>{widths[2]}}} {thin} {{:>{widths[3]}}}",
        f"{{:>{widths[4]}}} {thin} {{:>{widths[5]}}}",
    ]
    joiner = f" {bar} "
    row_format = joiner.join(left + pair)
    spans = [widths[0], widths[1], 3 + widths[2] + widths[3], 3 + widths[4] + widths[5]]
    top_format = joiner.join([*left, f"{{:<{spans[2]}}}", f"{{:<{spans[3]}}}"])
    head_left = joiner.join(left).format("Jail", "Backend")
    under = f"{thin_line}{cross}{thin_line}".join(thin_line * n for n in spans[2:])
    out = [
        " " + top_format.format("", "", "Filter", "Actions"),
        f" {head_left} {cross_top}{thin_line}{under}{thin_line}",
        " " + row_format.format("", "", "cur", "tot", "cur", "tot"),
        line + f"{line}{cross_mid}{line}".join(line * n for n in spans) + line,
    ]
    out += [" " + row_format.format(*map(str, row)) for row in rows]
    out.append(line + f"{line}{cross_low}{line}".join(line * n for n in spans) + line)
    return "\n".join(out)


def _tree(title: str, items: Sequence[str], empty: str) -> str:
    if not items:
        return empty
    return "\n".join([title, *(f"|- {item}" for item in items[:-1]), f"`- {items[-1]}"])


def _banip(words: Sequence[str], rows: list[list[Any]]) -> str:
    separator = words[3] if len(words) > 3 else " "
    if separator != "--with-time":
        return separator.join(row[0] for row in rows)
    lines = []
    for ip, start, end in rows:
        seconds = -1 if end is None else round(end - start)
        lines.append(f"{ip} \t{time_text(start)} + {seconds} = {time_text(end)}")
    return "\n".join(lines)


def _option(words: Sequence[str], result: Any) -> str | None:
    """The text of a ``get``/``set`` fail2ban-client dresses up; ``None`` for a bare value."""
    if words[1] == "syslogsocket":
        return f"Current syslog socket is:\n`- {result}"
    if words[1] == "logtarget":
        return f"Current logging target is:\n`- {result}"
    if words[1] == "loglevel":
        return f"Current logging level is {str(result)!r}"
    if words[1] == "dbfile":
        return (
            "Database currently disabled"
            if result is None
            else f"Current database file is:\n`- {result}"
        )
    if words[1] == "dbpurgeage":
        if result is None:
            return "Database currently disabled"
        return f"Current database purge age is:\n`- {int(result)}seconds"
    if len(words) < 3:
        return None
    option = words[2]
    if option in ("logpath", "addlogpath", "dellogpath"):
        return _tree("Current monitored log file(s):", result, "No file is currently monitored")
    if option == "logencoding":
        return f"Current log encoding is set to:\n{result}"
    if option in ("journalmatch", "addjournalmatch", "deljournalmatch"):
        if not result:
            return "No journal match filter set"
        return "Current match filter:\n" + " + ".join(" ".join(group) for group in result)
    if option == "datepattern":
        pattern, name = result
        return f"Current date pattern set to: {name if pattern is None else f'{pattern} ({name})'}"
    if option in ("ignoreip", "addignoreip", "delignoreip"):
        return _tree(
            "These IP addresses/networks are ignored:", result, "No IP address/network is ignored"
        )
    if option in ("failregex", "ignoreregex"):
        numbered = [f"[{index}]: {pattern}" for index, pattern in enumerate(result)]
        return _tree(
            "The following regular expression are defined:",
            numbered,
            "No regular expression is defined",
        )
    if option == "actions":
        if not result:
            return f"No actions for jail {words[1]}"
        return f"The jail {words[1]} has the following actions:\n" + ", ".join(result)
    if option == "banip" and words[0] == "get":
        return _banip(words, result)
    return None


def render(words: Sequence[str], result: Any, *, utf8: bool = True) -> str:
    """What fail2ban-client prints for command ``words`` when the server answered ``result``."""
    command = words[0]
    if command == "ping":
        return f"Server replied: {result}"
    if command == "version":
        return str(result)
    if command == "start":
        return "Jail started"
    if command == "stop":
        return "Shutdown successful" if len(words) == 1 else "Jail stopped"
    if command == "flushlogs":
        return f"logs: {result}"
    if command == "echo":
        return " ".join(result)
    if command == "status":
        return _status(words, result)
    if command in ("stats", "statistics"):
        return stats_table(result, utf8=utf8)
    if command in ("get", "set") and len(words) > 1:
        text = _option(words, result)
        if text is not None:
            return text
    return _value(result)

"""fail2ban-client's commands sent to gardien's daemon: :func:`execute` turns the command
words as fail2ban-client takes them (``set sshd banip IP...``, ``banned``, ``restart sshd``...)
into control requests and returns the answer in the shape :func:`gardien.cli.f2b_output.render`
prints.

One request carries at most :data:`~gardien.daemon.control.MAX_ARGS` arguments and
:data:`~gardien.daemon.control.MAX_MESSAGE` bytes; a longer list of addresses is sent in several
requests (:func:`~gardien.daemon.control.batches`). So that a bad one bans none, every address
is parsed here before anything is sent, and for a list that needs more than one request every
batch is first checked by the daemon (jail, ignoreip) without changing anything.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from gardien.daemon.control import ControlClient, batches
from gardien.daemon.options import CHECK, parse_addresses
from gardien.errors import ConfigError

__all__ = ["NOT_SUPPORTED", "execute"]

#: fail2ban-client commands gardien does not carry out, and why (one line each)
NOT_SUPPORTED = {
    "add": "gardien's jails come from the configuration: add the jail there and run "
    "`reload JAIL` (or `start JAIL`)",
}


def _batched_sum(
    client: ControlClient,
    head: tuple[str, ...],
    items: Sequence[str],
    check: tuple[str, ...] | None = None,
) -> int:
    """``head items...`` in as many requests as needed; when there are several, each is first
    sent as ``check items...`` (so that a refusal changes nothing). The sum of the answers."""
    requests = list(batches(head, items))
    if check is not None and len(requests) > 1:
        for request in batches(check, items):
            client.call(*request)
    return sum(int(client.call(*request)) for request in requests)


def _banned(client: ControlClient, addresses: Sequence[str]) -> Any:
    if not addresses:
        by_jail = client.call("banned", "--by-jail")
        return [{jail: ips} for jail, ips in by_jail.items()]
    jails: dict[str, list[str]] = {}
    for request in batches(("banned",), addresses):
        for item in client.call(*request):
            jails[item["ip"]] = item["jails"]
    return [jails.get(str(address), []) for address in parse_addresses(addresses)]


def _from_stdin(words: list[str], start: int) -> list[str]:
    """``words`` with a last word ``-`` after ``start`` replaced by the addresses read from
    standard input (whitespace-separated): a list longer than a command line can carry."""
    if len(words) == start + 1 and words[start] == "-":
        return [*words[:start], *sys.stdin.read().split()]
    return words


def execute(client: ControlClient, words: Sequence[str]) -> Any:
    """Carry out fail2ban-client command ``words`` on the daemon ``client`` talks to."""
    if not words:
        raise ConfigError("no command given")
    command, args = words[0], list(words[1:])
    if command == "set" and len(args) >= 2 and args[1].lower() in ("banip", "unbanip"):
        args = _from_stdin(args, 3 if args[2:3] == ["--report-absent"] else 2)
    elif command in ("unban", "banned"):
        args = _from_stdin(args, 0)
    if command in NOT_SUPPORTED:
        raise ConfigError(f"{command}: not supported: {NOT_SUPPORTED[command]}")
    if command == "set" and len(args) >= 2 and args[1].lower() in ("banip", "unbanip"):
        option = args[1].lower()
        absent = option == "unbanip" and args[2:3] == ["--report-absent"]
        flags = ["--report-absent"] if absent else []
        addresses = args[2 + len(flags) :]
        if not addresses:
            raise ConfigError(f"set {args[0]} {option} takes one or more IP addresses")
        parse_addresses(addresses)
        head = ("set", args[0], option)
        return _batched_sum(client, (*head, *flags), addresses, (*head, CHECK, *flags))
    if command == "unban" and args and args != ["--all"]:  # syntax is all that can be wrong
        parse_addresses(args)
        return _batched_sum(client, ("unban",), args)
    if command == "banned":
        parse_addresses(args)
        return _banned(client, args)
    if command == "get" and len(args) > 2 and args[1].lower() == "banned":
        found: list[int] = []
        parse_addresses(args[2:])
        for request in batches(("get", args[0], "banned"), args[2:]):
            answer = client.call(*request)
            found += answer if isinstance(answer, list) else [answer]
        return found[0] if len(found) == 1 else found
    if command == "get" and len(args) > 2 and args[1].lower() == "banip":
        return client.call("get", args[0], "banip")  # the separator is the client's affair
    if command in ("stats", "statistics"):
        return client.call("stats")
    if command == "restart" and args:  # restart JAIL: reload --restart JAIL
        return client.call("reload", "--restart", *args)
    return client.call(command, *args)

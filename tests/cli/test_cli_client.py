"""The client verbs against a real socket served by a stand-in daemon: what the user sees."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gardien.daemon.control import ControlServer, Request
from gardien.errors import ConfigError
from support.cli import gardien

STATUS = {
    "jail": "asterisk-provya",
    "currently_failed": 2,
    "total_failed": 17,
    "files": ["/var/log/asterisk/fail2ban"],
    "currently_banned": 1,
    "total_banned": 4,
    "banned": ["203.0.113.7"],
}


class StandIn:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def handle(self, request: Request) -> Any:
        self.requests.append(request)
        match request.command, request.args:
            case "status", ():
                return {"jails": ["asterisk-provya", "sshd"]}
            case "status", ("asterisk-provya",):
                return STATUS
            case "get", ("asterisk-provya", "bantime"):
                return 21600.0
            case "get", ("asterisk-provya", "ignoreip"):
                return ["127.0.0.1", "1.2.3.4"]
            case "get", ("dbpurgeage",):
                return 86400.0
            case "set", ("asterisk-provya", "banip", *addresses):
                return len(addresses)
            case "ping", ():
                return "pong"
        raise ConfigError(f"unknown jail {request.args[0]!r}" if request.args else "no")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, StandIn]]:
    path = tmp_path / "gardien.sock"
    handler = StandIn()
    loop = asyncio.new_event_loop()
    server = ControlServer(path, handler)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield path, handler
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_status_tree_like_fail2ban_client(daemon: tuple[Path, StandIn]) -> None:
    path, _ = daemon
    out = gardien("-s", str(path), "status").stdout
    assert out.splitlines() == [
        "Status",
        "|- Number of jail:\t2",
        "`- Jail list:\tasterisk-provya, sshd",
    ]
    out = gardien("-s", str(path), "status", "asterisk-provya").stdout
    assert out.splitlines() == [
        "Status for the jail: asterisk-provya",
        "|- Filter",
        "|  |- Currently failed:\t2",
        "|  |- Total failed:\t17",
        "|  `- File list:\t/var/log/asterisk/fail2ban",
        "`- Actions",
        "   |- Currently banned:\t1",
        "   |- Total banned:\t4",
        "   `- Banned IP list:\t203.0.113.7",
    ]
    as_json = json.loads(gardien("-s", str(path), "status", "--json", "asterisk-provya").stdout)
    assert as_json == STATUS


def test_get_prints_the_value_alone(daemon: tuple[Path, StandIn]) -> None:
    path, _ = daemon
    assert gardien("-s", str(path), "get", "asterisk-provya", "bantime").stdout == "21600\n"
    assert gardien("-s", str(path), "get", "dbpurgeage").stdout == (
        "Current database purge age is:\n`- 86400seconds\n"
    )
    assert (
        gardien("-s", str(path), "get", "asterisk-provya", "ignoreip").stdout
        == "These IP addresses/networks are ignored:\n|- 127.0.0.1\n`- 1.2.3.4\n"
    )


def test_set_banip_sends_the_addresses(daemon: tuple[Path, StandIn]) -> None:
    path, handler = daemon
    result = gardien("-s", str(path), "set", "asterisk-provya", "banip", "1.2.3.4", "5.6.7.8")
    assert result.stdout == "2\n"
    assert handler.requests[-1] == Request(
        "set", ("asterisk-provya", "banip", "1.2.3.4", "5.6.7.8")
    )


def test_refusal_is_one_line_and_exit_1(daemon: tuple[Path, StandIn]) -> None:
    path, _ = daemon
    result = gardien("-s", str(path), "status", "nope")
    assert result.returncode == 1
    assert result.stderr == "gardien: error: unknown jail 'nope'\n"


def test_daemon_not_running(tmp_path: Path) -> None:
    result = gardien("-s", str(tmp_path / "none.sock"), "ping")
    assert result.returncode == 1
    assert "gardien is not running" in result.stderr
    assert "Traceback" not in result.stderr


def test_socket_from_gardien_conf(daemon: tuple[Path, StandIn], tmp_path: Path) -> None:
    path, _ = daemon
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "gardien.conf").write_text(f"[Definition]\nsocket = {path}\n")
    assert gardien("-c", str(conf), "ping").stdout == "Server replied: pong\n"


def test_usage_mistakes(daemon: tuple[Path, StandIn]) -> None:
    path, _ = daemon
    result = gardien("-s", str(path), "unban")
    assert result.returncode == 2 and "give IP addresses or --all" in result.stderr
    result = gardien("-s", str(path), "status", "a", "b", "c")
    assert result.returncode == 2 and "status takes [JAIL|--all] [FLAVOR]" in result.stderr

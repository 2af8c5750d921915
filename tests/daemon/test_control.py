"""The control socket, with a real Unix socket and a stand-in handler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gardien.daemon.control import (
    MAX_ARGS,
    MAX_MESSAGE,
    ControlClient,
    ControlServer,
    Request,
    batches,
    decode_request,
)
from gardien.errors import ConfigError, ControlError
from support.daemon import JAIL, Running


class Recorder:
    """Answers like a tiny daemon: knows one jail, refuses others."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def handle(self, request: Request) -> Any:
        self.requests.append(request)
        if request.command == "ping":
            return "pong"
        if request.command == "status" and request.args and request.args[0] != "sshd":
            raise ConfigError(f"unknown jail {request.args[0]!r}")
        return {"command": request.command, "args": list(request.args)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, Recorder]]:
    path = tmp_path / "run" / "gardien.sock"
    handler = Recorder()
    loop = asyncio.new_event_loop()
    control = ControlServer(path, handler)
    loop.run_until_complete(control.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield path, handler
    asyncio.run_coroutine_threadsafe(control.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_round_trip_and_permissions(server: tuple[Path, Recorder]) -> None:
    path, handler = server
    client = ControlClient(path, timeout=5)
    assert client.call("ping") == "pong"
    assert client.call("set", "sshd", "banip", "192.0.2.7") == {
        "command": "set",
        "args": ["sshd", "banip", "192.0.2.7"],
    }
    assert handler.requests[-1] == Request("set", ("sshd", "banip", "192.0.2.7"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_refusals_come_back_as_the_same_error(server: tuple[Path, Recorder]) -> None:
    path, _ = server
    with pytest.raises(ConfigError, match="unknown jail 'nope'"):
        ControlClient(path, timeout=5).call("status", "nope")


def raw(path: Path, payload: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        # the daemon stops reading a request that is too long: read its answer all the same
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"version": 99, "command": "ping"}\n', "protocol version"),
        (b'{"version": 1, "command": "rm -rf /"}\n', "unknown command"),
        (b'{"version": 1, "command": "set", "args": ["only-one"]}\n', "takes 2 to"),
        (b'{"version": 1, "command": "ping", "args": ["x"]}\n', "takes 0 argument"),
        (b'{"version": 1, "command": "get", "args": [1]}\n', "list of strings"),
        (
            b'{"__class__": "os.system", "version": 1, "command": "ping", "args": "x"}\n',
            "list of strings",
        ),
    ],
)
def test_malformed_requests_are_refused_not_obeyed(
    server: tuple[Path, Recorder], payload: bytes, message: str
) -> None:
    path, handler = server
    before = len(handler.requests)
    answer = raw(path, payload)
    assert answer["ok"] is False and answer["kind"] == "ControlError"
    assert message in answer["error"]
    assert len(handler.requests) == before  # the daemon never saw it


def test_oversized_request(server: tuple[Path, Recorder]) -> None:
    path, _ = server
    answer = raw(
        path, b'{"version": 1, "command": "banned", "args": ["' + b"x" * (2 << 20) + b'"]}\n'
    )
    assert answer["ok"] is False
    assert "request longer than 1048576 bytes (1 MiB)" in answer["error"]


def test_too_many_arguments_names_the_limit(server: tuple[Path, Recorder]) -> None:
    path, handler = server
    args = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_ARGS + 1)]
    answer = raw(path, Request("banned", tuple(args)).encode())
    assert answer["ok"] is False
    assert answer["error"].startswith(f"request has {MAX_ARGS + 1} arguments, more than the ")
    assert f"the {MAX_ARGS} one request may carry" in answer["error"]
    assert "list of strings" not in answer["error"]
    assert handler.requests == []


def test_batches_stay_within_both_bounds() -> None:
    addresses = [f"2001:db8::{i:x}" for i in range(100_000)]
    requests = list(batches(("set", "sshd", "banip"), addresses))
    assert len(requests) > 1
    assert [a for request in requests for a in request[3:]] == addresses  # all, in order
    for request in requests:
        assert request[:3] == ("set", "sshd", "banip")
        assert len(request) <= MAX_ARGS
        assert len(Request(request[0], request[1:]).encode()) <= MAX_MESSAGE
    assert list(batches(("banned",), [])) == [("banned",)]


def test_not_running_is_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="gardien is not running"):
        ControlClient(tmp_path / "absent.sock").call("ping")
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens
    with pytest.raises(ControlError, match="not running"):
        ControlClient(stale).call("ping")


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(
    server: tuple[Path, Recorder], tmp_path: Path
) -> None:
    path, _ = server
    second = ControlServer(path, Recorder())
    with pytest.raises(ControlError, match="another gardien daemon is running"):
        asyncio.run(second.start())
    stale = tmp_path / "stale" / "gardien.sock"
    stale.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()

    async def start_and_ping() -> None:
        control = ControlServer(stale, Recorder())
        await control.start()
        try:
            answer = await asyncio.to_thread(ControlClient(stale, timeout=5).call, "ping")
            assert answer == "pong"
        finally:
            await control.stop()
        assert not stale.exists()

    asyncio.run(start_and_ping())


def test_decode_request_accepts_fail2ban_style_commands() -> None:
    line = Request("set", ("asterisk-provya", "unbanip", "1.2.3.4")).encode()
    assert decode_request(line) == Request("set", ("asterisk-provya", "unbanip", "1.2.3.4"))
    assert decode_request(b'{"version": 1, "command": "status"}') == Request("status")


def test_status_waits_until_every_jail_of_the_start_has_started(tmp_path: Path) -> None:
    """The socket answers ping while the jails start; status answered then would list only
    some of them. It waits: asked at once, it lists them all."""
    running = Running(tmp_path)
    running.etc.mkdir()
    running.log.parent.mkdir()
    (running.etc / "jail.d").mkdir()
    (running.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
    names = [f"jail{i:02d}" for i in range(60)]
    for name in names:
        log = tmp_path / "log" / f"{name}.log"
        log.write_text("")
        (running.etc / "jail.d" / f"{name}.conf").write_text(
            JAIL.replace("asterisk-provya", name).format(log=log)
        )
    running.start()
    try:
        status = running.cli("status")
        assert f"Number of jail:\t{len(names)}\n" in status.stdout
    finally:
        running.stop()

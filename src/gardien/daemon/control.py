"""The control socket: a Unix socket, root only, speaking JSON lines (one request, one response).

A request is one line of JSON::

    {"version": 1, "command": "set", "args": ["asterisk-provya", "banip", "192.0.2.7"]}

and the answer one line::

    {"ok": true, "result": ...}                      # result: any JSON value
    {"ok": false, "error": "unknown jail 'x'", "kind": "ConfigError"}

The command names and arguments are fail2ban-client's (``status``, ``set JAIL banip IP``,
``get JAIL bantime``...); the server checks their shape and hands them to a
:class:`ControlHandler` (the daemon's :class:`~gardien.daemon.commands.Commands`). Nothing is
ever unpickled or evaluated: a request is text that becomes a list of strings. The socket file
is created with mode 0600 in a directory of mode 0700, and a connecting process must be root or
the daemon's own user (checked with ``SO_PEERCRED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gardien.errors import ControlError, GardienError

__all__ = [
    "COMMANDS",
    "PROTOCOL_VERSION",
    "ControlClient",
    "ControlHandler",
    "ControlServer",
    "Request",
    "batches",
    "decode_request",
]

PROTOCOL_VERSION = 1
#: the bounds of one request (bytes of its line, number of its arguments); the CLI splits a
#: longer list of addresses into several requests (:func:`batches`), so any number works
MAX_MESSAGE = 1 << 20
MAX_ARGS = 10_000
#: command -> (least, most) number of arguments (None: no upper bound)
COMMANDS: dict[str, tuple[int, int | None]] = {
    "ping": (0, 0),
    "version": (0, 0),
    "echo": (0, None),
    "status": (0, 2),
    "stats": (0, 0),
    "get": (1, None),
    "set": (2, None),
    "banned": (0, None),
    "unban": (1, None),
    "reload": (0, 4),
    "stop": (0, 1),
    "start": (1, 1),
    "flushlogs": (0, 0),
}


@dataclass(frozen=True)
class Request:
    """A checked request: a known command and its arguments (strings)."""

    command: str
    args: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return (
            json.dumps(
                {"version": PROTOCOL_VERSION, "command": self.command, "args": list(self.args)}
            )
            + "\n"
        ).encode("utf-8")


def decode_request(line: bytes) -> Request:
    """Check one request line; raise :class:`ControlError` saying what is wrong."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"request is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlError("request must be a JSON object")
    if message.get("version") != PROTOCOL_VERSION:
        raise ControlError(
            f"protocol version {message.get('version')!r} is not {PROTOCOL_VERSION}: "
            "client and daemon are different gardien versions"
        )
    command = message.get("command")
    args = message.get("args", [])
    if not isinstance(command, str) or command not in COMMANDS:
        raise ControlError(
            f"unknown command {command!r}: expected one of " + ", ".join(sorted(COMMANDS))
        )
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ControlError("args must be a list of strings")
    if len(args) > MAX_ARGS:
        raise ControlError(
            f"request has {len(args)} arguments, more than the {MAX_ARGS} one request may "
            "carry (gardien's client splits longer lists of addresses into several requests)"
        )
    least, most = COMMANDS[command]
    if len(args) < least or (most is not None and len(args) > most):
        expected = f"{least}" if least == most else f"{least} to {most or 'any number of'}"
        raise ControlError(f"{command!r} takes {expected} argument(s), got {len(args)}")
    return Request(command, tuple(args))


def batches(
    head: Sequence[str], items: Sequence[str], *, budget: int = MAX_MESSAGE // 2
) -> Iterator[tuple[str, ...]]:
    """``head`` followed by slices of ``items``, each a request within the bounds of one
    (:data:`MAX_ARGS` arguments, ``budget`` bytes of JSON, half of :data:`MAX_MESSAGE` by
    default); one request ``head`` alone when ``items`` is empty."""
    room_args = MAX_ARGS - len(head)
    room_bytes = budget - sum(len(json.dumps(word)) + 2 for word in head)
    if room_args < 1 or room_bytes < 1:
        raise ControlError("request too long")
    chunk: list[str] = []
    size = 0
    for item in items:
        cost = len(json.dumps(item)) + 2  # quotes, escapes, ", "
        if chunk and (len(chunk) >= room_args or size + cost > room_bytes):
            yield (*head, *chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += cost
    if chunk or not items:
        yield (*head, *chunk)


class ControlHandler(Protocol):
    """What answers requests: the daemon's commands. Raise a :class:`GardienError` to refuse one."""

    async def handle(self, request: Request) -> Any:
        """The JSON-serialisable result of ``request``."""
        ...


def _peer(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end (``SO_PEERCRED``; for a client, the
    daemon's: the process that listens). The pid is 0 when it is in another pid namespace."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


def _peer_uid(sock: socket.socket) -> int | None:
    peer = _peer(sock)
    return None if peer is None else peer[1]


class ControlServer:
    """Serves :class:`ControlHandler` on a Unix socket (an asyncio server)."""

    def __init__(self, path: str | os.PathLike[str], handler: ControlHandler) -> None:
        self.path = Path(path)
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Create the socket (mode 0600 in a 0700 directory). A stale socket is replaced; one a
        running daemon answers on is not."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlError(
                f"cannot create the control socket {self.path}: its directory cannot be made "
                f"({exc.strerror})"
            ) from None
        if self.path.exists() or self.path.is_symlink():
            if await _answers(self.path):
                raise ControlError(f"another gardien daemon is running on {self.path}")
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_MESSAGE
            )
        except OSError as exc:
            raise ControlError(
                f"cannot create the control socket {self.path}: {exc.strerror}"
            ) from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        """Close the socket and remove its file (only if this server made it: the socket of
        another daemon, found running by :meth:`start`, stays)."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = _peer_uid(sock) if sock is not None else None
            if uid is not None and uid not in (0, os.getuid()):
                await _send(
                    writer,
                    {"ok": False, "kind": "ControlError", "error": "permission denied: root only"},
                )
                return
            try:
                line = await reader.readline()
            except (asyncio.LimitOverrunError, ValueError):
                await _send(
                    writer,
                    {
                        "ok": False,
                        "kind": "ControlError",
                        "error": f"request longer than {MAX_MESSAGE} bytes ({MAX_MESSAGE >> 20}"
                        " MiB), the most one request may carry (gardien's client splits longer"
                        " lists of addresses into several requests)",
                    },
                )
                return
            if not line:
                return
            try:
                request = decode_request(line)
                result = await self._handler.handle(request)
                answer: dict[str, Any] = {"ok": True, "result": result}
            except GardienError as error:
                answer = {"ok": False, "kind": type(error).__name__, "error": str(error)}
            await _send(writer, answer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _send(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
    writer.write((json.dumps(answer) + "\n").encode("utf-8"))
    await writer.drain()


async def _answers(path: Path) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(Request("ping").encode())
        await writer.drain()
        return bool(await asyncio.wait_for(reader.readline(), 2.0))
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()


class ControlClient:
    """Sends one request to the daemon and returns its result (blocking; for the CLI)."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        #: the pid of the daemon that answered the last call (0 when it cannot be seen)
        self.daemon_pid = 0

    def call(self, command: str, *args: str) -> Any:
        """The daemon's answer to ``command args...``; :class:`ControlError` (or the error kind
        the daemon gave) when it refused or cannot be reached."""
        request = Request(command, tuple(args)).encode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except FileNotFoundError:
                raise ControlError(
                    f"gardien is not running (no control socket at {self.path})"
                ) from None
            except ConnectionRefusedError:
                raise ControlError(
                    f"gardien is not running (nobody answers on {self.path})"
                ) from None
            except PermissionError:
                raise ControlError(f"permission denied on {self.path}: run as root") from None
            peer = _peer(sock)
            self.daemon_pid = peer[0] if peer is not None else 0
            sock.sendall(request)
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > 64 * MAX_MESSAGE:
                    raise ControlError("answer too long")
        except TimeoutError:
            raise ControlError(f"gardien did not answer within {self.timeout:g} s") from None
        finally:
            sock.close()
        if not data:
            raise ControlError("gardien closed the connection without answering")
        try:
            answer = json.loads(data)
        except json.JSONDecodeError:
            raise ControlError("gardien answered something that is not JSON") from None
        if not isinstance(answer, dict) or "ok" not in answer:
            raise ControlError("gardien answered something unexpected")
        if not answer["ok"]:
            raise _error_of(str(answer.get("kind", "")), str(answer.get("error", "refused")))
        return answer.get("result")

    def wait_for_exit(self, timeout: float) -> None:
        """After ``stop``: return once the daemon that answered has exited (its firewall
        cleaned up), checking every 50 ms; :class:`ControlError` after ``timeout`` seconds. A
        daemon whose pid cannot be seen (another pid namespace) is waited for until its socket
        is gone."""
        deadline = time.monotonic() + timeout
        pid = self.daemon_pid
        while _running(pid) if pid else self.path.exists():
            if time.monotonic() >= deadline:
                raise ControlError(
                    f"gardien (pid {pid or '?'}) is still running {timeout:g} s after it was "
                    "asked to stop"
                )
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return state not in (["Z"], ["X"])


def _error_of(kind: str, message: str) -> GardienError:
    """The daemon's refusal as the same kind of error on this side."""
    from gardien import errors

    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, GardienError):
        return cls(message)
    return ControlError(message)

"""Real servers for the alert tests: an SMTP relay (aiosmtpd, with STARTTLS and AUTH) and an
HTTP endpoint (http.server), each running in a thread on a free port of 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from support.ports import free_port

__all__ = ["HttpEndpoint", "Received", "SmtpRelay", "free_port", "silent_port"]


def silent_port() -> tuple[socket.socket, int]:
    """A listening socket that never accepts: connections succeed, no byte ever comes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, int(listener.getsockname()[1])


@dataclass
class Received:
    """A message the relay accepted."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage
    over_tls: bool
    user: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


@dataclass
class _Handler:
    users: dict[str, str]
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user, password = data.login.decode(), data.password.decode()
        self.logins.append(f"{mechanism}:{user}")
        ok = self.users.get(user) == password
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    message,
                    session.ssl is not None,
                    session.auth_data if isinstance(session.auth_data, str) else None,
                )
            )
            self.arrived.notify_all()
        return "250 OK"


class SmtpRelay:
    """aiosmtpd on 127.0.0.1: STARTTLS with ``tls`` (a server context) when given, AUTH
    required (and only after STARTTLS) when ``users`` are given."""

    def __init__(self, *, tls: ssl.SSLContext | None, users: dict[str, str] | None) -> None:
        self.port = free_port()
        self.handler = _Handler(users or {})
        options: dict[str, Any] = {"tls_context": tls, "auth_require_tls": True}
        if users:
            options.update(auth_required=True, authenticator=self.handler.authenticate)
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=5, **options
        )

    def __enter__(self) -> SmtpRelay:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def logins(self) -> list[str]:
        return self.handler.logins

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The messages once there are ``count`` of them (fails after ``timeout``)."""
        with self.handler.arrived:
            arrived = self.handler.arrived.wait_for(
                lambda: len(self.handler.received) >= count, timeout
            )
        assert arrived, f"{len(self.handler.received)} message(s) arrived, expected {count}"
        return list(self.handler.received)


@dataclass
class Request:
    """A request the endpoint received."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float
    status: int


class HttpEndpoint:
    """An HTTP server answering POSTs with the statuses of ``answers`` in turn (then 200),
    recording every request. An answer may be ``(status, {header: value})``."""

    def __init__(self, answers: list[int | tuple[int, dict[str, str]]] | None = None) -> None:
        self.answers = list(answers or [])
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with endpoint.lock:
                    answer = endpoint.answers.pop(0) if endpoint.answers else 200
                    status, headers = answer if isinstance(answer, tuple) else (answer, {})
                    endpoint.requests.append(
                        Request(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                            status,
                        )
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                reply = b"bad request: no such hook\n" if status == 400 else b"ok\n"
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> HttpEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.01)
        raise AssertionError(f"endpoint: condition not met; requests: {self.requests}")

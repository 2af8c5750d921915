"""A fake gardien hub over real HTTP (:class:`FakeHub`: the ``hub`` fixture) and an agent's
token file (``token_file``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TOKEN = "gdn_" + "t" * 43


class FakeHub:
    """The hub's two agent endpoints, in a thread: records what it receives, answers as told.

    ``answer`` (status, headers) replaces the normal answer while set; ``hang`` makes every
    request wait until released; ``refuse_ip``: a batch holding it gets 422.
    """

    def __init__(self, port: int = 0) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.requests: list[tuple[str, str, dict[str, list[str]], str]] = []
        self.times: list[float] = []  # when each request arrived (monotonic)
        self.answer: tuple[int, dict[str, str]] | None = None
        self.answers: list[tuple[int, dict[str, str]]] = []  # one each, before `answer`
        self.refuse_ip: str | None = None
        self.hang = threading.Event()  # set: requests wait for `released`
        self.released = threading.Event()
        self.listed: set[str] = set()
        self.changes: list[tuple[int, str, str]] = []  # (seq, op, ip)
        self.first = 1  # the oldest change kept: a cursor before it gets a reset
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: object, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _common(self) -> tuple[str, dict[str, list[str]]] | None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                with hub.lock:
                    hub.times.append(time.monotonic())
                    hub.requests.append(
                        (self.command, url.path, query, self.headers.get("Authorization", ""))
                    )
                if hub.hang.is_set():
                    hub.released.wait(10)
                with hub.lock:
                    special = hub.answers.pop(0) if hub.answers else hub.answer
                if special is not None:
                    self._send(special[0], {"detail": "told so"}, special[1])
                    return None
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"detail": "bad token"}, {})
                    return None
                return url.path, query

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                found = self._common()
                if found is None:
                    return
                reports = body["reports"]
                if hub.refuse_ip is not None and any(r["ip"] == hub.refuse_ip for r in reports):
                    self._send(422, {"detail": [{"msg": "time too old"}]}, {})
                    return
                with hub.lock:
                    hub.posts.append(reports)
                self._send(202, {"accepted": len(reports), "listed": []}, {})

            def do_GET(self) -> None:
                found = self._common()
                if found is None:
                    return
                _path, query = found
                with hub.lock:
                    cursor = hub.changes[-1][0] if hub.changes else 0
                    if "since" not in query:
                        body: dict[str, Any] = {"cursor": cursor, "addresses": sorted(hub.listed)}
                    else:
                        since = int(query["since"][0])
                        later = [c for c in hub.changes if c[0] > since]
                        body = {
                            "cursor": cursor,
                            "add": [ip for _, op, ip in later if op == "add"],
                            "remove": [ip for _, op, ip in later if op == "remove"],
                            "reset": False,
                        }
                        if since < hub.first - 1:
                            body.update(add=sorted(hub.listed), remove=[], reset=True)
                self._send(200, body, {"X-Gardien-Cursor": str(cursor)})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def list(self, *ips: str) -> None:
        with self.lock:
            for ip in ips:
                self.listed.add(ip)
                self.changes.append((len(self.changes) + 1, "add", ip))

    def unlist(self, *ips: str) -> None:
        with self.lock:
            for ip in ips:
                self.listed.discard(ip)
                self.changes.append((len(self.changes) + 1, "remove", ip))

    def prune(self, *, unlist: tuple[str, ...] = (), list: tuple[str, ...] = ()) -> None:
        """Change the list and forget every change but the newest, at once (as the real
        hub's journal retention does): a cursor from before gets a reset."""
        with self.lock:
            for ip in unlist:
                self.listed.discard(ip)
                self.changes.append((len(self.changes) + 1, "remove", ip))
            for ip in list:
                self.listed.add(ip)
                self.changes.append((len(self.changes) + 1, "add", ip))
            self.first = self.changes[-1][0]

    def reported(self) -> list[str]:
        with self.lock:
            return [r["ip"] for batch in self.posts for r in batch]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "hub.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


FEED_JAIL = """\
[hub-blocklist]
enabled = true
backend = hub[url={url}, token_file={token}, every=0.1]
action  = log
bantime = 1d
ignoreip = 127.0.0.1 {ignored}
"""

"""The real-service harness itself (tests/support/services.py): Debian's rsyslogd receives what a
program in the server namespace sends to /dev/log, in Debian 12's format, and gardien's bundled
filter reads it; a service started there answers the clients."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.netns import Lab
from support.services import Service, Syslog, assert_exactly, failures_found, service_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


@pytest.mark.parametrize("traditional", [False, True])
def test_syslog_lines_reach_the_private_rsyslogd(
    lab: Lab, tmp_path: Path, traditional: bool
) -> None:
    syslog = Syslog.start(tmp_path, traditional=traditional)
    try:
        message = "Failed password for invalid user admin from 203.0.113.9 port 4242 ssh2"
        lab.run(lab.server, *syslog.wrap(["logger", "-p", "auth.info", "-t", "sshd[777]", message]))
        syslog.settle()
        text = syslog.text()
        assert message in text
        first = text.splitlines()[0]
        # Debian 12's default template: RFC 3339 with microseconds; else "Mon DD HH:MM:SS"
        assert (first[4] == "-" and first[19] == ".") is not traditional, first
        found = failures_found(syslog.path, "sshd")
        assert_exactly(found, {"203.0.113.9": 1}, log=text)
    finally:
        syslog.stop()


def test_a_service_answers_the_clients(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hello")
    service = Service.start(
        lab,
        [sys.executable, "-m", "http.server", "8080", "--directory", str(tmp_path)],
        tmp_path,
        name="http",
        port=8080,
    )
    try:
        friend = lab.clients[1]
        result = lab.run(
            friend.namespace, "curl", "-s", f"http://{friend.server_ipv4}:8080/index.html"
        )
        assert result.stdout == "hello"
    finally:
        service.stop()
    assert service.process.poll() is not None

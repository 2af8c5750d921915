"""The agent side of the hub: the ``hub`` action (reports through an on-disk queue) and the
``hub`` feed (a jail banning the hub's list), against a real local HTTP server that speaks the
two endpoints of the hub's API (docs/hub.md), and, for the feed and the queue's durability, a
real daemon process."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gardien.actions.hub import HubAction, hub_action
from gardien.config.values import parse_spec
from gardien.errors import ConfigError, HubRefused, HubUnavailable
from gardien.hub.client import HubClient
from gardien.hub.model import BlocklistDelta
from gardien.model import Ban
from support.daemon import Running, failure_line
from support.hub import FEED_JAIL, TOKEN, FakeHub
from support.hubserver import hub_server

# globally routable addresses: a hub never lists the others, and the agent does not report them
A, B, C, D = "45.33.32.156", "81.2.69.142", "2a03:2880:f003:c07:face:b00c:0:2", "93.184.216.34"


def ban(ip: str, jail: str = "sshd", failures: int = 5) -> Ban:
    return Ban(jail, ipaddress.ip_address(ip), time.time() - 1, time.time() + 600, 1, failures)


def queued(path: Path) -> list[str]:
    """The addresses in the agent's queue (none while the daemon is still creating it: the
    file exists a moment before its table)."""
    with sqlite3.connect(path) as db:
        made = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'reports'").fetchone()
        rows = db.execute("SELECT ip FROM reports ORDER BY id").fetchall() if made else []
    db.close()
    return [row[0] for row in rows]


def action(hub: FakeHub, queue: Path, **options: Any) -> HubAction:
    settings: dict[str, Any] = {"every": 0.05, "retry_delay": 0.05, "stop_timeout": 1.0}
    settings.update(options)
    return HubAction("sshd", hub.url, TOKEN, queue=str(queue), **settings)


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


# ---- the action -------------------------------------------------------------------------


def test_ban_is_on_disk_when_it_returns_and_never_waits_for_a_hanging_hub(
    hub: FakeHub, tmp_path: Path
) -> None:
    queue = tmp_path / "spool" / "queue.sqlite3"
    hub.hang.set()

    async def scenario() -> None:
        reporter = action(hub, queue, stop_timeout=0.3)
        await reporter.start()
        await until(lambda: True)
        started = time.perf_counter()
        await reporter.ban([ban(A), ban(B), ban(C)])
        elapsed = time.perf_counter() - started
        assert elapsed < 0.05, elapsed
        assert queued(queue) == [A, B, C]  # durable: another connection sees them
        await until(lambda: hub.requests)  # the sender is stuck on the hanging hub
        await reporter.stop()

    asyncio.run(scenario())
    assert queued(queue) == [A, B, C]
    assert (queue.stat().st_mode & 0o777) == 0o600
    assert (queue.parent.stat().st_mode & 0o777) == 0o700
    assert hub.posts == []


def test_reports_go_in_batches_in_order_and_leave_the_queue_after_2xx(
    hub: FakeHub, tmp_path: Path
) -> None:
    queue = tmp_path / "queue.sqlite3"

    async def scenario() -> None:
        reporter = action(hub, queue, batch=2)
        await reporter.start()
        await reporter.ban([ban(A, failures=7), ban(B), ban(C), ban(D)])
        await reporter.ban([ban("8.8.4.4")])
        await until(lambda: len(hub.reported()) == 5)
        await reporter.stop()

    asyncio.run(scenario())
    assert [len(batch) for batch in hub.posts] == [2, 2, 1]
    assert hub.reported() == [A, B, C, D, "8.8.4.4"]
    first = hub.posts[0][0]
    assert first["jail"] == "sshd" and first["category"] == "ssh" and first["failures"] == 7
    assert abs(first["time"] - time.time()) < 10
    assert all(auth == f"Bearer {TOKEN}" for *_, auth in hub.requests)
    assert queued(queue) == []


def test_what_a_stopped_agent_could_not_send_is_sent_once_by_the_next(tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite3"
    down = FakeHub()
    url = down.url
    down.close()  # nothing listens there: connection refused

    async def first_run() -> None:
        reporter = HubAction("sshd", url, TOKEN, queue=str(queue), every=0.05, retry_delay=0.05)
        await reporter.start()
        await reporter.ban([ban(A), ban(B)])
        await asyncio.sleep(0.2)  # a few failed tries
        await reporter.stop()

    asyncio.run(first_run())
    assert queued(queue) == [A, B]
    back = FakeHub(port=int(url.rsplit(":", 1)[1]))
    try:

        async def second_run() -> None:
            reporter = action(back, queue)
            await reporter.start()
            await until(lambda: len(back.reported()) == 2)
            await asyncio.sleep(0.2)  # nothing sent twice meanwhile
            await reporter.stop()

        asyncio.run(second_run())
        assert back.reported() == [A, B]
        assert queued(queue) == []
    finally:
        back.close()


def test_503_and_429_are_retried_with_growing_waits(hub: FakeHub, tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite3"
    hub.answers = [(503, {}), (503, {}), (503, {}), (429, {"Retry-After": "0"})]

    async def scenario() -> None:
        reporter = action(hub, queue, retry_delay=0.05)
        await reporter.start()
        await reporter.ban([ban(A)])
        await until(lambda: hub.reported() == [A])
        await reporter.stop()

    asyncio.run(scenario())
    assert len(hub.requests) == 5 and hub.reported() == [A]
    gaps = [later - earlier for earlier, later in zip(hub.times, hub.times[1:], strict=False)]
    # 0.05 s doubling, less at most a fifth of jitter; Retry-After: 0 is taken at its word
    assert gaps[0] >= 0.04 and gaps[1] >= 0.08 and gaps[2] >= 0.16


def test_backoff_doubles() -> None:
    from gardien.retries import backoff_after

    waits = [backoff_after(n, 1.0, cap=300.0) for n in range(1, 12)]
    assert 0.8 <= waits[0] <= 1.0 and 1.6 <= waits[1] <= 2.0 and 3.2 <= waits[2] <= 4.0
    assert all(240.0 <= w <= 300.0 for w in waits[9:])  # capped at 5 minutes


def test_refused_reports_are_isolated_and_kept_the_rest_is_sent(
    hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = tmp_path / "queue.sqlite3"
    hub.refuse_ip = C

    async def scenario() -> HubAction:
        reporter = action(hub, queue)
        await reporter.start()
        await reporter.ban([ban(A), ban(B), ban(C), ban(D)])
        await until(lambda: len(hub.reported()) == 3)
        assert reporter.queue is not None
        rejected = reporter.queue.rejected()
        await reporter.stop()
        assert [(r.ip, status) for r, status, _ in rejected] == [(C, 422)]
        assert "time too old" in rejected[0][2]
        return reporter

    with caplog.at_level(logging.ERROR, "gardien.actions.hub"):
        reporter = asyncio.run(scenario())
    assert sorted(hub.reported()) == sorted([A, B, D])
    assert queued(queue) == [] and reporter.rejected == 1
    assert any("refused the report of " + C in r.getMessage() for r in caplog.records)


def test_a_wrong_token_keeps_every_report_queued(
    hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = tmp_path / "queue.sqlite3"

    async def scenario() -> None:
        reporter = HubAction("sshd", hub.url, "gdn_wrong", queue=str(queue), every=0.05)
        await reporter.start()
        await reporter.ban([ban(A), ban(B)])
        await until(lambda: any(r[0] == "POST" for r in hub.requests))
        await asyncio.sleep(0.1)
        await reporter.stop()

    with caplog.at_level(logging.ERROR, "gardien.actions.hub"):
        asyncio.run(scenario())
    assert queued(queue) == [A, B]  # not rejected: a token fixed later sends them
    assert any("HTTP 401" in r.getMessage() for r in caplog.records)


def test_restored_private_and_network_bans_are_not_reported(hub: FakeHub, tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite3"

    async def scenario() -> None:
        reporter = action(hub, queue)
        await reporter.start()
        await reporter.restore([ban(A)])
        net = Ban("sshd", ipaddress.ip_network("45.33.0.0/16"), time.time(), None)
        await reporter.ban([ban("192.168.1.9"), ban("127.0.0.1"), ban("2001:db8::1"), net])
        await reporter.ban([ban(B)])
        await until(lambda: hub.reported() == [B])
        await reporter.stop()

    asyncio.run(scenario())
    assert hub.reported() == [B]


def test_two_hub_actions_cannot_share_a_queue_in_one_jail(hub: FakeHub, tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite3"

    async def scenario() -> None:
        first, second = action(hub, queue), action(hub, queue)
        await first.start()
        with pytest.raises(ConfigError, match="already used"):
            await second.start()
        await first.stop()
        await second.start()  # free again
        await second.stop()

    asyncio.run(scenario())


def test_action_parameters_are_checked(token_file: Path, tmp_path: Path) -> None:
    def build(params: str, jail: str = "sshd") -> HubAction:
        return hub_action(parse_spec(f"hub[{params}]"), jail)

    good = build(f"url=https://hub.example.org, token_file={token_file}, queue={tmp_path}/q")
    assert good.category == "ssh" and good.batch == 500 and good.every == 2.0
    assert build(f"url=https://h.example, token_file={token_file}", "asterisk").category == "sip"
    bad = {
        f"url=ftp://hub.example.org, token_file={token_file}": "url: 'ftp://hub.example.org'",
        f"url=https://u:p@hub.example.org, token_file={token_file}": "no user, password",
        "url=https://hub.example.org": "token_file: the agent's token is needed",
        f"url=https://h.example, token_file={token_file}, batch=0": "batch: '0' is not",
        f"url=https://h.example, token_file={token_file}, batch=1001": "batch",
        f"url=https://h.example, token_file={token_file}, category=SSH!": "category",
        f"url=https://h.example, token_file={token_file}, every=soon": "every",
        f"url=https://h.example, token_file={token_file}, queue=rel/q": "absolute",
        f"url=https://h.example, token_file={token_file}, colour=red": "unknown parameter",
    }
    for params, message in bad.items():
        with pytest.raises(ConfigError, match="action 'hub'") as caught:
            build(params)
        assert message in str(caught.value), (params, str(caught.value))
    token_file.chmod(0o644)
    with pytest.raises(ConfigError, match="can be read or written by anyone"):
        build(f"url=https://hub.example.org, token_file={token_file}")


# ---- the client -------------------------------------------------------------------------


def test_client_tells_temporary_from_permanent_failures(hub: FakeHub) -> None:
    async def scenario() -> None:
        client = HubClient(hub.url, TOKEN, timeout=2)
        try:
            hub.list(A, D)
            assert await client.blocklist_delta(None) == BlocklistDelta((A, D), (), 2, True)
            hub.unlist(A)
            hub.list(B)
            assert await client.blocklist_delta(2) == BlocklistDelta((B,), (A,), 4)
            hub.answer = (429, {"Retry-After": "7"})
            with pytest.raises(HubUnavailable, match="HTTP 429") as busy:
                await client.blocklist_delta(4)
            assert busy.value.retry_after == 7
            hub.answer = (403, {})
            with pytest.raises(HubRefused, match="HTTP 403 told so") as refused:
                await client.send_reports([])
            assert refused.value.status == 403
            hub.answer = (302, {"Location": "https://elsewhere.example/"})
            with pytest.raises(HubRefused, match="redirects to https://elsewhere"):
                await client.blocklist_delta(None)
        finally:
            await client.aclose()
        gone = HubClient("http://127.0.0.1:9", TOKEN, timeout=2)
        with pytest.raises(HubUnavailable, match="cannot be reached"):
            await gone.blocklist_delta(None)
        await gone.aclose()

    asyncio.run(scenario())


def test_client_checks_what_the_hub_sends(hub: FakeHub) -> None:
    async def scenario() -> None:
        client = HubClient(hub.url, TOKEN)
        try:
            hub.list(A, "not-an-ip", "10.0.0.0/8", "::ffff:81.2.69.142")
            delta = await client.blocklist_delta(None)
            assert delta.added == (A, B)  # sorted by the hub; the mapped address made canonical
            assert delta.removed == () and delta.cursor == 4
            hub.prune(unlist=(A,))  # a cursor before the pruned changes: the whole list
            assert await client.blocklist_delta(1) == BlocklistDelta((B,), (), 5, reset=True)
        finally:
            await client.aclose()

    asyncio.run(scenario())


# ---- with the real daemon -----------------------------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path)
    (running.etc / "jail.d").mkdir(parents=True)
    running.log.parent.mkdir(parents=True)
    running.log.write_text("")
    (running.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
    yield running
    if running.process is not None:
        running.process.kill()
        running.process.communicate(timeout=5)


def banned(running: Running, jail: str) -> set[str]:
    out = running.cli("status", "--json", jail)
    return set(json.loads(out.stdout)["banned"]) if out.returncode == 0 else set()


def test_a_feed_jail_bans_the_hubs_list_and_resumes_from_its_cursor(
    hub: FakeHub, daemon: Running, token_file: Path
) -> None:
    (daemon.etc / "jail.d" / "hub.conf").write_text(
        FEED_JAIL.format(url=hub.url, token=token_file, ignored=D)
    )
    check = daemon.cli("config", "check")
    assert check.returncode == 0, check.stderr
    hub.list(A, B, D)
    daemon.start()
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {A, B}, "the hub's list banned")
    hub.unlist(A)
    hub.list(C)
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {B, C}, "the delta applied")
    assert daemon.cli("get", "hub-blocklist", "bantime").stdout == "86400\n"
    first = daemon.stop()
    assert f"[hub-blocklist] Unban {A} (hub)" in first and f"Ban {D}" not in first
    # while the daemon is stopped, the hub lists one more and unlists one
    seen = len(hub.requests)
    hub.list("8.8.4.4")
    hub.unlist(B)
    daemon.start()
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {C, "8.8.4.4"}, "the resumption")
    after_restart = hub.requests[seen]
    assert after_restart[0] == "GET" and after_restart[2]["since"] == ["5"]  # not a whole list
    # the hub goes down: tried again and again, the bans in force stay
    hub.answer = (503, {})
    count = len(hub.requests)
    daemon.wait_for(lambda: len(hub.requests) > count + 1, "tries against the hub that is down")
    assert banned(daemon, "hub-blocklist") == {C, "8.8.4.4"}
    hub.answer = None
    hub.list(A)
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {A, C, "8.8.4.4"}, "hub back", 15)
    output = daemon.stop()
    warnings = [line for line in output.splitlines() if "WARNING" in line and "HTTP 503" in line]
    assert len(warnings) == 1  # logged once (then at debug level), not at every try
    assert "is back" in output


def test_a_feed_replaces_its_set_when_the_hub_answers_with_a_reset(
    hub: FakeHub, daemon: Running, token_file: Path
) -> None:
    (daemon.etc / "jail.d" / "hub.conf").write_text(
        FEED_JAIL.format(url=hub.url, token=token_file, ignored=D)
    )
    hub.list(A, B)
    daemon.start()
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {A, B}, "the hub's list banned")
    seen = len(hub.requests)
    # the changes since the daemon's cursor (2) are pruned: A's removal and C's addition are
    # only in the whole list the hub answers with
    hub.prune(unlist=(A,), list=(C, "8.8.4.4"))
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {B, C, "8.8.4.4"}, "the reset")
    assert hub.requests[seen][2]["since"] == ["2"]  # a delta was asked for, a reset came
    hub.list(A)
    daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {A, B, C, "8.8.4.4"}, "a delta")
    sinces = [r[2].get("since") for r in hub.requests[seen:]]
    assert None not in sinces  # deltas from the reset's cursor on, never a whole list
    output = daemon.stop()
    assert f"[hub-blocklist] Unban {A} (hub)" in output
    assert "no longer keeps the changes since cursor 2" in output


def test_config_check_refuses_a_feed_that_reports_back_or_a_token_others_can_read(
    daemon: Running, token_file: Path
) -> None:
    conf = daemon.etc / "jail.d" / "hub.conf"
    conf.write_text(
        FEED_JAIL.format(url="https://hub.example.org", token=token_file, ignored=D).replace(
            "action  = log", f"action  = hub[url=https://hub.example.org, token_file={token_file}]"
        )
    )
    refused = daemon.cli("config", "check")
    assert refused.returncode == 1 and f"{conf}:4: [hub-blocklist] action:" in refused.stderr
    assert "cannot report to a hub" in refused.stderr and "Traceback" not in refused.stderr
    conf.write_text(FEED_JAIL.format(url="https://hub.example.org", token=token_file, ignored=D))
    token_file.chmod(0o644)
    readable = daemon.cli("config", "check")
    assert readable.returncode == 1 and "can be read or written by anyone" in readable.stderr
    assert "[hub-blocklist] backend:" in readable.stderr
    conf.write_text(conf.read_text().replace("every=0.1", "every=never"))
    wrong = daemon.cli("config", "check")
    assert f"{conf}:3: [hub-blocklist] backend: backend 'hub': every:" in wrong.stderr


def test_bans_made_while_the_hub_is_down_reach_it_after_a_kill_9_and_a_restart(
    hub: FakeHub, daemon: Running, token_file: Path, tmp_path: Path
) -> None:
    queue = tmp_path / "spool" / "hub-queue.sqlite3"
    (daemon.etc / "jail.d" / "provya.conf").write_text(
        f"""\
[asterisk-provya]
enabled  = true
filter   = asterisk
logpath  = {daemon.log}
maxretry = 3
action   = hub[url={hub.url}, token_file={token_file}, queue={queue}, every=0.1]
"""
    )
    hub.answer = (503, {})
    daemon.start()
    with daemon.log.open("a") as log:
        log.write(failure_line(A) * 3)
    daemon.wait_for(lambda: queue.exists() and queued(queue) == [A], "the queued report")
    daemon.wait_for(lambda: any(r[0] == "POST" for r in hub.requests), "a try")
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.communicate(timeout=5)
    daemon.process = None
    hub.answer = None
    daemon.start()  # the ban of A is restored, and not reported again
    daemon.wait_for(lambda: hub.reported() == [A], "the report sent after the restart")
    time.sleep(0.3)
    daemon.stop()
    assert hub.reported() == [A]
    assert hub.posts[0][0]["jail"] == "asterisk-provya" and hub.posts[0][0]["category"] == "sip"
    assert queued(queue) == []


# ---- with the real hub ------------------------------------------------------------------


def test_end_to_end_three_agents_list_an_address_and_a_feed_bans_it(
    daemon: Running, tmp_path: Path
) -> None:
    """A real ``gardien hub serve`` on SQLite, three agents enrolled from three networks: two
    report through HubClient, the third is a daemon whose ban completes the consensus, and its
    feed jail then bans the listed address."""
    pytest.importorskip("fastapi")

    from gardien.hub.model import Report
    from support.cli import gardien

    database = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    assert gardien("hub", "migrate", "--database", database).returncode == 0
    tokens = {}
    for name, network in (("a", "198.18.1.0/24"), ("b", "198.18.2.0/24"), ("c", "10.3.0.0/16")):
        enrolled = gardien(
            "hub", "agent", "add", name, "--network", network, "--database", database
        )
        assert enrolled.returncode == 0, enrolled.stderr
        tokens[name] = enrolled.stdout.strip().splitlines()[-1]
    with hub_server(database) as url:

        async def report(token: str) -> None:
            client = HubClient(url, token)
            try:
                await client.send_reports([Report(A, "sshd", "ssh", time.time() - 5, 4)])
            finally:
                await client.aclose()

        for name in ("a", "b"):
            asyncio.run(report(tokens[name]))
        token_c = tmp_path / "c.token"
        token_c.write_text(tokens["c"] + "\n")
        token_c.chmod(0o600)
        queue = tmp_path / "spool" / "hub-queue.sqlite3"
        (daemon.etc / "jail.d" / "provya.conf").write_text(
            f"""\
[asterisk-provya]
enabled  = true
filter   = asterisk
logpath  = {daemon.log}
maxretry = 3
action   = hub[url={url}, token_file={token_c}, queue={queue}, every=0.1]

[hub-blocklist]
enabled = true
backend = hub[url={url}, token_file={token_c}, every=0.2]
action  = log
bantime = 1d
"""
        )
        daemon.start()
        assert banned(daemon, "hub-blocklist") == set()
        with daemon.log.open("a") as log:
            log.write(failure_line(A) * 3)
        daemon.wait_for(lambda: banned(daemon, "hub-blocklist") == {A}, "the feed's ban", 20)
        reputation = httpx.get(
            f"{url}/api/v1/ip/{A}", headers={"Authorization": f"Bearer {tokens['a']}"}
        ).json()
        assert reputation["listed"] and reputation["agents"] == 3
        daemon.stop()
        assert queued(queue) == []

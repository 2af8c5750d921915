"""The hub's JSON API, in-process on a real store (SQLite and PostgreSQL), and once as the
real ``gardien hub serve`` process: consensus through the API, every blocklist format, delta
sync, strict validation (4xx, never 5xx), who may call what, rate limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from gardien.clock import FakeClock
from gardien.hub.app import create_app
from gardien.hub.model import Consensus
from gardien.hub.settings import HubSettings
from gardien.hub.store import HubStore
from support.cli import gardien_process
from support.ports import free_port

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ATTACKER = "185.220.101.7"
ATTACKER6 = "2a01:4f8:c0c:1::7"


class Client:
    """A synchronous HTTP client of an application in this process: ``httpx.ASGITransport``
    on the hub's event loop, with the client address the application sees."""

    def __init__(self, app: FastAPI, runner: asyncio.Runner, address: str, token: str | None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        self._runner = runner
        self._client = httpx.AsyncClient(
            transport=transport, base_url="https://hub.test", headers=headers
        )
        self.cookies = self._client.cookies

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@dataclass
class Hub:
    """A hub application on a real store, with a fake clock."""

    store: HubStore
    clock: FakeClock
    app: FastAPI
    runner: asyncio.Runner = field(default_factory=asyncio.Runner)

    def enrol(self, name: str, network: str | None = None) -> str:
        return self.store.add_agent(name, network)[1]

    def client(self, token: str | None = None, address: str = "198.51.100.10") -> Client:
        return Client(self.app, self.runner, address, token)

    def close(self) -> None:
        self.runner.close()
        self.store.close()


def report(ip: str = ATTACKER, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ip": ip,
        "jail": "sshd",
        "category": "ssh",
        "time": NOW - 60,
        "failures": 5,
    }
    values.update(changes)
    return values


def make_hub(url: str, **settings: Any) -> Hub:
    clock = FakeClock(NOW)
    consensus = settings.pop("consensus", Consensus())
    store = HubStore(url, consensus=consensus, clock=clock)
    app = create_app(store, HubSettings(consensus=consensus, **settings), clock=clock)
    return Hub(store, clock, app)


@pytest.fixture
def hub(hub_url: str) -> Iterator[Hub]:
    built = make_hub(hub_url)
    yield built
    built.close()


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[Hub]:
    """For the tests that are about the API alone, not about the database under it."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    HubStore(url).migrate()
    built = make_hub(url)
    yield built
    built.close()


# ---- consensus and the blocklist -------------------------------------------------------------


def test_health_answers_without_a_token(hub: Hub) -> None:
    response = hub.client().get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["database"] == "ok"


def test_three_agents_from_three_networks_list_an_address(hub: Hub) -> None:
    networks = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/48"]
    tokens = [hub.enrol(f"agent{i}", net) for i, net in enumerate(networks)]
    reader = hub.client(tokens[0])
    before = reader.get("/api/v1/blocklist", params={"format": "json"})
    assert before.json() == {"cursor": 0, "addresses": []}
    cursor = int(before.headers["X-Gardien-Cursor"])

    for index, token in enumerate(tokens):
        answer = hub.client(token).post(
            "/api/v1/reports", json={"reports": [report(), report(ATTACKER6), report("10.1.2.3")]}
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 3
        expected = [ATTACKER, ATTACKER6] if index == 2 else []
        assert sorted(answer.json()["listed"]) == sorted(expected)

    reputation = reader.get(f"/api/v1/ip/{ATTACKER}").json()
    assert reputation["listed"] and reputation["agents"] == 3 and reputation["networks"] == 3
    assert reputation["categories"] == ["ssh"] and reputation["reports"] == 3
    private = reader.get("/api/v1/ip/10.1.2.3").json()
    assert not private["listed"] and private["allowlisted"]  # reported, never listed

    def body(fmt: str) -> str:
        response = reader.get("/api/v1/blocklist", params={"format": fmt})
        assert response.status_code == 200, response.text
        assert int(response.headers["X-Gardien-Cursor"]) > cursor
        return response.text

    assert sorted(body("plain").split()) == sorted([ATTACKER, ATTACKER6])
    assert sorted(body("cidr").split()) == sorted([ATTACKER, ATTACKER6])
    assert f"add element inet gardien_hub hub4 {{ {ATTACKER} }}" in body("nft")
    assert f"add gardien-hub6-new {ATTACKER6}\n" in body("ipset")
    assert sorted(json.loads(body("json"))["addresses"]) == sorted([ATTACKER, ATTACKER6])

    delta = reader.get("/api/v1/blocklist", params={"format": "json", "since": cursor})
    assert sorted(delta.json()["add"]) == sorted([ATTACKER, ATTACKER6])
    assert delta.json()["remove"] == []
    latest = delta.json()["cursor"]
    assert delta.headers["X-Gardien-Cursor"] == str(latest)
    nothing_new = reader.get("/api/v1/blocklist", params={"format": "json", "since": latest})
    assert nothing_new.json() == {"cursor": latest, "add": [], "remove": [], "reset": False}


def test_two_agents_or_one_network_are_not_enough(hub: Hub) -> None:
    same = [hub.enrol(f"same{i}", "192.0.2.0/24") for i in range(3)]
    for token in same:
        assert (
            hub.client(token).post("/api/v1/reports", json={"reports": [report()]}).json()["listed"]
            == []
        )
    reader = hub.client(same[0])
    assert reader.get("/api/v1/blocklist").text == ""
    assert reader.get(f"/api/v1/ip/{ATTACKER}").json()["networks"] == 1


def test_reporter_network_comes_from_the_client_address_without_an_enrolment_network(
    hub: Hub,
) -> None:
    tokens = [hub.enrol(f"bare{i}") for i in range(3)]
    # three agents behind one /24: one network
    for i, token in enumerate(tokens):
        hub.client(token, address=f"192.0.2.{10 + i}").post(
            "/api/v1/reports", json={"reports": [report()]}
        )
    assert not hub.client(tokens[0]).get(f"/api/v1/ip/{ATTACKER}").json()["listed"]
    # the same three from three /24s (one over IPv6, as an IPv4-mapped address is not)
    addresses = ["192.0.2.10", "198.51.100.20", "2001:db8:5::1"]
    listed = []
    for token, address in zip(tokens, addresses, strict=True):
        answer = hub.client(token, address=address).post(
            "/api/v1/reports", json={"reports": [report()]}
        )
        listed += answer.json()["listed"]
    assert listed == [ATTACKER]
    seen = {agent.name: agent.last_address for agent in hub.store.agents()}
    assert seen == dict(zip([f"bare{i}" for i in range(3)], addresses, strict=True))


def test_statistics_count_the_reports(hub: Hub) -> None:
    token = hub.enrol("stats", "192.0.2.0/24")
    client = hub.client(token)
    client.post(
        "/api/v1/reports",
        json={
            "reports": [
                report(),
                report(),
                report("198.51.100.99", jail="asterisk", category="sip"),
            ]
        },
    )
    stats = client.get("/api/v1/stats", params={"days": 2, "top": 5})
    assert stats.status_code == 200, stats.text
    data = stats.json()
    assert data["reports"] == 3
    assert data["top_addresses"][0] == {"ip": ATTACKER, "reports": 2}
    assert {c["category"]: c["reports"] for c in data["top_categories"]} == {"ssh": 2, "sip": 1}
    assert data["top_reporters"] == [{"agent": "stats", "reports": 3}]
    assert sum(point["reports"] for point in data["per_hour"]) == 3


def test_entries_expire_in_the_background(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    HubStore(url).migrate()
    hub = make_hub(url, consensus=Consensus(ttl=3600.0), expire_interval=0.05)
    tokens = [hub.enrol(f"a{i}", f"192.0.{i}.0/24") for i in range(3)]
    for token in tokens:
        hub.client(token).post("/api/v1/reports", json={"reports": [report(time=NOW)]})
    reader = hub.client(tokens[0])
    assert reader.get("/api/v1/blocklist").text == f"{ATTACKER}\n"
    hub.clock.advance(3601)
    # the application's lifespan runs the expiry task on the hub's event loop
    lifespan = hub.app.router.lifespan_context(hub.app)
    hub.runner.run(lifespan.__aenter__())
    try:
        deadline = time.monotonic() + 5
        while reader.get("/api/v1/blocklist").text and time.monotonic() < deadline:
            hub.runner.run(asyncio.sleep(0.02))
        assert reader.get("/api/v1/blocklist").text == ""
        delta = reader.get("/api/v1/blocklist", params={"format": "json", "since": 1}).json()
        assert delta["remove"] == [ATTACKER]
    finally:
        hub.runner.run(lifespan.__aexit__(None, None, None))
    hub.close()


def test_a_cursor_older_than_the_pruned_journal_gets_the_whole_list(hub_url: str) -> None:
    day = 86400.0
    hub = make_hub(hub_url, consensus=Consensus(ttl=3600.0, journal_retention=day))
    tokens = [hub.enrol(f"a{i}", f"192.0.{i}.0/24") for i in range(3)]

    def everyone_reports(ip: str) -> None:
        for token in tokens:
            answer = hub.client(token).post(
                "/api/v1/reports", json={"reports": [report(ip, time=hub.clock.now())]}
            )
            assert answer.status_code == 202, answer.text

    reader = hub.client(tokens[0])
    try:
        everyone_reports(ATTACKER)  # change 1
        hub.clock.advance(1800)
        everyone_reports(ATTACKER6)  # change 2
        hub.clock.advance(1801)
        assert hub.store.expire() == 1  # ATTACKER: change 3
        hub.clock.advance(2 * day)
        assert hub.store.prune().changes == 2  # the newest change stays

        def delta(since: int) -> dict[str, Any]:
            answer = reader.get("/api/v1/blocklist", params={"format": "json", "since": since})
            assert answer.status_code == 200 and answer.headers["X-Gardien-Cursor"] == "3"
            body: dict[str, Any] = answer.json()
            return body

        # changes 2 and 3 are kept: a delta from 2
        assert delta(2) == {"cursor": 3, "add": [], "remove": [ATTACKER], "reset": False}
        # change 2 is gone: the whole list, which replaces the agent's own
        assert delta(1) == {"cursor": 3, "add": [ATTACKER6], "remove": [], "reset": True}
        assert delta(0)["reset"] and delta(99)["reset"]
    finally:
        hub.close()


def test_the_hub_prunes_in_the_background(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    HubStore(url).migrate()
    day = 86400.0
    rules = Consensus(window=day, report_retention=day)
    hub = make_hub(url, consensus=rules, prune_interval=0.05)
    token = hub.enrol("a", "192.0.2.0/24")
    reader = hub.client(token)
    reader.post("/api/v1/reports", json={"reports": [report(time=NOW)]})
    assert reader.get(f"/api/v1/ip/{ATTACKER}").json()["known"]
    hub.clock.advance(day + 1)
    lifespan = hub.app.router.lifespan_context(hub.app)
    hub.runner.run(lifespan.__aenter__())
    try:
        deadline = time.monotonic() + 5
        while reader.get(f"/api/v1/ip/{ATTACKER}").json()["known"]:
            assert time.monotonic() < deadline, "the report was not pruned"
            hub.runner.run(asyncio.sleep(0.02))
    finally:
        hub.runner.run(lifespan.__aexit__(None, None, None))
    hub.close()


# ---- validation ------------------------------------------------------------------------------

BAD_REPORTS = {
    "network instead of address": report("203.0.113.0/24"),
    "not an address": report("evil.example.org"),
    "address as number": report(3405803783),
    "empty address": report(""),
    "address with newline": report("203.0.113.7\n"),
    "jail with space": report(jail="ssh d"),
    "jail with newline": report(jail="sshd\n"),
    "jail too long": report(jail="j" * 65),
    "category in capitals": report(category="SSH"),
    "category missing": {k: v for k, v in report().items() if k != "category"},
    "time as text": report(time="yesterday"),
    "time negative": report(time=-1),
    "time an hour ahead": report(time=NOW + 3600),
    "time huge": report(time=1e300),
    "failures negative": report(failures=-1),
    "failures too many": report(failures=10_000_001),
    "failures fractional": report(failures=1.5),
    "failures boolean": report(failures=True),
    "failures as text": report(failures="5"),
    "unknown field": report(comment="hello"),
}


@pytest.mark.parametrize("bad", list(BAD_REPORTS.values()), ids=list(BAD_REPORTS))
def test_each_bad_field_is_refused_with_422(sqlite_hub: Hub, bad: dict[str, Any]) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    response = client.post("/api/v1/reports", json={"reports": [report(), bad]})
    assert response.status_code == 422, response.text
    assert any(error["loc"][:3] == ["body", "reports", 1] for error in response.json()["detail"])
    assert client.get(f"/api/v1/ip/{ATTACKER}").json()["reports"] == 0  # nothing stored


@pytest.mark.parametrize(
    "body",
    [
        {"reports": []},
        {"reports": [report()] * 1001},
        {"reports": report()},
        {"reports": [report()], "agent": "someone-else"},
        {},
        [report()],
        "reports",
    ],
    ids=["empty", "too many", "not a list", "extra key", "no reports", "bare list", "string"],
)
def test_bad_batches_are_refused_with_422(sqlite_hub: Hub, body: object) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    assert client.post("/api/v1/reports", json=body).status_code == 422


def test_malformed_json_is_refused_with_422(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    for content in (b'{"reports": [', b"\xff\xfe", b'{"reports": [{"ip": NaN}]}'):
        response = client.post(
            "/api/v1/reports", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (content, response.text)


def test_a_full_batch_is_accepted_and_old_reports_are_ignored(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    batch = [report(f"198.51.100.{i % 250}") for i in range(999)]
    batch.append(report(time=NOW - 8 * 86400))  # older than the 7-day window
    answer = client.post("/api/v1/reports", json={"reports": batch})
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 999, "ignored": 1, "listed": []}
    # canonical forms are stored: an IPv4-mapped address counts as the IPv4 one
    client.post("/api/v1/reports", json={"reports": [report(f"::ffff:{ATTACKER}")]})
    assert client.get(f"/api/v1/ip/{ATTACKER}").json()["reports"] == 1


def test_oversized_bodies_are_refused_with_413(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    big = json.dumps({"reports": [report(jail="x" * 60)] * 1000, "pad": "x" * (1 << 20)}).encode()
    announced = client.post(
        "/api/v1/reports", content=big, headers={"Content-Type": "application/json"}
    )
    assert announced.status_code == 413
    assert announced.json() == {"detail": "request body too large"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = client.post(
        "/api/v1/reports", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_lookups_of_what_is_not_an_address_are_404(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    for text in ("example.org", "203.0.113.300", "1" * 200, "203.0.113.0%2F24"):
        assert client.get(f"/api/v1/ip/{text}").status_code == 404
    unknown = client.get("/api/v1/ip/2001:DB8::0001")
    assert unknown.status_code == 200
    assert unknown.json()["ip"] == "2001:db8::1" and unknown.json()["known"] is False


def test_blocklist_parameters_are_checked(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    assert client.get("/api/v1/blocklist", params={"format": "xml"}).status_code == 422
    assert (
        client.get("/api/v1/blocklist", params={"since": -1, "format": "json"}).status_code == 422
    )
    assert (
        client.get("/api/v1/blocklist", params={"since": "x", "format": "json"}).status_code == 422
    )
    assert client.get("/api/v1/blocklist", params={"since": 0, "format": "nft"}).status_code == 400
    assert client.get("/api/v1/stats", params={"days": 0}).status_code == 422
    assert client.get("/api/v1/stats", params={"top": 1000}).status_code == 422


# ---- who may call what ----------------------------------------------------------------------

SAMPLE_PATH_VALUES = {"ip": ATTACKER}
#: what answers a stranger: the health check, and the dashboard's login form
PUBLIC = {("GET", "/health"), ("GET", "/login"), ("POST", "/login")}


def flat(routes: list[Any]) -> Iterator[Any]:
    """The routes, with those of included routers (which FastAPI may keep as one entry that
    points to the router: the hub includes them without a prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from flat(included.routes)
        else:
            yield route


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every method and path the application serves (path parameters filled in)."""
    found = []
    for route in flat(app.routes):
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None)
        if path is None or methods is None:
            continue
        for name, value in SAMPLE_PATH_VALUES.items():
            path = path.replace(f"{{{name}}}", value)
        assert "{" not in path, f"add a sample value for {path}"
        found += [(method, path) for method in sorted(methods) if method != "HEAD"]
    return found


def api_routes(app: FastAPI) -> set[str]:
    return {
        r.path for r in flat(app.routes) if isinstance(r, APIRoute) and r.path.startswith("/api/")
    } | {"/openapi.json", "/docs"}


def test_nothing_but_health_answers_without_authentication(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client()
    served = routes(sqlite_hub.app)
    assert ("POST", "/api/v1/reports") in served and ("GET", "/openapi.json") in served
    api = api_routes(sqlite_hub.app)
    for method, path in served:
        if (method, path) in PUBLIC:
            continue
        response = client.request(method, path)
        template = path.replace(ATTACKER, "{ip}")
        if template in api:
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        else:  # a dashboard page: to the login form, or refused, never content
            assert response.status_code in (303, 401, 403), (method, path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"].endswith("/login")
        assert ATTACKER not in response.text


def test_an_agent_token_opens_no_dashboard_page(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("agent", "192.0.2.0/24"))
    api = api_routes(sqlite_hub.app)
    checked = 0
    for method, path in routes(sqlite_hub.app):
        if path.replace(ATTACKER, "{ip}") in api or (method, path) in PUBLIC or path == "/health":
            continue
        checked += 1
        response = client.request(method, path)
        assert response.status_code in (303, 401, 403), (method, path, response.status_code)
    assert checked >= 5


def test_a_dashboard_session_opens_no_api_route(sqlite_hub: Hub) -> None:
    pytest.importorskip("gardien.hub.web")
    from gardien.hub.model import SessionInfo
    from gardien.hub.sessions import COOKIE, FULL, session_id

    user = sqlite_hub.store.add_user("admin", "$argon2id$fake", "JBSWY3DPEHPK3PXP")
    cookie = "a-session-cookie-value-long-enough-to-be-real-000000"
    sqlite_hub.store.create_session(
        SessionInfo(
            id=session_id(cookie),
            user_id=user.id,
            stage=FULL,
            csrf="c" * 43,
            created=NOW,
            expires=NOW + 3600,
            address="198.51.100.10",
        )
    )
    client = sqlite_hub.client()
    client.cookies.set(COOKIE, cookie)
    assert client.get("/openapi.json").status_code == 200  # the docs are for admins too
    assert client.get("/").status_code == 200  # the session is a real one
    for method, path in routes(sqlite_hub.app):
        if path.startswith("/api/"):
            assert client.request(method, path).status_code == 401, (method, path)


def test_unknown_malformed_and_disabled_tokens_are_401(hub: Hub) -> None:
    token = hub.enrol("soon-disabled", "192.0.2.0/24")
    assert hub.client(token).get("/api/v1/stats").status_code == 200
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "gdn_" + "x" * 300, "gdn_\xe9"):
        header = f"Bearer {bad}".encode("latin-1")
        response = hub.client().get("/api/v1/stats", headers={"Authorization": header})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    basic = hub.client().get("/api/v1/stats", headers={"Authorization": f"Basic {token}"})
    assert basic.status_code == 401
    # disabled elsewhere (the CLI, another hub process): each process trusts a token it
    # checked for token_cache seconds (10), then asks the database again
    assert hub.store.disable_agent("soon-disabled")
    response = hub.client(token).post("/api/v1/reports", json={"reports": [report()]})
    assert response.status_code == 202
    hub.clock.advance(10)
    response = hub.client(token).post("/api/v1/reports", json={"reports": [report()]})
    assert response.status_code == 401


def test_the_openapi_spec_describes_the_api_for_agents(sqlite_hub: Hub) -> None:
    client = sqlite_hub.client(sqlite_hub.enrol("v", "192.0.2.0/24"))
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/health",
        "/api/v1/reports",
        "/api/v1/ip/{ip}",
        "/api/v1/blocklist",
        "/api/v1/stats",
    }
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    listing = spec["paths"]["/api/v1/blocklist"]["get"]["responses"]["200"]["content"]
    (delta,) = [s for s in listing["application/json"]["schema"]["oneOf"] if "add" in s["required"]]
    assert (
        "reset" in delta["required"] and "whole list" in delta["properties"]["reset"]["description"]
    )
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert ("security" in operation) == (path != "/health"), path
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


# ---- rate limits -----------------------------------------------------------------------------


def test_an_agent_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    HubStore(url).migrate()
    hub = make_hub(url, rate_limit=0.5, burst=3)
    busy = hub.client(hub.enrol("busy", "192.0.2.0/24"))
    calm = hub.client(hub.enrol("calm", "198.51.100.0/24"))
    assert [busy.get("/api/v1/stats").status_code for _ in range(3)] == [200] * 3
    refused = busy.get("/api/v1/stats")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    assert calm.get("/api/v1/stats").status_code == 200  # one bucket per agent
    hub.clock.advance(2)
    assert busy.get("/api/v1/stats").status_code == 200
    assert busy.get("/api/v1/stats").status_code == 429
    hub.close()


# ---- the real server -------------------------------------------------------------------------


def test_serve_refuses_bad_options_and_unmigrated_databases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    for listen in ("localhost", "127.0.0.1:99999", "[::1:8080", "127.0.0.1:http"):
        result = gardien_process("hub", "serve", "--database", url, "--listen", listen, clean=True)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("gardien: error: ") and "--listen" in result.stderr
    result = gardien_process("hub", "serve", "--database", url, "--window", "soon", clean=True)
    assert result.returncode == 1 and "not a duration" in result.stderr
    result = gardien_process(
        "hub", "serve", "--database", url, "--journal-retention", "0", clean=True
    )
    assert result.returncode == 1 and "--journal-retention" in result.stderr
    result = gardien_process(
        "hub", "serve", "--database", url, "--listen", f"127.0.0.1:{free_port()}", clean=True
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "gardien hub migrate" in result.stderr


def test_gardien_hub_serve_answers_over_http(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    store = HubStore(url)
    store.migrate()
    tokens = [store.add_agent(f"agent{i}", f"192.0.{i}.0/24")[1] for i in range(2)]
    store.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDIEN_")}
    env["GARDIEN_HUB_DATABASE"] = url
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gardien",
            "hub",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--min-agents",
            "2",
            "--min-networks",
            "2",
            "--ttl",
            "1d",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "the hub did not start"
                time.sleep(0.05)
        assert health.json()["status"] == "ok"
        now = time.time()
        listed = []
        for token in tokens:
            answer = httpx.post(
                f"{base}/api/v1/reports",
                json={"reports": [report(time=now)]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 202, answer.text
            listed += answer.json()["listed"]
        assert listed == [ATTACKER]  # --min-agents 2 --min-networks 2
        blocklist = httpx.get(
            f"{base}/api/v1/blocklist",
            params={"format": "cidr"},
            headers={"Authorization": f"Bearer {tokens[0]}"},
        )
        assert blocklist.text == f"{ATTACKER}\n"
        assert httpx.get(f"{base}/api/v1/blocklist").status_code == 401
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    # uvicorn shuts down cleanly, then dies of the signal it was sent
    assert server.returncode in (0, -15) and "Application shutdown complete" in output, output

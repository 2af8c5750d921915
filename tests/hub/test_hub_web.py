"""The hub's dashboard in-process (the real application, the real store): logging in with a
password and a TOTP code, what a session is and is not, CSRF, lockouts, and the pages."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from gardien.clock import FakeClock
from gardien.hub.app import create_app
from gardien.hub.model import Report
from gardien.hub.passwords import Passwords, new_totp_secret, totp_code
from gardien.hub.sessions import COOKIE, SessionSettings
from gardien.hub.settings import HubSettings
from gardien.hub.store import HubStore
from gardien.hub.web import GENERIC_FAILURE, Dashboard

START = 1_700_000_000.0
PASSWORD = "correct horse battery"  # noqa: S105 (the test user's)
# argon2 at its cheapest: the tests check the flow, not the cost
CHEAP = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


class Client:
    """A synchronous face on ``httpx.AsyncClient`` over ``ASGITransport``: the application
    in-process, with a cookie jar, no redirects followed."""

    def __init__(
        self,
        app: FastAPI,
        base_url: str = "http://testserver",
        cookies: dict[str, str] | None = None,
    ) -> None:
        self.app = app
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=base_url,
            cookies=cookies,
            follow_redirects=False,
        )
        self.cookies = self._client.cookies

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@dataclass
class Hub:
    client: Client
    store: HubStore
    clock: FakeClock
    secret: str
    user_id: int

    def code(self, offset: float = 0.0) -> str:
        return totp_code(self.secret, self.clock.now() + offset)


def make_hub(url: str, **settings: Any) -> Iterator[Hub]:
    clock = FakeClock(START)
    store = HubStore(url, clock=clock)
    app = create_app(store, HubSettings(secure_cookies=False), clock=clock)
    app.state.dashboard = Dashboard.create(
        store, clock, SessionSettings(secure_cookies=False, **settings), CHEAP
    )
    secret = new_totp_secret()
    user = store.add_user("admin", CHEAP.hash(PASSWORD), secret)
    client = Client(app)  # no lifespan: the expiry task is not needed here
    yield Hub(client, store, clock, secret, user.id)
    client.close()
    store.close()


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating costs more than a test)."""
    path = tmp_path_factory.mktemp("hubweb") / "template.sqlite3"
    store = HubStore(f"sqlite:///{path}")
    store.migrate()
    store.close()
    return path


@pytest.fixture
def hub(template_db: Path, tmp_path: Path) -> Iterator[Hub]:
    path = tmp_path / "hub.sqlite3"
    shutil.copy(template_db, path)
    yield from make_hub(f"sqlite:///{path}")


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def submit_password(hub: Hub, name: str = "admin", typed: str = PASSWORD) -> httpx.Response:
    page = hub.client.get("/login")
    assert page.status_code == 200
    return hub.client.post(
        "/login", data={"name": name, "password": typed, "csrf": form_token(page.text)}
    )


def submit_code(hub: Hub, code: str) -> httpx.Response:
    page = hub.client.get("/login/code")
    assert page.status_code == 200, page.text
    return hub.client.post("/login/code", data={"code": code, "csrf": form_token(page.text)})


def log_in(hub: Hub) -> None:
    assert submit_password(hub).headers["location"] == "/login/code"
    response = submit_code(hub, hub.code())
    assert response.status_code == 303 and response.headers["location"] == "/", response.text


def cookie(hub: Hub) -> str | None:
    return hub.client.cookies.get(COOKIE)


def sessions(hub: Hub) -> dict[str, str]:
    """id -> stage of every stored session."""
    from sqlalchemy import select

    from gardien.hub import schema

    with hub.store._engine.connect() as connection:
        rows = connection.execute(select(schema.sessions.c.id, schema.sessions.c.stage))
        return {row.id: row.stage for row in rows}


# ---- logging in ---------------------------------------------------------------------------------


def test_password_then_code_opens_the_dashboard_with_a_new_session_id(hub: Hub) -> None:
    response = submit_password(hub)
    assert response.status_code == 303 and response.headers["location"] == "/login/code"
    first = cookie(hub)
    assert first is not None and len(first) >= 43
    # the database holds only the SHA-256 of the cookie value
    digest = hashlib.sha256(first.encode()).hexdigest()
    assert sessions(hub) == {digest: "password"}
    # a password alone opens nothing but the code page
    assert hub.client.get("/").headers["location"] == "/login"

    response = submit_code(hub, hub.code())
    assert response.status_code == 303 and response.headers["location"] == "/"
    second = cookie(hub)
    assert second is not None and second != first  # no fixation
    assert sessions(hub) == {hashlib.sha256(second.encode()).hexdigest(): "full"}
    page = hub.client.get("/")
    assert page.status_code == 200 and "<h1>Overview</h1>" in page.text

    # the pre-login cookie opens nothing any more
    stale = Client(hub.client.app, cookies={COOKIE: first})
    assert stale.get("/").headers["location"] == "/login"
    assert stale.get("/login/code").headers["location"] == "/login"
    stale.close()


def test_the_session_cookie_is_httponly_strict_and_secure_unless_told(
    template_db: Path, tmp_path: Path
) -> None:
    path = tmp_path / "hub.sqlite3"
    shutil.copy(template_db, path)
    clock = FakeClock(START)
    store = HubStore(f"sqlite:///{path}", clock=clock)
    store.add_user("admin", CHEAP.hash(PASSWORD), new_totp_secret())
    app = create_app(store, HubSettings(), clock=clock)  # the defaults: secure cookies
    app.state.dashboard = Dashboard.create(
        store, clock, SessionSettings(secure_cookies=HubSettings().secure_cookies), CHEAP
    )
    client = Client(app, base_url="https://hub.example")
    page = client.get("/login")
    response = client.post(
        "/login", data={"name": "admin", "password": PASSWORD, "csrf": form_token(page.text)}
    )
    header = response.headers["set-cookie"].lower()
    assert header.startswith(f"{COOKIE}=")
    for flag in ("httponly", "samesite=strict", "secure", "path=/"):
        assert flag in header
    client.close()
    store.close()


@pytest.mark.parametrize(
    ("name", "typed"),
    [("admin", "wrong password!"), ("nobody", PASSWORD), ("", ""), ("admin", "")],
)
def test_a_wrong_name_or_password_gets_the_same_generic_refusal(
    hub: Hub, name: str, typed: str
) -> None:
    response = submit_password(hub, name, typed)
    assert response.status_code == 401
    assert GENERIC_FAILURE in response.text
    assert cookie(hub) is None and sessions(hub) == {}


def test_a_wrong_code_is_refused_with_the_same_message(hub: Hub) -> None:
    submit_password(hub)
    for code in ("000000", "12345", "abcdef", totp_code(hub.secret, START - 300)):
        if code == hub.code():
            continue
        response = submit_code(hub, code)
        assert response.status_code == 401 and GENERIC_FAILURE in response.text
        assert hub.client.get("/").headers["location"] == "/login"
    # still at the code stage; the right code works (4 failures: not locked yet)
    assert submit_code(hub, hub.code()).headers["location"] == "/"


def test_a_code_from_the_previous_step_still_works(hub: Hub) -> None:
    submit_password(hub)
    assert submit_code(hub, hub.code(-30)).headers["location"] == "/"


def test_a_code_works_once(hub: Hub) -> None:
    code = hub.code()
    log_in(hub)
    page = hub.client.get("/")
    hub.client.post("/logout", data={"csrf": form_token(page.text)})
    submit_password(hub)
    response = submit_code(hub, code)  # the same code, within its 30 seconds
    assert response.status_code == 401 and GENERIC_FAILURE in response.text
    # an older step than the one spent is no better
    assert submit_code(hub, hub.code(-30)).status_code == 401
    hub.clock.advance(30)
    assert submit_code(hub, hub.code()).headers["location"] == "/"


def test_five_failures_lock_the_user_for_15_minutes(hub: Hub) -> None:
    for _ in range(5):
        assert submit_password(hub, typed="not the password").status_code == 401
    # the right password and code do not help while locked, and the message says nothing more
    response = submit_password(hub)
    assert response.status_code == 401 and GENERIC_FAILURE in response.text
    assert cookie(hub) is None
    hub.clock.advance(14 * 60)
    assert submit_password(hub).status_code == 401
    hub.clock.advance(61)
    log_in(hub)
    assert hub.client.get("/").status_code == 200


def test_wrong_codes_count_towards_the_lock(hub: Hub) -> None:
    for _ in range(4):
        submit_password(hub, typed="nope nope nope")
    submit_password(hub)
    response = submit_code(hub, "000000" if hub.code() != "000000" else "111111")
    # the fifth failure: the session is gone, back to the login page
    assert response.status_code == 401 and GENERIC_FAILURE in response.text
    assert '<form method="post" action="/login">' in response.text
    assert sessions(hub) == {}
    assert submit_password(hub).status_code == 401


def test_an_address_failing_too_often_is_slowed_down(template_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    shutil.copy(template_db, path)
    for hub in make_hub(f"sqlite:///{path}", address_failures=3, address_window=60):
        for name in ("a1", "a2", "a3"):  # names that do not exist: no user gets locked
            assert submit_password(hub, name, "whatever").status_code == 401
        response = submit_password(hub)
        assert response.status_code == 429 and "Try again later" in response.text
        hub.clock.advance(61)
        log_in(hub)


# ---- sessions ---------------------------------------------------------------------------------


def test_a_session_ends_after_30_idle_minutes(hub: Hub) -> None:
    log_in(hub)
    hub.clock.advance(29 * 60)
    assert hub.client.get("/agents").status_code == 200  # activity moves the deadline
    hub.clock.advance(29 * 60)
    assert hub.client.get("/agents").status_code == 200
    hub.clock.advance(31 * 60)
    response = hub.client.get("/agents")
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_a_session_ends_12_hours_after_login_however_busy(hub: Hub) -> None:
    log_in(hub)
    for _ in range(12 * 60 // 25):  # 28 x 25 min: 11 h 40 min
        hub.clock.advance(25 * 60)
        assert hub.client.get("/lookup").status_code == 200
    hub.clock.advance(25 * 60)  # past 12 h
    assert hub.client.get("/lookup").headers["location"] == "/login"


def test_the_code_page_waits_5_minutes(hub: Hub) -> None:
    submit_password(hub)
    hub.clock.advance(301)
    assert hub.client.get("/login/code").headers["location"] == "/login"


def test_logout_ends_the_session(hub: Hub) -> None:
    log_in(hub)
    value = cookie(hub)
    page = hub.client.get("/")
    response = hub.client.post("/logout", data={"csrf": form_token(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert sessions(hub) == {}
    again = Client(hub.client.app, cookies={COOKIE: value or ""})
    assert again.get("/").headers["location"] == "/login"
    again.close()


# ---- CSRF and authorisation -------------------------------------------------------------------


def test_forms_without_their_csrf_token_are_refused(hub: Hub) -> None:
    page = hub.client.get("/login")
    token = form_token(page.text)
    for data in ({}, {"csrf": "forged"}):
        response = hub.client.post("/login", data={"name": "admin", "password": PASSWORD, **data})
        assert response.status_code == 403
    assert sessions(hub) == {}
    assert (
        hub.client.post(
            "/login", data={"name": "admin", "password": PASSWORD, "csrf": token}
        ).headers["location"]
        == "/login/code"
    )
    assert hub.client.post("/login/code", data={"code": hub.code()}).status_code == 403
    assert submit_code(hub, hub.code()).headers["location"] == "/"

    for path, data in (
        ("/allowlist", {"network": "198.51.100.0/24", "comment": "x"}),
        ("/agents", {"name": "sneaky"}),
        ("/agents/disable", {"name": "sneaky"}),
        ("/allowlist/remove", {"network": "198.51.100.0/24"}),
        ("/logout", {}),
    ):
        for extra in ({}, {"csrf": "forged"}):
            response = hub.client.post(path, data={**data, **extra})
            assert response.status_code == 403, path
    assert hub.store.allowlist() == [] and hub.store.agents() == []
    assert hub.client.get("/").status_code == 200  # logout without a token did nothing


PAGES = [
    ("GET", "/"),
    ("GET", "/lookup?ip=185.220.101.4"),
    ("GET", "/agents"),
    ("GET", "/allowlist"),
    ("POST", "/agents"),
    ("POST", "/agents/disable"),
    ("POST", "/allowlist"),
    ("POST", "/allowlist/remove"),
    ("POST", "/logout"),
]


def test_every_page_needs_a_full_session_and_never_takes_a_bearer_token(hub: Hub) -> None:
    _agent, token = hub.store.add_agent("web1")
    bearer = {"Authorization": f"Bearer {token}"}
    assert hub.client.get("/api/v1/ip/185.220.101.4", headers=bearer).status_code == 200
    for method, path in PAGES:
        for headers in ({}, bearer):
            response = hub.client.request(method, path, headers=headers)
            assert response.status_code == 303, (method, path)
            assert response.headers["location"] == "/login"
    # half logged in (password only) is not logged in
    submit_password(hub)
    for method, path in PAGES:
        assert hub.client.request(method, path).headers["location"] == "/login", path
    assert hub.store.agents()[0].disabled is False


def test_a_session_cookie_opens_no_api_route(hub: Hub) -> None:
    log_in(hub)
    assert hub.client.get("/api/v1/ip/185.220.101.4").status_code == 401
    assert hub.client.get("/api/v1/stats").status_code == 401


def test_pages_carry_security_headers(hub: Hub) -> None:
    login = hub.client.get("/login")
    log_in(hub)
    for response in (login, hub.client.get("/"), hub.client.get("/agents")):
        headers = response.headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert "<script" not in response.text.lower()


# ---- pages --------------------------------------------------------------------------------------


def seed(hub: Hub) -> None:
    agents = [hub.store.add_agent(f"agent{i}")[0] for i in range(3)]
    now = hub.clock.now()
    for i, agent in enumerate(agents):
        reports = [Report("185.220.101.4", "sshd", "ssh", now - 3600 * h - i, 5) for h in range(4)]
        if i == 0:  # one agent alone: known, not listed
            reports.append(Report("91.240.118.7", "asterisk", "sip", now - 86400 * 3, 2))
        hub.store.ingest(agent, f"192.0.{2 + i * 10}.1", reports)


def test_the_overview_shows_totals_charts_and_tops(hub: Hub) -> None:
    seed(hub)
    log_in(hub)
    page = hub.client.get("/")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'id="total-reports">13<', html)
    assert re.search(r'id="total-listed">1<', html)  # 185.220.101.4: 3 agents, 3 networks
    assert html.count("<svg") == 2 and "Reports per hour (UTC)" in html
    assert "Reports per day (UTC)" in html
    top = html.split('id="top-addresses"')[1].split("</table>")[0]
    assert top.index("185.220.101.4") < top.index("91.240.118.7")
    assert 'href="/lookup?ip=185.220.101.4"' in top
    assert "ssh" in html.split('id="top-categories"')[1].split("</table>")[0]
    assert (
        '<td>agent0</td><td class="n">5</td>'
        in html.split('id="top-reporters"')[1].split("</table>")[0]
    )


def test_lookup_shows_an_address_reputation(hub: Hub) -> None:
    seed(hub)
    log_in(hub)
    html = hub.client.get("/lookup", params={"ip": "185.220.101.4"}).text
    assert "Listed since" in html and "<td>ssh</td>" in html and "<td>sshd</td>" in html
    assert "No agent has reported" in hub.client.get("/lookup?ip=2a00:1450::1").text
    html = hub.client.get("/lookup", params={"ip": "91.240.118.7"}).text
    assert "Not listed." in html and "<td>sip</td>" in html
    assert "Never listed: loopback" in hub.client.get("/lookup?ip=127.0.0.1").text
    bad = hub.client.get("/lookup?ip=not-an-address")
    assert bad.status_code == 400 and "is not an address" in bad.text


def test_agents_are_enrolled_with_a_token_shown_once_and_disabled(hub: Hub) -> None:
    log_in(hub)
    token = form_token(hub.client.get("/agents").text)
    response = hub.client.post(
        "/agents", data={"name": "mail1", "network": "198.51.100.0/24", "csrf": token}
    )
    assert response.status_code == 200
    shown = re.search(r'<code class="token">(gdn_[A-Za-z0-9_-]+)</code>', response.text)
    assert shown is not None
    agent = hub.store.agent_for_token(shown.group(1))
    assert agent is not None and agent.name == "mail1" and agent.network == "198.51.100.0/24"
    listing = hub.client.get("/agents").text
    assert "mail1" in listing and shown.group(1) not in listing  # never again

    again = hub.client.post("/agents", data={"name": "mail1", "csrf": token})
    assert again.status_code == 400 and "already exists" in again.text
    bearer = {"Authorization": f"Bearer {shown.group(1)}"}
    assert hub.client.get("/api/v1/stats", headers=bearer).status_code == 200  # now cached
    response = hub.client.post("/agents/disable", data={"name": "mail1", "csrf": token})
    assert response.status_code == 303
    assert hub.store.agent_for_token(shown.group(1)) is None
    # refused at once by this process's API, despite its token cache
    assert hub.client.get("/api/v1/stats", headers=bearer).status_code == 401
    assert "disabled" in hub.client.get("/agents").text


def test_the_allowlist_can_be_added_to_and_removed_from(hub: Hub) -> None:
    log_in(hub)
    token = form_token(hub.client.get("/allowlist").text)
    response = hub.client.post(
        "/allowlist", data={"network": "198.51.100.0/24", "comment": "our office", "csrf": token}
    )
    assert response.status_code == 303 and response.headers["location"] == "/allowlist"
    html = hub.client.get("/allowlist").text
    assert "198.51.100.0/24" in html and "our office" in html
    bad = hub.client.post("/allowlist", data={"network": "nonsense", "csrf": token})
    assert bad.status_code == 400 and "is not a network" in bad.text
    response = hub.client.post(
        "/allowlist/remove", data={"network": "198.51.100.0/24", "csrf": token}
    )
    assert response.status_code == 303 and hub.store.allowlist() == []
    missing = hub.client.post("/allowlist/remove", data={"network": "192.0.2.0/24", "csrf": token})
    assert missing.status_code == 404


def test_text_from_outside_is_escaped(hub: Hub) -> None:
    log_in(hub)
    token = form_token(hub.client.get("/agents").text)
    evil = '<script>alert("x")</script>'
    for response in (
        hub.client.post("/agents", data={"name": evil, "csrf": token}),
        hub.client.post("/agents", data={"name": "ok", "network": evil, "csrf": token}),
        hub.client.get("/lookup", params={"ip": evil}),
        hub.client.post("/allowlist", data={"network": evil, "csrf": token}),
    ):
        assert response.status_code == 400
        assert "<script>" not in response.text and "&lt;script&gt;" in response.text
    # an administrator's comment is shown as text too
    hub.client.post("/allowlist", data={"network": "192.0.2.0/24", "comment": evil, "csrf": token})
    html = hub.client.get("/allowlist").text
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # a name that is all markup cannot be enrolled at all
    assert hub.store.agents() == []


def test_the_login_flow_on_every_database(hub_url: str) -> None:
    for hub in make_hub(hub_url):
        assert submit_password(hub, typed="wrong wrong wrong").status_code == 401
        log_in(hub)
        code = hub.code()
        assert hub.client.get("/").status_code == 200
        page = hub.client.get("/allowlist")
        hub.client.post(
            "/allowlist",
            data={"network": "2001:db8::/48", "comment": "lab", "csrf": form_token(page.text)},
        )
        assert hub.store.allowlist()[0].network == "2001:db8::/48"
        hub.client.post("/logout", data={"csrf": form_token(page.text)})
        submit_password(hub)
        assert submit_code(hub, code).status_code == 401  # replay refused there too


# ---- passwords and codes ----------------------------------------------------------------------


def test_totp_accepts_one_step_either_side_once() -> None:
    from gardien.hub.passwords import provisioning_uri, verify_totp

    secret = new_totp_secret()
    assert len(secret) == 32
    now = START + 7
    step = int(now // 30)
    for offset, expected in ((-30, step - 1), (0, step), (30, step + 1)):
        assert verify_totp(secret, totp_code(secret, now + offset), now, None) == expected
    assert verify_totp(secret, totp_code(secret, now - 60), now, None) is None
    assert verify_totp(secret, totp_code(secret, now + 60), now, None) is None
    # spent steps, and anything before them, are refused
    assert verify_totp(secret, totp_code(secret, now), now, step) is None
    assert verify_totp(secret, totp_code(secret, now - 30), now, step) is None
    assert verify_totp(secret, totp_code(secret, now + 30), now, step) == step + 1
    # spaces as apps show them are fine; anything else is not a code
    code = totp_code(secret, now)
    assert verify_totp(secret, f"{code[:3]} {code[3:]}", now, None) == step
    for junk in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert verify_totp(secret, junk, now, None) is None
    uri = provisioning_uri("alice", secret)
    assert uri.startswith("otpauth://totp/gardien%20hub:alice?")
    assert f"secret={secret}" in uri and "issuer=gardien%20hub" in uri


def test_passwords_are_argon2id_hashes() -> None:
    hashed = CHEAP.hash(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert CHEAP.verify(hashed, PASSWORD)
    assert not CHEAP.verify(hashed, PASSWORD + "!")
    assert not CHEAP.verify(None, PASSWORD)
    assert not CHEAP.verify("not a hash", PASSWORD)
    assert Passwords().needs_rehash(hashed)  # cheaper than the defaults
    assert not CHEAP.needs_rehash(hashed)


# ---- gardien hub user ---------------------------------------------------------------------------


def test_user_commands(tmp_path: Path) -> None:
    from support.cli import gardien

    database = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    secret_file = tmp_path / "password"
    secret_file.write_text("twelve chars ok\n")
    secret_file.chmod(0o644)
    refused = gardien(
        "hub", "user", "add", "alice", "--password-file", str(secret_file), "--database", database
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("gardien: error: ") and "chmod 600" in refused.stderr
    secret_file.chmod(0o600)
    created = gardien(
        "hub", "user", "add", "alice", "--password-file", str(secret_file), "--database", database
    )
    assert created.returncode == 0, created.stderr
    found = re.search(r"secret: ([A-Z2-7]{32})\n", created.stdout)
    assert found and f"otpauth://totp/gardien%20hub:alice?secret={found.group(1)}" in created.stdout

    store = HubStore(database)
    user = store.user("alice")
    assert user is not None and user.totp_secret == found.group(1)
    assert Passwords().verify(user.password_hash, "twelve chars ok")
    store.close()

    # asked twice on the terminal (here: standard input)
    typed = gardien(
        "hub",
        "user",
        "add",
        "bob",
        "--database",
        database,
        stdin="long enough pw\nlong enough pw\n",
    )
    assert typed.returncode == 0, typed.stderr
    secret_file.write_text("too short\n")
    short = gardien(
        "hub", "user", "add", "dave", "--password-file", str(secret_file), "--database", database
    )
    assert short.returncode == 1 and "at least 12 characters" in short.stderr

    listing = gardien("hub", "user", "list", "--database", database)
    assert listing.returncode == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()[1:]]
    assert names == ["alice", "bob"]
    assert gardien("hub", "user", "remove", "bob", "--database", database).returncode == 0
    gone = gardien("hub", "user", "remove", "bob", "--database", database)
    assert gone.returncode == 1 and gone.stderr == "gardien: error: no user named 'bob'\n"


def test_removing_a_user_ends_their_sessions(hub: Hub) -> None:
    log_in(hub)
    assert hub.client.get("/").status_code == 200
    assert hub.store.remove_user("admin") and not hub.store.remove_user("admin")
    assert hub.client.get("/").headers["location"] == "/login"
    assert sessions(hub) == {}


def test_expired_sessions_are_purged_at_the_next_login(hub: Hub) -> None:
    submit_password(hub)  # abandoned at the code page
    hub.clock.advance(301)
    submit_password(hub)
    assert list(sessions(hub).values()) == ["password"]

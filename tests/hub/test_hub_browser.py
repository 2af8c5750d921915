"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real
``gardien hub serve`` process: an administrator created with ``gardien hub user add`` logs
in with a password and an authenticator code, reads the overview and its charts, looks an
address up, enrols an agent, edits the allowlist and logs out."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest

from gardien.hub.model import Report
from gardien.hub.store import HubStore
from support.ci import require
from support.cli import gardien
from support.hubserver import hub_server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a long dashboard passphrase"  # noqa: S105 (the test user's)
LISTED = "185.220.101.4"


@dataclass
class Served:
    url: str
    database: str
    secret: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    database = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    created = gardien(
        "hub", "user", "add", "admin", "--password-file", str(password_file), "--database", database
    )
    assert created.returncode == 0, created.stderr
    secret = re.search(r"secret: ([A-Z2-7]+)", created.stdout)
    assert secret is not None and "otpauth://totp/" in created.stdout

    # reports from three agents in three networks: one address is listed
    store = HubStore(database)
    now = time.time()
    for i in range(3):
        agent, _token = store.add_agent(f"agent{i}")
        reports = [Report(LISTED, "sshd", "ssh", now - 3600 * h - i, 4) for h in range(3)]
        if i == 0:  # one agent alone does not list an address
            reports.append(Report("91.240.118.7", "asterisk", "sip", now - 86400, 2))
        store.ingest(agent, f"192.0.{2 + 10 * i}.1", reports)
    store.close()

    with hub_server(database) as url:
        yield Served(url, database, secret.group(1))


def test_an_administrator_uses_the_dashboard(served: Served) -> None:
    require(
        os.access(CHROMIUM, os.X_OK) or shutil.which("chromium") is not None,
        "chromium is not installed (apt-get install chromium)",
    )
    from playwright.sync_api import expect, sync_playwright

    totp = pyotp.TOTP(served.secret)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)

            # nothing without logging in
            page.goto(served.url + "/agents")
            expect(page).to_have_url(served.url + "/login")

            page.fill("#name", "admin")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(served.url + "/login/code")

            # a wrong code keeps you out
            right = totp.now()
            page.fill("#code", "000000" if right != "000000" else "111111")
            page.click("main button[type=submit]")
            expect(page.locator(".error")).to_have_text("Wrong name, password or code.")
            page.goto(served.url + "/")
            expect(page).to_have_url(served.url + "/login")
            page.goto(served.url + "/login/code")

            page.fill("#code", totp.now())
            page.click("main button[type=submit]")
            expect(page).to_have_url(served.url + "/")

            # the overview: totals, two SVG charts with bars, the tops
            expect(page.locator("h1")).to_have_text("Overview")
            expect(page.locator("#total-reports")).to_have_text("10")
            expect(page.locator("#total-listed")).to_have_text("1")
            expect(page.locator("svg.chart")).to_have_count(2)
            assert page.locator("#chart-hours rect.bar").count() == 48
            assert page.locator("#chart-days rect.bar").count() == 30
            box = page.locator("#chart-hours svg").bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            expect(page.locator("#top-addresses tr").nth(1)).to_contain_text(LISTED)

            # follow the top address to its lookup
            page.click(f"#top-addresses a:text('{LISTED}')")
            expect(page.locator("#reputation")).to_contain_text("Listed since")
            page.fill("#ip", "91.240.118.7")
            page.click("main button[type=submit]")
            expect(page.locator("#reputation")).to_contain_text("Not listed.")
            expect(page.locator("#reputation")).to_contain_text("sip")

            # enrol an agent: its token is shown once
            page.click("nav a:text('Agents')")
            page.fill("#agent-name", "mail1")
            page.fill("#agent-network", "198.51.100.0/24")
            page.click("form.card button[type=submit]")
            token = page.locator("code.token").inner_text().strip()
            assert token.startswith("gdn_")
            reached = httpx.get(
                f"{served.url}/api/v1/ip/{LISTED}", headers={"Authorization": f"Bearer {token}"}
            )
            assert reached.status_code == 200 and reached.json()["listed"] is True
            page.goto(served.url + "/agents")
            expect(page.locator("#agents")).to_contain_text("mail1")
            expect(page.locator("code.token")).to_have_count(0)

            # the allowlist: add a range, see it, remove it
            page.click("nav a:text('Allowlist')")
            page.fill("#allow-network", "198.51.100.0/24")
            page.fill("#allow-comment", "our office")
            page.click("form.card button[type=submit]")
            expect(page.locator("#allowlist")).to_contain_text("our office")
            page.click("#allowlist button:text('Remove')")
            expect(page.locator("#allowlist")).to_contain_text("Empty.")

            # log out: the pages are closed again
            page.click("header button:text('Log out')")
            expect(page).to_have_url(served.url + "/login")
            page.goto(served.url + "/")
            expect(page).to_have_url(served.url + "/login")
        finally:
            browser.close()

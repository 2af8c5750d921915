"""``gardien hub migrate|agent|allow`` run as real processes on a SQLite database, as an
administrator would."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from support.cli import gardien


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.sqlite3'}"


def hub(database: str, *args: str) -> tuple[int, str, str]:
    done = gardien("hub", *args, env={"GARDIEN_HUB_DATABASE": database})
    return done.returncode, done.stdout, done.stderr


def test_migrate_is_idempotent(database: str) -> None:
    code, out, err = hub(database, "migrate")
    assert (code, err) == (0, "")
    assert "upgraded from revision none to 0002" in out
    code, out, _ = hub(database, "migrate")
    assert code == 0
    assert "up to date (revision 0002)" in out


def test_agents(database: str, tmp_path: Path) -> None:
    # reading commands do not create tables
    code, _, err = hub(database, "agent", "list")
    assert code == 1
    assert "run `gardien hub migrate`" in err
    # writing ones bring the schema up to date themselves
    code, out, err = hub(database, "agent", "add", "web1", "--network", "198.51.100.0/24")
    assert (code, err) == (0, "")
    token = out.splitlines()[-1]
    assert token.startswith("gdn_")
    assert len(token) == 47
    assert " " not in token
    with sqlite3.connect(tmp_path / "hub.sqlite3") as connection:
        rows = connection.execute("SELECT name, token_hash, network FROM agents").fetchall()
    assert len(rows) == 1
    assert (rows[0][0], rows[0][2]) == ("web1", "198.51.100.0/24")
    assert token not in repr(rows)

    for args, message in [
        (("agent", "add", "web1"), "an agent named 'web1' already exists"),
        (("agent", "disable", "nobody"), "no agent named 'nobody'"),
    ]:
        code, _, err = hub(database, *args)
        assert code == 1, args
        assert err == f"gardien: error: {message}\n"

    code, out, _ = hub(database, "agent", "disable", "web1")
    assert (code, out) == (0, "agent web1 disabled\n")
    code, out, _ = hub(database, "agent", "list")
    assert code == 0
    assert out.split("\n")[1].split() == [
        "web1",
        "198.51.100.0/24",
        out.split("\n")[1].split()[2],
        "-",
        "-",
        "disabled",
    ]
    assert token not in out
    code, out, _ = hub(database, "agent", "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["name"], listed["disabled"]) == ("web1", True)


def test_allowlist(database: str) -> None:
    code, _, err = hub(database, "allow", "add", "203.0.113.0/24", "--comment", "office")
    assert (code, err) == (0, "")
    code, _, err = hub(database, "allow", "add", "203.0.113.0/24")
    assert code == 1
    assert err == "gardien: error: 203.0.113.0/24 is already in the allowlist\n"
    code, out, _ = hub(database, "allow", "list", "--json")
    assert [(e["network"], e["comment"]) for e in json.loads(out)] == [("203.0.113.0/24", "office")]
    assert hub(database, "allow", "remove", "203.0.113.0/24")[0] == 0
    assert hub(database, "allow", "list")[1] == "the allowlist is empty\n"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://admin:hunter2@db/hub", "unsupported database"),
        ("postgresql://admin:hunter2@/hub?host=/nonexistent&connect_timeout=2", "hub database"),
    ],
)
def test_bad_databases_are_clear_errors(url: str, message: str) -> None:
    done = gardien("hub", "agent", "list", "--database", url)
    assert done.returncode == 1
    assert done.stderr.startswith("gardien: error: ")
    assert message in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr


def test_prune_forgets_old_reports(database: str) -> None:
    code, _, err = hub(database, "prune")
    assert code == 1 and "gardien hub migrate" in err and err.count("\n") == 1
    pytest.importorskip("sqlalchemy")
    import time

    from gardien.hub.model import Report
    from gardien.hub.store import HubStore

    store = HubStore(database)
    store.migrate()
    agent, _ = store.add_agent("web1", "198.51.100.0/24")
    old, recent = time.time() - 40 * 86400, time.time() - 60
    reports = [Report(ip, "sshd", "ssh", old, 5) for ip in ("8.8.4.4", "9.9.9.9")]
    store.ingest(agent, "198.51.100.1", [*reports, Report("1.1.1.1", "sshd", "ssh", recent, 5)])
    store.close()
    code, out, err = hub(database, "prune")  # 90 days by default: nothing to forget
    assert (code, err) == (0, "")
    assert out.endswith("removed 0 reports, 0 addresses, 0 blocklist changes\n")
    # a retention shorter than the window is raised to it, and said so
    code, out, err = hub(database, "prune", "--retention", "1d", "--window", "30d")
    assert code == 0 and "--retention 1d is shorter than --window" in err
    assert out.endswith("removed 2 reports, 2 addresses, 0 blocklist changes\n")
    code, _, err = hub(database, "prune", "--journal-retention", "never")
    assert code == 1 and err.startswith("gardien: error: ") and "--journal-retention" in err

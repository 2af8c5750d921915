"""Restarts that neither forget nor redo, for each kind of source (a log file, the journal, a
hub's list): the real daemon, driven through its command line, killed with SIGKILL or stopped,
and started again on the same store."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.daemon import JAIL, Running, banned, failure_line
from support.hub import FEED_JAIL, FakeHub

JOURNAL_JAIL = """\
[sshd-journal]
enabled  = true
filter   = sshd
action   = log
backend  = systemd[journalpath={directory}]
findtime = 10m
maxretry = 3
bantime  = 6h
"""

Restart = Callable[[Running], None]


def kill_9(daemon: Running) -> None:
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.communicate(timeout=5)
    daemon.process = None
    daemon.start()


def clean_restart(daemon: Running) -> None:
    daemon.stop()
    daemon.start()


RESTARTS = [pytest.param(kill_9, id="sigkill"), pytest.param(clean_restart, id="stop-start")]


def status(daemon: Running, jail: str) -> dict[str, object]:
    out = daemon.cli("status", "--json", jail)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def history(daemon: Running, jail: str, address: str) -> int:
    """How many bans of ``address`` the store recorded (read from the file itself)."""
    import sqlite3

    connection = sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True)
    try:
        (count,) = connection.execute(
            "SELECT count(*) FROM ban_history WHERE jail = ? AND address = ?", (jail, address)
        ).fetchone()
    finally:
        connection.close()
    return int(count)


def stored_checkpoint(daemon: Running, jail: str) -> str | None:
    """The position the store holds for ``jail``'s source (read from the file itself): what a
    restart resumes from. ``status`` may show failures a moment before they are stored."""
    import sqlite3

    connection = sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT state FROM checkpoints WHERE jail = ?", (jail,)).fetchone()
    except sqlite3.OperationalError:  # not created yet
        row = None
    finally:
        connection.close()
    return None if row is None else str(row[0])


# ---- a log file -----------------------------------------------------------------------------


def write(daemon: Running, *lines: str) -> None:
    with daemon.log.open("a") as log:
        log.write("".join(lines))


def test_an_unban_is_not_undone_by_a_kill_9_after_it(daemon: Running) -> None:
    daemon.start()
    write(daemon, failure_line("203.0.113.60") * 3)
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.60"], "the ban")
    assert daemon.cli("set", "asterisk-provya", "unbanip", "203.0.113.60").returncode == 0
    time.sleep(3)
    kill_9(daemon)
    time.sleep(1)  # time enough to read the log again, if it did
    assert banned(daemon) == []
    assert history(daemon, "asterisk-provya", "203.0.113.60") == 1
    # and the jail goes on: lines written while it was down are read
    write(daemon, failure_line("198.51.100.61") * 3)
    daemon.wait_for(lambda: banned(daemon) == ["198.51.100.61"], "the next ban")
    daemon.stop()


@pytest.mark.parametrize("restart", RESTARTS)
def test_failures_are_counted_across_a_restart(daemon: Running, restart: Restart) -> None:
    daemon.start()
    write(daemon, failure_line("203.0.113.70") * 2)
    daemon.wait_for(
        lambda: status(daemon, "asterisk-provya")["currently_failed"] == 1, "two failures counted"
    )
    restart(daemon)
    assert banned(daemon) == []
    assert status(daemon, "asterisk-provya")["currently_failed"] == 1  # still counting
    write(daemon, failure_line("203.0.113.70"))
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.70"], "the ban at the third failure")
    daemon.stop()


def test_failures_are_counted_across_a_reload(daemon: Running) -> None:
    daemon.start()
    write(daemon, failure_line("203.0.113.71") * 2)
    daemon.wait_for(
        lambda: status(daemon, "asterisk-provya")["currently_failed"] == 1, "two failures counted"
    )
    assert daemon.cli("reload").returncode == 0
    write(daemon, failure_line("203.0.113.71"))
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.71"], "the ban at the third failure")
    daemon.stop()


def test_failures_out_of_findtime_are_not_carried(daemon: Running) -> None:
    (daemon.etc / "jail.d" / "provya.conf").write_text(
        JAIL.format(log=daemon.log).replace("findtime  = 10m", "findtime  = 2s")
    )
    daemon.start()
    write(daemon, failure_line("203.0.113.72") * 2)
    daemon.wait_for(
        lambda: status(daemon, "asterisk-provya")["currently_failed"] == 1, "two failures counted"
    )
    kill_9(daemon)
    time.sleep(2.5)
    write(daemon, failure_line("203.0.113.72"))
    daemon.wait_for(
        lambda: status(daemon, "asterisk-provya")["total_failed"] == 1, "the third failure"
    )
    assert banned(daemon) == []
    daemon.stop()


# ---- the journal ----------------------------------------------------------------------------


def journal_lines(
    write_journal: Callable[[Path, list[dict[str, str | list[str]]]], None],
    journal: Path,
    address: str,
    count: int,
    start: int,
) -> None:
    from support.journal import T0, sshd

    now = time.time() - T0
    write_journal(
        journal,
        [
            sshd(
                now - 5 + i * 0.001,
                f"Failed password for root from {address} port {4000 + start + i} ssh2",
                pid=str(900 + start + i),
            )
            for i in range(count)
        ],
    )


@pytest.fixture
def journal_daemon(daemon: Running) -> Running:
    directory = daemon.root / "journal"
    directory.mkdir()
    (daemon.etc / "jail.d" / "provya.conf").write_text(JOURNAL_JAIL.format(directory=directory))
    return daemon


@pytest.mark.parametrize("restart", RESTARTS)
def test_journal_failures_are_counted_across_a_restart(
    journal_daemon: Running,
    write_journal: Callable[[Path, list[dict[str, str | list[str]]]], None],
    restart: Restart,
) -> None:
    daemon = journal_daemon
    journal = daemon.root / "journal" / "one.journal"
    journal_lines(write_journal, journal, "198.51.100.40", 2, 0)
    daemon.start()
    daemon.wait_for(
        lambda: status(daemon, "sshd-journal")["currently_failed"] == 1, "two failures counted"
    )
    restart(daemon)
    assert status(daemon, "sshd-journal")["currently_failed"] == 1
    journal_lines(write_journal, daemon.root / "journal" / "two.journal", "198.51.100.40", 1, 2)
    daemon.wait_for(
        lambda: status(daemon, "sshd-journal")["banned"] == ["198.51.100.40"], "the ban", 15
    )
    daemon.stop()


def test_a_journal_unban_is_not_undone_by_a_kill_9_after_it(
    journal_daemon: Running,
    write_journal: Callable[[Path, list[dict[str, str | list[str]]]], None],
) -> None:
    daemon = journal_daemon
    journal_lines(write_journal, daemon.root / "journal" / "one.journal", "198.51.100.41", 3, 0)
    daemon.start()
    daemon.wait_for(
        lambda: status(daemon, "sshd-journal")["banned"] == ["198.51.100.41"], "the ban"
    )
    assert daemon.cli("set", "sshd-journal", "unbanip", "198.51.100.41").returncode == 0
    time.sleep(3)
    kill_9(daemon)
    time.sleep(1)
    assert status(daemon, "sshd-journal")["banned"] == []
    assert history(daemon, "sshd-journal", "198.51.100.41") == 1
    daemon.stop()


# ---- a hub's list ---------------------------------------------------------------------------


def test_a_hub_feed_unban_is_not_undone_by_a_kill_9_after_it(
    hub: FakeHub, daemon: Running, token_file: Path
) -> None:
    (daemon.etc / "jail.d" / "hub.conf").write_text(
        FEED_JAIL.format(url=hub.url, token=token_file, ignored="192.0.2.250")
    )
    (daemon.etc / "jail.d" / "provya.conf").unlink()
    hub.list("8.8.8.8", "9.9.9.9")
    daemon.start()
    daemon.wait_for(
        lambda: set(status(daemon, "hub-blocklist")["banned"]) == {"8.8.8.8", "9.9.9.9"}, "list"
    )
    assert daemon.cli("set", "hub-blocklist", "unbanip", "8.8.8.8").returncode == 0
    time.sleep(3)
    seen = len(hub.requests)
    kill_9(daemon)
    daemon.wait_for(lambda: len(hub.requests) > seen, "the feed asking again")
    time.sleep(0.5)
    # resumed from the stored cursor: only what changed since, not the whole list again
    assert hub.requests[seen][2].get("since") == ["2"]
    assert status(daemon, "hub-blocklist")["banned"] == ["9.9.9.9"]
    hub.list("1.1.1.1")
    daemon.wait_for(
        lambda: set(status(daemon, "hub-blocklist")["banned"]) == {"1.1.1.1", "9.9.9.9"}, "delta"
    )
    daemon.stop()


def test_a_journal_file_rotated_while_the_daemon_is_down_is_followed(
    daemon: Running,
    write_journal: Callable[[Path, list[dict[str, str | list[str]]]], None],
) -> None:
    journal = daemon.root / "system.journal"
    (daemon.etc / "jail.d" / "provya.conf").write_text(
        JOURNAL_JAIL.replace("journalpath={directory}", f"journalfiles={journal}")
    )
    journal_lines(write_journal, journal, "198.51.100.42", 2, 0)
    daemon.start()
    daemon.wait_for(
        lambda: status(daemon, "sshd-journal")["currently_failed"] == 1, "two failures counted"
    )
    # killed once they are stored: with no position stored, a restart would start afresh
    # from the file now at the path, not from the one renamed meanwhile
    daemon.wait_for(lambda: stored_checkpoint(daemon, "sshd-journal"), "the stored position")
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.communicate(timeout=5)
    journal.rename(journal.with_name("system@0123456789abcdef-0000000000000001-0005f.journal"))
    journal_lines(write_journal, journal, "198.51.100.42", 1, 2)
    daemon.start()
    daemon.wait_for(
        lambda: status(daemon, "sshd-journal")["banned"] == ["198.51.100.42"], "the ban", 15
    )
    # and after a rotation while it runs
    journal.rename(journal.with_name("system@0123456789abcdef-0000000000000002-0005f.journal"))
    journal_lines(write_journal, journal, "198.51.100.43", 3, 10)
    daemon.wait_for(
        lambda: "198.51.100.43" in status(daemon, "sshd-journal")["banned"], "the next ban", 15
    )
    daemon.stop()

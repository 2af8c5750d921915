"""fail2ban-client's output, for the answers the side-by-side test cannot get from fail2ban
1.0.2: fail2ban 1.1's ``stats`` table (the expected text is what fail2ban 1.1's client prints
for the same answer), a permanent ban's ``--with-time`` line, empty lists."""

from __future__ import annotations

import time

from gardien.cli.f2b_output import render, time_text

STATS = {
    "sshd": {"backend": "polling", "failed": [0, 3], "banned": [2, 5]},
    "web-longer-name": {"backend": "pyinotify", "failed": [10, 1000], "banned": [0, 0]},
}


def test_stats_table_in_utf8() -> None:
    assert render(["stats"], STATS, utf8=True).splitlines() == [
        "                 \u2551           \u2551 Filter     \u2551 Actions  ",
        " Jail            \u2551 Backend   \u255f" + "\u2500" * 12 + "\u256b" + "\u2500" * 11,
        "                 \u2551           \u2551 cur \u2502  tot \u2551 cur \u2502 tot",
        "\u2550" * 17
        + "\u256c"
        + "\u2550" * 11
        + "\u256c"
        + "\u2550" * 12
        + "\u256c"
        + "\u2550" * 11,
        " sshd            \u2551 polling   \u2551   0 \u2502    3 \u2551   2 \u2502   5",
        " web-longer-name \u2551 pyinotify \u2551  10 \u2502 1000 \u2551   0 \u2502   0",
        "\u2550" * 17
        + "\u2569"
        + "\u2550" * 11
        + "\u2569"
        + "\u2550" * 12
        + "\u2569"
        + "\u2550" * 11,
    ]


def test_stats_table_in_ascii() -> None:
    one = {"sshd": STATS["sshd"]}
    assert render(["statistics"], one, utf8=False).splitlines() == [
        "          |          | Filter    | Actions  ",
        " Jail     | Backend  |-----------x-----------",
        "          |          | cur | tot | cur | tot",
        "----------x----------x-----------x-----------",
        " sshd     | polling  |   0 |   3 |   2 |   5",
        "---------------------------------------------",
    ]
    assert render(["stats"], {}, utf8=False) == "No jails found."


def test_with_time_lines_and_a_permanent_ban() -> None:
    start = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))
    rows = [["192.0.2.1", start, start + 600], ["2001:db8::1", start, None]]
    assert render(["get", "sshd", "banip", "--with-time"], rows).splitlines() == [
        "192.0.2.1 \t2026-03-01 12:00:00 + 600 = 2026-03-01 12:10:00",
        "2001:db8::1 \t2026-03-01 12:00:00 + -1 = 9999-12-31 23:59:59",
    ]
    assert render(["get", "sshd", "banip", ";"], rows) == "192.0.2.1;2001:db8::1"
    assert time_text(None) == "9999-12-31 23:59:59"


def test_empty_lists_say_so() -> None:
    assert render(["get", "sshd", "logpath"], []) == "No file is currently monitored"
    assert render(["get", "sshd", "ignoreip"], []) == "No IP address/network is ignored"
    assert render(["get", "sshd", "failregex"], []) == "No regular expression is defined"
    assert render(["get", "sshd", "actions"], []) == "No actions for jail sshd"
    assert render(
        ["get", "sshd", "journalmatch"], [["_SYSTEMD_UNIT=sshd.service"], ["_COMM=sshd"]]
    ) == ("Current match filter:\n_SYSTEMD_UNIT=sshd.service + _COMM=sshd")
    assert render(["get", "dbfile"], None) == "Database currently disabled"

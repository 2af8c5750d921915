"""The time bound per line in the daemon: a jail whose filter backtracks without end on the
lines an attacker writes gives up on each line after its step budget (counted missed, shown in
``status`` and the metrics), and the other jails keep banning meanwhile."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.daemon import Running, banned, failure_line

# a back-reference after a nested quantifier: Python's engine spends minutes on each crafted
# line; the linear-time gate cannot rule them out (it does not check back-references)
SLOW = """\
[Definition]
failregex = login failed for ((?:\\w+\\s?)+) from <HOST> \\1$
"""

SLOW_JAIL = """\
[slow]
enabled  = true
filter   = slow
action   = log
logpath  = {log}
findtime = 10m
maxretry = 1
bantime  = 1h
"""


def crafted(index: int) -> str:
    """A line that sends a backtracking engine into minutes of work; every other one is not
    ASCII (a word with an accent is still a word to Python's ``\\w``): those are matched by
    the core too, under the same bound."""
    stamp = time.strftime("%b %d %H:%M:%S")
    words = " ".join(["aaaa"] * 13 + ["aa\u00e9a" if index % 2 else "aaaa"])
    return f"{stamp} host app: login failed for {words} from 192.0.2.1 zz{index:05d}\n"


def test_a_flood_of_crafted_lines_in_one_jail_does_not_stall_the_others(
    daemon: Running, native_core: None, tmp_path: Path
) -> None:
    slow_log = tmp_path / "app.log"
    slow_log.write_text("")
    (daemon.etc / "filter.d").mkdir()
    (daemon.etc / "filter.d" / "slow.conf").write_text(SLOW)
    (daemon.etc / "jail.d" / "slow.conf").write_text(SLOW_JAIL.format(log=slow_log))
    daemon.start()
    try:
        flood = 300
        with slow_log.open("a") as out:
            for index in range(flood):
                out.write(crafted(index))
        # meanwhile, three failures in the other jail: banned as soon as they are read
        started = time.monotonic()
        with daemon.log.open("a") as out:
            for _ in range(3):
                out.write(failure_line("203.0.113.7"))
        daemon.wait_for(lambda: "203.0.113.7" in banned(daemon), "the ban in the other jail")
        assert time.monotonic() - started < 5
        # and one legitimate failure in the flooded jail is still banned, after the flood
        stamp = time.strftime("%b %d %H:%M:%S")
        with slow_log.open("a") as out:
            out.write(f"{stamp} host app: login failed for bob from 198.51.100.4 bob\n")

        def slow_status() -> dict[str, object]:
            result = daemon.cli("status", "--json", "slow")
            return dict(json.loads(result.stdout)) if result.returncode == 0 else {}

        daemon.wait_for(
            lambda: "198.51.100.4" in list(slow_status().get("banned", [])),  # type: ignore[call-overload]
            "the legitimate failure of the flooded jail",
            timeout=30,
        )
        status = slow_status()
        assert status["over_budget"] == flood
        assert status["total_failed"] == 1
        text = daemon.cli("status", "slow").stdout
        assert f"Lines over budget:\t{flood}" in text
    finally:
        output = daemon.stop()
    # said once (rate-limited), not once per line
    assert output.count("took more than its budget") == 1

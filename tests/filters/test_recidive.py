"""The recidive filter on the log the real daemon writes: gardien reads its own bans back, and
a recidive jail bans an address banned twice, without counting its own bans."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.daemon import JAIL, Running
from support.services import failures_found

RECIDIVE = """\
[recidive]
enabled  = true
logpath  = {log}
action   = log
findtime = 1d
maxretry = 2
bantime  = 1w
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path)
    running.etc.mkdir()
    running.log.parent.mkdir()
    running.log.write_text("")
    own = tmp_path / "gardien.log"
    (running.etc / "jail.d").mkdir()
    (running.etc / "jail.d" / "jails.conf").write_text(
        JAIL.format(log=running.log) + "\n" + RECIDIVE.format(log=own)
    )
    (running.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
    yield running
    if running.process is not None:
        running.stop()


def test_a_recidive_jail_reads_the_bans_gardien_logs(daemon: Running, tmp_path: Path) -> None:
    own = tmp_path / "gardien.log"
    daemon.start("--logtarget", str(own))
    again, once = "198.51.100.71", "2001:db8::72"
    for verb, address in (("banip", again), ("unbanip", again), ("banip", again), ("banip", once)):
        result = daemon.cli("set", "asterisk-provya", verb, address)
        assert result.returncode == 0, result.stderr
    daemon.wait_for(lambda: f"[recidive] Ban {again}" in own.read_text(), "the recidive jail's ban")
    daemon.stop()
    text = own.read_text()
    assert f"[asterisk-provya] Ban {once}" in text and f"[recidive] Ban {once}" not in text
    # two bans of one address, one of the other; the recidive jail's own ban is not one
    assert dict(failures_found(own, "recidive")) == {again: 2, once: 1}, text

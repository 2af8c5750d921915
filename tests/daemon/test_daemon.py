"""The real daemon, started as a process on a temporary configuration, driven only through
the command line, as an administrator would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from typing import Any

from support.ci import require
from support.daemon import JAIL, Running, banned, failure_line


def test_seed_article_setup_works_word_for_word(daemon: Running) -> None:
    daemon.start()
    assert daemon.pidfile.read_text().strip().isdigit()
    status = daemon.cli("status").stdout
    assert "Jail list:\tasterisk-provya" in status
    with daemon.log.open("a") as log:
        for _ in range(3):
            log.write(failure_line("203.0.113.61"))
        log.write(failure_line("1.2.3.4") * 3)  # ignored by ignoreip
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.61"], "the ban")
    tree = daemon.cli("status", "asterisk-provya").stdout
    assert "Currently banned:\t1" in tree and "203.0.113.61" in tree
    assert f"File list:\t{daemon.log}" in tree
    assert daemon.cli("get", "asterisk-provya", "bantime").stdout == "21600\n"
    assert daemon.cli("get", "dbpurgeage").stdout.endswith("`- 86400seconds\n")
    assert daemon.cli("set", "asterisk-provya", "banip", "198.51.100.9").returncode == 0
    assert sorted(banned(daemon)) == ["198.51.100.9", "203.0.113.61"]
    assert daemon.cli("set", "asterisk-provya", "unbanip", "198.51.100.9").returncode == 0
    assert banned(daemon) == ["203.0.113.61"]
    assert daemon.cli("reload").returncode == 0
    assert banned(daemon) == ["203.0.113.61"]
    output = daemon.stop()
    assert "Ban 203.0.113.61" in output
    assert not daemon.pidfile.exists()


def test_bad_input_changes_nothing(daemon: Running) -> None:
    daemon.start()
    bad_address = daemon.cli("set", "asterisk-provya", "banip", "203.0.113.5", "not-an-ip")
    assert bad_address.returncode == 1 and "'not-an-ip' is not an IP address" in bad_address.stderr
    ignored = daemon.cli("set", "asterisk-provya", "banip", "1.2.3.4")
    assert ignored.returncode == 1 and "ignored" in ignored.stderr
    unknown = daemon.cli("status", "nojail")
    assert unknown.returncode == 1 and "unknown jail 'nojail'" in unknown.stderr
    assert banned(daemon) == []
    # a broken configuration on reload is refused and the running one stays
    (daemon.etc / "jail.d" / "broken.local").write_text("[asterisk-provya]\nbantime = soon\n")
    refused = daemon.cli("reload")
    assert refused.returncode == 1
    assert "reload refused" in refused.stderr and "broken.local:2" in refused.stderr
    assert daemon.cli("get", "asterisk-provya", "bantime").stdout == "21600\n"
    daemon.stop()


def test_bans_survive_a_kill_9(daemon: Running) -> None:
    daemon.start()
    with daemon.log.open("a") as log:
        log.write(failure_line("203.0.113.77") * 3)
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.77"], "the ban")
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.communicate(timeout=5)
    daemon.start()  # the stale socket and pid file left by the kill are handled
    assert banned(daemon) == ["203.0.113.77"]
    # the lines already read are not counted again: no second ban, same total
    assert '"total_banned": 1' in daemon.cli("status", "--json", "asterisk-provya").stdout
    daemon.stop()


def test_an_action_gardien_cannot_carry_out_stops_the_start(daemon: Running) -> None:
    (daemon.etc / "jail.d" / "provya.conf").write_text(
        JAIL.format(log=daemon.log).replace("action   = log", "action   = shorewall")
    )
    result = daemon.run_until_exit()
    assert result.returncode == 1
    assert "[asterisk-provya]" in result.stderr and "Shorewall firewall manager" in result.stderr
    assert "Traceback" not in result.stderr
    assert not daemon.socket.exists()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line]


def test_a_jail_whose_log_cannot_be_read_is_left_out_and_the_others_run(daemon: Running) -> None:
    unreadable = daemon.root / "log" / "broken"
    unreadable.mkdir()  # a directory where the log should be
    (daemon.etc / "jail.d" / "broken.conf").write_text(
        JAIL.replace("asterisk-provya", "broken").format(log=unreadable)
    )
    daemon.start()
    status = daemon.cli("status")
    assert "Jail list:\tasterisk-provya\n" in status.stdout
    assert "Not started:\tbroken" in status.stdout
    one = daemon.cli("status", "broken")
    assert one.returncode == 1
    assert f"jail 'broken' is not running: cannot read {unreadable}: Is a directory" in one.stderr
    # the other jail bans as usual
    with daemon.log.open("a") as log:
        log.write(failure_line("203.0.113.62") * 3)
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.62"], "the ban in the other jail")
    # fixed, and reloaded: the jail starts
    unreadable.rmdir()
    unreadable.write_text(failure_line("198.51.100.62") * 3)
    assert daemon.cli("reload").returncode == 0
    assert "Jail list:\tasterisk-provya, broken\n" in daemon.cli("status").stdout
    assert "Not started" not in daemon.cli("status").stdout
    daemon.wait_for(
        lambda: "198.51.100.62" in daemon.cli("status", "--json", "broken").stdout, "its ban"
    )
    output = daemon.stop()
    (line,) = error_lines(output)  # one line says what and how to fix it
    assert line.endswith(
        f"[broken] jail not started: cannot read {unreadable}: Is a directory; "
        "point logpath at a log file or set backend = systemd in jail.local"
    )
    assert "Traceback" not in output


def test_a_log_the_daemon_may_not_read_is_one_line_with_the_fix(daemon: Running) -> None:
    require(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv")
    secret = daemon.root / "log" / "auth.log"
    secret.write_text("")
    secret.chmod(0)
    (daemon.etc / "jail.d" / "sshd.conf").write_text(
        f"[sshd-file]\nenabled = true\nfilter = sshd\naction = log\nlogpath = {secret}\n"
    )
    # root without the capabilities that read any file: as a daemon run as another user
    daemon.start(wrap=("setpriv", "--bounding-set=-dac_override,-dac_read_search"))
    assert "Not started:\tsshd-file" in daemon.cli("status").stdout
    output = daemon.stop()
    (line,) = error_lines(output)
    assert line.endswith(
        f"[sshd-file] jail not started: cannot read {secret}: Permission denied; "
        "fix its permissions or set backend = systemd in jail.local"
    )


def test_a_journal_that_cannot_be_opened_leaves_the_jail_out(daemon: Running) -> None:
    missing = daemon.root / "no-such.journal"
    (daemon.etc / "jail.d" / "journal.conf").write_text(
        "[sshd-journal]\nenabled = true\nfilter = sshd\naction = log\n"
        f"backend = systemd[journalfiles={missing}]\n"
    )
    daemon.start()
    status = daemon.cli("status", "--json")
    assert status.returncode == 0
    import json

    result = json.loads(status.stdout)
    assert result["jails"] == ["asterisk-provya"]
    assert list(result["not_started"]) == ["sshd-journal"]
    assert f"cannot open journal files {missing}" in result["not_started"]["sshd-journal"]
    output = daemon.stop()
    (line,) = error_lines(output)
    assert f"[sshd-journal] jail not started: cannot open journal files {missing}" in line
    assert line.endswith("; check journalfiles/journalpath of its backend")


def test_a_configuration_mistake_in_a_source_still_stops_the_start(daemon: Running) -> None:
    (daemon.etc / "jail.d" / "journal.conf").write_text(
        "[sshd-journal]\nenabled = true\nfilter = sshd\naction = log\n"
        "backend = systemd\njournalmatch = sshd\n"
    )
    result = daemon.run_until_exit()
    assert result.returncode == 1
    assert "[sshd-journal] journalmatch: 'sshd' is not a FIELD=value term" in result.stderr
    assert "Traceback" not in result.stderr and not daemon.socket.exists()
    check = daemon.cli("config", "check")  # config check says the same
    assert check.returncode == 1
    assert "[sshd-journal] journalmatch: 'sshd' is not a FIELD=value term" in check.stderr


def test_host_addresses_and_resolver() -> None:
    from gardien.daemon.host import own_addresses, resolve

    assert "127.0.0.1" in own_addresses()
    assert "127.0.0.1" in resolve("localhost")
    assert resolve("no-such-host.invalid") == []


def test_sigterm_stops_and_sighup_reloads(daemon: Running) -> None:
    daemon.start()
    assert daemon.process is not None
    (daemon.etc / "jail.d" / "more.local").write_text("[asterisk-provya]\nbantime = 2h\n")
    os.kill(daemon.process.pid, signal.SIGHUP)
    daemon.wait_for(
        lambda: daemon.cli("get", "asterisk-provya", "bantime").stdout == "7200\n", "reload"
    )
    os.kill(daemon.process.pid, signal.SIGTERM)
    output, _ = daemon.process.communicate(timeout=15)
    daemon.process = None
    assert "gardien stopped" in output
    assert not daemon.socket.exists() and not daemon.pidfile.exists()


def test_glob_logpath_follows_files_created_later(daemon: Running) -> None:
    logs = daemon.root / "vhosts"
    logs.mkdir()
    (daemon.etc / "jail.d" / "provya.conf").write_text(JAIL.format(log=logs / "*.log"))
    daemon.start()
    (logs / "second.log").write_text(failure_line("198.51.100.33") * 3)
    daemon.wait_for(lambda: banned(daemon) == ["198.51.100.33"], "the ban from a new file")
    daemon.stop()


def test_systemd_journal_backend(daemon: Running, write_journal: Any) -> None:
    from support.journal import T0, sshd

    journal = daemon.root / "system.journal"
    now = time.time() - T0
    write_journal(
        journal,
        [
            sshd(
                now - 30 + i,
                f"Failed password for root from 198.51.100.40 port {4000 + i} ssh2",
                pid=str(900 + i),
            )
            for i in range(3)
        ],
    )
    (daemon.etc / "jail.d" / "provya.conf").write_text(
        "[sshd-journal]\nenabled = true\nfilter = sshd\naction = log\n"
        f"backend = systemd[journalfiles={journal}]\nmaxretry = 3\n"
    )
    daemon.start()
    daemon.wait_for(
        lambda: "198.51.100.40" in daemon.cli("status", "--json", "sshd-journal").stdout,
        "the ban from the journal",
    )
    daemon.stop()
    # resumed from the saved cursor: the same entries do not ban twice after a restart
    daemon.start()
    status = daemon.cli("status", "--json", "sshd-journal").stdout
    assert '"total_banned": 1' in status
    daemon.stop()


def test_unwritable_pid_file_is_a_clear_error(daemon: Running) -> None:
    blocker = daemon.root / "not-a-dir"
    blocker.write_text("")
    result = daemon.run_until_exit("--pidfile", str(blocker / "gardien.pid"))
    assert result.returncode == 1
    assert "cannot write the pid file" in result.stderr and "Traceback" not in result.stderr
    assert not daemon.socket.exists()


def test_logtimezone_decides_which_failures_are_recent(daemon: Running) -> None:
    # lines stamped in UTC without a zone, a daemon whose local time is UTC+14: only the jail
    # that says logtimezone = UTC sees them as recent; the other takes them for 14 hours old
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    line = (
        f'[{stamp}] NOTICE[2104] chan_sip.c: Registration from \'"1001" '
        "<sip:1001@192.0.2.10>' failed for '203.0.113.62:5060' - Wrong password\n"
    )
    utc_log = daemon.log.parent / "utc"
    utc_log.write_text("")
    (daemon.etc / "jail.d" / "utc.conf").write_text(
        JAIL.replace("asterisk-provya", "provya-utc").format(log=utc_log) + "logtimezone = UTC\n"
    )
    daemon.start(env={"TZ": "Etc/GMT-14"})
    for log in (daemon.log, utc_log):
        with log.open("a") as handle:
            handle.write(line * 3)

    def banned_in(jail: str) -> list[str]:
        out = daemon.cli("status", "--json", jail)
        return list(json.loads(out.stdout)["banned"])

    daemon.wait_for(lambda: banned_in("provya-utc") == ["203.0.113.62"], "the ban")
    assert banned_in("asterisk-provya") == []
    daemon.stop()

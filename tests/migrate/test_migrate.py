"""``gardien migrate``: a real fail2ban (Debian's 1.0.2, its database written by its own code,
its server running in a network namespace) moved to gardien with every ban, while a banned
client probes the server the whole time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gardien.actions import managers
from gardien.cli import cli
from gardien.migrate import build_plan, read_fail2ban_db
from gardien.store import SQLiteBanStore
from support.fail2ban_lab import (
    JAILS,
    Fail2ban,
    make_fail2ban,
    make_gardien_etc,
    sample_bans,
    write_bans,
)
from support.netns import Lab

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ACTIVE = 1000


def _migrate(
    lab: Lab, etc: Path, fail2ban: Fail2ban, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``gardien -c ETC migrate --from CONF`` run as an administrator would, in the server's
    namespace."""
    return lab.run(
        lab.server,
        sys.executable,
        "-m",
        "gardien",
        "-c",
        str(etc),
        "migrate",
        "--from",
        str(fail2ban.conf),
        *extra,
        check=False,
    )


def _kill_gardien(root: Path, how: int = signal.SIGTERM) -> None:
    """Stop the daemon migrate started (its pid file names it) and wait until it is gone."""
    pidfile = root / "gardien.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, how)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:  # gone, or a zombie (when the test started it: its caller reaps it)
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state == "Z":
                return
            time.sleep(0.1)


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[tuple[Lab, Fail2ban, Path, float]]:
    """fail2ban running in a lab's server namespace with 1,000 bans it restored itself, and
    gardien's package configuration beside it."""
    with Lab.create(clients=2) as lab:
        fail2ban = make_fail2ban(tmp_path)
        etc = make_gardien_etc(tmp_path)
        now = time.time()
        attacker = str(lab.clients[0].ipv4)
        write_bans(fail2ban.db, sample_bans(now, ACTIVE, extra=[attacker]))
        try:
            fail2ban.start(lab.server)
            counts = read_fail2ban_db(fail2ban.db, time.time()).active_by_jail()
            fail2ban.wait_restored(lab.server, counts, within=600)
            yield lab, fail2ban, etc, now
        finally:
            _kill_gardien(tmp_path)
            fail2ban.kill()


def _probe_loop(lab: Lab, stop: threading.Event, results: list[str]) -> None:
    client = lab.clients[0]
    while not stop.is_set():
        results.append(lab.probe(client, "tcp", 22, 4, timeout=0.3))


def _kernel_timeouts(lab: Lab) -> dict[str, float]:
    """Every address in gardien's nftables sets with the seconds its ban has left."""
    listing = json.loads(
        lab.run(lab.server, "nft", "-j", "list", "table", "inet", "gardien").stdout
    )
    found: dict[str, float] = {}
    for item in listing["nftables"]:
        for element in item.get("set", {}).get("elem", ()):
            if isinstance(element, dict):
                inner = element["elem"]
                found[str(inner["val"])] = float(inner.get("expires", 0))
            else:
                found[str(element)] = float("inf")
    return found


def test_migration_keeps_every_ban_and_never_lets_a_banned_address_through(
    installed: tuple[Lab, Fail2ban, Path, float],
) -> None:
    lab, fail2ban, etc, _ = installed
    root = fail2ban.root
    expected = read_fail2ban_db(fail2ban.db, time.time())
    assert len(expected.active) == ACTIVE
    assert "f2b-sshd" in lab.run(lab.server, "iptables", "-S").stdout
    attacker = lab.clients[0]
    assert lab.probe(attacker, "tcp", 22, 4) == "refused"  # fail2ban rejects it
    assert lab.probe(lab.clients[1], "tcp", 22, 4, timeout=3) == "open"

    # a counter after every filter chain: a packet of the attacker that passed both firewalls
    # reaches it (priority 100 runs after fail2ban's filter chains, at 0, and gardien's, at -1)
    lab.count_past_filters(attacker, "tcp", 22)
    stop = threading.Event()
    results: list[str] = []
    prober = threading.Thread(target=_probe_loop, args=(lab, stop, results))
    prober.start()
    try:
        time.sleep(0.5)
        result = _migrate(lab, etc, fail2ban)
        time.sleep(0.5)
    finally:
        stop.set()
        prober.join()
    assert result.returncode == 0, result.stderr + result.stdout
    print(result.stdout, f"{len(results)} probes")
    # no packet of the banned address got through at any moment of the switch
    assert len(results) > 20
    assert "open" not in results, f"{results.count('open')} of {len(results)} probes got through"
    assert lab.packets_past_filters() == 0, "packets of the banned address reached the server"
    assert results.count("refused") > 20

    # fail2ban is stopped and its chains are gone
    assert fail2ban.process is not None
    fail2ban.process.wait(30)
    ruleset = lab.run(lab.server, "iptables", "-S").stdout
    assert "f2b-" not in ruleset
    assert "f2b-" not in lab.run(lab.server, "nft", "list", "ruleset").stdout

    # every ban is in gardien's store, with its end, ban count and history
    now = time.time()
    with SQLiteBanStore(root / "gardien.sqlite3") as store:
        stored = {(b.jail, str(b.address)): b for b in store.active_bans(now)}
        assert len(stored) == ACTIVE
        for ban in expected.active:
            mine = stored[(ban.jail, str(ban.address))]
            assert (mine.start, mine.end, mine.count) == (ban.start, ban.end, ban.count)
        thrice = next(b for b in expected.active if b.count == 3)
        assert store.ban_count(thrice.address, thrice.jail) == 3
        assert len(list(store.history())) == len(expected.history)

    # and in the kernel, with its remaining time
    kernel = _kernel_timeouts(lab)
    for ban in expected.active:
        left = kernel[str(ban.address)]
        if ban.end is None:
            assert left == float("inf")
        else:
            assert abs(left - (ban.end - now)) <= 5, (ban, left)
    assert lab.probe(lab.clients[1], "tcp", 22, 4, timeout=3) == "open"

    # the plain client commands talk to the migrated daemon
    status = lab.run(lab.server, sys.executable, "-m", "gardien", "-c", str(etc), "status")
    for jail in JAILS:
        assert jail in status.stdout
    banned = lab.run(
        lab.server, sys.executable, "-m", "gardien", "-c", str(etc), "banned", str(attacker.ipv4)
    )
    assert "sshd" in banned.stdout

    # the migrated configuration passes gardien's check
    check = lab.run(
        lab.server, sys.executable, "-m", "gardien", "-c", str(etc), "config", "check", check=False
    )
    assert check.returncode == 0, check.stderr
    generated = (etc / "jail.d" / "fail2ban-migrated.local").read_text()
    assert generated.startswith("# Generated by gardien migrate")
    assert str(fail2ban.conf) in generated.splitlines()[0]
    assert (etc / "filter.d" / "sshd.local").read_text() == (
        fail2ban.conf / "filter.d" / "sshd.local"
    ).read_text()
    assert (etc / "filter.d" / "nginx-http-auth.conf").exists()  # gardien's own, as shipped
    daemon_local = (etc / "gardien.d" / "fail2ban-migrated.local").read_text()
    assert "dbpurgeage = 2592000" in daemon_local

    # a second run changes nothing
    files = {p: p.stat().st_mtime_ns for p in etc.rglob("*") if p.is_file()}
    again = _migrate(lab, etc, fail2ban)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in etc.rglob("*") if p.is_file()} == files
    with SQLiteBanStore(root / "gardien.sqlite3") as store:
        assert len(store.active_bans(time.time())) == ACTIVE
        assert len(list(store.history())) == len(expected.history)

    # gardien killed, its table left in the kernel: migrate starts it again, and its start
    # (chains rewritten and sets refilled, each in one transaction) lets nothing through
    _kill_gardien(root, signal.SIGKILL)
    stop = threading.Event()
    results = []
    prober = threading.Thread(target=_probe_loop, args=(lab, stop, results))
    prober.start()
    try:
        restarted = _migrate(lab, etc, fail2ban)
    finally:
        stop.set()
        prober.join()
    assert restarted.returncode == 0, restarted.stderr + restarted.stdout
    assert "started gardien" in restarted.stdout
    assert "active ban(s) and" not in restarted.stdout  # nothing to import
    assert f"with the {ACTIVE} active ban(s) of its store" in restarted.stdout
    assert results.count("refused") > 10
    assert lab.packets_past_filters() == 0

    # the counter above is live: once gardien lifts the ban, the attacker's packets reach it
    lab.run(
        lab.server,
        sys.executable,
        "-m",
        "gardien",
        "-c",
        str(etc),
        "set",
        "sshd",
        "unbanip",
        str(attacker.ipv4),
    )
    assert lab.probe(attacker, "tcp", 22, 4, timeout=3) == "open"
    assert lab.packets_past_filters() > 0


def test_dry_run_changes_nothing(installed: tuple[Lab, Fail2ban, Path, float]) -> None:
    lab, fail2ban, etc, _ = installed
    before = {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()}
    ruleset = lab.run(lab.server, "iptables", "-S").stdout
    result = _migrate(lab, etc, fail2ban, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing changed" in result.stdout
    assert "sshd: " in result.stdout and "to import" in result.stdout
    assert "stop fail2ban" in result.stdout
    assert {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()} == before
    assert not (fail2ban.root / "gardien.sqlite3").exists()
    assert lab.run(lab.server, "iptables", "-S").stdout == ruleset
    assert "pong" in fail2ban.client("ping", namespace=lab.server)


# ---- broken input: one clear error, nothing changed (no namespace needed) ----------------


@pytest.fixture
def offline(tmp_path: Path) -> tuple[Fail2ban, Path]:
    fail2ban = make_fail2ban(tmp_path)
    etc = make_gardien_etc(tmp_path)
    write_bans(fail2ban.db, sample_bans(time.time(), 20))
    return fail2ban, etc


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_broken_configuration_names_file_and_line(offline: tuple[Fail2ban, Path]) -> None:
    fail2ban, etc = offline
    jail_local = fail2ban.conf / "jail.d" / "tuning.local"
    jail_local.write_text("[sshd]\nfindtime = 1h\nmaxretry = many\n")
    line = 3
    before = _snapshot(fail2ban.root)
    result = CliRunner().invoke(
        cli, ["-c", str(etc), "migrate", "--from", str(fail2ban.conf), "--dry-run"]
    )
    assert result.exit_code == 1
    assert f"{jail_local}:{line}: [sshd] maxretry: expected a whole number" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["-c", str(etc), "migrate", "--from", str(fail2ban.conf)])
    assert result.exit_code == 1
    assert _snapshot(fail2ban.root) == before


def test_broken_database_is_one_clear_error(offline: tuple[Fail2ban, Path]) -> None:
    fail2ban, etc = offline
    fail2ban.db.write_bytes(b"this is not a database" * 100)
    before = _snapshot(fail2ban.root)
    result = CliRunner().invoke(cli, ["-c", str(etc), "migrate", "--from", str(fail2ban.conf)])
    assert result.exit_code == 1
    assert f"gardien: error: {fail2ban.db}: cannot read fail2ban's database" in result.output
    assert _snapshot(fail2ban.root) == before


def test_a_database_without_fail2ban_tables_is_refused(offline: tuple[Fail2ban, Path]) -> None:
    fail2ban, etc = offline
    fail2ban.db.unlink()
    subprocess.run(["sqlite3", str(fail2ban.db), "CREATE TABLE other(x);"], check=True)
    result = CliRunner().invoke(cli, ["-c", str(etc), "migrate", "--from", str(fail2ban.conf)])
    assert result.exit_code == 1
    assert "not fail2ban's database without table(s) bans, bips" in result.output
    assert not (etc / "jail.d" / "fail2ban-migrated.local").exists()


def test_not_a_fail2ban_directory(tmp_path: Path, offline: tuple[Fail2ban, Path]) -> None:
    _, etc = offline
    result = CliRunner().invoke(cli, ["-c", str(etc), "migrate", "--from", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "not a fail2ban configuration directory" in result.output


def test_a_file_of_the_admin_is_never_overwritten(offline: tuple[Fail2ban, Path]) -> None:
    fail2ban, etc = offline
    mine = etc / "jail.d" / "fail2ban-migrated.local"
    mine.parent.mkdir()
    mine.write_text("[sshd]\nenabled = true\n")
    result = CliRunner().invoke(cli, ["-c", str(etc), "migrate", "--from", str(fail2ban.conf)])
    assert result.exit_code == 1
    assert "was not written by gardien migrate" in result.output
    assert mine.read_text() == "[sshd]\nenabled = true\n"


def test_what_cannot_be_carried_over_is_listed(offline: tuple[Fail2ban, Path]) -> None:
    fail2ban, etc = offline
    (fail2ban.conf / "jail.d" / "nginx.local").write_text(
        "[nginx-http-auth]\naction = iptables-multiport[port=http]\n"
        "         abuseipdb[abuseipdb_apikey=x]\n"
    )
    plan = build_plan(fail2ban.conf, etc)
    notes = [str(note) for note in plan.not_carried]
    assert any("[nginx-http-auth] action abuseipdb" in note for note in notes), notes
    assert any("fail2ban.conf socket, pidfile and dbfile" in note for note in notes)
    jails = plan.writes[0].content.decode()
    assert "action = nftables-multiport[port=http]\n" in jails
    # gardien's own jail.conf enables nothing fail2ban did not: the plan says so
    assert plan.translation.jails == JAILS


def test_chains_left_by_a_killed_fail2ban_are_removed(
    installed: tuple[Lab, Fail2ban, Path, float],
) -> None:
    lab, fail2ban, etc, _ = installed
    # fail2ban killed: its chains stay; and what its other actions leave (an nftables table,
    # an ipset) is there too
    assert fail2ban.process is not None
    fail2ban.process.send_signal(signal.SIGKILL)
    fail2ban.process.wait(30)
    lab.run(lab.server, "nft", "add", "table", "inet", "f2b-table")
    lab.run(lab.server, "ipset", "create", "f2b-nginx", "hash:ip")
    assert "f2b-sshd" in lab.run(lab.server, "iptables", "-S").stdout
    result = _migrate(lab, etc, fail2ban)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "stop fail2ban" not in result.stdout  # it is not running
    assert "removed fail2ban's" in result.stdout
    assert "f2b-" not in lab.run(lab.server, "iptables", "-S").stdout
    assert "f2b-" not in lab.run(lab.server, "nft", "list", "tables").stdout
    assert "f2b-" not in lab.run(lab.server, "ipset", "list", "-n").stdout
    # the chains stopped rejecting the attacker only once gardien did
    assert lab.probe(lab.clients[0], "tcp", 22, 4) == "refused"
    assert lab.probe(lab.clients[1], "tcp", 22, 4, timeout=3) == "open"


def test_a_gardien_already_running_is_reloaded_with_the_bans(
    installed: tuple[Lab, Fail2ban, Path, float],
) -> None:
    """As after installing gardien's package, which starts it with its own jails."""
    lab, fail2ban, etc, _ = installed
    root = fail2ban.root
    argv = ["ip", "netns", "exec", lab.server, sys.executable, "-m", "gardien", "-c", str(etc)]
    with (root / "early.log").open("ab") as output:
        daemon = subprocess.Popen(
            [*argv, "run"], stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _reloaded_with_the_bans(lab, fail2ban, etc)
    finally:
        _kill_gardien(root)
        daemon.wait(30)


def _reloaded_with_the_bans(lab: Lab, fail2ban: Fail2ban, etc: Path) -> None:
    root = fail2ban.root
    deadline = time.monotonic() + 60
    while not (root / "gardien.pid").exists():
        assert time.monotonic() < deadline, (root / "early.log").read_text()
        time.sleep(0.1)
    pid = (root / "gardien.pid").read_text()
    attacker = lab.clients[0]
    lab.count_past_filters(attacker, "tcp", 22)
    stop = threading.Event()
    results: list[str] = []
    prober = threading.Thread(target=_probe_loop, args=(lab, stop, results))
    prober.start()
    try:
        result = _migrate(lab, etc, fail2ban)
    finally:
        stop.set()
        prober.join()
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"reloaded the running gardien with the {ACTIVE} active ban(s)" in result.stdout
    assert (root / "gardien.pid").read_text() == pid  # the same daemon
    assert lab.packets_past_filters() == 0 and results.count("refused") > 10
    kernel = _kernel_timeouts(lab)
    expected = read_fail2ban_db(fail2ban.db, time.time())
    assert {str(ban.address) for ban in expected.active} <= set(kernel)
    assert "f2b-" not in lab.run(lab.server, "iptables", "-S").stdout


def test_a_changed_filter_gardien_ships_is_copied_under_its_own_name(
    offline: tuple[Fail2ban, Path],
) -> None:
    fail2ban, etc = offline
    own = fail2ban.conf / "filter.d" / "sshd.conf"
    own.write_text(own.read_text() + "\n# changed by the admin\n")
    plan = build_plan(fail2ban.conf, etc)
    written = {write.path: write.content for write in plan.writes}
    assert written[etc / "filter.d" / "sshd-fail2ban.conf"] == own.read_bytes()
    local = fail2ban.conf / "filter.d" / "sshd.local"
    assert written[etc / "filter.d" / "sshd-fail2ban.local"] == local.read_bytes()
    assert etc / "filter.d" / "sshd.conf" not in written  # gardien's conffile is not touched
    jails = written[etc / "jail.d" / "fail2ban-migrated.local"].decode()
    assert "filter = sshd-fail2ban[mode=aggressive]" in jails


def test_firewall_managers_and_permissions(offline: tuple[Fail2ban, Path]) -> None:
    fail2ban, etc = offline
    (fail2ban.conf / "jail.d" / "managers.local").write_text(
        "[nginx-http-auth]\n"
        "action = ufw[application=nginx]\n"
        "         firewallcmd-ipset[port=http, protocol=tcp]\n"
        "         iptables-multiport[port=http, blocktype=RETURN]\n"
    )
    plan = build_plan(fail2ban.conf, etc)
    jails = plan.writes[0].content.decode()
    section = jails[jails.index("[nginx-http-auth]") :].split("\n\n")[0]
    assert "action = nftables-allports[protocol=all]\n" in section
    assert "    nftables-multiport[port=http, protocol=tcp]\n" in section
    notes = "\n".join(str(note) for note in plan.not_carried)
    assert "application=nginx: no such profile in /etc/ufw/applications.d" in notes
    assert "blocktype RETURN turns a ban into a permission" in notes


def test_a_ufw_application_keeps_its_profiles_ports(
    offline: tuple[Fail2ban, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail2ban, etc = offline
    profiles = tmp_path / "applications.d"
    profiles.mkdir()
    (profiles / "nginx").write_text("[Nginx Full]\ntitle=x\nports=80,443/tcp\n")
    monkeypatch.setattr(managers, "UFW_APPLICATIONS", profiles)
    (fail2ban.conf / "jail.d" / "managers.local").write_text(
        "[nginx-http-auth]\naction = ufw[application=Nginx Full, blocktype=deny]\n"
    )
    plan = build_plan(fail2ban.conf, etc)
    jails = plan.writes[0].content.decode()
    section = jails[jails.index("[nginx-http-auth]") :].split("\n\n")[0]
    assert 'action = nftables-multiport[port="80,443", protocol=tcp, blocktype=DROP]\n' in section
    assert "application=" not in "\n".join(str(note) for note in plan.not_carried)

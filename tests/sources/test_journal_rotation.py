"""The journal source across rotation, with a real systemd-journald: given journal files
(``journalfiles=``), a journal directory (``journalpath=``) and the system journal go on after
``journalctl --rotate`` and after journald rotates a full file, reading every entry once, and a
source reopened from a cursor saved before a rotation misses nothing either.

journald runs as root in a mount namespace of its own (``unshare --mount``), on a tmpfs
``/run`` with ``/run/systemd/journal`` and ``/var/log/journal`` bound to temporary directories
and its own ``journald.conf``: the host's journal, if any, is not touched. Entries are sent to
its native socket (what ``sd_journal_send`` does) from the test, which reads the journal files
where they are; ``journalctl`` runs inside the namespace through ``nsenter``.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gardien.sources.journal import REPLACED_CHECK_SECONDS, JournalSource
from gardien.sources.journalfiles import journal_order, latest
from support.ci import require
from support.daemon import Running
from support.journal import SSHD, Writer, sshd

pytestmark = pytest.mark.usefixtures("journal_reader")

JOURNALD = "/lib/systemd/systemd-journald"
IDENTIFIER = "gardien-rotation"
MATCH = f"SYSLOG_IDENTIFIER={IDENTIFIER}"
SETTINGS = """\
[Journal]
Storage=persistent
Compress=no
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
RateLimitBurst=0
SystemMaxFileSize=512K
SystemMaxUse=256M
SystemKeepFree=1M
"""
# journald's smallest file is 512 KiB, SystemMaxFileSize or not


class Journald:
    """One private systemd-journald (see the module's docstring); ``root`` holds its
    directories and its output."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = root / "run"  # its /run/systemd/journal: sockets
        self.var = root / "var"  # its /var/log/journal
        self.machine_id = Path("/etc/machine-id").read_text().strip()
        self.process: subprocess.Popen[bytes] | None = None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def directory(self) -> Path:
        """Where it writes the system journal: what ``journalpath`` names."""
        return self.var / self.machine_id

    @property
    def system_journal(self) -> Path:
        """The file it writes to: what ``journalfiles`` names."""
        return self.directory / "system.journal"

    def start(self) -> None:
        self.run.mkdir()
        self.var.mkdir()
        # journald writes to /var at once, not to /run until asked to flush
        (self.run / "flushed").touch()
        settings = self.root / "journald.conf"
        settings.write_text(SETTINGS)
        script = "\n".join(
            [
                "set -e",
                "mount -t tmpfs tmpfs /run",
                "mkdir -p /run/systemd/journal /run/log/journal",
                'mount --bind "$1" /run/systemd/journal',
                "[ -d /var/log/journal ] || mount -t tmpfs tmpfs /var/log",
                "mkdir -p /var/log/journal",
                'mount --bind "$2" /var/log/journal',
                'mount --bind "$3" /etc/systemd/journald.conf',
                "[ ! -d /etc/systemd/journald.conf.d ] || "
                "mount -t tmpfs tmpfs /etc/systemd/journald.conf.d",
                f"exec {JOURNALD}",
            ]
        )
        with (self.root / "journald.out").open("wb") as output:
            self.process = subprocess.Popen(
                [
                    *("unshare", "--mount", "--propagation", "private", "--"),
                    *("sh", "-c", script, "sh", str(self.run), str(self.var), str(settings)),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                # its own messages to its output, not to the kernel's log
                env={**os.environ, "SYSTEMD_LOG_TARGET": "console"},
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"systemd-journald exited: {self.output()}")
            started = (self.run / "socket").exists() and self.system_journal.exists()
            if started and self.journalctl("--sync", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"systemd-journald did not start: {self.output()}")

    def stop(self) -> None:
        self._socket.close()
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def output(self) -> str:
        return (self.root / "journald.out").read_text(errors="replace")

    def inside(
        self, *argv: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in journald's mount namespace."""
        assert self.process is not None
        return subprocess.run(
            ["nsenter", "--target", str(self.process.pid), "--mount", "--", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
            input=input,
        )

    def journalctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.inside("journalctl", *args, check=check)

    def rotate(self) -> None:
        """``journalctl --rotate``: journald archives its files and starts new ones."""
        self.journalctl("--rotate")

    def sync(self) -> None:
        """Return once journald has written every entry sent before."""
        self.journalctl("--sync")

    def send(self, *messages: str, identifier: str = IDENTIFIER, **fields: str) -> None:
        """One entry per message, in the native protocol (``FIELD=value`` lines)."""
        extra = "".join(f"{name}={value}\n" for name, value in fields.items())
        for message in messages:
            datagram = f"MESSAGE={message}\nSYSLOG_IDENTIFIER={identifier}\n{extra}"
            self._socket.sendto(datagram.encode(), str(self.run / "socket"))

    def send_as(self, uid: int, message: str) -> None:
        """One entry from a process of user ``uid`` (``logger --journald``): journald writes
        it to ``user-UID.journal``."""
        self.inside(
            *("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"),
            *("logger", "--journald"),
            input=f"MESSAGE={message}\nSYSLOG_IDENTIFIER={IDENTIFIER}\n",
        )

    def archives(self, name: str = "system") -> list[str]:
        """The files journald archived (``system@...journal``)."""
        return sorted(path.name for path in self.directory.glob(f"{name}@*.journal"))


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[Journald]:
    require(os.geteuid() == 0, "a private systemd-journald needs root")
    require(os.access(JOURNALD, os.X_OK), f"{JOURNALD} is missing (apt-get install systemd)")
    for tool in ("unshare", "nsenter", "journalctl"):
        require(shutil.which(tool) is not None, f"{tool} is missing")
    running = Journald(tmp_path / "journald")
    running.root.mkdir()
    running.start()
    try:
        yield running
    finally:
        running.stop()


def messages(source: JournalSource, max_entries: int | None = None) -> list[str]:
    return [entry.line.partition(": ")[2] for entry in source.read_entries(max_entries)]


def follow(source: JournalSource, count: int, timeout: float = 30) -> list[str]:
    """Read as a daemon does (read, wait, read) until ``count`` entries came, or ``timeout``."""
    read: list[str] = []
    deadline = time.monotonic() + timeout
    while len(read) < count and time.monotonic() < deadline:
        found = messages(source, 100)
        read += found
        if not found:
            source.wait(0.5)
    return read


def open_source(journald: Journald, kind: str, cursor: str | None = None) -> JournalSource:
    if kind == "journalfiles":
        return JournalSource([MATCH], files=[str(journald.system_journal)], cursor=cursor)
    return JournalSource([MATCH], directory=str(journald.directory), cursor=cursor)


KINDS = ["journalfiles", "journalpath"]


@pytest.mark.parametrize("kind", KINDS)
def test_entries_after_journalctl_rotate_are_read(journald: Journald, kind: str) -> None:
    journald.send("old")
    journald.sync()
    with open_source(journald, kind) as source:
        journald.send("before 0", "before 1", "before 2")
        journald.sync()
        assert follow(source, 3) == ["before 0", "before 1", "before 2"]
        for rotation in range(2):
            journald.rotate()
            assert len(journald.archives()) == rotation + 1
            journald.send(f"after {rotation}.0", f"after {rotation}.1")
            journald.sync()
            assert follow(source, 2) == [f"after {rotation}.0", f"after {rotation}.1"]
        assert messages(source) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_rotation_with_nothing_read_since_the_start_is_followed(
    journald: Journald, kind: str
) -> None:
    """No entry read yet (no cursor, no entry of the match in the journal): the new file is
    still read from its first entry."""
    with open_source(journald, kind) as source:
        assert source.cursor() is None
        journald.rotate()
        journald.send("first")
        journald.sync()
        assert follow(source, 1) == ["first"]


@pytest.mark.parametrize("kind", KINDS)
def test_entries_sent_while_journald_rotates_are_read_once_in_order(
    journald: Journald, kind: str
) -> None:
    count, rotations = 400, 8
    expected = [f"entry {n}" for n in range(count)]

    def log() -> None:
        for n in range(count):
            journald.send(expected[n])
            if n % (count // rotations) == count // rotations // 2:
                journald.rotate()  # not synced: entries come during the rotation
        journald.sync()

    with open_source(journald, kind) as source:
        logger = threading.Thread(target=log)
        logger.start()
        try:
            read = follow(source, count)
        finally:
            logger.join()
        assert read == expected
        assert messages(source) == []
    assert len(journald.archives()) == rotations


def test_entries_across_journalds_own_rotation_of_a_full_file_are_read(
    journald: Journald,
) -> None:
    """journald archives system.journal itself once it reaches SystemMaxFileSize."""
    count = 2500  # 1 KiB each: five 512 KiB files
    expected = [f"entry {n} {os.urandom(500).hex()}" for n in range(count)]

    def log() -> None:
        for message in expected:
            journald.send(message)
        journald.sync()

    with open_source(journald, "journalfiles") as source:
        logger = threading.Thread(target=log)
        logger.start()
        try:
            read = follow(source, count, timeout=60)
        finally:
            logger.join()
        assert len(read) == len(expected)
        assert read == expected
        assert messages(source) == []
    assert len(journald.archives()) >= 3


@pytest.mark.parametrize("kind", KINDS)
def test_a_source_reopened_from_a_cursor_saved_before_rotations_misses_nothing(
    journald: Journald, kind: str
) -> None:
    """A daemon restart across rotations: the cursor's entry is in an archived file, entries
    came after it in that file and in others archived since."""
    with open_source(journald, kind) as source:
        journald.send("read 0", "read 1")
        journald.sync()
        assert follow(source, 2) == ["read 0", "read 1"]
        saved = source.cursor()
    assert saved is not None
    journald.send("stopped 0")
    journald.sync()
    journald.rotate()
    journald.send("stopped 1")
    journald.sync()
    journald.rotate()
    journald.send("stopped 2")
    journald.sync()
    assert len(journald.archives()) == 2
    with open_source(journald, kind, cursor=saved) as source:
        assert follow(source, 3) == ["stopped 0", "stopped 1", "stopped 2"]
        saved = source.cursor()
        journald.rotate()
        journald.send("running")
        journald.sync()
        assert follow(source, 1) == ["running"]
        assert messages(source) == []
    # the cursor of an entry that is now in the newest archive, nothing after it
    with open_source(journald, kind, cursor=saved) as source:
        assert follow(source, 1) == ["running"]
        assert messages(source) == []


def test_a_source_reopened_from_a_cursor_in_the_current_file_reads_no_archive_twice(
    journald: Journald,
) -> None:
    journald.send("archived")
    journald.sync()
    journald.rotate()
    with open_source(journald, "journalfiles") as source:
        journald.send("current 0", "current 1")
        journald.sync()
        assert follow(source, 2) == ["current 0", "current 1"]
        saved = source.cursor()
    journald.send("later")
    journald.sync()
    with open_source(journald, "journalfiles", cursor=saved) as source:
        assert follow(source, 1) == ["later"]
        assert messages(source) == []


# several given files


def test_several_given_files_are_followed_across_rotation_in_journal_order(
    journald: Journald,
) -> None:
    """journalfiles="system.journal user-1000.journal": both rotate at once."""
    journald.send_as(1000, "user 0")
    journald.sync()
    user = journald.directory / "user-1000.journal"
    assert user.exists()
    files = [str(journald.system_journal), str(user)]
    expected: list[str] = []

    def log(round: int) -> None:
        for n in range(2):
            journald.send(f"system {round}.{n}")
            journald.send_as(1000, f"user {round}.{n}")
            expected.extend([f"system {round}.{n}", f"user {round}.{n}"])
        journald.sync()

    with JournalSource([MATCH], files=files) as source:
        log(0)
        assert follow(source, 4) == expected
        saved = source.cursor()
        for round in (1, 2):
            journald.rotate()
            log(round)
            assert follow(source, 4) == expected[-4:]
        assert messages(source) == []
    assert len(journald.archives("user-1000")) == 2
    journald.rotate()
    log(3)
    with JournalSource([MATCH], files=files, cursor=saved) as source:
        assert follow(source, 12) == expected[4:]


def test_several_given_files_with_long_paths_are_read_in_journal_order(
    tmp_path: Path, write_journal: Writer
) -> None:
    """cysystemd hands libsystemd freed paths when given several files at once (opening failed
    for paths of common lengths, as /var/log/journal/ID/system.journal): each is opened
    alone, and their entries merged."""
    directory = tmp_path / ("d" * 40)
    directory.mkdir()
    first, second = directory / "system.journal", directory / "user-1000.journal"
    write_journal(first, [sshd(n, f"entry {n}") for n in (0, 2, 3)])
    write_journal(second, [sshd(n, f"entry {n}") for n in (1, 4)])
    with JournalSource([SSHD], files=[str(first), str(second)], since=0) as source:
        assert messages(source) == [f"entry {n}" for n in range(5)]
        write_journal(second, [sshd(5, "entry 5")])
        write_journal(first, [sshd(6, "entry 6")])
        assert follow(source, 2) == ["entry 5", "entry 6"]
        saved = source.cursor()
    write_journal(first, [sshd(7, "entry 7")])
    with JournalSource([SSHD], files=[str(first), str(second)], cursor=saved) as source:
        assert messages(source) == ["entry 7"]


def test_cursors_are_ordered_as_libsystemd_orders_entries() -> None:
    def cursor(seqnum_id: str, seqnum: int, boot: str, monotonic: int, realtime: int) -> str:
        return f"s={seqnum_id};i={seqnum:x};b={boot};m={monotonic:x};t={realtime:x};x=0"

    # one sequence-number ID: by sequence number, whatever the times say
    assert journal_order(cursor("a", 2, "b", 1, 1), cursor("a", 10, "b", 0, 0)) < 0
    # another ID, the same boot: by monotonic time
    assert journal_order(cursor("a", 2, "b", 5, 1), cursor("c", 1, "b", 3, 9)) > 0
    # another boot: by real time
    assert journal_order(cursor("a", 2, "b", 5, 1), cursor("c", 1, "d", 3, 9)) < 0
    assert journal_order(cursor("a", 2, "b", 5, 1), cursor("a", 2, "b", 5, 1)) == 0
    assert latest([None, cursor("a", 3, "b", 0, 0), cursor("a", 12, "b", 0, 0)]) == cursor(
        "a", 12, "b", 0, 0
    )
    assert latest([None]) is None


# waiting on given files


@pytest.mark.parametrize("waiting", ["wait", "wait_async"])
def test_a_file_replaced_without_a_notification_is_noticed_within_the_check_time(
    tmp_path: Path, write_journal: Writer, waiting: str
) -> None:
    """The file is renamed (to a name journald does not give: found by its inode) and a new
    one written at its path; once the notifications are taken, only looking at the path shows
    it. systemd-journal-remote writes the files here."""
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, "one")])

    def wait(source: JournalSource, timeout: float) -> bool:
        if waiting == "wait":
            return source.wait(timeout)
        return asyncio.run(source.wait_async(timeout))

    with JournalSource([SSHD], files=[str(journal)], since=0) as source:
        assert messages(source) == ["one"]
        started = time.monotonic()
        assert wait(source, REPLACED_CHECK_SECONDS + 0.5) is False  # sliced, not cut short
        assert time.monotonic() - started >= REPLACED_CHECK_SECONDS + 0.4
        write_journal(journal, [sshd(1, "two")])
        journal.rename(tmp_path / "system-old.journal")
        write_journal(journal, [sshd(2, "three")])
        while source.process_events():
            pass  # libsystemd has taken the rename in (and dropped the renamed file)
        assert not select.select([source.fileno()], [], [], 0)[0]
        started = time.monotonic()
        assert wait(source, 30) is True
        assert time.monotonic() - started < REPLACED_CHECK_SECONDS + 0.5
        assert messages(source) == ["two", "three"]
        assert messages(source) == []


# the system journal: the source runs inside journald's namespace, where it is the system's

SYSTEM_JOURNAL = """
import json, subprocess, sys, time
from cysystemd import journal
from gardien.sources.journal import JournalSource

def send(*messages):
    for message in messages:
        journal.send(message=message, syslog_identifier=sys.argv[1])
    subprocess.run(["journalctl", "--sync"], check=True)

def follow(source, count):
    read, deadline = [], time.monotonic() + 30
    while len(read) < count and time.monotonic() < deadline:
        found = [entry.line.partition(": ")[2] for entry in source.read_entries()]
        read += found
        if not found:
            source.wait(0.5)
    return read

steps = []
with JournalSource([f"SYSLOG_IDENTIFIER={sys.argv[1]}"]) as source:
    assert source.description.startswith("the system journal"), source.description
    send("before 0", "before 1")
    steps.append(follow(source, 2))
    for rotation in range(2):
        subprocess.run(["journalctl", "--rotate"], check=True)
        send(f"after {rotation}")
        steps.append(follow(source, 1))
    steps.append([entry.line for entry in source.read_entries()])
print(json.dumps(steps))
"""


def test_the_system_journal_is_followed_across_journalctl_rotate(journald: Journald) -> None:
    found = journald.inside(sys.executable, "-c", SYSTEM_JOURNAL, IDENTIFIER)
    assert json.loads(found.stdout) == [["before 0", "before 1"], ["after 0"], ["after 1"], []]
    assert len(journald.archives()) == 2


# the daemon


def failure(address: str, port: int) -> str:
    return f"Failed password for root from {address} port {port} ssh2"


def test_the_daemon_bans_across_a_rotation_and_a_restart_across_one(
    journald: Journald, tmp_path: Path
) -> None:
    """A jail on ``systemd[journalfiles=...]`` counts failures on both sides of a rotation;
    restarted after rotations, it reads what came while it was stopped, and nothing twice."""
    daemon = Running(tmp_path / "daemon")
    daemon.etc.mkdir(parents=True)
    (daemon.etc / "jail.d").mkdir()
    (daemon.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
    (daemon.etc / "jail.d" / "journal.conf").write_text(
        "[sshd-journal]\nenabled = true\nfilter = sshd\naction = log\n"
        f"backend = systemd[journalfiles={journald.system_journal}]\n"
        # the test sends the entries: journald sets _COMM and _SYSTEMD_UNIT from the sender
        "journalmatch = SYSLOG_IDENTIFIER=sshd\n"
        "maxretry = 3\nfindtime = 10m\n"
    )

    def sshd(address: str, *ports: int) -> None:
        journald.send(*(failure(address, port) for port in ports), identifier="sshd")
        journald.sync()

    def status() -> dict[str, object]:
        result = daemon.cli("status", "--json", "sshd-journal")
        return dict(json.loads(result.stdout)) if result.returncode == 0 else {}

    try:
        daemon.start()
        sshd("198.51.100.71", 4001, 4002)
        journald.rotate()
        sshd("198.51.100.71", 4003)
        daemon.wait_for(
            lambda: "198.51.100.71" in str(status().get("banned")), "the ban across a rotation"
        )
        daemon.stop()
        sshd("198.51.100.72", 4004)  # in the file archived next
        journald.rotate()
        sshd("198.51.100.72", 4005)
        journald.rotate()
        sshd("198.51.100.72", 4006)
        daemon.start()
        daemon.wait_for(
            lambda: "198.51.100.72" in str(status().get("banned")),
            "the ban from entries logged while stopped",
        )
        assert status()["total_banned"] == 2
    finally:
        if daemon.process is not None:
            daemon.stop()

"""The ban store: one behavioural suite run against the in-memory and the SQLite store, then
what only a file can show (restarts, kill -9, migrations, batching, damaged files)."""

from __future__ import annotations

import ipaddress
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.clock import FakeClock
from gardien.errors import StoreError
from gardien.model import Address, Ban, Checkpoint, PendingFailures, parse_address
from gardien.sources.files import FilePosition, position_from_state, position_state
from gardien.store import (
    SCHEMA_VERSION,
    BanStore,
    MemoryBanStore,
    Progress,
    SQLiteBanStore,
    migrations,
)
from support import REPO

NOW = 1_700_000_000.0
SRC = REPO / "src"

StoreFactory = Callable[..., BanStore]


def address(text: str) -> Address:
    parsed = parse_address(text)
    assert parsed is not None
    return parsed


def ban(
    host: str = "192.0.2.1",
    jail: str = "sshd",
    start: float = NOW,
    end: float | None = NOW + 600,
    **fields: object,
) -> Ban:
    return Ban(jail, address(host), start, end, **fields)  # type: ignore[arg-type]


def numbered(count: int, jail: str = "sshd", start: float = NOW) -> list[Ban]:
    """``count`` bans of distinct addresses in 10.0.0.0/8."""
    return [
        Ban(jail, ipaddress.ip_address(0x0A000000 + i), start + i, start + 3600 + i)
        for i in range(count)
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=["memory", "sqlite"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StoreFactory]:
    """Opens stores of the kind under test, and closes them afterwards."""
    opened: list[BanStore] = []

    def make(**options: object) -> BanStore:
        store: BanStore
        if request.param == "memory":
            store = MemoryBanStore(clock, **options)  # type: ignore[arg-type]
        else:
            store = SQLiteBanStore(tmp_path / "gardien.sqlite3", clock, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> BanStore:
    return make_store()


# -- the behaviour both stores share ------------------------------------------------------


def test_added_bans_read_back_whole(store: BanStore) -> None:
    bans = [  # in the order they read back: by start, then jail, then address
        ban("2001:db8::1", jail="postfix", end=None, failures=2),
        ban("192.0.2.1", count=3, failures=5, matches=("line 1", "line 2")),
        ban("198.51.100.0/24", start=NOW + 1, matches=("caf\N{LATIN SMALL LETTER E WITH ACUTE}",)),
    ]
    store.add_bans(bans)
    assert store.active_bans(NOW) == bans


def test_active_bans_leave_out_those_over_and_keep_permanent_ones(store: BanStore) -> None:
    store.add_bans(
        [
            ban("192.0.2.1", end=NOW + 10),
            ban("192.0.2.2", end=None),
            ban("192.0.2.3", end=NOW + 20),
        ]
    )

    def hosts(now: float) -> list[str]:
        return [str(b.address) for b in store.active_bans(now)]

    assert hosts(NOW) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert hosts(NOW + 10) == ["192.0.2.2", "192.0.2.3"]  # over exactly at its end
    assert hosts(NOW + 10_000) == ["192.0.2.2"]


def test_remove_bans_lifts_several_at_once(store: BanStore, clock: FakeClock) -> None:
    store.add_bans([ban("192.0.2.1"), ban("192.0.2.2"), ban("192.0.2.3"), ban(jail="postfix")])
    clock.advance(60)
    gone = [ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.3", "198.51.100.9")]
    assert store.remove_bans("sshd", gone) == 2  # the third had no ban
    assert [str(b.address) for b in store.active_bans(NOW, "sshd")] == ["192.0.2.2"]
    assert len(store.active_bans(NOW, "postfix")) == 1
    ended = {str(r.address): r.end for r in store.history(jail="sshd")}
    assert ended["192.0.2.1"] == ended["192.0.2.3"] == NOW + 60


def test_active_bans_of_one_jail(store: BanStore) -> None:
    store.add_bans([ban(jail="sshd"), ban(jail="postfix"), ban("192.0.2.9", jail="postfix")])
    assert [b.jail for b in store.active_bans(NOW)] == ["postfix", "postfix", "sshd"]
    assert [str(b.address) for b in store.active_bans(NOW, jail="postfix")] == [
        "192.0.2.1",
        "192.0.2.9",
    ]
    assert store.active_bans(NOW, jail="dovecot") == []


def test_banning_again_replaces_the_current_ban(store: BanStore) -> None:
    store.add_ban(ban(start=NOW, end=NOW + 600, count=1))
    store.add_ban(ban(start=NOW + 700, end=NOW + 1900, count=2, matches=("again",)))
    assert store.active_bans(NOW + 700) == [
        ban(start=NOW + 700, end=NOW + 1900, count=2, matches=("again",))
    ]
    assert store.ban_count(address("192.0.2.1")) == 2


def test_adding_the_same_ban_twice_stores_it_once(store: BanStore) -> None:
    store.add_ban(ban(end=NOW + 600))
    store.add_ban(ban(end=NOW + 1200))  # same start: the same ban, prolonged
    assert store.active_bans(NOW) == [ban(end=NOW + 1200)]
    assert [b.end for b in store.history()] == [NOW + 1200]
    assert store.ban_count(address("192.0.2.1")) == 1


def test_addresses_are_stored_in_canonical_form(store: BanStore) -> None:
    store.add_ban(ban("::ffff:192.0.2.1", start=NOW))
    store.add_ban(ban("192.0.2.1/32", start=NOW + 1))
    store.add_ban(ban("2001:DB8:0:0::1", start=NOW + 2))
    active = store.active_bans(NOW)
    assert [b.address for b in active] == [address("192.0.2.1"), address("2001:db8::1")]
    assert store.ban_count(ipaddress.ip_address("::ffff:192.0.2.1")) == 2
    assert store.remove_ban("sshd", ipaddress.ip_network("192.0.2.1/32"))


def test_a_ban_keeps_the_most_recent_matched_lines(make_store: StoreFactory) -> None:
    store = make_store(max_matches=3)
    store.add_ban(ban(matches=tuple(f"line {i}" for i in range(10))))
    assert store.active_bans(NOW)[0].matches == ("line 7", "line 8", "line 9")


def test_odd_matched_lines_survive(store: BanStore) -> None:
    lines = ('quote " and \\ backslash', "\udcff undecodable byte", "", "tab\tnewline\n")
    store.add_ban(ban(matches=lines))
    assert store.active_bans(NOW)[0].matches == lines


def test_add_bans_stores_all_or_none(store: BanStore) -> None:
    broken = Ban("sshd", "not an address", NOW, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.add_bans([ban("192.0.2.1"), broken])
    assert store.active_bans(NOW) == []
    store.add_bans([])
    assert store.active_bans(NOW) == []


def test_removing_a_ban(store: BanStore, clock: FakeClock) -> None:
    store.add_bans([ban("192.0.2.1"), ban("192.0.2.2")])
    clock.advance(60)
    assert store.remove_ban("sshd", address("192.0.2.1")) is True
    assert store.remove_ban("sshd", address("192.0.2.1")) is False
    assert store.remove_ban("postfix", address("192.0.2.2")) is False
    assert [str(b.address) for b in store.active_bans(NOW)] == ["192.0.2.2"]
    # the history says when it was lifted, and still counts it
    assert [(str(b.address), b.end) for b in store.history()] == [
        ("192.0.2.1", NOW + 60),
        ("192.0.2.2", NOW + 600),
    ]
    assert store.ban_count(address("192.0.2.1")) == 1


def test_removing_a_ban_already_over_keeps_its_end(store: BanStore, clock: FakeClock) -> None:
    store.add_ban(ban(end=NOW + 10))
    clock.advance(100)
    assert store.remove_ban("sshd", address("192.0.2.1"))
    assert [b.end for b in store.history()] == [NOW + 10]


def test_removing_a_permanent_ban_ends_its_record(store: BanStore, clock: FakeClock) -> None:
    store.add_ban(ban(end=None))
    clock.advance(5)
    store.remove_ban("sshd", address("192.0.2.1"))
    assert [b.end for b in store.history()] == [NOW + 5]


def test_ban_count_in_one_jail_or_all(store: BanStore) -> None:
    store.add_bans(
        [
            ban("192.0.2.1", jail="sshd", start=NOW),
            ban("192.0.2.1", jail="sshd", start=NOW + 1000),
            ban("192.0.2.1", jail="postfix", start=NOW + 5),
            ban("192.0.2.2", jail="sshd", start=NOW),
        ]
    )
    assert store.ban_count(address("192.0.2.1"), jail="sshd") == 2
    assert store.ban_count(address("192.0.2.1"), jail="postfix") == 1
    assert store.ban_count(address("192.0.2.1")) == 3
    assert store.ban_count(address("203.0.113.1")) == 0


def test_history_in_a_time_range_and_jail(store: BanStore) -> None:
    store.add_bans(
        [
            ban("192.0.2.3", start=NOW + 30, jail="postfix"),
            ban("192.0.2.1", start=NOW + 10, matches=("kept only while current",)),
            ban("192.0.2.2", start=NOW + 20),
            ban("192.0.2.4", start=NOW + 30),
        ]
    )

    def starts(**within: float | str) -> list[tuple[float, str]]:
        return [(b.start - NOW, str(b.address)) for b in store.history(**within)]  # type: ignore[arg-type]

    assert starts() == [(10, "192.0.2.1"), (20, "192.0.2.2"), (30, "192.0.2.3"), (30, "192.0.2.4")]
    assert starts(since=NOW + 20) == [(20, "192.0.2.2"), (30, "192.0.2.3"), (30, "192.0.2.4")]
    assert starts(until=NOW + 30) == [(10, "192.0.2.1"), (20, "192.0.2.2")]
    assert starts(since=NOW + 20, until=NOW + 30) == [(20, "192.0.2.2")]
    assert starts(jail="postfix") == [(30, "192.0.2.3")]
    assert all(b.matches == () for b in store.history())


def test_long_history_reads_back_in_order(store: BanStore) -> None:
    # longer than a page of the SQLite store; starts out of insertion order
    bans = numbered(2500)
    store.add_bans(bans[1000:] + bans[:1000])
    assert [b.start for b in store.history()] == [b.start for b in bans]
    assert len(list(store.history(since=bans[500].start, until=bans[2200].start))) == 1700


def test_purge_forgets_old_history_but_never_a_current_ban(
    store: BanStore, clock: FakeClock
) -> None:
    day = 86_400.0
    store.add_bans(
        [
            ban("192.0.2.1", start=NOW - 10 * day, end=NOW - 9 * day),  # long over
            ban("192.0.2.2", start=NOW - 10 * day, end=None),  # permanent
            ban("192.0.2.3", start=NOW - 10 * day, end=NOW + day),  # long but not over
            ban("192.0.2.4", start=NOW - day, end=NOW - day + 600),  # over, recent
        ]
    )
    assert store.purge(older_than=NOW - 2 * day) == 1
    assert [str(b.address) for b in store.history()] == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
    assert store.ban_count(address("192.0.2.1")) == 0
    # even a cut-off in the future spares what is not over yet
    assert store.purge(older_than=NOW + 100 * day) == 1
    assert [str(b.address) for b in store.active_bans(NOW)] == ["192.0.2.2", "192.0.2.3"]
    assert [str(b.address) for b in store.history()] == ["192.0.2.2", "192.0.2.3"]
    clock.advance(2 * day)
    assert store.purge(older_than=clock.now()) == 1
    assert [str(b.address) for b in store.active_bans(clock.now())] == ["192.0.2.2"]


def file_checkpoint(position: FilePosition) -> Checkpoint:
    return Checkpoint(f"file:{position.path}", position_state(position))


def stored_position(store: BanStore, jail: str, path: str) -> FilePosition | None:
    checkpoint = store.checkpoint(jail, f"file:{path}")
    return None if checkpoint is None else position_from_state(path, checkpoint.state)


def test_file_positions(store: BanStore) -> None:
    position = FilePosition("/var/log/auth.log", 1234, 4096, "9f86d081884c7d65")
    assert stored_position(store, "sshd", "/var/log/auth.log") is None
    store.save_checkpoint("sshd", file_checkpoint(position))
    assert stored_position(store, "sshd", "/var/log/auth.log") == position
    assert stored_position(store, "postfix", "/var/log/auth.log") is None
    moved = FilePosition("/var/log/auth.log", 99, 10, "other")
    store.save_checkpoint("sshd", file_checkpoint(moved))
    assert stored_position(store, "sshd", "/var/log/auth.log") == moved
    huge = FilePosition("/srv/log/app.log", 2**64 - 1, 2**40, "")  # 64-bit inode
    store.save_checkpoint("app", file_checkpoint(huge))
    assert stored_position(store, "app", "/srv/log/app.log") == huge


def test_a_batch_stores_its_bans_checkpoint_and_pending_failures_together(
    store: BanStore,
) -> None:
    banned = ban("192.0.2.1", end=NOW + 600)
    counting = PendingFailures(address("192.0.2.2"), (NOW - 5, NOW), (("one",), ("two",)))
    store.save_progress(
        Progress(
            "sshd",
            [banned],
            checkpoint=Checkpoint("journal", "s=abc;i=7"),
            pending=[counting],
            settled=[address("192.0.2.1")],
        )
    )
    assert store.active_bans(NOW) == [banned]
    assert store.checkpoint("sshd", "journal") == Checkpoint("journal", "s=abc;i=7")
    assert store.pending_failures("sshd") == [counting]
    assert store.pending_failures("postfix") == []
    # a third failure of 192.0.2.2 banned it; a new address starts counting
    later = ban("192.0.2.2", end=NOW + 600)
    newcomer = PendingFailures(address("2001:db8::1"), (NOW + 1,), (("three",),))
    store.save_progress(
        Progress("sshd", [later], pending=[newcomer], settled=[address("192.0.2.2")])
    )
    assert store.pending_failures("sshd") == [newcomer]
    assert store.checkpoint("sshd", "journal") == Checkpoint("journal", "s=abc;i=7")
    # a hub's list removing an address lifts its ban in the same transaction
    store.save_progress(Progress("sshd", lifted=[address("192.0.2.1")]))
    assert [str(b.address) for b in store.active_bans(NOW)] == ["192.0.2.2"]


def test_pending_failures_keep_the_lines_of_the_last_failures_only(store: BanStore) -> None:
    long_line = "x" * 10_000
    many = PendingFailures(
        address("192.0.2.3"),
        tuple(NOW + i for i in range(12)),
        tuple((f"line {i}", long_line) for i in range(12)),
    )
    store.save_progress(Progress("sshd", pending=[many]))
    (stored,) = store.pending_failures("sshd")
    assert stored.times == many.times
    assert all(lines == () for lines in stored.lines[:2])  # DEFAULT_MAX_MATCHES = 10
    assert stored.lines[-1] == ("line 11", "x" * 4096)


def test_purge_forgets_pending_failures_older_than_the_cutoff(
    store: BanStore, clock: FakeClock
) -> None:
    old = PendingFailures(address("192.0.2.4"), (NOW - 90_000,), ((),))
    recent = PendingFailures(address("192.0.2.5"), (NOW - 10,), ((),))
    store.save_progress(Progress("sshd", pending=[old, recent]))
    store.purge(older_than=NOW - 86_400)
    assert [p.address for p in store.pending_failures("sshd")] == [address("192.0.2.5")]


def test_writes_from_many_threads_are_all_kept(store: BanStore) -> None:
    bans = numbered(400)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store.add_ban, bans))
    assert store.active_bans(NOW) == bans


def test_a_closed_store_refuses_work(store: BanStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.add_ban(ban())
    with pytest.raises(StoreError, match="closed"):
        store.active_bans(NOW)
    with pytest.raises(StoreError, match="closed"):
        store.history()


# the in-memory double must behave as the real store does: random operations on both agree

_HOSTS = st.sampled_from(["192.0.2.1", "192.0.2.2", "::ffff:192.0.2.2", "2001:db8::/64"])
_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(["sshd", "postfix"]),
            _HOSTS,
            st.integers(0, 50),
            st.one_of(st.none(), st.integers(1, 60)),
        ),
        st.tuples(st.just("remove"), st.sampled_from(["sshd", "postfix"]), _HOSTS),
        st.tuples(st.just("purge"), st.integers(0, 120)),
        st.tuples(st.just("tick"), st.integers(0, 30)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(operations=_OPERATIONS)
def test_memory_store_behaves_as_the_sqlite_store(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[object, ...]]
) -> None:
    memory_clock, sqlite_clock = FakeClock(NOW), FakeClock(NOW)
    path = tmp_path_factory.mktemp("model") / "gardien.sqlite3"
    with MemoryBanStore(memory_clock) as memory, SQLiteBanStore(path, sqlite_clock) as real:
        for operation in operations:
            results: list[object] = []
            store: BanStore
            for store, clock in ((memory, memory_clock), (real, sqlite_clock)):
                match operation:
                    case ("add", str(jail), str(host), int(start), end):
                        length = end if isinstance(end, int) else None
                        store.add_ban(
                            ban(
                                host,
                                jail,
                                NOW + start,
                                None if length is None else NOW + start + length,
                            )
                        )
                        results.append(None)
                    case ("remove", str(jail), str(host)):
                        results.append(store.remove_ban(jail, address(host)))
                    case ("purge", int(age)):
                        results.append(store.purge(NOW + age))
                    case ("tick", int(seconds)):
                        clock.advance(seconds)
                        results.append(None)
            assert results[0] == results[1], operation
            now = memory_clock.now()
            assert memory.active_bans(now) == real.active_bans(now)
            assert list(memory.history()) == list(real.history())
            for host in ("192.0.2.1", "192.0.2.2", "2001:db8::/64"):
                assert memory.ban_count(address(host)) == real.ban_count(address(host))
                assert memory.ban_count(address(host), "sshd") == real.ban_count(
                    address(host), "sshd"
                )


# -- what only the SQLite store can show ----------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lib" / "gardien" / "gardien.sqlite3"


def test_bans_and_positions_survive_a_restart(db_path: Path, clock: FakeClock) -> None:
    bans = [ban("192.0.2.1", end=NOW + 600, matches=("a", "b")), ban("2001:db8::7", end=None)]
    position = FilePosition("/var/log/auth.log", 12, 200, "h")
    with SQLiteBanStore(db_path, clock) as store:
        store.add_bans(bans)
        store.add_ban(ban("192.0.2.99", end=NOW - 1))
        store.save_checkpoint("sshd", file_checkpoint(position))
    with SQLiteBanStore(db_path, clock) as store:
        assert store.active_bans(NOW) == bans
        assert stored_position(store, "sshd", "/var/log/auth.log") == position
        # restoring them again must not double anything
        store.add_bans(store.active_bans(NOW))
    with SQLiteBanStore(db_path, clock) as store:
        assert store.active_bans(NOW) == bans
        assert len(list(store.history())) == 3
        assert store.ban_count(address("192.0.2.1")) == 1


def test_files_are_private(db_path: Path, clock: FakeClock) -> None:
    previous = os.umask(0o022)
    try:
        with SQLiteBanStore(db_path, clock) as store:
            store.add_ban(ban())
            for path in (db_path, Path(f"{db_path}-wal")):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.umask(previous)
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_path.parent.parent.stat().st_mode) == 0o700


def test_database_is_in_wal_mode_and_versioned(db_path: Path, clock: FakeClock) -> None:
    SQLiteBanStore(db_path, clock).close()
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA application_id").fetchone() == (
            migrations.APPLICATION_ID,
        )
    finally:
        connection.close()


_CHILD = textwrap.dedent(
    """
    import ipaddress, os, signal, sys
    from gardien.model import Ban
    from gardien.store import SQLiteBanStore

    store = SQLiteBanStore(sys.argv[1])
    batches = int(sys.argv[2])  # 0: until killed
    batch = 0
    while batches == 0 or batch < batches:
        store.add_bans(
            Ban("sshd", ipaddress.ip_address(0x0A000000 + batch * 100 + i), 1.0e9 + batch, None,
                matches=("Failed password for root",))
            for i in range(100)
        )
        print(batch, flush=True)  # reported as stored
        batch += 1
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _run_child(path: Path, batches: int) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(batches)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _assert_reported_batches_stored(path: Path, reported: list[int]) -> None:
    with SQLiteBanStore(path) as store:
        active = store.active_bans(0)
        keys = [(b.jail, b.address) for b in active]
        assert len(keys) == len(set(keys)), "a ban was stored twice"
        batches = {int(b.start - 1.0e9) for b in active}
        assert set(reported) <= batches
        # a batch is one transaction: all of it or none of it
        assert len(active) == 100 * len(batches)
        assert len(list(store.history())) == len(active)


def test_every_ban_reported_stored_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "gardien.sqlite3"
    child = _run_child(path, batches=20)
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    reported = [int(line) for line in out.split()]
    assert reported == list(range(20))
    _assert_reported_batches_stored(path, reported)


def test_kill_9_in_the_middle_of_writing_loses_nothing_reported(tmp_path: Path) -> None:
    path = tmp_path / "gardien.sqlite3"
    child = _run_child(path, batches=0)
    assert child.stdout is not None
    reported = []
    for line in child.stdout:  # pragma: no branch - the child writes until killed
        reported.append(int(line))
        if len(reported) == 30:
            child.send_signal(signal.SIGKILL)
            break
    out, _ = child.communicate(timeout=60)
    reported += [int(line) for line in out.split()]
    assert child.returncode == -signal.SIGKILL
    _assert_reported_batches_stored(path, reported)


def _holding_the_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's view: a connection in the middle of a write transaction."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_writes_that_arrive_together_share_one_transaction(db_path: Path, clock: FakeClock) -> None:
    with SQLiteBanStore(db_path, clock) as store:
        other = _holding_the_write_lock(db_path)
        bans = numbered(20)
        threads = [threading.Thread(target=store.add_ban, args=(b,)) for b in bans]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # every writer is now waiting; the store is blocked behind `other`
        assert store.active_bans(NOW) == []  # reads do not wait for writes
        other.execute("COMMIT")
        other.close()
        for thread in threads:
            thread.join()
        assert store.transactions <= 2  # the one that was blocked, and everything queued
        assert store.active_bans(NOW) == bans


def test_a_thousand_bans_from_several_threads_need_few_transactions(
    db_path: Path, clock: FakeClock
) -> None:
    bans = numbered(1000)
    with SQLiteBanStore(db_path, clock) as store:
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(store.add_ban, bans))
        assert store.transactions <= 250
        assert store.active_bans(NOW) == bans
        assert len(list(store.history())) == 1000


def test_a_failing_write_spoils_only_itself(db_path: Path, clock: FakeClock) -> None:
    with SQLiteBanStore(db_path, clock) as store:
        other = _holding_the_write_lock(db_path)
        errors: list[BaseException] = []

        def add(b: Ban) -> None:
            try:
                store.add_ban(b)
            except StoreError as exc:
                errors.append(exc)

        good = numbered(5)
        bad = Ban(None, address("192.0.2.1"), NOW, None)  # type: ignore[arg-type]
        threads = [threading.Thread(target=add, args=(b,)) for b in [*good[:3], bad, *good[3:]]]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        other.execute("COMMIT")
        other.close()
        for thread in threads:
            thread.join()
        assert len(errors) == 1
        assert str(db_path) in str(errors[0])
        assert "NOT NULL" in str(errors[0])
        assert store.active_bans(NOW) == good


def test_locked_database_is_a_store_error(db_path: Path, clock: FakeClock) -> None:
    with SQLiteBanStore(db_path, clock, timeout=0.1) as store:
        other = _holding_the_write_lock(db_path)
        try:
            with pytest.raises(StoreError, match="locked") as caught:
                store.add_ban(ban())
            assert str(db_path) in str(caught.value)
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.add_ban(ban())  # and the store goes on once the lock is gone
        assert len(store.active_bans(NOW)) == 1


def test_corrupt_file_is_a_store_error_naming_it(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "gardien.sqlite3"
    path.write_bytes(b"this is no database, but a log file written by mistake\n" * 100)
    with pytest.raises(StoreError, match="file is not a database") as caught:
        SQLiteBanStore(path, clock)
    assert str(path) in str(caught.value)


def test_unusable_path_is_a_store_error(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create") as caught:
        SQLiteBanStore(tmp_path / "file" / "gardien.sqlite3", clock)
    assert str(tmp_path / "file") in str(caught.value)


# -- schema versions ---------------------------------------------------------------------------


def _make_database(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        connection.close()


def _user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])
    finally:
        connection.close()


@pytest.mark.parametrize("empty", ["zero bytes", "empty database"])
def test_version_0_database_is_migrated(tmp_path: Path, clock: FakeClock, empty: str) -> None:
    path = tmp_path / "gardien.sqlite3"
    if empty == "zero bytes":
        path.write_bytes(b"")
    else:  # a real SQLite file, version 0, no tables
        _make_database(path, "CREATE TABLE t (x)", "DROP TABLE t", "PRAGMA user_version = 0")
    with SQLiteBanStore(path, clock) as store:
        store.add_ban(ban())
        assert len(store.active_bans(NOW)) == 1
    assert _user_version(path) == SCHEMA_VERSION


def test_older_database_is_migrated_step_by_step(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gardien.sqlite3"
    with SQLiteBanStore(path, clock) as store:
        store.add_ban(ban(matches=("kept",)))
    ran: list[int] = []

    def next_step(connection: sqlite3.Connection) -> None:
        ran.append(_version_inside(connection))
        connection.execute("ALTER TABLE bans ADD COLUMN country TEXT")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, next_step])
    with SQLiteBanStore(path, clock) as store:
        assert store.active_bans(NOW) == [ban(matches=("kept",))]
    assert ran == [SCHEMA_VERSION]
    assert _user_version(path) == SCHEMA_VERSION + 1
    with SQLiteBanStore(path, clock):
        assert ran == [SCHEMA_VERSION]  # not run again


def _version_inside(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def test_a_failing_migration_leaves_the_database_as_it_was(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gardien.sqlite3"
    with SQLiteBanStore(path, clock) as store:
        store.add_ban(ban())

    def broken_step(connection: sqlite3.Connection) -> None:
        connection.execute("ALTER TABLE bans ADD COLUMN country TEXT")
        connection.execute("ALTER TABLE no_such_table ADD COLUMN x TEXT")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken_step])
    with pytest.raises(StoreError, match="no_such_table") as caught:
        SQLiteBanStore(path, clock)
    assert str(path) in str(caught.value)
    assert _user_version(path) == SCHEMA_VERSION
    monkeypatch.undo()
    with SQLiteBanStore(path, clock) as store:
        assert store.active_bans(NOW) == [ban()]


def test_newer_database_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "gardien.sqlite3"
    SQLiteBanStore(path, clock).close()
    _make_database(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}") as caught:
        SQLiteBanStore(path, clock)
    assert str(path) in str(caught.value)
    assert f"version {SCHEMA_VERSION} this gardien knows" in str(caught.value)


def test_fail2ban_database_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "fail2ban.sqlite3"
    _make_database(
        path,
        "CREATE TABLE fail2banDb (version INTEGER)",
        "CREATE TABLE bans (jail TEXT, ip TEXT, timeofban INTEGER, bantime INTEGER, data JSON)",
    )
    with pytest.raises(StoreError, match="a fail2ban database"):
        SQLiteBanStore(path, clock)


def test_synchronous_full_is_available(db_path: Path, clock: FakeClock) -> None:
    with SQLiteBanStore(db_path, clock, synchronous="full") as store:
        store.add_ban(ban())
        assert store.active_bans(NOW) == [ban()]
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteBanStore(db_path, clock, synchronous="off")  # type: ignore[arg-type]


def test_the_store_package_exports_documented_names() -> None:
    import gardien.store

    for name in gardien.store.__all__:
        value = getattr(gardien.store, name)
        if callable(value):
            assert value.__doc__, name


def test_journal_cursors(store: BanStore) -> None:
    assert store.checkpoint("sshd", "journal") is None
    store.save_checkpoint("sshd", Checkpoint("journal", "s=abc;i=1"))
    store.save_checkpoint("sshd", Checkpoint("journal", "s=abc;i=2"))
    store.save_checkpoint("postfix", Checkpoint("journal", "s=def;i=9"))
    assert store.checkpoint("sshd", "journal") == Checkpoint("journal", "s=abc;i=2")
    assert store.checkpoint("postfix", "journal") == Checkpoint("journal", "s=def;i=9")


def test_a_version_1_database_gains_journal_cursors(tmp_path: Path, clock: FakeClock) -> None:
    from gardien.store.migrations import MIGRATIONS

    path = tmp_path / "v1.sqlite3"
    connection = sqlite3.connect(path)
    MIGRATIONS[0](connection)
    connection.execute("PRAGMA user_version = 1")
    connection.execute(
        "INSERT INTO bans (jail, address, start_time, end_time, count, failures, matches)"
        " VALUES ('sshd', '192.0.2.1', ?, NULL, 1, 3, '[]')",
        (NOW,),
    )
    connection.commit()
    connection.close()
    with SQLiteBanStore(path, clock) as store:
        assert [str(b.address) for b in store.active_bans(NOW)] == ["192.0.2.1"]
        store.save_checkpoint("sshd", Checkpoint("journal", "s=1"))
        assert store.checkpoint("sshd", "journal") == Checkpoint("journal", "s=1")
    assert _user_version(path) == SCHEMA_VERSION == 3


def test_a_version_2_database_keeps_its_positions_and_cursors_as_checkpoints(
    tmp_path: Path, clock: FakeClock
) -> None:
    from gardien.store.migrations import MIGRATIONS

    path = tmp_path / "v2.sqlite3"
    connection = sqlite3.connect(path)
    MIGRATIONS[0](connection)
    MIGRATIONS[1](connection)
    connection.execute("PRAGMA user_version = 2")
    connection.execute(
        "INSERT INTO file_positions VALUES ('sshd', '/var/log/auth.log', ?, 4096, 'abc')",
        (-2,),  # a 64-bit inode, kept signed by version 2
    )
    connection.execute("INSERT INTO journal_cursors VALUES ('postfix', 's=1;i=2')")
    connection.execute("INSERT INTO journal_cursors VALUES ('blocklist', 'hub:42')")
    connection.commit()
    connection.close()
    with SQLiteBanStore(path, clock) as store:
        assert stored_position(store, "sshd", "/var/log/auth.log") == FilePosition(
            "/var/log/auth.log", 2**64 - 2, 4096, "abc"
        )
        assert store.checkpoint("postfix", "journal") == Checkpoint("journal", "s=1;i=2")
        assert store.checkpoint("blocklist", "hub") == Checkpoint("hub", "42")
        assert store.pending_failures("sshd") == []


# ---- importing bans made elsewhere (gardien migrate) -------------------------------------


def test_imported_bans_are_taken_once_and_a_lifted_one_stays_lifted(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    ip = ipaddress.ip_address
    older = Ban("sshd", ip("192.0.2.1"), 900_000.0, 900_600.0, count=1, failures=3)
    current = Ban(
        "sshd", ip("192.0.2.1"), 999_000.0, 1_003_600.0, count=2, failures=4, matches=("line",)
    )
    other = Ban("recidive", ip("2001:db8::1"), 999_500.0, None, count=1)
    with SQLiteBanStore(tmp_path / "s.sqlite3", clock) as store:
        taken, records = store.import_bans([current, other], [older, current])
        assert taken == [current, other]
        assert records == 3  # older, and the records of the two current bans
        assert store.active_bans(clock.now()) == [current, other]
        assert store.ban_count(ip("192.0.2.1"), "sshd") == 2
        # lifted by hand, then the same bans imported again: nothing comes back
        assert store.remove_ban("sshd", ip("192.0.2.1"))
        assert store.import_bans([current, other], [older, current]) == ([], 0)
        assert store.active_bans(clock.now()) == [other]
        assert store.ban_count(ip("192.0.2.1"), "sshd") == 2

"""The hub's database, on SQLite and on a real PostgreSQL server: consensus, allowlist,
expiry, delta sync, reputations, agents, statistics, several processes at once, migrations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gardien.clock import FakeClock
from gardien.errors import HubError
from gardien.hub import schema
from gardien.hub import store as store_module
from gardien.hub.model import AgentInfo, BlocklistDelta, Consensus, PruneResult, Report, SessionInfo
from gardien.hub.store import HubStore

DAY = 86400.0
START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
ATTACKER = "198.51.100.7"  # stands for a public address below
PUBLIC = "8.8.4.4"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def open_store(hub_url: str, clock: FakeClock) -> Iterator[Callable[..., HubStore]]:
    stores: list[HubStore] = []

    def open_(consensus: Consensus | None = None) -> HubStore:
        store = HubStore(hub_url, consensus=consensus, clock=clock)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., HubStore]) -> HubStore:
    return open_store()


def enrol(store: HubStore, count: int, *, networks: int | None = None) -> list[AgentInfo]:
    """``count`` agents spread over ``networks`` enrolment networks (default: one each)."""
    networks = networks or count
    return [store.add_agent(f"agent{i}", f"203.0.{i % networks}.0/24")[0] for i in range(count)]


def report(ip: str, when: float, jail: str = "sshd", category: str = "ssh") -> Report:
    return Report(ip=ip, jail=jail, category=category, time=when, failures=5)


def everyone_reports(store: HubStore, agents: list[AgentInfo], ip: str, when: float) -> list[str]:
    listed: list[str] = []
    for agent in agents:
        listed += store.ingest(agent, "192.0.2.1", [report(ip, when)]).listed
    return listed


# ---- consensus --------------------------------------------------------------------------


def test_two_agents_are_not_enough(store: HubStore, clock: FakeClock) -> None:
    agents = enrol(store, 2)
    assert everyone_reports(store, agents, PUBLIC, clock.now()) == []
    assert store.blocklist()[0] == []
    assert store.reputation(PUBLIC).recent_agents == 2


def test_three_agents_from_two_networks_are_not_enough(store: HubStore, clock: FakeClock) -> None:
    agents = enrol(store, 3, networks=2)
    assert everyone_reports(store, agents, PUBLIC, clock.now()) == []
    reputation = store.reputation(PUBLIC)
    assert (reputation.agents, reputation.networks, reputation.listed) == (3, 2, False)


def test_three_agents_from_three_networks_list_the_address(
    store: HubStore, clock: FakeClock
) -> None:
    agents = enrol(store, 3)
    assert everyone_reports(store, agents, PUBLIC, clock.now()) == [PUBLIC]
    addresses, cursor = store.blocklist()
    assert addresses == [PUBLIC]
    assert cursor == 1
    # a fourth report does not list it again
    fourth = store.add_agent("late", "203.0.99.0/24")[0]
    assert store.ingest(fourth, "192.0.2.1", [report(PUBLIC, clock.now())]).listed == ()
    assert store.blocklist() == ([PUBLIC], 1)


def test_networks_come_from_the_source_address_without_an_enrolment_network(
    store: HubStore, clock: FakeClock
) -> None:
    agents = [store.add_agent(f"roaming{i}")[0] for i in range(3)]
    sources = ["192.0.2.10", "192.0.2.200", "2001:db8:1:2::5"]  # two in one /24
    listed = [
        store.ingest(agent, source, [report(PUBLIC, clock.now())]).listed
        for agent, source in zip(agents, sources, strict=True)
    ]
    assert listed == [(), (), ()]
    assert store.reputation(PUBLIC).networks == 2
    other = store.add_agent("elsewhere")[0]
    assert store.ingest(other, "192.0.3.1", [report(PUBLIC, clock.now())]).listed == (PUBLIC,)


def test_reports_outside_the_window_do_not_count(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    store = open_store(Consensus(window=3600.0))
    agents = enrol(store, 3)
    store.ingest(agents[0], "192.0.2.1", [report(PUBLIC, clock.now() - 7200)])
    store.ingest(agents[1], "192.0.2.1", [report(PUBLIC, clock.now())])
    assert store.ingest(agents[2], "192.0.2.1", [report(PUBLIC, clock.now())]).listed == ()
    assert store.reputation(PUBLIC).recent_agents == 2
    # the first agent reports again, now: three within the hour
    assert store.ingest(agents[0], "192.0.2.1", [report(PUBLIC, clock.now())]).listed == (PUBLIC,)


def test_settable_thresholds(open_store: Callable[..., HubStore], clock: FakeClock) -> None:
    store = open_store(Consensus(min_agents=1, min_networks=1))
    (agent,) = enrol(store, 1)
    assert store.ingest(agent, "192.0.2.1", [report(PUBLIC, clock.now())]).listed == (PUBLIC,)


def test_one_batch_with_many_addresses(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    store = open_store(Consensus(min_agents=2, min_networks=2))
    agents = enrol(store, 2)
    batch = [report(f"8.8.{i // 250}.{i % 250 + 1}", clock.now()) for i in range(800)]
    assert store.ingest(agents[0], "192.0.2.1", batch).listed == ()
    result = store.ingest(agents[1], "192.0.2.1", batch)
    assert result.accepted == 800
    assert len(result.listed) == 800
    assert len(store.blocklist()[0]) == 800


# ---- never listed -----------------------------------------------------------------------


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "::1", "fe80::1"])
def test_built_in_ranges_are_never_listed(store: HubStore, clock: FakeClock, ip: str) -> None:
    agents = enrol(store, 3)
    assert everyone_reports(store, agents, ip, clock.now()) == []
    reputation = store.reputation(ip)
    assert reputation.reports == 3
    assert not reputation.listed
    assert reputation.allowlisted


def test_allowlisted_ranges_are_not_listed(store: HubStore, clock: FakeClock) -> None:
    store.allow("8.8.4.0/24", "our resolvers")
    agents = enrol(store, 3)
    assert everyone_reports(store, agents, PUBLIC, clock.now()) == []
    assert store.reputation(PUBLIC).allowlisted == "allowlist 8.8.4.0/24 (our resolvers)"
    assert store.reputation("8.8.8.8").allowlisted is None


def test_allowing_a_listed_address_removes_it(store: HubStore, clock: FakeClock) -> None:
    agents = enrol(store, 3)
    everyone_reports(store, agents, PUBLIC, clock.now())
    everyone_reports(store, agents, "9.9.9.9", clock.now())
    _, cursor = store.blocklist()
    entry = store.allow("8.8.0.0/16", "  google\n dns ")
    assert (entry.network, entry.comment) == ("8.8.0.0/16", "google dns")
    assert store.blocklist()[0] == ["9.9.9.9"]
    delta = store.blocklist_delta(cursor)
    assert (delta.added, delta.removed, delta.reset) == ((), (PUBLIC,), False)
    assert [e.network for e in store.allowlist()] == ["8.8.0.0/16"]
    with pytest.raises(HubError, match="already in the allowlist"):
        store.allow("8.8.0.0/16")
    assert store.disallow("8.8.0.0/16")
    assert not store.disallow("8.8.0.0/16")
    assert store.allowlist() == []


def test_allow_checks_its_input(store: HubStore) -> None:
    with pytest.raises(HubError, match="not a network"):
        store.allow("8.8.8.0/33")
    assert store.allow("2001:db8::7").network == "2001:db8::7/128"


# ---- expiry and delta sync --------------------------------------------------------------


def test_entries_expire_after_the_ttl(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    store = open_store(Consensus(ttl=DAY))
    agents = enrol(store, 3)
    everyone_reports(store, agents, PUBLIC, clock.now())
    assert store.reputation(PUBLIC).expires == START + DAY
    clock.advance(DAY - 1)
    assert store.expire() == 0
    # a new report pushes the expiry
    store.ingest(agents[0], "192.0.2.1", [report(PUBLIC, clock.now())])
    assert store.reputation(PUBLIC).expires == clock.now() + DAY
    clock.advance(DAY)
    assert store.expire() == 1
    assert store.expire() == 0
    assert store.blocklist()[0] == []
    assert not store.reputation(PUBLIC).listed


def test_delta_sync_by_cursor(open_store: Callable[..., HubStore], clock: FakeClock) -> None:
    store = open_store(Consensus(ttl=DAY))
    agents = enrol(store, 3)
    assert store.blocklist_delta(0) == BlocklistDelta((), (), 0)
    everyone_reports(store, agents, "9.9.9.9", clock.now())
    _, start = store.blocklist()
    clock.advance(DAY / 2)
    everyone_reports(store, agents, PUBLIC, clock.now())
    assert store.blocklist_delta(start) == BlocklistDelta((PUBLIC,), (), start + 1)
    clock.advance(DAY / 2)
    assert store.expire() == 1  # 9.9.9.9
    delta = store.blocklist_delta(start)
    assert (delta.added, delta.removed) == ((PUBLIC,), ("9.9.9.9",))
    assert store.blocklist_delta(delta.cursor) == BlocklistDelta((), (), delta.cursor)
    # a cursor from another database: the whole list, to replace the reader's
    ahead = store.blocklist_delta(delta.cursor + 100)
    assert ahead == BlocklistDelta((PUBLIC,), (), delta.cursor, reset=True)


# ---- pruning ----------------------------------------------------------------------------


def test_prune_forgets_old_reports_and_stale_addresses_but_not_listed_ones(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    store = open_store(Consensus(ttl=365 * DAY, report_retention=30 * DAY))
    agents = enrol(store, 3)
    everyone_reports(store, agents, PUBLIC, clock.now())  # listed for a year
    store.ingest(agents[0], "192.0.2.1", [report("9.9.9.9", clock.now())])  # never listed
    clock.advance(31 * DAY)
    store.ingest(agents[1], "192.0.2.1", [report("1.1.1.1", clock.now())])
    assert store.prune() == PruneResult(reports=4, changes=0, addresses=1)
    assert not store.reputation("9.9.9.9").known
    kept = store.reputation(PUBLIC)
    assert kept.known and kept.listed and kept.reports == 3  # its row stays while listed
    assert store.reputation("1.1.1.1").reports == 1
    assert store.stats(0, 2e9).reports == 1
    assert not store.prune()  # nothing left to forget
    assert store.blocklist() == ([PUBLIC], 1)


def test_report_retention_is_never_shorter_than_the_window(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    rules = Consensus(window=10 * DAY, report_retention=DAY)
    assert rules.kept_reports == 10 * DAY
    store = open_store(rules)
    agents = enrol(store, 3)
    everyone_reports(store, agents, PUBLIC, clock.now() - 9 * DAY)
    assert store.prune() == PruneResult()  # the reports still count towards listing
    assert store.reputation(PUBLIC).recent_agents == 3


def test_prune_keeps_the_newest_journal_change_and_older_cursors_get_a_reset(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    store = open_store(Consensus(ttl=DAY, journal_retention=7 * DAY))
    agents = enrol(store, 3)
    everyone_reports(store, agents, "9.9.9.9", clock.now())  # seq 1
    clock.advance(DAY / 2)
    everyone_reports(store, agents, PUBLIC, clock.now())  # seq 2
    clock.advance(DAY / 2 + 1)
    assert store.expire() == 1  # 9.9.9.9, seq 3
    clock.advance(8 * DAY)
    assert store.prune() == PruneResult(changes=2)
    assert store.blocklist() == ([PUBLIC], 3)  # the cursor did not move
    assert store.prune() == PruneResult()  # the newest change stays, however old
    # seq 2 and 3 are known: a delta; before that, the whole list to replace the reader's
    assert store.blocklist_delta(2) == BlocklistDelta((), ("9.9.9.9",), 3)
    assert store.blocklist_delta(3) == BlocklistDelta((), (), 3)
    for old in (0, 1):
        assert store.blocklist_delta(old) == BlocklistDelta((PUBLIC,), (), 3, reset=True)
    # the sequence goes on from where it was
    everyone_reports(store, agents, "1.1.1.1", clock.now())
    assert store.blocklist_delta(3) == BlocklistDelta(("1.1.1.1",), (), 4)


def test_prune_deletes_in_batches(open_store: Callable[..., HubStore], clock: FakeClock) -> None:
    store = open_store(Consensus(min_agents=1, min_networks=1, ttl=DAY, window=DAY,
                                 report_retention=DAY, journal_retention=DAY))  # fmt: skip
    (agent,) = enrol(store, 1)
    ips = [f"9.9.9.{i}" for i in range(1, 12)]
    store.ingest(agent, "192.0.2.1", [report(ip, clock.now()) for ip in ips])
    clock.advance(DAY + 1)
    assert store.expire() == 11
    clock.advance(DAY + 1)
    assert store.prune(batch=3) == PruneResult(reports=11, changes=21, addresses=11)
    assert store.blocklist() == ([], 22)


# ---- reputation -------------------------------------------------------------------------


def test_score_halves_after_the_half_life(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    store = open_store(Consensus(half_life=DAY))
    (agent,) = enrol(store, 1)
    store.ingest(agent, "192.0.2.1", [report(PUBLIC, clock.now()), report(PUBLIC, clock.now())])
    assert store.reputation(PUBLIC).score == pytest.approx(2.0)
    clock.advance(DAY)
    assert store.reputation(PUBLIC).score == pytest.approx(1.0)
    store.ingest(agent, "192.0.2.1", [report(PUBLIC, clock.now())])
    assert store.reputation(PUBLIC).score == pytest.approx(2.0)
    # a late report of something a day old counts for half
    store.ingest(agent, "192.0.2.1", [report(PUBLIC, clock.now() - DAY)])
    assert store.reputation(PUBLIC).score == pytest.approx(2.5)


def test_reputation_fields(store: HubStore, clock: FakeClock) -> None:
    agents = enrol(store, 3)
    store.ingest(agents[0], "192.0.2.1", [report(PUBLIC, START - 50, "asterisk", "sip")])
    store.ingest(agents[1], "192.0.2.1", [report(PUBLIC, START - 10)])
    store.ingest(agents[2], "192.0.2.1", [report(PUBLIC, START - 30, "postfix-sasl", "smtp-auth")])
    reputation = store.reputation(PUBLIC)
    assert reputation.known
    assert reputation.reports == 3
    assert (reputation.agents, reputation.networks) == (3, 3)
    assert reputation.categories == ("sip", "smtp-auth", "ssh")
    assert reputation.jails == ("asterisk", "postfix-sasl", "sshd")
    assert (reputation.first_seen, reputation.last_seen) == (START - 50, START - 10)
    assert reputation.listed
    assert reputation.listed_since == START
    unknown = store.reputation("2001:4860::8888")
    assert not unknown.known
    assert unknown.reports == 0
    with pytest.raises(HubError, match="not an IP address"):
        store.reputation("8.8.8.0/24")
    with pytest.raises(HubError, match="not an IP address"):
        store.reputation("<script>")


def test_ingest_checks_its_input(store: HubStore, clock: FakeClock) -> None:
    (agent,) = enrol(store, 1)
    for bad in (
        report("not-an-ip", clock.now()),
        report(PUBLIC, clock.now(), jail="a b"),
        report(PUBLIC, clock.now(), category="SSH!"),
    ):
        with pytest.raises(HubError):
            store.ingest(agent, "192.0.2.1", [bad])
    assert not store.reputation(PUBLIC).known
    # addresses are stored in canonical form
    store.ingest(agent, "192.0.2.1", [report("::ffff:8.8.4.4", clock.now())])
    assert store.reputation(PUBLIC).reports == 1


# ---- agents -----------------------------------------------------------------------------


def test_agent_tokens_are_shown_once_and_stored_hashed(hub_url: str, store: HubStore) -> None:
    agent, token = store.add_agent("web1", "198.51.100.0/24")
    assert token.startswith("gdn_")
    assert len(token) == 47
    assert store.agent_for_token(token) == agent
    assert store.agent_for_token(token + "x") is None
    assert store.agent_for_token("") is None
    engine = sa.create_engine(store._url)
    with engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                assert token not in repr(tuple(row))
                assert token[4:] not in repr(tuple(row))
    engine.dispose()
    if hub_url.startswith("sqlite:///"):
        path = Path(hub_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):
            assert token[4:].encode() not in file.read_bytes()
        assert path.stat().st_mode & 0o077 == 0


def test_agents_are_listed_and_disabled(store: HubStore, clock: FakeClock) -> None:
    first, token = store.add_agent("web1")
    store.add_agent("mail1", "2001:db8:5::/48")
    with pytest.raises(HubError, match="already exists"):
        store.add_agent("web1")
    with pytest.raises(HubError, match="not a valid agent name"):
        store.add_agent("web 1")
    with pytest.raises(HubError, match="not a network"):
        store.add_agent("web2", "nowhere")
    assert [(a.name, a.network) for a in store.agents()] == [
        ("mail1", "2001:db8:5::/48"),
        ("web1", None),
    ]
    store.touch_agent(first.id, "192.0.2.44")
    assert store.agents()[1].last_address == "192.0.2.44"
    assert store.agents()[1].last_seen == START
    assert store.disable_agent("web1")
    assert not store.disable_agent("nobody")
    assert store.agent_for_token(token) is None
    assert store.agents()[1].disabled


# ---- statistics -------------------------------------------------------------------------


def test_stats_per_hour_and_day_and_tops(store: HubStore) -> None:
    agents = enrol(store, 3)
    day = 19_675 * DAY  # a midnight UTC
    store.ingest(
        agents[0],
        "192.0.2.1",
        [report(PUBLIC, day + 10), report(PUBLIC, day + 20), report("9.9.9.9", day + 3700)],
    )
    store.ingest(agents[1], "192.0.2.1", [report(PUBLIC, day + DAY + 5, "asterisk", "sip")])
    store.ingest(agents[2], "192.0.2.1", [report("1.1.1.1", day - 1)])  # before the range
    stats = store.stats(day, day + 2 * DAY, top=2)
    assert (stats.reports, stats.addresses) == (4, 2)
    assert stats.per_hour == ((day, 2), (day + 3600, 1), (day + DAY, 1))
    assert stats.per_day == ((day, 3), (day + DAY, 1))
    assert stats.top_addresses == ((PUBLIC, 3), ("9.9.9.9", 1))
    assert stats.top_categories == (("ssh", 3), ("sip", 1))
    assert stats.top_reporters == (("agent0", 3), ("agent1", 1))


# ---- several processes on one database --------------------------------------------------


def test_concurrent_ingest_loses_nothing(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    stores = [open_store(Consensus(min_agents=2, min_networks=2)) for _ in range(2)]
    agents = enrol(stores[0], 4)
    errors: list[BaseException] = []
    listed: list[str] = []

    def work(index: int) -> None:
        try:
            store = stores[index % 2]
            for batch in range(10):
                ips = [f"8.8.{batch}.{i + 1}" for i in range(50)]
                result = store.ingest(
                    agents[index], "192.0.2.1", [report(ip, clock.now()) for ip in ips]
                )
                listed.extend(result.listed)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reputation = stores[0].reputation("8.8.3.3")
    assert (reputation.reports, reputation.agents) == (4, 4)
    assert sorted(listed) == sorted(stores[1].blocklist()[0])
    assert len(listed) == 500  # each address listed exactly once
    assert stores[1].stats(0, 2e9).reports == 2000


def test_concurrent_expiry_records_each_removal_once(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    rules = Consensus(min_agents=1, min_networks=1, ttl=DAY)
    stores = [open_store(rules) for _ in range(2)]
    (agent,) = enrol(stores[0], 1)
    ips = [f"9.9.{i // 200}.{i % 200 + 1}" for i in range(600)]
    stores[0].ingest(agent, "192.0.2.1", [report(ip, clock.now()) for ip in ips])
    _, cursor = stores[0].blocklist()
    clock.advance(DAY + 1)
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def work(store: HubStore) -> None:
        barrier.wait()
        counts.append(store.expire())

    threads = [threading.Thread(target=work, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 600
    delta = stores[1].blocklist_delta(cursor)
    assert (delta.added, sorted(delta.removed)) == ((), sorted(ips))
    assert delta.cursor == cursor + 600 and not delta.reset


def test_concurrent_prunes_delete_each_row_once(
    open_store: Callable[..., HubStore], clock: FakeClock
) -> None:
    rules = Consensus(min_agents=1, min_networks=1, ttl=DAY, window=DAY,
                      report_retention=DAY, journal_retention=DAY)  # fmt: skip
    stores = [open_store(rules) for _ in range(2)]
    (agent,) = enrol(stores[0], 1)
    ips = [f"9.9.{i // 200}.{i % 200 + 1}" for i in range(600)]
    stores[0].ingest(agent, "192.0.2.1", [report(ip, clock.now()) for ip in ips])
    clock.advance(DAY + 1)
    assert stores[0].expire() == 600
    clock.advance(DAY + 1)
    results: list[PruneResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(store: HubStore) -> None:
        barrier.wait()
        try:
            results.append(store.prune(batch=50))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.reports for r in results) == 600
    assert sum(r.addresses for r in results) == 600
    assert sum(r.changes for r in results) == 1199
    assert stores[1].blocklist() == ([], 1200)
    assert stores[1].stats(0, 2e9).reports == 0


# ---- dashboard users and sessions -------------------------------------------------------


def test_users_logins_and_totp_steps(store: HubStore, clock: FakeClock) -> None:
    user = store.add_user("admin", "$argon2id$...", "JBSWY3DPEHPK3PXP")
    with pytest.raises(HubError, match="already exists"):
        store.add_user("admin", "x", "y")
    store.record_login(user.id, False, locked_until=START + 900)
    store.record_login(user.id, False)
    found = store.user("admin")
    assert found is not None
    assert (found.failed_logins, found.locked_until) == (2, START + 900)
    store.record_login(user.id, True)
    found = store.user("admin")
    assert found is not None
    assert (found.failed_logins, found.locked_until, found.last_login) == (0, None, START)
    assert store.user("nobody") is None
    assert store.set_totp_step(user.id, 1000)
    assert not store.set_totp_step(user.id, 1000)  # the same code twice
    assert not store.set_totp_step(user.id, 999)
    assert store.set_totp_step(user.id, 1001)


def test_sessions(store: HubStore, clock: FakeClock) -> None:
    user = store.add_user("admin", "hash", "secret")
    half = SessionInfo("a" * 64, user.id, "password", "csrf1", START, START + 300, "192.0.2.9")
    store.create_session(half)
    assert store.session("a" * 64) == half
    full = SessionInfo("b" * 64, user.id, "full", "csrf2", START, START + 1800, "192.0.2.9")
    assert store.promote_session(half.id, full)
    assert not store.promote_session(half.id, full)  # only once
    assert store.session(half.id) is None
    assert store.session(full.id) == full
    assert store.touch_session(full.id, START + 3600)
    clock.advance(2000)
    assert store.session(full.id) is not None
    clock.advance(2000)
    assert store.session(full.id) is None
    assert store.purge_sessions() == 1
    assert not store.delete_session(full.id)
    clock.set(START)
    store.create_session(full)
    assert store.session(full.id) is not None
    assert store.remove_user("admin")
    assert not store.remove_user("admin")
    assert store.users() == []
    assert store.session(full.id) is None


# ---- migrations, URLs, errors -----------------------------------------------------------


def test_an_older_database_is_upgraded(blank_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = HubStore(blank_url)
    engine = sa.create_engine(store._url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option(
            "script_location", str(Path(store_module.__file__).parent / "migrations")
        )
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    agent, token = store.add_agent("old")
    assert store.migrate() == ("0001", "0002")
    assert store.migrate() == ("0002", "0002")
    assert store.agent_for_token(token) == agent
    store.add_user("admin", "hash", "secret")
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    assert {table.name for table in schema.metadata.sorted_tables} <= tables
    engine.dispose()
    store.close()


def test_a_database_that_was_never_migrated(blank_url: str) -> None:
    store = HubStore(blank_url)
    with pytest.raises(HubError, match="run `gardien hub migrate`"):
        store.agents()
    store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://root:hunter2@db/hub", "postgresql+psycopg2://u:hunter2@h/db", "not a url"],
)
def test_unsupported_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(HubError) as caught:
        HubStore(url)
    assert "hunter2" not in str(caught.value)
    assert "sqlite:///PATH" in str(caught.value)


def test_an_unreachable_server_is_a_hub_error_without_the_password(tmp_path: Path) -> None:
    store = HubStore(f"postgres://gardien:hunter2@/hub?host={tmp_path}&connect_timeout=2")
    with pytest.raises(HubError) as caught:
        store.health()
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


def test_health(store: HubStore) -> None:
    store.health()

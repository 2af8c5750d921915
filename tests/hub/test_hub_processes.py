"""Several ``gardien hub serve`` processes on one PostgreSQL database, as behind a load
balancer: agents' reports spread over both processes add up to one consensus and one
blocklist, and concurrent ingestion through both loses nothing."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import pytest

from gardien.hub.store import HubStore
from support.hubdb import PostgresServer, running_postgres
from support.hubserver import hub_server

#: public addresses (the hub never lists a private or documentation range)
LISTED = "185.220.101.33"
ALONE = "185.220.101.34"


@pytest.fixture
def two_hubs(postgres: PostgresServer | None) -> Iterator[tuple[str, list[str], list[str]]]:
    """A migrated PostgreSQL database, three agents, and two hub processes serving it."""
    server = running_postgres(postgres)
    url = server.create_database()
    store = HubStore(url)
    store.migrate()
    tokens = [store.add_agent(f"agent{i}", f"198.51.{i}.0/24")[1] for i in range(3)]
    store.close()
    try:
        with (
            hub_server(url, "--rate-limit", "0") as first,
            hub_server(url, "--rate-limit", "0") as second,
        ):
            yield url, [first, second], tokens
    finally:
        server.drop_database(url)


def report(ip: str, when: float) -> dict[str, object]:
    return {"ip": ip, "jail": "sshd", "category": "ssh", "time": when, "failures": 5}


def test_reports_through_two_processes_reach_one_consensus(
    two_hubs: tuple[str, list[str], list[str]],
) -> None:
    _url, (first, second), tokens = two_hubs
    now = time.time()

    def post(base: str, token: str, ip: str) -> dict[str, object]:
        answer = httpx.post(
            f"{base}/api/v1/reports",
            json={"reports": [report(ip, now - 60)]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        body: dict[str, object] = answer.json()
        return body

    # three agents, three networks, two processes: the third report lists the address
    assert post(first, tokens[0], LISTED)["listed"] == []
    assert post(second, tokens[1], LISTED)["listed"] == []
    assert post(first, tokens[2], LISTED)["listed"] == [LISTED]
    assert post(second, tokens[0], ALONE)["listed"] == []

    lists = []
    for base in (first, second):
        answer = httpx.get(
            f"{base}/api/v1/blocklist",
            params={"format": "json", "since": "0"},
            headers={"Authorization": f"Bearer {tokens[1]}"},
            timeout=10,
        )
        assert answer.status_code == 200
        lists.append(answer.json())
    # both processes answer from the one database: same list, same cursor
    assert lists[0] == lists[1]
    assert lists[0]["add"] == [LISTED] and lists[0]["remove"] == []
    reputation = httpx.get(
        f"{second}/api/v1/ip/{LISTED}",
        headers={"Authorization": f"Bearer {tokens[2]}"},
        timeout=10,
    ).json()
    assert reputation["listed"] is True
    assert reputation["agents"] == 3 and reputation["networks"] == 3


def test_concurrent_ingestion_through_both_processes_loses_nothing(
    two_hubs: tuple[str, list[str], list[str]],
) -> None:
    url, bases, tokens = two_hubs
    now = time.time()
    batches = 12
    per_batch = 200

    def send(index: int) -> int:
        base = bases[index % 2]
        token = tokens[index % 3]
        # the same addresses from every agent: the processes update the same rows at once
        reports = [
            report(f"185.220.{100 + i // 250}.{i % 250 + 1}", now - 60 - index)
            for i in range(per_batch)
        ]
        answer = httpx.post(
            f"{base}/api/v1/reports",
            json={"reports": reports},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert answer.status_code == 202, answer.text
        accepted: int = answer.json()["accepted"]
        return accepted

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        accepted = sum(pool.map(send, range(batches)))
    assert accepted == batches * per_batch
    store = HubStore(url)
    try:
        stats = store.stats(now - 86400, now + 60)
        assert stats.reports == batches * per_batch
        # every address was reported by all three agents from three networks: all listed
        listed, _cursor = store.blocklist()
        assert len(listed) == per_batch
        reputation = store.reputation("185.220.100.1")
        assert reputation.reports == batches and reputation.agents == 3
    finally:
        store.close()

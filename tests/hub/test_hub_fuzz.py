"""The hub's API fuzzed from its own OpenAPI spec (schemathesis): whatever an agent sends,
valid or not, the answer is never a server error. In-process, on a real SQLite store.

The schema is loaded when the module is imported (``schema.parametrize()`` needs it then;
schemathesis' lazy ``from_fixture`` does not work with this pytest), so the store lives in a
temporary directory made here and removed when the module's tests are done.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gardien.hub.app import create_app
from gardien.hub.model import Consensus, Report
from gardien.hub.settings import HubSettings
from gardien.hub.store import HubStore

_DIRECTORY = Path(tempfile.mkdtemp(prefix="gardien-hub-fuzz-"))
_STORE = HubStore(
    f"sqlite:///{_DIRECTORY / 'hub.sqlite3'}", consensus=Consensus(min_agents=1, min_networks=1)
)
_STORE.migrate()
_AGENT, _TOKEN = _STORE.add_agent("fuzzer", "192.0.2.0/24")
# something to find: a listed address, so that reads go through real rows
_STORE.ingest(
    _AGENT,
    "192.0.2.1",
    [Report(ip="185.220.101.7", jail="sshd", category="ssh", time=time.time(), failures=5)],
)
_AUTH = {"Authorization": f"Bearer {_TOKEN}"}
# no rate limit: the fuzzer is one very busy agent
_APP = create_app(_STORE, HubSettings(consensus=_STORE.consensus, rate_limit=0))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, headers=_AUTH)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _STORE.close()
    shutil.rmtree(_DIRECTORY, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_a_server_error(case: Any) -> None:
    # and every answer is one the spec documents: its status, content type and shape
    case.call_and_validate(headers=_AUTH, checks=CHECKS)


def test_the_fuzzer_covers_every_operation() -> None:
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert operations == {
        ("GET", "/health"),
        ("POST", "/api/v1/reports"),
        ("GET", "/api/v1/ip/{ip}"),
        ("GET", "/api/v1/blocklist"),
        ("GET", "/api/v1/stats"),
    }

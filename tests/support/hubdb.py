"""Databases for the hub's tests: SQLite files, and a real PostgreSQL server.

``hub_url`` is parametrised over ``sqlite`` and ``postgresql`` and gives each test a fresh,
migrated, empty database. PostgreSQL is the server named by ``GARDIEN_TEST_POSTGRES_URL``
(``postgresql://user:password@host/db``; tests use scratch databases created on it), else a
throw-away cluster started once per test session: ``initdb`` into a temporary directory
(as user ``postgres`` when the tests run as root: PostgreSQL refuses to run as root), the
server listening only on a Unix socket in that directory, removed at the end. With neither,
the PostgreSQL cases skip, but fail under CI (``CI`` set), where the server is installed.

tests/conftest.py imports the fixtures, so every test module can ask for them. Nothing here
needs the ``[hub]`` extra until a fixture is used.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "blank_url", "hub_url", "migrated_postgres", "postgres"]

_counter = itertools.count()


def postgres_binaries() -> Path | None:
    """The directory of PostgreSQL's server programs (Debian puts them off the PATH)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """A PostgreSQL server for tests and benchmarks: ``admin_url`` reaches its ``postgres``
    database; :meth:`create_database` makes a scratch database and returns its URL."""

    def __init__(self, admin_url: str, directory: Path | None = None) -> None:
        self.admin_url = admin_url
        self.directory = directory
        self._stop_command: list[str] | None = None

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer | None:
        """Start a throw-away cluster (``None`` if PostgreSQL is not installed).
        ``durable``: keep fsync on (for honest benchmarks); tests do without."""
        binaries = postgres_binaries()
        if binaries is None:
            return None
        directory = Path(tempfile.mkdtemp(prefix="gardien-pg-"))
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
            as_postgres = ["runuser", "-u", "postgres", "--"]
        data = directory / "data"
        subprocess.run(
            [
                *as_postgres,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
        )
        options = f"-k {directory} -c listen_addresses= -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            [
                *as_postgres,
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(directory / "server.log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        server = cls(f"postgresql://postgres@/postgres?host={directory}", directory)
        server._stop_command = [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data)]
        return server

    def stop(self) -> None:
        """Stop a cluster this object started, and remove it."""
        if self._stop_command is not None:
            subprocess.run(
                [*self._stop_command, "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
            )
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"gardien_test_{os.getpid()}_{next(_counter)}"
        self._admin(f'CREATE DATABASE "{name}"')
        base, _, query = self.admin_url.partition("?")
        return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")

    def drop_database(self, url: str) -> None:
        """Drop a database :meth:`create_database` made (its connections are closed)."""
        name = url.partition("?")[0].rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    """The PostgreSQL server of this test session, or ``None`` if there is none."""
    configured = os.environ.get("GARDIEN_TEST_POSTGRES_URL")
    if configured:
        yield PostgresServer(configured)
        return
    server = PostgresServer.start()
    try:
        yield server
    finally:
        if server is not None:
            server.stop()


def running_postgres(postgres: PostgresServer | None) -> PostgresServer:
    from support.ci import require

    require(
        postgres is not None,
        "PostgreSQL is not installed (apt-get install postgresql) and "
        "GARDIEN_TEST_POSTGRES_URL is not set",
    )
    assert postgres is not None
    return postgres


@pytest.fixture(scope="session")
def migrated_postgres(postgres: PostgresServer | None) -> Iterator[str | None]:
    """One migrated database for the session's PostgreSQL tests (emptied before each)."""
    if postgres is None:
        yield None
        return
    from gardien.hub.store import HubStore

    url = postgres.create_database()
    store = HubStore(url)
    store.migrate()
    store.close()
    yield url
    postgres.drop_database(url)


def _truncate(url: str) -> None:
    import psycopg

    from gardien.hub import schema
    from gardien.hub.store import database_url

    plain = database_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    tables = ", ".join(table.name for table in schema.metadata.sorted_tables)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres: PostgresServer | None,
    migrated_postgres: str | None,
) -> str:
    """A fresh, migrated, empty hub database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        from gardien.hub.store import HubStore

        url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
        store = HubStore(url)
        store.migrate()
        store.close()
        return url
    running_postgres(postgres)
    assert migrated_postgres is not None
    _truncate(migrated_postgres)
    return migrated_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer | None
) -> Iterator[str]:
    """A new database with no tables at all: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.sqlite3'}"
        return
    server = running_postgres(postgres)
    url = server.create_database()
    yield url
    server.drop_database(url)

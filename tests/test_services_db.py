"""Real database and directory servers (Debian's MariaDB, PostgreSQL and OpenLDAP) in a network
namespace lab: an attacker fails logins with the real clients (``mariadb``, ``psql``,
``ldapwhoami``), a friend logs in from another address, and gardien's bundled filters
(``mysqld-auth``, ``postgresql``, ``slapd``) find exactly the attacker's failures in the log each
server really wrote."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require
from hubdb import _binaries as postgres_binaries
from netns import Lab
from services import (
    Service,
    Syslog,
    assert_exactly,
    failures_found,
    require_tools,
    service_lab,
    settle,
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with service_lab(clients=2) as built:
        yield built


def test_mariadb_failed_logins_are_found(lab: Lab, tmp_path: Path) -> None:
    require_tools("mariadbd", "mariadb-install-db", "mariadb")
    data, socket, log = tmp_path / "data", tmp_path / "mariadb.sock", tmp_path / "error.log"
    lab.run(
        lab.server,
        "mariadb-install-db",
        "--no-defaults",
        f"--datadir={data}",
        "--user=root",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    )
    service = Service.start(
        lab,
        [
            "mariadbd",
            "--no-defaults",
            "--user=root",
            f"--datadir={data}",
            f"--socket={socket}",
            f"--pid-file={tmp_path / 'mariadbd.pid'}",
            "--port=3306",
            "--bind-address=0.0.0.0",
            "--skip-name-resolve",
            f"--log-error={log}",
            "--log-warnings=2",
            "--innodb-buffer-pool-size=16M",
        ],
        tmp_path,
        port=3306,
    )
    try:
        admin = ["mariadb", "--no-defaults", f"--socket={socket}", "-uroot"]
        # no anonymous accounts: a name nobody created must fail as itself
        lab.run(
            lab.server,
            *admin,
            "-e",
            "DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES; "
            "CREATE USER 'app'@'%' IDENTIFIED BY 'good-secret';",
        )
        attacker, friend = lab.clients
        server = str(attacker.server_ipv4)
        for user, password in [
            ("root", "wrong"),
            ("app", "guess"),
            # a user name carrying a forged address: still the attacker's failure
            ("x'@'203.0.113.250' (using password: YES)", "x"),
        ]:
            failed = lab.run(
                attacker.namespace,
                *["mariadb", "--no-defaults", "-h", server, "-u", user, f"-p{password}"],
                *["-e", "SELECT 1"],
                check=False,
            )
            assert failed.returncode != 0, failed.stdout
        lab.run(
            friend.namespace,
            *["mariadb", "--no-defaults", "-h", str(friend.server_ipv4), "-u", "app"],
            *["-pgood-secret", "-e", "SELECT 1"],
        )
        settle(log)
        assert_exactly(
            failures_found(log, "mysqld-auth"),
            {str(attacker.ipv4): 3},
            absent=[str(friend.ipv4)],
            log=log.read_text(),
        )
    finally:
        service.stop()


@pytest.fixture
def postgres_directory() -> Iterator[Path]:
    """A directory the ``postgres`` user may use (PostgreSQL refuses to run as root, and
    pytest's tmp_path is closed to other users)."""
    directory = Path(tempfile.mkdtemp(prefix="gardien-pg-"))
    try:
        shutil.chown(directory, "postgres", "postgres")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_postgresql_failed_logins_are_found(
    lab: Lab, tmp_path: Path, postgres_directory: Path
) -> None:
    binaries = postgres_binaries()
    require(binaries is not None, "PostgreSQL is missing (scripts/test installs it)")
    assert binaries is not None
    require_tools("psql", "runuser")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    data = postgres_directory / "data"
    lab.run(
        lab.server,
        *as_postgres,
        *[str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        *["-E", "UTF8", "--no-sync", "--no-instructions"],
    )
    (data / "pg_hba.conf").write_text(
        "local all postgres trust\nhost all app 0.0.0.0/0 scram-sha-256\n"
    )
    # Debian's log_line_prefix; the server's standard error is the log, as pg_ctlcluster's
    service = Service.start(
        lab,
        [
            *as_postgres,
            str(binaries / "postgres"),
            *["-D", str(data), "-k", str(postgres_directory)],
            *["-c", "listen_addresses=*", "-c", "log_connections=on"],
            *["-c", "log_line_prefix=%m [%p] %q%u@%d ", "-c", "fsync=off"],
        ],
        tmp_path,
        name="postgres",
        port=5432,
    )
    try:
        lab.run(
            lab.server,
            *as_postgres,
            *["psql", "-h", str(postgres_directory), "-U", "postgres", "-d", "postgres"],
            *["-c", "CREATE ROLE app LOGIN PASSWORD 'good-secret'"],
        )
        attacker, friend = lab.clients

        def psql(client_namespace: str, server: str, user: str, password: str) -> int:
            return lab.run(
                client_namespace,
                *["env", f"PGPASSWORD={password}", "PGCONNECT_TIMEOUT=10", "psql", "-w"],
                *["-h", server, "-U", user, "-d", "postgres", "-c", "SELECT 1"],
                check=False,
            ).returncode

        server = str(attacker.server_ipv4)
        assert psql(attacker.namespace, server, "app", "wrong") != 0  # password failed
        assert psql(attacker.namespace, server, "app", "guess") != 0
        assert psql(attacker.namespace, server, "root", "x") != 0  # no pg_hba.conf entry
        assert psql(friend.namespace, str(friend.server_ipv4), "app", "good-secret") == 0
        settle(service.output)
        assert_exactly(
            failures_found(service.output, "postgresql"),
            {str(attacker.ipv4): 3},
            absent=[str(friend.ipv4)],
            log=service.log(),
        )
    finally:
        service.stop()


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {directory}/slapd.pid
argsfile {directory}/slapd.args
loglevel stats
database mdb
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw good-secret
directory {directory}/db
"""


def test_slapd_failed_binds_are_found(lab: Lab, tmp_path: Path) -> None:
    require_tools("slapd", "ldapwhoami")
    (tmp_path / "db").mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(directory=tmp_path))
    syslog = Syslog.start(tmp_path)
    # "-d 0": in the foreground, the stats lines through syslog as Debian's slapd logs them
    service = Service.start(
        lab,
        ["slapd", "-d", "0", "-h", "ldap:///", "-f", str(conf)],
        tmp_path,
        syslog=syslog,
        port=389,
    )
    try:
        attacker, friend = lab.clients
        server = f"ldap://{attacker.server_ipv4}/"
        for dn, password in [
            ("cn=admin,dc=example,dc=org", "wrong"),
            ("cn=admin,dc=example,dc=org", "guess"),
            ("uid=nobody IP=203.0.113.250:1,dc=example,dc=org", "x"),  # no such entry
        ]:
            failed = lab.run(
                attacker.namespace,
                *["ldapwhoami", "-x", "-H", server, "-D", dn, "-w", password],
                check=False,
            )
            assert failed.returncode == 49, failed.stderr
        lab.run(
            friend.namespace,
            *["ldapwhoami", "-x", "-H", f"ldap://{friend.server_ipv4}/"],
            *["-D", "cn=admin,dc=example,dc=org", "-w", "good-secret"],
        )
        syslog.settle()
        assert_exactly(
            failures_found(syslog.path, "slapd"),
            {str(attacker.ipv4): 3},
            absent=[str(friend.ipv4)],
            log=syslog.text(),
        )
    finally:
        service.stop()
        syslog.stop()

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

from support.ci import require
from support.hubdb import postgres_binaries
from support.netns import Client, Lab
from support.services import (
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


#: (log_line_prefix, log_connections, gardien's filter): Debian's prefix, whose password
#: failures need log_connections' address; then one with the address (%r) on every line
POSTGRES_LOGS = [
    ("%m [%p] %q%u@%d ", "on", "postgresql"),
    ("%m [%p] %r %q%u@%d ", "off", "postgresql[address=prefix]"),
]


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
        "local all postgres trust\n"
        "host all app 0.0.0.0/0 scram-sha-256\n"
        "host all legacy 0.0.0.0/0 md5\n"
    )
    attacker, friend = lab.clients

    def psql(client: Client, user: str, password: str, *, socket: bool = False) -> int:
        namespace, host = (
            (lab.server, str(postgres_directory))
            if socket
            else (client.namespace, str(client.server_ipv4))
        )
        return lab.run(
            namespace,
            *["env", f"PGPASSWORD={password}", "PGCONNECT_TIMEOUT=10", "psql", "-w", "-h", host],
            *["-U", user, "-d", "postgres", "-c", "SELECT 1"],
            check=False,
        ).returncode

    for number, (prefix, connections, filter_name) in enumerate(POSTGRES_LOGS):
        # the server's standard error is the log, as with Debian's pg_ctlcluster
        service = Service.start(
            lab,
            [
                *as_postgres,
                str(binaries / "postgres"),
                *["-D", str(data), "-k", str(postgres_directory)],
                *["-c", "listen_addresses=*", "-c", f"log_connections={connections}"],
                *["-c", f"log_line_prefix={prefix}", "-c", "fsync=off"],
            ],
            tmp_path,
            name=f"postgres-{number}",
            port=5432,
        )
        try:
            if number == 0:
                lab.run(
                    lab.server,
                    *as_postgres,
                    *["psql", "-h", str(postgres_directory), "-U", "postgres", "-d", "postgres"],
                    *["-c", "CREATE ROLE app LOGIN PASSWORD 'good-secret'"],
                    *["-c", "SET password_encryption = md5"],
                    *["-c", "CREATE ROLE legacy LOGIN PASSWORD 'old-secret'"],
                )
            assert psql(attacker, "app", "wrong") != 0  # password authentication failed
            assert psql(attacker, "legacy", "guess") != 0  # the same through md5
            assert psql(attacker, "root", "x") != 0  # no pg_hba.conf entry
            assert psql(friend, "app", "good-secret") == 0
            assert psql(friend, "postgres", "", socket=True) == 0  # no address: nothing
            settle(service.output)
            assert_exactly(
                failures_found(service.output, filter_name),
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

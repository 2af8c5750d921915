"""The Prometheus endpoint: its setting (loopback only), and a real daemon scraped over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gardien._version import __version__
from gardien.config.daemon import load_daemon_settings, parse_metrics_address
from gardien.config.filters import bundled_config_dir
from gardien.daemon.host import own_addresses
from gardien.daemon.metrics import DaemonCollector, JailSample
from gardien.errors import ConfigError
from support.ci import require
from support.daemon import JAIL, Running, banned, failure_line
from support.ports import free_port

JAIL_NAME = "asterisk-provya"
#: a daemon (not started) with the asterisk-provya jail on an empty log: test_daemon's fixture


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (its socket inodes in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def scrape(
    port: int, host: str = "127.0.0.1"
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``GET /metrics``: each sample's value by name and labels."""
    response = httpx.get(f"http://{host}:{port}/metrics", timeout=5)
    assert response.status_code == 200
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def per_jail(
    metrics: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str
) -> dict[str, float]:
    return {jail: value for ((_, jail),), value in metrics.get(name, {}).items()}


# ---- the setting -----------------------------------------------------------------------------


def write_local(directory: Path, value: str) -> Path:
    local = directory / "gardien.local"
    local.write_text(f"[Definition]\n# the Prometheus endpoint\nmetrics = {value}\n")
    return local


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9191", ("127.0.0.1", 9191)),
        ("127.0.0.53:1", ("127.0.0.53", 1)),
        ("[::1]:9191", ("::1", 9191)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_loopback_addresses_are_accepted(
    tmp_path: Path, value: str, expected: tuple[str, int]
) -> None:
    write_local(tmp_path, value)
    assert load_daemon_settings(tmp_path).metrics == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0.0.0.0:9191", "0.0.0.0 is not a loopback address"),
        ("192.0.2.1:9191", "192.0.2.1 is not a loopback address"),
        ("[::]:9191", ":: is not a loopback address"),
        ("[2001:db8::1]:9191", "2001:db8::1 is not a loopback address"),
        ("metrics.example:9191", "'metrics.example' is not an IP address"),
        ("::1:9191", "in brackets"),
        ("127.0.0.1:0", "from 1 to 65535, got '0'"),
        ("127.0.0.1:70000", "from 1 to 65535, got '70000'"),
        ("127.0.0.1:http", "from 1 to 65535, got 'http'"),
        ("9191", "expected HOST:PORT"),
    ],
)
def test_other_addresses_are_refused_with_file_and_line(
    tmp_path: Path, value: str, reason: str
) -> None:
    local = write_local(tmp_path, value)
    with pytest.raises(ConfigError) as caught:
        load_daemon_settings(tmp_path)
    assert str(caught.value).startswith(f"{local}:3: [Definition] metrics: ")
    assert reason in str(caught.value)


def test_refusal_says_how_to_expose_it_safely() -> None:
    with pytest.raises(ConfigError, match=r"reverse proxy .* or an SSH tunnel"):
        parse_metrics_address("0.0.0.0:9191")


def test_off_by_default(tmp_path: Path) -> None:
    assert load_daemon_settings(bundled_config_dir()).metrics is None
    assert load_daemon_settings(tmp_path).metrics is None
    write_local(tmp_path, "")
    assert load_daemon_settings(tmp_path).metrics is None


def test_cli_option_is_checked_the_same_way(daemon: Running) -> None:
    refused = daemon.run_until_exit("--metrics", "0.0.0.0:9191")
    assert refused.returncode == 1
    assert refused.stderr.startswith("gardien: error: --metrics: 0.0.0.0 is not a loopback")
    assert "Traceback" not in refused.stderr
    assert not daemon.socket.exists()


# ---- the collector, on its own ---------------------------------------------------------------


def exposition(collector: DaemonCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_collector_shows_each_jail() -> None:
    sample = JailSample("sshd", 120, 0.25, 4, 7, 2, 1, 3, 2, 1, 1)
    text = exposition(DaemonCollector(lambda: [sample], version="9.9"))
    for line in (
        'gardien_lines_read_total{jail="sshd"} 120.0',
        'gardien_matching_seconds_total{jail="sshd"} 0.25',
        'gardien_lines_over_budget_total{jail="sshd"} 4.0',
        'gardien_failures_total{jail="sshd"} 7.0',
        'gardien_failures_ignored_total{jail="sshd"} 2.0',
        'gardien_failures_invalid_total{jail="sshd"} 1.0',
        'gardien_failing{jail="sshd"} 3.0',
        'gardien_bans_total{jail="sshd"} 2.0',
        'gardien_banned{jail="sshd"} 1.0',
        'gardien_build_info{version="9.9"} 1.0',
        "gardien_jails 1.0",
        "gardien_up 1.0",
    ):
        assert line in text.splitlines()


def test_a_daemon_that_does_not_answer_is_down_not_hung() -> None:
    def stuck() -> list[JailSample]:
        raise TimeoutError

    text = exposition(DaemonCollector(stuck))
    assert "gardien_up 0.0" in text.splitlines()
    assert f'gardien_build_info{{version="{__version__}"}} 1.0' in text
    assert "gardien_lines_read_total" not in text


# ---- a real daemon ---------------------------------------------------------------------------


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


def test_daemon_serves_per_jail_metrics(daemon: Running, port: int) -> None:
    write_local(daemon.etc, f"127.0.0.1:{port}")
    daemon.start()
    assert daemon.process is not None
    pid = daemon.process.pid
    # ping answers as soon as the control socket listens; the endpoint starts with the jails
    daemon.wait_for(lambda: listening_ports(pid) == {port}, "the metrics endpoint", 10)
    with daemon.log.open("a") as log:
        log.write(failure_line("203.0.113.61") * 3)
        log.write(failure_line("1.2.3.4") * 2)  # ignored by ignoreip
        log.write("a line that is no failure\n")
    daemon.wait_for(lambda: banned(daemon) == ["203.0.113.61"], "the ban")
    metrics = scrape(port)
    assert per_jail(metrics, "gardien_lines_read_total") == {JAIL_NAME: 6}
    assert per_jail(metrics, "gardien_failures_total") == {JAIL_NAME: 3}
    assert per_jail(metrics, "gardien_failures_ignored_total") == {JAIL_NAME: 2}
    assert per_jail(metrics, "gardien_bans_total") == {JAIL_NAME: 1}
    assert per_jail(metrics, "gardien_banned") == {JAIL_NAME: 1}
    assert per_jail(metrics, "gardien_log_sources") == {JAIL_NAME: 1}
    assert 0 < per_jail(metrics, "gardien_matching_seconds_total")[JAIL_NAME] < 5
    assert metrics["gardien_up"] == {(): 1}
    assert metrics["gardien_jails"] == {(): 1}
    assert (("version", __version__),) in metrics["gardien_build_info"]
    assert "process_cpu_seconds_total" in metrics

    # a jail added by a reload shows up at the next scrape
    other_log = daemon.log.parent / "other"
    other_log.write_text("")
    other = JAIL.replace(JAIL_NAME, "asterisk-other").format(log=other_log)
    (daemon.etc / "jail.d" / "other.conf").write_text(other)
    assert daemon.cli("reload").returncode == 0
    metrics = scrape(port)
    assert metrics["gardien_jails"] == {(): 2}
    assert per_jail(metrics, "gardien_banned") == {JAIL_NAME: 1, "asterisk-other": 0}

    output = daemon.stop()
    assert f"metrics on http://127.0.0.1:{port}/metrics" in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_endpoint_is_not_reachable_from_other_addresses(daemon: Running, port: int) -> None:
    others = [a for a in own_addresses() if "." in a and not a.startswith("127.")]
    require(bool(others), "this host has no IPv4 address besides loopback")
    write_local(daemon.etc, f"127.0.0.1:{port}")
    daemon.start()
    assert scrape(port)["gardien_up"] == {(): 1}
    for address in others:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}:{port}/metrics", timeout=2)
    daemon.stop()


def test_ipv6_loopback(daemon: Running, port: int) -> None:
    write_local(daemon.etc, f"[::1]:{port}")
    daemon.start()
    assert per_jail(scrape(port, "[::1]"), "gardien_banned") == {JAIL_NAME: 0}
    daemon.stop()


def test_no_port_is_opened_when_not_configured(daemon: Running) -> None:
    daemon.start()
    assert daemon.process is not None
    assert listening_ports(daemon.process.pid) == set()
    assert "metrics on" not in daemon.stop()


def test_a_port_in_use_stops_the_start_cleanly(daemon: Running) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = daemon.run_until_exit("--metrics", f"127.0.0.1:{port}")
    assert refused.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not daemon.socket.exists() and not daemon.pidfile.exists()

"""Real services in a network namespace lab, for the filter library's real-service tests.

A test starts the real daemon (Debian's package) in the lab's server namespace with a
configuration of its own under ``tmp_path``, fails logins against it from one client namespace
with a real client, logs in once from another, and checks what gardien's bundled filter finds in
the log the daemon really wrote::

    @pytest.fixture(scope="module")
    def lab() -> Iterator[Lab]:
        with service_lab(clients=2) as built:     # requires root and namespaces (CI: never skips)
            yield built

    def test_x(lab: Lab, tmp_path: Path) -> None:
        syslog = Syslog.start(tmp_path)          # a real rsyslogd, for daemons that use syslog
        service = Service.start(lab, [...argv...], tmp_path, syslog=syslog, port=21)
        attacker, friend = lab.clients
        lab.run(attacker.namespace, "hydra", ..., check=False)
        lab.run(friend.namespace, "curl", ..., check=False)
        syslog.settle()                          # every line written so far is in the file
        found = failures_found(syslog.path, "pure-ftpd")
        assert_exactly(found, {str(attacker.ipv4): 3}, absent=[str(friend.ipv4)])

**Syslog.** Debian's rsyslogd, started by the test with a configuration of its own, listens on a
private socket; :meth:`Syslog.wrap` runs a daemon in a mount namespace of its own where that
socket is bind-mounted on ``/dev/log``, so its ``syslog()`` calls reach this rsyslogd and no
other. Lines are written with Debian 12's default template (``RSYSLOG_FileFormat``: RFC 3339
time stamps with microseconds) or, with ``traditional=True``, the classic ``Mon DD HH:MM:SS``
one. ``/dev/log`` must exist as a mount point: where no syslog daemon runs it is missing, and an
empty regular file is put there (a ``syslog()`` call outside the tests then goes nowhere, as it
did before).

**Conflicting packages.** Debian installs one MTA and one FTP server at a time; :func:`unpacked`
gives the files of packages such as exim4-daemon-light, vsftpd or proftpd-core unpacked (not
installed) under ``/var/cache/gardien-tests``, to be run from there with a configuration given
on their command line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gardien.clock import FakeClock
from gardien.config.filters import bundled_config_dir
from gardien.matching.filter import Filter
from gardien.tester import resolve_filter, test_log
from support.ci import require
from support.netns import Lab, netns_available

CACHE = Path("/var/cache/gardien-tests")

#: ``sh -c`` program (the data are its positional parameters, never part of the program):
#: bind the private socket ``$0`` on /dev/log, then run the daemon
_WITH_DEVLOG = 'mount --bind "$0" /dev/log && exec "$@"'


@contextlib.contextmanager
def service_lab(clients: int = 2) -> Iterator[Lab]:
    """A lab with no listeners of its own in the server namespace (the services are)."""
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    with Lab.create(clients, listen=False) as built:
        yield built


def require_tools(*names: str) -> None:
    for name in names:
        require(
            shutil.which(name) is not None
            or any(Path(d, name).exists() for d in ("/usr/sbin", "/sbin")),
            f"{name} is missing (scripts/test installs it)",
        )


def unpacked(*packages: str) -> Path:
    """The files of Debian ``packages`` unpacked (not installed) into one directory under
    :data:`CACHE`, downloaded with ``apt-get download`` the first time. The directory is a
    file system root: ``root / "usr/sbin/vsftpd"``."""
    root = CACHE / "+".join(packages)
    stamp = root / ".unpacked"
    if stamp.is_file():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        result = subprocess.run(
            ["apt-get", "download", *packages],
            cwd=download,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode:
            # the package lists may be missing on a fresh machine
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
            result = subprocess.run(
                ["apt-get", "download", *packages],
                cwd=download,
                capture_output=True,
                text=True,
                timeout=300,
            )
        require(result.returncode == 0, f"apt-get download {packages}: {result.stderr.strip()}")
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        for deb in sorted(Path(download).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
    stamp.touch()
    return root


@dataclass
class Syslog:
    """A real rsyslogd writing every message it gets on :attr:`socket` to :attr:`path`."""

    directory: Path
    process: subprocess.Popen[bytes]
    socket: Path
    path: Path

    @classmethod
    def start(cls, tmp_path: Path, *, traditional: bool = False) -> Syslog:
        require_tools("rsyslogd")
        directory = tmp_path / "rsyslog"
        directory.mkdir()
        socket, path = directory / "log.sock", directory / "messages"
        template = "RSYSLOG_TraditionalFileFormat" if traditional else "RSYSLOG_FileFormat"
        conf = directory / "rsyslog.conf"
        conf.write_text(
            f'global(workDirectory="{directory}")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{socket}" CreatePath="on")\n'
            f'*.* action(type="omfile" file="{path}" template="{template}")\n'
        )
        process = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(conf), "-i", str(directory / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        syslog = cls(directory, process, socket, path)
        deadline = time.monotonic() + 10
        while not socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                syslog.stop()
                raise RuntimeError(f"rsyslogd did not start (config {conf})")
            time.sleep(0.02)
        _mount_point("/dev/log")
        return syslog

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in a mount namespace where /dev/log is this rsyslogd's socket."""
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _WITH_DEVLOG,
            str(self.socket),
            *argv,
        ]

    def settle(self, quiet: float = 0.4, timeout: float = 10.0) -> None:
        """Wait until the file has not grown for ``quiet`` seconds (rsyslogd writes shortly
        after it receives)."""
        _settle(self.path, quiet, timeout)

    def text(self) -> str:
        return self.path.read_text(errors="replace") if self.path.exists() else ""

    def stop(self) -> None:
        _stop(self.process)


def _mount_point(path: str) -> None:
    if not os.path.lexists(path):
        Path(path).touch(mode=0o666)


def _settle(path: Path, quiet: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=10)


@dataclass
class Service:
    """A daemon running in the lab's server namespace (in the foreground: it must not fork
    away, so that stopping it stops it); its standard output and error go to :attr:`output`."""

    name: str
    process: subprocess.Popen[bytes]
    output: Path
    _handle: object = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        lab: Lab,
        argv: Sequence[str],
        directory: Path,
        *,
        name: str | None = None,
        syslog: Syslog | None = None,
        port: int | None = None,
        protocol: str = "tcp",
        ready: Callable[[], bool] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Service:
        """Start ``argv`` in the server namespace and wait until ``port`` answers from the
        first client (or ``ready()`` is true)."""
        name = name or Path(argv[0]).name
        output = directory / f"{name}.out"
        command = syslog.wrap(argv) if syslog is not None else list(argv)
        handle = output.open("wb")
        process = subprocess.Popen(
            ["ip", "netns", "exec", lab.server, *command],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        service = cls(name, process, output, handle)
        lab.processes.append(process)  # killed with the lab whatever happens
        deadline = time.monotonic() + timeout
        while True:
            if ready is not None and ready():
                break
            if (
                port is not None
                and ready is None
                and lab.probe(lab.clients[0], protocol, port, 4, timeout=0.5) == "open"
            ):
                break
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{service.log()}")
            if time.monotonic() > deadline:
                service.stop()
                raise RuntimeError(f"{name} did not get ready in {timeout} s:\n{service.log()}")
            time.sleep(0.1)
        return service

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:] if self.output.exists() else ""

    def stop(self) -> None:
        # the whole session: a daemon's workers too
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(AttributeError, OSError):
            self._handle.close()  # type: ignore[attr-defined]


def settle(path: Path, quiet: float = 0.4, timeout: float = 10.0) -> None:
    """Wait until ``path`` (a log the service writes itself) has stopped growing."""
    _settle(path, quiet, timeout)


def failures_found(
    log: Path | str,
    filter_name: str,
    *,
    config_dir: Path | None = None,
    now: float | None = None,
) -> Counter[str]:
    """The failures gardien's bundled filter ``filter_name`` (``name[mode=...]`` works) finds
    in ``log``, per address, matched as the daemon matches (first failregex wins)."""
    spec = resolve_filter(filter_name, config_dir or bundled_config_dir())
    compiled = Filter(spec)
    report = test_log(
        compiled,
        str(log),
        clock=FakeClock(time.time() if now is None else now),
        check_all=False,
        keep_failures=True,
    )
    return Counter(str(failure.host) for failure in report.failures)


def assert_exactly(
    found: Counter[str], expected: Mapping[str, int], *, absent: Iterable[str] = (), log: str = ""
) -> None:
    """``found`` has exactly ``expected`` (address: failures) and none of ``absent``."""
    context = f"\nthe log:\n{log[-6000:]}" if log else ""
    for address in absent:
        assert address not in found, f"{address} (legitimate) was found: {dict(found)}{context}"
    assert dict(found) == dict(expected), f"found {dict(found)}, expected {dict(expected)}{context}"

"""A stock Debian 12 root, booted with its own systemd, for testing the package the way an
administrator installs and runs it. Needs root, ``debootstrap`` and ``systemd-nspawn``.

    root = fresh_root(tmp_path / "root")         # a copy of the cached debootstrap root
    setup(root, "apt-get", "install", "-y", "openssh-server")   # with the host's network
    with Container.boot(root, netns="gardien-srv-...", binds={dist: "/debs"}) as box:
        box.run("apt-get", "install", "-y", "/debs/gardien_0.1.0_amd64.deb")
        box.run("systemctl", "is-active", "gardien")

The base root is made once by ``debootstrap`` (the default variant: what a stock install
has, systemd and apt included) from the mirror that this machine's own apt uses, and kept as
a tar file in ``CACHE``; every test gets a fresh copy of it, so nothing carries over from one
run to the next. Without the cache it is made from nothing (a few minutes).

``setup`` runs a command in the root with ``systemd-nspawn`` as a plain chroot-like
container that shares the host's network (to reach the package mirror). ``Container.boot``
starts the root's systemd as PID 1 in a network namespace of the caller's (a
``netns.Lab``'s server, say); commands then run inside it with ``nsenter``, so
``systemctl`` drives the real service manager: units, their sandboxing, maintainer scripts
that start and stop services.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["CACHE", "Container", "file_list", "fresh_root", "mirror", "setup"]

CACHE = Path(os.environ.get("GARDIEN_TEST_CACHE", "/var/cache/gardien-tests"))
SUITE = "bookworm"
BASE = CACHE / f"{SUITE}-root.tar"
#: paths whose contents change by themselves (caches, logs of apt and dpkg, the journal,
#: dpkg's own database): left out of the lists that compare a root before and after
VOLATILE = (
    "proc",
    "sys",
    "dev",
    "run",
    "tmp",
    "var/tmp",
    "var/cache",
    "var/lib/apt",
    "var/lib/dpkg",
    "var/lib/systemd",
    "var/lib/ucf",
    "var/lib/logrotate",
    "var/log/journal",
    "var/log/apt",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/lastlog",
    "var/log/wtmp",
    "var/log/btmp",
    "etc/ld.so.cache",
    "etc/machine-id",
    "var/lib/dbus/machine-id",
)
_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


REPO = Path(__file__).resolve().parents[2]


def build_debs(output: Path, version: str | None = None) -> Path:
    """``make deb`` into ``output`` (as ``version`` if given): the path of gardien's .deb, the
    other packages of the source (gardien-hub, gardien-fail2ban-compat) beside it."""
    env = {**os.environ, "DEB_OUTPUT": str(output)}
    if version:
        env["DEB_VERSION"] = version
    result = subprocess.run(
        ["make", "deb"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, f"make deb:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    built = sorted(output.glob("gardien_*.deb"))
    assert len(built) == 1, built
    return built[0]


def archive_needs(deb: Path) -> list[str]:
    """The packages ``deb`` takes from Debian's archive (its Depends and Recommends, the first
    of each alternative, versions left out), to install in a root before it (the root has no
    network once booted)."""
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends", "Recommends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(
        {
            re.sub(r"\s*\(.*\)", "", alternative.split("|")[0]).strip()
            for line in fields.splitlines()
            for alternative in line.partition(":")[2].split(",")
            if alternative.strip()
        }
    )


def mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 ``.sources`` or ``sources.list``)."""
    candidates: list[str] = []
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            if re.search(rf"^Suites:.*\b{SUITE}\b", stanza, re.M) and "security" not in stanza:
                found = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if found:
                    candidates.append(found.group(1))
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                candidates.append(words[1])
    if not candidates:
        raise RuntimeError(f"no Debian {SUITE} mirror in this machine's apt sources")
    return candidates[0]


def _base_tarball() -> Path:
    """The cached debootstrap root, made first if missing (atomically: a half-made cache is
    never used)."""
    if BASE.is_file():
        return BASE
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"{SUITE}-root.work"
    shutil.rmtree(work, ignore_errors=True)
    try:
        subprocess.run(
            ["debootstrap", SUITE, str(work), mirror()],
            check=True,
            capture_output=True,
            text=True,
            env={"PATH": _PATH, "LC_ALL": "C"},
        )
        partial = BASE.with_suffix(".tar.partial")
        subprocess.run(
            ["tar", "--xattrs", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."],
            check=True,
        )
        partial.rename(BASE)
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"debootstrap failed:\n{error.stdout}\n{error.stderr}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BASE


def fresh_root(directory: Path) -> Path:
    """A new copy of the base root in ``directory`` (made if missing)."""
    tarball = _base_tarball()
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["tar", "--xattrs", "--numeric-owner", "-C", str(directory), "-xf", str(tarball)],
        check=True,
    )
    return directory


def setup(root: Path, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a command in ``root`` (not booted), with the host's network; raise with its
    output if it fails."""
    command = [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--as-pid2",
        "-D",
        str(root),
        "--setenv=DEBIAN_FRONTEND=noninteractive",
        "--",
        *argv,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={"PATH": _PATH}
    )
    if result.returncode:
        raise RuntimeError(
            f"{' '.join(argv)} in {root} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def file_list(root: Path) -> dict[str, str]:
    """Every path under ``root`` but the volatile ones, with its type and mode."""
    entries: dict[str, str] = {}
    skip = {root / part for part in VOLATILE}
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory)
        subdirectories[:] = [d for d in subdirectories if here / d not in skip]
        for name in [*subdirectories, *files]:
            path = here / name
            if path in skip:
                continue
            info = path.lstat()
            entries["/" + str(path.relative_to(root))] = f"{info.st_mode:o}"
    return entries


class Container:
    """A booted root: its systemd is PID 1 in a network namespace of the caller's."""

    def __init__(self, process: subprocess.Popen[bytes], leader: int, root: Path) -> None:
        self.process = process
        self.leader = leader
        self.root = root

    @classmethod
    @contextlib.contextmanager
    def boot(
        cls,
        root: Path,
        *,
        netns: str,
        binds: Mapping[Path, str] = {},
        within: float = 120,
    ) -> Iterator[Container]:
        """Boot ``root`` until systemd says it is up; power it off on leaving."""
        command = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--boot",
            "-D",
            str(root),
            f"--network-namespace-path=/run/netns/{netns}",
            "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
            *(f"--bind-ro={source}:{target}" for source, target in binds.items()),
        ]
        log = open(root.parent / f"{root.name}.console.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": _PATH},
        )
        container: Container | None = None
        try:
            container = cls(process, _leader(process, within), root)
            container._wait_running(within)
            yield container
        finally:
            log.close()
            if container is not None:
                container.poweroff()
            _end(process)

    def run(
        self, *argv: str, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the booted container (as root, in all its namespaces)."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "--", "/usr/bin/env", "-i", *_ENV, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and result.returncode:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def _wait_running(self, within: float) -> None:
        deadline = time.monotonic() + within
        state = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.process.returncode}")
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the container did not finish booting: {state!r}")

    def poweroff(self, within: float = 60) -> None:
        """Shut the container down cleanly (its services stopped by systemd)."""
        if self.process.poll() is None:
            self.run("systemctl", "poweroff", check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=within)


_ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive")


def _leader(process: subprocess.Popen[bytes], within: float) -> int:
    """The container's PID 1 (systemd), a child of systemd-nspawn, as the host sees it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited {process.returncode}")
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
        time.sleep(0.05)
    raise RuntimeError("systemd did not start in the container")


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

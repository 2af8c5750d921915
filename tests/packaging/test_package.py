"""The Debian package as an administrator meets it: ``make deb``, then ``apt install`` in a
fresh Debian 12 root (debootstrap, tests/support/debroot.py) booted with its own systemd, in the
server namespace of a network lab (tests/support/netns.py).

One scenario, in the order an administrator lives it; each test is one step and relies on
the ones before it (pytest runs them in file order):

1. the previous version is installed with apt: the service is enabled and started by the
   package, reads sshd's entries from the journal (the root has no rsyslog, so no
   /var/log/auth.log: a stock Debian 12), and a real OpenSSH server's "Invalid user" lines,
   caused by a real ssh client from the attacker's namespace, get the attacker banned;
2. 1,000 more bans, then an upgrade to the current version: the postinst checks the
   configuration and restarts the service, which keeps every ban;
3. the installed files, their modes, the units (``systemd-analyze verify``), ``gardien config
   check``, reload, logrotate's ``flushlogs``, stop and start, all through systemd;
4. ``dpkg --remove`` leaves no gardien table in the firewall, even with ``keepbans = yes``;
   ``dpkg --purge`` leaves no file that was not there before the install.

Heavy (two package builds, a debootstrap root): about four minutes, once per run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.ci import require
from support.debroot import Container, archive_needs, build_debs, file_list, fresh_root, setup
from support.netns import Client, Lab, netns_available

PREVIOUS_SUFFIX = "~prev1"  # sorts before the version it is appended to
ATTACKS = 6  # "Invalid user" lines caused; the sshd jail bans at 5
EXTRA_BANS = 1000


@dataclass
class Packages:
    previous: Path
    current: Path
    version: str


@dataclass
class Scene:
    lab: Lab
    box: Container
    root: Path
    packages: Packages
    before_install: dict[str, str] = field(default_factory=dict)

    @property
    def attacker(self) -> Client:
        return self.lab.clients[0]

    def gardien(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.box.run("gardien", *argv, check=check)


def _arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _tools() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "dpkg-buildpackage", "ssh"):
        if shutil.which(tool) is None:
            return False, f"needs {tool}"
    return netns_available()


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Packages:
    available, why = _tools()
    require(available, f"the package test: {why}")
    debs = tmp_path_factory.mktemp("debs")
    current: Path = request.getfixturevalue("current_deb")
    version = subprocess.run(
        ["dpkg-deb", "-f", str(current), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    previous = build_debs(debs / "previous", version + PREVIOUS_SUFFIX)
    return Packages(previous, current, version)


@pytest.fixture(scope="module")
def scene(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = fresh_root(tmp_path_factory.mktemp("debian") / "root")
    # what the package needs from the archive, and a real sshd (its Depends and
    # Recommends; the root has no network once booted)
    needs = archive_needs(packages.current)
    setup(root, "apt-get", "update", "-qq")
    # and what a stock install has beside debootstrap's base: man-db (systemd-analyze verify
    # reads the units' man: pages with it)
    setup(root, "apt-get", "install", "-y", "-qq", *needs, "openssh-server", "man-db")
    assert not (root / "var/log/auth.log").exists(), "a stock Debian 12 has no auth.log"
    binds = {packages.current.parent: "/debs/current", packages.previous.parent: "/debs/previous"}
    with (
        Lab.create(clients=1, listen=False) as lab,
        Container.boot(root, netns=lab.server, binds=binds) as box,
    ):
        yield Scene(lab, box, root, packages)


def _in_box(scene: Scene, deb: Path) -> str:
    which = "current" if deb.parent == scene.packages.current.parent else "previous"
    return f"/debs/{which}/{deb.name}"


def _gardien_tables(scene: Scene) -> list[dict[str, object]]:
    output = scene.box.run("nft", "-j", "list", "ruleset").stdout
    items = json.loads(output)["nftables"]
    return [i["table"] for i in items if "table" in i and "gardien" in i["table"]["name"]]


def _banned(scene: Scene) -> set[str]:
    """The addresses banned in the sshd jail, as the daemon tells them."""
    return set(scene.gardien("get", "sshd", "banip").stdout.split())


def _kernel_set(scene: Scene) -> set[str]:
    """The IPv4 addresses in gardien's nftables sets, as the kernel holds them."""
    listing = scene.box.run("nft", "-j", "list", "sets", "table", "inet", "gardien", check=False)
    if listing.returncode:
        return set()  # no table: nothing banned
    addresses: set[str] = set()
    for item in json.loads(listing.stdout)["nftables"]:
        for element in item.get("set", {}).get("elem", []):
            value = element["elem"]["val"] if isinstance(element, dict) else element
            if isinstance(value, str) and "." in value:
                addresses.add(value)
    return addresses


def _attack(scene: Scene, count: int) -> list[str]:
    """``count`` ssh logins as a user that does not exist: sshd logs "Invalid user"."""
    return [scene.lab.ssh_login(scene.attacker) for _ in range(count)]


def _wait(condition: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {within} s: {what}")


# ---- 1. install, and the first ban ---------------------------------------------------------


def test_apt_install_enables_and_starts_the_service(scene: Scene) -> None:
    scene.before_install = file_list(scene.root)
    scene.box.run("apt-get", "install", "-y", _in_box(scene, scene.packages.previous))
    assert scene.box.run("systemctl", "is-enabled", "gardien").stdout.strip() == "enabled"
    _wait(
        lambda: scene.gardien("ping", check=False).returncode == 0,
        30,
        "gardien answers on its control socket",
    )
    assert scene.box.run("systemctl", "is-active", "gardien").stdout.strip() == "active"
    # the hub is a package of its own
    assert not Path(scene.root, "lib/systemd/system/gardien-hub.service").exists()


def test_sshd_failures_in_the_journal_get_the_attacker_dropped(scene: Scene) -> None:
    attacker = str(scene.attacker.ipv4)
    assert scene.lab.probe(scene.attacker, "tcp", 22, 4, 3.0) == "open"
    _attack(scene, ATTACKS)
    _wait(lambda: attacker in _kernel_set(scene), 20, f"{attacker} in gardien's nft set")
    assert attacker in _banned(scene)
    assert scene.lab.probe(scene.attacker, "tcp", 22, 4, 1.0) != "open"
    log = scene.box.run("journalctl", "-u", "gardien", "--no-pager").stdout
    assert "Traceback" not in log


# ---- 2. upgrade with 1,000 bans ----------------------------------------------------------------


def test_upgrade_keeps_every_active_ban(scene: Scene) -> None:
    network = ipaddress.ip_network("198.18.0.0/15")
    extra = [str(network[i + 1]) for i in range(EXTRA_BANS)]
    for start in range(0, len(extra), 250):
        scene.gardien("set", "sshd", "banip", *extra[start : start + 250])
    before = _kernel_set(scene)
    assert set(extra) | {str(scene.attacker.ipv4)} <= before
    pid_before = scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip()

    upgrade = scene.box.run("apt-get", "install", "-y", _in_box(scene, scene.packages.current))
    version = scene.box.run("dpkg-query", "-W", "-f=${Version}", "gardien").stdout
    assert version == scene.packages.version, upgrade.stdout
    pid_after = scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip()
    assert pid_after not in ("0", pid_before), "the upgrade restarts the daemon"
    _wait(lambda: scene.gardien("ping", check=False).returncode == 0, 30, "gardien is back")
    assert before <= _banned(scene)
    assert before <= _kernel_set(scene)


def test_an_upgrade_onto_a_broken_configuration_does_not_restart(scene: Scene) -> None:
    local = "/etc/gardien/jail.d/broken.local"
    scene.box.run("sh", "-c", f"printf '[sshd]\\nmaxretry = many\\n' > {local}")
    pid = scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip()
    reinstall = scene.box.run(
        "apt-get", "install", "-y", "--reinstall", _in_box(scene, scene.packages.current)
    )
    assert "broken.local" in reinstall.stderr + reinstall.stdout  # the error, with its file
    assert "was not (re)started" in reinstall.stderr + reinstall.stdout
    assert scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip() == pid
    scene.box.run("rm", local)


# ---- 3. what is installed, and the unit's commands --------------------------------------------


def test_files_and_modes(scene: Scene) -> None:
    def mode(path: str) -> str:
        return scene.box.run("stat", "-c", "%a %U", path).stdout.strip()

    for conf in ("gardien.conf", "jail.conf", "jail.local", "filter.d/sshd.conf"):
        assert mode(f"/etc/gardien/{conf}") == "644 root"
    assert mode("/etc/gardien/jail.d") == "755 root"
    assert mode("/var/lib/gardien") == "700 root"
    assert mode("/var/lib/gardien/gardien.sqlite3") == "600 root"
    assert mode("/run/gardien/gardien.sock") == "600 root"
    assert scene.box.run("readlink", "-f", "/usr/bin/gardien").stdout.strip() == (
        "/usr/lib/gardien/bin/gardien"
    )
    conffiles = scene.box.run("cat", "/var/lib/dpkg/info/gardien.conffiles").stdout.split()
    for conf in ("gardien.conf", "jail.conf", "jail.local", "filter.d/sshd.conf"):
        assert f"/etc/gardien/{conf}" in conffiles
    assert "/etc/logrotate.d/gardien" in conffiles
    listed = scene.box.run("dpkg", "-L", "gardien").stdout.split()
    for page in ("man1/gardien.1.gz", "man5/gardien.conf.5.gz", "man5/gardien-jail.conf.5.gz"):
        assert f"/usr/share/man/{page}" in listed
    assert "/usr/share/bash-completion/completions/gardien" in listed
    assert "/usr/share/zsh/vendor-completions/_gardien" in listed
    manual = scene.box.run("man", "-P", "cat", "gardien").stdout
    assert "flushlogs" in manual and "firewall clear" in manual
    for page in ("gardien.conf", "gardien-jail.conf"):
        assert "/etc/gardien" in scene.box.run("man", "-P", "cat", "5", page).stdout
    # everything the daemon needs at run time is in the package: the journal reader, the
    # nftables binding's library, Hyperscan (x86-64)
    modules = "cysystemd.reader, hyperscan" if _arch() == "amd64" else "cysystemd.reader"
    scene.box.run("/usr/lib/gardien/bin/python", "-c", f"import {modules}")
    scene.box.run(
        "/usr/lib/gardien/bin/python", "-c", "import ctypes; ctypes.CDLL('libnftables.so.1')"
    )


def _verify_unit(scene: Scene, unit: str) -> None:
    verify = scene.box.run("systemd-analyze", "verify", f"/lib/systemd/system/{unit}", check=False)
    assert verify.returncode == 0, verify.stderr
    assert unit not in verify.stderr, verify.stderr


def test_units_verify_and_configuration_checks(scene: Scene) -> None:
    _verify_unit(scene, "gardien.service")
    check = scene.gardien("config", "check")
    assert check.stdout.startswith("OK"), check.stdout
    unit = scene.box.run("systemctl", "show", "gardien", "-P", "ExecStart").stdout
    assert "/usr/bin/gardien run" in unit


def test_the_daemon_runs_with_the_units_sandbox(scene: Scene) -> None:
    """What the unit asks for is in force on the process that bans (seen from the kernel)."""
    pid = scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip()
    status = dict(
        line.split(":\t", 1)
        for line in scene.box.run("cat", f"/proc/{pid}/status").stdout.splitlines()
        if ":\t" in line
    )
    # CAP_DAC_READ_SEARCH (2), CAP_NET_ADMIN (12), CAP_NET_RAW (13), nothing else
    assert int(status["CapBnd"], 16) == (1 << 2) | (1 << 12) | (1 << 13)
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a system call filter
    # ProtectSystem=strict: /usr and /etc are read-only for it, its state directory is not
    mounts = [
        line.split()[4:6]
        for line in scene.box.run("cat", f"/proc/{pid}/mountinfo").stdout.splitlines()
    ]

    def writable(path: str) -> bool:
        """Whether the mount in force at ``path`` (the deepest mount point above it, the
        last mounted of those) is read-write."""
        covering = [
            (len(point), order, options)
            for order, (point, options) in enumerate(mounts)
            if path == point or path.startswith(point.rstrip("/") + "/")
        ]
        return max(covering)[2].split(",")[0] == "rw"

    assert not writable("/usr/lib/gardien") and not writable("/etc/gardien")
    assert writable("/var/lib/gardien") and writable("/var/log/gardien")


def test_reload_and_logrotate(scene: Scene) -> None:
    pid = scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip()
    scene.box.run("systemctl", "reload", "gardien")
    assert scene.box.run("systemctl", "show", "-P", "MainPID", "gardien").stdout.strip() == pid
    log = Path(scene.root, "var/log/gardien/gardien.log")
    _wait(lambda: "reload" in log.read_text().lower(), 10, "the reload in gardien.log")
    scene.box.run("logrotate", "-f", "/etc/logrotate.d/gardien")
    rotated = log.with_name("gardien.log.1")
    assert rotated.is_file()
    scene.box.run("systemctl", "reload", "gardien")
    _wait(
        lambda: log.is_file() and "reload" in log.read_text().lower(),
        10,
        "after rotation, gardien writes to a new gardien.log",
    )


def test_stop_and_start_through_systemd(scene: Scene) -> None:
    attacker = str(scene.attacker.ipv4)
    scene.box.run("systemctl", "stop", "gardien")
    assert scene.box.run("systemctl", "is-active", "gardien", check=False).stdout.strip() in (
        "inactive"
    )
    assert _gardien_tables(scene) == []
    assert scene.lab.probe(scene.attacker, "tcp", 22, 4, 3.0) == "open"
    scene.box.run("systemctl", "start", "gardien")
    _wait(lambda: attacker in _kernel_set(scene), 30, "the bans are back after a start")
    assert scene.lab.probe(scene.attacker, "tcp", 22, 4, 1.0) != "open"


def test_the_hub_package_and_its_service(scene: Scene) -> None:
    hub_deb = scene.packages.current.with_name(
        scene.packages.current.name.replace("gardien_", "gardien-hub_")
    )
    scene.box.run("apt-get", "install", "-y", _in_box(scene, hub_deb))
    assert scene.box.run("stat", "-c", "%a %U", "/etc/gardien/hub.env").stdout.strip() == (
        "600 root"
    )
    hub = scene.box.run("systemctl", "is-enabled", "gardien-hub", check=False).stdout.strip()
    assert hub == "disabled"  # installed, left to the administrator to enable
    _verify_unit(scene, "gardien-hub.service")
    scene.box.run("systemctl", "enable", "--now", "gardien-hub")
    probe = (
        "import urllib.request, json; "
        "print(json.load(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)))"
    )
    _wait(
        lambda: (
            scene.box.run("/usr/lib/gardien/bin/python", "-c", probe, check=False).returncode == 0
        ),
        60,
        "the hub answers /health on 127.0.0.1:8080 (GARDIEN_HUB_SERVE_LISTEN of hub.env)",
    )
    user = scene.box.run("ps", "-o", "user=", "-C", "gardien").stdout.split()
    assert "gardien-hub" in user and "root" in user  # the hub unprivileged, the agent root
    assert Path(scene.root, "var/lib/gardien-hub/hub.sqlite3").is_file()
    scene.box.run("dpkg", "--purge", "gardien-hub")
    assert scene.box.run("systemctl", "is-active", "gardien-hub", check=False).returncode != 0
    assert not Path(scene.root, "var/lib/gardien-hub").exists()
    assert not Path(scene.root, "etc/gardien/hub.env").exists()
    assert scene.gardien("ping").returncode == 0  # the agent is untouched


def test_the_fail2ban_compat_package(scene: Scene) -> None:
    compat_deb = next(scene.packages.current.parent.glob("gardien-fail2ban-compat_*_all.deb"))
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(compat_deb), "Conflicts", "Depends"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Conflicts: fail2ban" in fields and "gardien (>=" in fields
    scene.box.run("apt-get", "install", "-y", _in_box(scene, compat_deb))
    # what scripts written for fail2ban call, answered by the running gardien
    assert scene.box.run("fail2ban-client", "ping").stdout == "Server replied: pong\n"
    status = scene.box.run("fail2ban-client", "status").stdout
    assert "Jail list:\tsshd" in status, status
    assert scene.box.run("fail2ban-client", "set", "sshd", "banip", "203.0.113.200").stdout == (
        "1\n"
    )
    tree = scene.box.run("fail2ban-client", "status", "sshd").stdout
    assert re.search(r"Banned IP list:\t.*\b203\.0\.113\.200\b", tree), tree
    scene.box.run("fail2ban-client", "set", "sshd", "unbanip", "203.0.113.200")
    regex = scene.box.run(
        "fail2ban-regex", "systemd-journal", "/etc/gardien/filter.d/sshd.conf"
    ).stdout
    assert re.search(r"^Lines: \d+ lines, \d+ ignored, [1-9]\d* matched", regex, re.M), regex
    scene.box.run("man", "-w", "fail2ban-client")
    scene.box.run("dpkg", "--purge", "gardien-fail2ban-compat")
    assert not Path(scene.root, "usr/bin/fail2ban-client").exists()
    assert scene.gardien("ping").returncode == 0  # the agent is untouched


# ---- 4. remove and purge -----------------------------------------------------------------------


def test_remove_leaves_no_firewall_state_even_with_keepbans(scene: Scene) -> None:
    scene.box.run(
        "sh", "-c", "printf '[Definition]\\nkeepbans = yes\\n' > /etc/gardien/gardien.local"
    )
    scene.box.run("systemctl", "restart", "gardien")
    _wait(lambda: bool(_kernel_set(scene)), 30, "bans in the kernel")
    scene.box.run("dpkg", "--remove", "gardien")
    assert scene.box.run("systemctl", "is-active", "gardien", check=False).returncode != 0
    assert _gardien_tables(scene) == []
    assert scene.lab.probe(scene.attacker, "tcp", 22, 4, 3.0) == "open"
    assert Path(scene.root, "var/lib/gardien/gardien.sqlite3").exists()  # kept until purge


def test_purge_leaves_only_what_was_there_before(scene: Scene) -> None:
    scene.box.run("dpkg", "--purge", "gardien")
    after = file_list(scene.root)
    added = sorted(set(after) - set(scene.before_install))
    # the hub's system account stays, as Debian keeps system users after a purge
    accounts = {"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-"}
    assert [path for path in added if path not in accounts] == []
    for path in ("/etc/gardien", "/var/lib/gardien", "/var/log/gardien", "/usr/lib/gardien"):
        assert not Path(scene.root, path.lstrip("/")).exists(), path

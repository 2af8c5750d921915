"""The Debian package: how long ``make deb`` takes, how big the package is, and, installed on a
stock Debian 12 booted with its own systemd, how long from ``systemctl start`` to the first
ban, beside Debian's fail2ban package in the same setting.

    python bench/bench_package.py [--runs 5] [--deb dist/gardien_0.1.0_amd64.deb]

Without ``--deb`` it runs ``make deb`` first and times it. Then it makes two fresh Debian 12
roots (tests/support/debroot.py: debootstrap, cached), installs OpenSSH's server in both, gardien's
package in one and Debian's ``fail2ban`` (with ``python3-systemd`` and ``iptables``) in the
other, and boots both with systemd-nspawn, each in the server namespace of a network lab
(tests/support/netns.py). Neither root has rsyslog, as a stock Debian 12: sshd logs to the journal
only. gardien's package reads it out of the box; fail2ban's sshd jail reads
``/var/log/auth.log`` and does not start without it, so its jail gets ``backend = systemd``
in ``jail.local`` (the fix Debian 12's users apply).

Each trial, alternately gardien and fail2ban: the service is stopped (bans lifted first),
then the clock starts at ``systemctl start``; an attacker with an address the service has
never seen tries to log in over ssh as a user that does not exist, again and again, until its
address is in the firewall (gardien's nftables set, fail2ban's ``f2b-sshd`` chain). Reported:
start to ready (the control socket answers), start to first ban, the ssh attempts it took,
medians over the runs, and the ratio fail2ban/gardien pair by pair.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.debroot import Container, fresh_root, setup  # noqa: E402
from support.netns import Client, Lab  # noqa: E402


@dataclass
class Target:
    """One service under test in its booted root."""

    name: str
    box: Container
    lab: Lab
    service: str
    ping: tuple[str, ...]
    unban_all: tuple[str, ...]
    banned: Callable[[Container, str], bool]
    next_client: int = 0

    def client(self) -> Client:
        client = self.lab.clients[self.next_client]
        self.next_client += 1
        return client


@dataclass
class Trial:
    ready: float
    ban: float
    attempts: int


def _gardien_banned(box: Container, address: str) -> bool:
    listing = box.run("nft", "list", "table", "inet", "gardien", check=False).stdout
    return address in listing.split() or f"{address}," in listing or f"{address} " in listing


def _fail2ban_banned(box: Container, address: str) -> bool:
    rules = box.run("iptables", "-S", "f2b-sshd", check=False).stdout
    return f"{address}/32" in rules


def trial(target: Target) -> Trial:
    box = target.box
    box.run(*target.unban_all, check=False)
    box.run("systemctl", "stop", target.service)
    client = target.client()
    address = str(client.ipv4)
    attempts = 0
    banned = threading.Event()
    ready = 0.0

    def attack() -> None:
        nonlocal attempts
        while not banned.is_set():
            target.lab.ssh_login(client, timeout=1)
            attempts += 1

    started = time.monotonic()
    box.run("systemctl", "start", target.service)
    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        while time.monotonic() - started < 120:
            if not ready and box.run(*target.ping, check=False).returncode == 0:
                ready = time.monotonic() - started
            if target.banned(box, address):
                ban = time.monotonic() - started
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"{target.name}: {address} not banned within 120 s")
    finally:
        banned.set()
        attacker.join()
    if not ready:
        ready = ban
    return Trial(ready, ban, attempts)


def _make_deb(output: Path) -> tuple[Path, float]:
    started = time.monotonic()
    subprocess.run(
        ["make", "deb"],
        cwd=REPO,
        env={**os.environ, "DEB_OUTPUT": str(output)},
        check=True,
        capture_output=True,
    )
    return next(output.glob("gardien_*.deb")), time.monotonic() - started


def _field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deb", type=Path, help="use this package instead of running make deb")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-package.", dir="/var/tmp") as tmp:
        work = Path(tmp)
        if args.deb:
            deb, build_seconds = args.deb.resolve(), None
        else:
            deb, build_seconds = _make_deb(work / "debs")
        if build_seconds is not None:
            print(f"make deb     {build_seconds:.1f} s")
        for package in sorted(deb.parent.glob("gardien*.deb")):
            installed_kib = int(_field(package, "Installed-Size"))
            print(
                f"{package.name:32} {package.stat().st_size / 1e6:.1f} MB, "
                f"installed {installed_kib / 1024:.1f} MiB"
            )

        roots = {}
        for name, packages in (
            ("gardien", ["openssh-server", "python3.11", "libnftables1", "nftables", "conntrack"]),
            ("fail2ban", ["openssh-server", "fail2ban", "python3-systemd", "iptables"]),
        ):
            root = fresh_root(work / name)
            setup(root, "apt-get", "update", "-qq")
            setup(root, "apt-get", "install", "-y", "-qq", *packages)
            roots[name] = root
        (roots["fail2ban"] / "etc/fail2ban/jail.local").write_text("[sshd]\nbackend = systemd\n")
        clients = args.runs + 1
        with (
            Lab.create(clients=clients, listen=False) as lab_g,
            Lab.create(clients=clients, listen=False) as lab_f,
            Container.boot(
                roots["gardien"], netns=lab_g.server, binds={deb.parent: "/debs"}
            ) as box_g,
            Container.boot(roots["fail2ban"], netns=lab_f.server) as box_f,
        ):
            box_g.run("apt-get", "install", "-y", f"/debs/{deb.name}")
            targets = [
                Target(
                    "gardien",
                    box_g,
                    lab_g,
                    "gardien",
                    ("gardien", "ping"),
                    ("gardien", "unban", "--all"),
                    _gardien_banned,
                ),
                Target(
                    "fail2ban",
                    box_f,
                    lab_f,
                    "fail2ban",
                    ("fail2ban-client", "ping"),
                    ("fail2ban-client", "unban", "--all"),
                    _fail2ban_banned,
                ),
            ]
            for target in targets:  # warm-up: caches, the first journal files
                trial(target)
            results: dict[str, list[Trial]] = {"gardien": [], "fail2ban": []}
            for _ in range(args.runs):
                for target in targets:
                    results[target.name].append(trial(target))

    print(f"\nsystemctl start -> ready / first ban, {args.runs} runs each, medians (min-max)")
    for name, trials in results.items():
        ready = [t.ready for t in trials]
        ban = [t.ban for t in trials]
        attempts = statistics.median(t.attempts for t in trials)
        print(
            f"  {name:9} ready {statistics.median(ready):.2f} s ({min(ready):.2f}-{max(ready):.2f})"
            f"   first ban {statistics.median(ban):.2f} s ({min(ban):.2f}-{max(ban):.2f})"
            f"   ssh attempts {attempts:g}"
        )
    ratios = [f.ban / g.ban for g, f in zip(results["gardien"], results["fail2ban"], strict=True)]
    print(
        f"  fail2ban/gardien, first ban, pair by pair: median {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()

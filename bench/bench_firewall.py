"""Benchmark failure line written -> attacker's packets stopped, gardien beside fail2ban.

Both tools run, one after the other, inside the server namespace of the same network lab
(``tests/support/netns.py``: a server namespace with a UDP echo listener on 5060 and a TCP
listener on 22, two client namespaces), each with one jail that bans on the first asterisk failure
(``filter = asterisk``, ``maxretry = 1``, ``findtime = 10m``, ``bantime = 1h``) and blocks
every port of the banned address:

- gardien: ``python -m gardien -c ETC -s SOCKET run ...`` (this script's interpreter) with
  ``action = nftables-allports[name=bench, protocol=all]``, or ``iptables-allports`` with
  ``--backend iptables``;
- fail2ban: ``fail2ban-server -f -x -c CONFDIR``, where CONFDIR is a copy of /etc/fail2ban
  whose ``fail2ban.local`` points its socket, pid file, database and log into a temporary
  directory and whose ``jail.local`` disables every jail of ``jail.conf`` but ``[bench]``
  (``action = iptables-allports[name=bench, protocol=all]``, ``backend = auto``: what
  fail2ban uses for files by default; the report says what ``auto`` chose).

One trial: client 1 (the attacker) reaches the server; one chan_sip failure line for its IPv4
address, dated now, is appended to the jail's log, and ``t0`` is taken right after
``os.write`` returned. Client 1 then probes UDP 5060 in a tight loop, each probe with a short
timeout (``--probe-timeout-ms``, 4), until one fails: no echo within the timeout (a drop) or
ICMP port unreachable (a reject, what both tools' actions answer by default). A timeout is
confirmed with a slower probe, so that a late echo is not taken for a ban. The latency is the
start of the first failed probe minus ``t0``; it is late by at most the interval between two
probe starts, which the report gives as the resolution. The ban is then lifted with the
tool's own client (``gardien -s SOCKET set bench unbanip IP``, ``fail2ban-client -c CONFDIR
set bench unbanip IP``) and the script waits until client 1 passes again. During the first
measured ban it checks that client 2 still reaches both ports and client 1 no port.

Prints p50, p95, p99 and max for each tool, the ratio of the medians, and the verdict of
gardien's target (p99 <= 50 ms). When fail2ban cannot run in the namespace, the report says
why, and gardien's figures stand alone. Needs root, ``ip``, ``nft`` and ``iptables``; the
host's firewall is never touched (every rule is in the lab's namespace, deleted at the end).

Exit status: 0 when gardien's trials ran; 1 when they did not (with ``--strict``, also when
the target is missed).

Usage::

    sudo .venv/bin/python bench/bench_firewall.py
    sudo .venv/bin/python bench/bench_firewall.py --trials 500 --fail2ban-trials 20
    sudo .venv/bin/python bench/bench_firewall.py --backend iptables --skip-fail2ban
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_daemon import distribution, environment, failure_line, log
from gardien.daemon.control import ControlClient
from gardien.errors import ControlError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.netns import Lab, netns_available  # type: ignore[import-not-found]

JAIL = "bench"
TARGET_P99_MS = 50.0
UDP, TCP = ("udp", 5060), ("tcp", 22)
FAIL2BAN_SERVER = "fail2ban-server"
FAIL2BAN_CLIENT = "fail2ban-client"
GARDIEN_JAIL = """\
[{jail}]
enabled  = true
filter   = asterisk
action   = {action}
logpath  = {logpath}
maxretry = 1
findtime = 10m
bantime  = 1h
"""
FAIL2BAN_JAIL = GARDIEN_JAIL + "backend  = {backend}\n"
_LIVE: set[subprocess.Popen[bytes]] = set()


class BenchError(Exception):
    """A tool did not start, died, or did not ban or unban in time."""


# --------------------------------------------------------------------------- the two tools


def _spawn(argv: list[str], output: Path) -> subprocess.Popen[bytes]:
    """A child in its own session (Ctrl-C reaches only this script, which stops it)."""
    with output.open("ab") as sink:
        process = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _LIVE.add(process)
    return process


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _LIVE.discard(process)


def _kill_live() -> None:
    for process in list(_LIVE):
        if process.poll() is None:
            process.kill()
            process.wait()
    _LIVE.clear()


def _tail(path: Path, lines: int = 12, pattern: str = "") -> str:
    """The last ``lines`` lines of ``path`` (those containing ``pattern``)."""
    if not path.exists():
        return f"({path} was never written)"
    found = [line for line in path.read_text(errors="replace").splitlines() if pattern in line]
    return "\n".join(found[-lines:])


class Tool:
    """One tool's daemon in the lab's server namespace, with its jail, log and client."""

    name = ""
    action = ""

    def __init__(self, lab: Any, root: Path) -> None:
        self.lab = lab
        self.root = root
        self.logpath = root / "log" / "messages"
        self.output = root / "output.txt"
        self.process: subprocess.Popen[bytes] | None = None
        self.logpath.parent.mkdir(parents=True)
        self.logpath.write_bytes(b"")

    def __enter__(self) -> Tool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemon in the server namespace and wait until the jail runs."""
        argv = ["ip", "netns", "exec", self.lab.server, *self.argv()]
        self.process = _spawn(argv, self.output)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready():
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name}: the jail did not start within {timeout:g} s{self.why()}")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.process.returncode}{self.why()}"
            )

    def why(self) -> str:
        """The end of the daemon's output, to explain a failure."""
        return f"; its output ends with:\n{_tail(self.output)}"

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def client(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run the tool's own command-line client (from the host: the socket is a file)."""
        return subprocess.run(
            self.client_argv(*argv), capture_output=True, text=True, check=False, timeout=60
        )

    def unban(self, address: str) -> None:
        done = self.client("set", JAIL, "unbanip", address)
        if done.returncode:
            raise BenchError(f"{self.name}: unbanip {address} failed: {done.stderr.strip()}")

    def argv(self) -> list[str]:
        raise NotImplementedError

    def client_argv(self, *argv: str) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """How the jail watches its log, as the report says it."""
        return ""


class Gardien(Tool):
    """``python -m gardien ... run`` with the bench jail (nftables or iptables)."""

    name = "gardien"

    def __init__(self, lab: Any, root: Path, backend: str) -> None:
        super().__init__(lab, root)
        self.action = f"{backend}-allports[name={JAIL}, protocol=all]"
        self.etc = root / "etc"
        self.socket = root / "gardien.sock"
        (self.etc / "jail.d").mkdir(parents=True)
        (self.etc / "jail.local").write_text("[sshd]\nenabled = false\n")
        (self.etc / "jail.d" / "bench.conf").write_text(
            GARDIEN_JAIL.format(jail=JAIL, action=self.action, logpath=self.logpath)
        )

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gardien",
            "-c",
            str(self.etc),
            "-s",
            str(self.socket),
            "run",
            "--dbfile",
            str(self.root / "gardien.sqlite3"),
            "--pidfile",
            str(self.root / "gardien.pid"),
            "--logtarget",
            str(self.root / "gardien.log"),
        ]

    def client_argv(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "gardien", "-c", str(self.etc), "-s", str(self.socket), *argv]

    def ready(self) -> bool:
        with contextlib.suppress(ControlError, OSError):
            return bool(ControlClient(self.socket, timeout=5.0).call("ping") == "pong")
        return False

    def why(self) -> str:
        return f"; its log ends with:\n{_tail(self.root / 'gardien.log')}{super().why()}"

    def describe(self) -> str:
        return "inotify"


class Fail2ban(Tool):
    """``fail2ban-server -f -x -c CONFDIR`` on a copy of /etc/fail2ban with the bench jail."""

    name = "fail2ban"
    action = f"iptables-allports[name={JAIL}, protocol=all]"

    def __init__(self, lab: Any, root: Path, source: Path, backend: str) -> None:
        super().__init__(lab, root)
        self.conf = root / "conf"
        self.log = root / "fail2ban.log"
        shutil.copytree(source, self.conf)
        # whatever the host adds to the stock configuration must not reach this instance
        for extra in ("jail.local", "fail2ban.local"):
            (self.conf / extra).unlink(missing_ok=True)
        for folder in ("jail.d", "fail2ban.d"):
            shutil.rmtree(self.conf / folder, ignore_errors=True)
            (self.conf / folder).mkdir()
        (self.conf / "fail2ban.local").write_text(
            "[Definition]\n"
            "loglevel = INFO\n"
            f"logtarget = {self.log}\n"
            f"socket = {root / 'fail2ban.sock'}\n"
            f"pidfile = {root / 'fail2ban.pid'}\n"
            f"dbfile = {root / 'fail2ban.sqlite3'}\n"
        )
        stock = configparser.RawConfigParser(strict=False)
        stock.read(self.conf / "jail.conf")
        disabled = [f"[{s}]\nenabled = false\n" for s in stock.sections() if s != JAIL]
        jail = FAIL2BAN_JAIL.format(
            jail=JAIL, action=self.action, logpath=self.logpath, backend=backend
        )
        (self.conf / "jail.local").write_text("\n".join([*disabled, jail]))

    def argv(self) -> list[str]:
        return [FAIL2BAN_SERVER, "-f", "-x", "-c", str(self.conf)]

    def client_argv(self, *argv: str) -> list[str]:
        return [FAIL2BAN_CLIENT, "-c", str(self.conf), *argv]

    def ready(self) -> bool:
        return self.client("status", JAIL).returncode == 0

    def why(self) -> str:
        errors = _tail(self.log, pattern="ERROR") or "(no ERROR record)"
        return f"; its log's errors:\n{errors}{super().why()}"

    def describe(self) -> str:
        """The backend ``auto`` resolved to, from fail2ban's ``Jail 'bench' uses ...``."""
        found = re.findall(rf"Jail '{JAIL}' uses (\w+)", _tail(self.log, 1000))
        return found[-1] if found else "unknown"


# --------------------------------------------------------------------------- measuring


@dataclass
class Probing:
    """What client 1's probes cost, and how much each latency may be late."""

    timeout_ms: float
    open_ms: list[float] = field(default_factory=list)
    calibration_timeouts: int = 0
    windows_ms: list[float] = field(default_factory=list)  # last interval before each failure
    spurious: int = 0  # timeouts that the confirming probe showed were not a ban


@dataclass
class Result:
    """One tool's run."""

    tool: str
    action: str
    watcher: str = ""
    latencies_ms: list[float] = field(default_factory=list)
    first_ms: float | None = None  # the warm-up ban(s), not counted: the first creates chains
    blocked_by: dict[str, int] = field(default_factory=dict)
    unban_s: list[float] = field(default_factory=list)
    other_client_ok: bool | None = None
    attacker_tcp_blocked: bool | None = None
    probing: Probing | None = None
    error: str | None = None

    @property
    def p99(self) -> float | None:
        return distribution(self.latencies_ms).get("p99") if self.latencies_ms else None

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["distribution_ms"] = distribution(self.latencies_ms)
        if self.probing is not None:
            found["probing"]["open_distribution_ms"] = distribution(self.probing.open_ms)
            found["probing"]["window_distribution_ms"] = distribution(self.probing.windows_ms)
        return found


class Attacker:
    """Client 1's probes of the server's UDP echo, through the lab's worker in its namespace."""

    def __init__(self, lab: Any, probing: Probing) -> None:
        self.lab = lab
        self.client = lab.clients[0]
        self.probing = probing
        self.timeout = probing.timeout_ms / 1000

    def probe(self, timeout: float, client: Any = None, service: tuple[str, int] = UDP) -> str:
        protocol, port = service
        return str(self.lab.probe(client or self.client, protocol, port, 4, timeout))

    def calibrate(self, count: int) -> None:
        """Time ``count`` probes that the server answers (no ban): the probe's own cost."""
        for _ in range(count):
            began = time.perf_counter()
            outcome = self.probe(self.timeout)
            elapsed = time.perf_counter() - began
            if outcome == "open":
                self.probing.open_ms.append(1000 * elapsed)
            else:
                self.probing.calibration_timeouts += 1

    def wait_passing(self, timeout: float) -> float:
        """Probe until the attacker passes again; the seconds it took."""
        began = time.perf_counter()
        while self.probe(0.05) != "open":
            if time.perf_counter() - began > timeout:
                raise BenchError(f"client 1 was still blocked {timeout:g} s after unbanip")
        return time.perf_counter() - began

    def time_block(self, t0: float, tool: Tool, give_up: float) -> tuple[float, str]:
        """Probe in a tight loop until one fails; (start of that probe - ``t0``, outcome)."""
        previous = t0
        while True:
            began = time.perf_counter()
            outcome = self.probe(self.timeout)
            if outcome == "timeout" and self.probe(0.25) == "open":
                self.probing.spurious += 1  # a late echo, not a ban
                outcome = "open"
            if outcome != "open":
                self.probing.windows_ms.append(1000 * (began - previous))
                return began - t0, outcome
            previous = began
            if began - t0 > give_up:
                tool.check_alive()
                raise BenchError(f"{tool.name}: client 1 still passed {give_up:g} s after the line")


def run_trials(tool: Tool, lab: Any, args: argparse.Namespace, trials: int) -> Result:
    """Start ``tool``, calibrate the probes, then ``--warmup`` + ``trials`` bans and unbans."""
    result = Result(tool.name, tool.action)
    probing = Probing(args.probe_timeout_ms)
    result.probing = probing
    attacker = Attacker(lab, probing)
    friend = lab.clients[1]
    address = str(attacker.client.ipv4)
    log(f"{tool.name}: starting ({tool.action}) ...")
    tool.start()
    result.watcher = tool.describe()
    attacker.wait_passing(10.0)
    attacker.calibrate(args.calibrate)
    fd = os.open(tool.logpath, os.O_WRONLY | os.O_APPEND)
    try:
        for number in range(args.warmup + trials):
            line = failure_line(address)
            os.write(fd, line)
            t0 = time.perf_counter()
            latency, outcome = attacker.time_block(t0, tool, args.ban_timeout)
            if number < args.warmup:
                result.first_ms = round(1000 * latency, 3)
            else:
                result.latencies_ms.append(1000 * latency)
                result.blocked_by[outcome] = result.blocked_by.get(outcome, 0) + 1
            if number == args.warmup:  # once per run, during a measured ban
                result.other_client_ok = all(
                    attacker.probe(0.5, friend, service) == "open" for service in (UDP, TCP)
                )
                result.attacker_tcp_blocked = attacker.probe(0.5, service=TCP) != "open"
            began = time.perf_counter()
            tool.unban(address)
            attacker.wait_passing(args.ban_timeout)
            result.unban_s.append(time.perf_counter() - began)
            if number and number % 25 == 0:
                log(f"{tool.name}: {number} bans")
    finally:
        os.close(fd)
    return result


def filters_agree(line: bytes, fail2ban: Path, root: Path) -> str | None:
    """Check that both tools' asterisk filters take ``line`` as one failure of its address;
    what went wrong, or ``None``."""
    sample = root / "sample.log"
    sample.write_bytes(line)
    summary = re.compile(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched")
    for argv in (
        [sys.executable, "-m", "gardien", "regex", str(sample), "asterisk"],
        ["fail2ban-regex", str(sample), str(fail2ban / "filter.d" / "asterisk.conf")],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        found = summary.search(done.stdout)
        if done.returncode or not found or found.group(3) != "1":
            return f"{argv[0]} {' '.join(argv[1:3])}: {done.stdout[-500:]}{done.stderr[-500:]}"
    return None


# --------------------------------------------------------------------------- reporting


def _figures(values: Sequence[float]) -> str:
    d = distribution(values)
    return (
        f"p50 {d['p50']:8.2f}  p95 {d['p95']:8.2f}  p99 {d['p99']:8.2f}  max {d['max']:8.2f} ms"
        if d
        else "no figures"
    )


def render(results: Sequence[Result]) -> list[str]:
    rows = ["failure line written -> client 1's packets stopped (UDP 5060 probes)"]
    for r in results:
        if r.error is not None:
            rows.append(f"  {r.tool:<9} DID NOT RUN: {r.error}")
            continue
        rows.append(f"  {r.tool:<9} {len(r.latencies_ms):>4} bans  {_figures(r.latencies_ms)}")
        p = r.probing
        assert p is not None
        blocked = ", ".join(f"{n} {kind}" for kind, n in sorted(r.blocked_by.items()))
        rows += [
            f"            {r.action}; log watched by {r.watcher}; first ban (not counted) "
            f"{r.first_ms} ms; stopped by: {blocked}",
            f"            probe cost when answered: {_figures(p.open_ms)} "
            f"({len(p.open_ms)} probes, {p.calibration_timeouts} timed out at "
            f"{p.timeout_ms:g} ms)",
            f"            resolution (probe interval before the failed one): "
            f"{_figures(p.windows_ms)}; spurious timeouts {p.spurious}",
            f"            during a ban: client 2 reaches UDP 5060 and TCP 22: "
            f"{'yes' if r.other_client_ok else 'NO'}; client 1 reaches TCP 22: "
            f"{'no' if r.attacker_tcp_blocked else 'YES'}; unbanip -> passing again: "
            f"median {statistics.median(r.unban_s):.3f} s",
        ]
    ran = {r.tool: r for r in results if r.error is None and r.latencies_ms}
    if "gardien" in ran and "fail2ban" in ran:
        ratio = statistics.median(ran["fail2ban"].latencies_ms) / statistics.median(
            ran["gardien"].latencies_ms
        )
        rows.append(f"  ratio of medians (fail2ban / gardien): {ratio:.1f}x")
    if "gardien" in ran:
        p99 = ran["gardien"].p99 or 0.0
        beside = f"; fail2ban p99 {ran['fail2ban'].p99:.1f} ms" if "fail2ban" in ran else ""
        verdict = "MET" if p99 <= TARGET_P99_MS else "MISSED"
        rows.append(
            f"  target gardien p99 <= {TARGET_P99_MS:g} ms: {verdict} (p99 {p99:.2f} ms{beside})"
        )
    return rows


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200, help="gardien bans measured")
    p.add_argument("--fail2ban-trials", type=int, default=50, help="fail2ban bans measured")
    p.add_argument("--warmup", type=int, default=1, help="bans made first, not counted")
    p.add_argument(
        "--backend",
        choices=("nftables", "iptables"),
        default="nftables",
        help="gardien's action: nftables-allports or iptables-allports",
    )
    p.add_argument(
        "--fail2ban-backend",
        default="auto",
        help="fail2ban's jail backend (auto: its default; pyinotify if installed, else polling)",
    )
    p.add_argument("--fail2ban-config", type=Path, default=Path("/etc/fail2ban"))
    p.add_argument("--skip-fail2ban", action="store_true")
    p.add_argument("--probe-timeout-ms", type=float, default=4.0, help="UDP probe timeout")
    p.add_argument("--calibrate", type=int, default=200, help="answered probes timed first")
    p.add_argument("--ban-timeout", type=float, default=15.0, help="seconds per ban or unban")
    p.add_argument("--work-dir", type=Path, default=None, help="parent of the temporary dir")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = p.parse_args(argv)
    if min(args.trials, args.calibrate) < 1 or args.fail2ban_trials < 0 or args.warmup < 0:
        p.error("--trials and --calibrate must be at least 1, the others at least 0")
    return args


def _measure(tool: Tool, lab: Any, args: argparse.Namespace, trials: int) -> Result:
    with tool:
        try:
            return run_trials(tool, lab, args, trials)
        except (BenchError, OSError, subprocess.SubprocessError) as error:
            log(f"{tool.name}: ERROR: {error}")
            return Result(tool.name, tool.action, error=str(error))


def run(args: argparse.Namespace, root: Path) -> list[Result]:
    """Build the lab, then measure gardien and fail2ban in turn in its server namespace."""
    available, why = netns_available()
    if not available:
        raise BenchError(why)
    for tool in ("ip", "nft", "iptables"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed")
    log("building the lab (2 clients) ...")
    with Lab.create(clients=2) as lab:
        results = [_measure(Gardien(lab, root / "gardien", args.backend), lab, args, args.trials)]
        if args.skip_fail2ban or args.fail2ban_trials == 0:
            return results
        if shutil.which(FAIL2BAN_SERVER) is None or shutil.which(FAIL2BAN_CLIENT) is None:
            results.append(Result("fail2ban", Fail2ban.action, error="fail2ban is not installed"))
            return results
        (root / "fail2ban").mkdir()
        disagreement = filters_agree(
            failure_line(str(lab.clients[0].ipv4)), args.fail2ban_config, root
        )
        if disagreement is not None:
            error = f"the filters do not agree on the failure line: {disagreement}"
            results.append(Result("fail2ban", Fail2ban.action, error=error))
            return results
        fail2ban = Fail2ban(lab, root / "fail2ban", args.fail2ban_config, args.fail2ban_backend)
        results.append(_measure(fail2ban, lab, args, args.fail2ban_trials))
    return results


@contextlib.contextmanager
def work_dir(args: argparse.Namespace) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="gardien-bench-firewall-", dir=args.work_dir))
    try:
        yield root
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring for the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` cleans up
    try:
        with work_dir(args) as root:
            results = run(args, root)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except BenchError as error:
        log(f"ERROR: {error}")
        return 1
    finally:
        _kill_live()
    if args.json:
        found = {r.tool: r.as_dict() for r in results}
        print(json.dumps({"environment": environment(), "results": found}, indent=2))
    else:
        print("\n".join(render(results)))
    gardien = results[0]
    if gardien.error is not None:
        return 1
    met = (gardien.p99 or 0.0) <= TARGET_P99_MS
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())

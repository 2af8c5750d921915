"""Benchmark ``gardien regex`` against fail2ban's ``fail2ban-regex`` on large generated logs.

For each log kind (asterisk, sshd, postfix, nginx, apache) the script

1. generates a realistic log with :mod:`genlogs` (cached in the work directory and reused
   while the generation parameters are unchanged);
2. runs both tools as whole processes on the *same* log and the *same* filter file, timing
   each run with :func:`time.perf_counter` around :func:`subprocess.run` (argv lists, never a
   shell): ``python -m gardien regex LOG FILTER`` with this script's interpreter, and
   ``/usr/bin/fail2ban-regex LOG FILTER``;
3. parses the ``Lines: N lines, I ignored, M matched, X missed`` summary both tools print and
   checks that the four counts agree (and, with ``--check-hosts``, that the multisets of
   hosts of the matched lines agree, using ``gardien regex --json`` and
   ``fail2ban-regex --out ip``);
4. reports median wall-clock times, throughputs and the speed-up (fail2ban-regex time divided
   by gardien time), as a table or as JSON.

Exit status: 0 when every comparison agreed, 1 on any mismatch or tool failure (and, with
``--strict``, when the smallest speed-up is below ``--target``).

Usage::

    python bench/bench_regex.py                      # all kinds, 1M lines each
    python bench/bench_regex.py --kind sshd --lines 200000 --check-hosts
    python bench/bench_regex.py --filter-source fail2ban --json > results.json
    python bench/bench_regex.py --filter-source own --check-hosts   # each tool its own filter
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import genlogs

REPO = Path(__file__).resolve().parent.parent
FILTER_DIRS = {
    "gardien": REPO / "src" / "gardien" / "data" / "filter.d",
    "fail2ban": Path("/etc/fail2ban/filter.d"),
}
#: Filter parameters per kind, appended to the filter path (fail2ban-regex syntax).
FILTER_OPTIONS = {"postfix": "[mode=aggressive]"}
#: The filter of each log kind, where it is not named after the kind.
FILTER_NAMES = {"nginx": "nginx-http-auth", "apache": "apache-auth"}
DEFAULT_FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"
SUMMARY_RE = re.compile(
    r"^Lines: (?P<lines>\d+) lines, (?P<ignored>\d+) ignored, (?P<matched>\d+) matched, "
    r"(?P<missed>\d+) missed",
    re.MULTILINE,
)


class BenchError(Exception):
    """A tool failed or printed something unexpected."""


@dataclass(frozen=True)
class Summary:
    """The ``Lines:`` summary line printed by both tools."""

    lines: int
    ignored: int
    matched: int
    missed: int


@dataclass
class Measurement:
    """Repeated wall-clock timings of one tool on one log."""

    argv: list[str]
    seconds: list[float]
    summary: Summary

    @property
    def median(self) -> float:
        """Median wall-clock seconds."""
        return statistics.median(self.seconds)

    @property
    def lines_per_second(self) -> float:
        """Throughput at the median time."""
        return self.summary.lines / self.median if self.median > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "argv": self.argv,
            "seconds": [round(s, 4) for s in self.seconds],
            "median_seconds": round(self.median, 4),
            "lines_per_second": round(self.lines_per_second),
            "summary": asdict(self.summary),
        }


@dataclass
class KindResult:
    """Everything measured for one log kind."""

    kind: str
    log: str
    filter: str
    lines: int
    generated_failures: int
    gardien: Measurement | None = None
    fail2ban: Measurement | None = None
    hosts: dict[str, object] | None = None
    #: median seconds of ``grep -c`` on the same file: reading and splitting lines, the limit
    grep_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """fail2ban-regex median time divided by gardien median time."""
        if self.gardien is None or self.fail2ban is None or self.gardien.median <= 0:
            return None
        return self.fail2ban.median / self.gardien.median

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "kind": self.kind,
            "log": self.log,
            "filter": self.filter,
            "lines": self.lines,
            "generated_failures": self.generated_failures,
            "gardien": self.gardien.as_dict() if self.gardien else None,
            "fail2ban_regex": self.fail2ban.as_dict() if self.fail2ban else None,
            "ratio": round(self.ratio, 2) if self.ratio is not None else None,
            "hosts": self.hosts,
            "grep_c_median_seconds": round(self.grep_seconds, 4) if self.grep_seconds else None,
            "problems": self.problems,
        }


# --------------------------------------------------------------------------- running tools


def log(message: str) -> None:
    """Progress output (stderr, so that ``--json`` output stays clean)."""
    print(message, file=sys.stderr, flush=True)


def gardien_env(engine: str = "auto") -> dict[str, str]:
    """Environment for gardien: the repository's ``src`` is importable if not installed;
    ``engine="python"`` turns the native core off."""
    env = dict(os.environ)
    if engine == "python":
        env["GARDIEN_NO_NATIVE"] = "1"
    if importlib.util.find_spec("gardien") is None:
        src = str(REPO / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def gardien_argv(log_path: Path, filter_spec: str, *, as_json: bool = False) -> list[str]:
    """``python -m gardien regex [--json] LOG FILTER`` with this interpreter."""
    extra = ["--json"] if as_json else []
    return [sys.executable, "-m", "gardien", "regex", *extra, str(log_path), filter_spec]


def fail2ban_argv(exe: str, log_path: Path, filter_spec: str, *, out_ip: bool = False) -> list[str]:
    """``fail2ban-regex [--out ip] LOG FILTER``."""
    extra = ["--out", "ip"] if out_ip else []
    return [exe, *extra, str(log_path), filter_spec]


def run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, str]:
    """Run ``argv`` (no shell); return wall-clock seconds and stdout, or raise BenchError."""
    began = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{argv[0]}: {exc}") from exc
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BenchError(f"exit status {proc.returncode} from {' '.join(argv)}\n{tail}")
    return elapsed, proc.stdout


def parse_summary(output: str, tool: str) -> Summary:
    """The last ``Lines: ...`` summary line of ``output``."""
    found = SUMMARY_RE.findall(output)
    if not found:
        raise BenchError(f"{tool} printed no 'Lines: N lines, ...' summary line")
    return Summary(*(int(n) for n in found[-1]))


def measure(argv: list[str], repeat: int, env: dict[str, str], timeout: float) -> Measurement:
    """Run ``argv`` ``repeat`` times; the summaries must agree between runs."""
    seconds: list[float] = []
    summary: Summary | None = None
    tool = Path(argv[0]).name if argv[0] != sys.executable else "gardien"
    for attempt in range(1, repeat + 1):
        elapsed, out = run(argv, env, timeout)
        current = parse_summary(out, tool)
        if summary is not None and current != summary:
            raise BenchError(f"{tool}: summary changed between runs: {summary} vs {current}")
        summary = current
        seconds.append(elapsed)
        log(f"  {tool:<15} run {attempt}/{repeat}: {elapsed:8.2f}s  matched {current.matched}")
    assert summary is not None
    return Measurement(argv, seconds, summary)


def grep_median(log_path: Path, repeat: int, timeout: float) -> float | None:
    """Median seconds of ``grep -c`` counting one word's lines in ``log_path``: how fast the
    file can be read and split into lines, the limit a filter tester approaches."""
    grep = shutil.which("grep")
    if grep is None:
        return None
    seconds = []
    for _ in range(max(repeat, 1)):
        began = time.perf_counter()
        subprocess.run(
            [grep, "-c", "-F", "from", str(log_path)],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


# --------------------------------------------------------------------------- host check


def gardien_hosts(argv: list[str], env: dict[str, str], timeout: float) -> Counter[str]:
    """Hosts of matched lines from ``gardien regex --json`` (one object per line read)."""
    _, out = run(argv, env, timeout)
    hosts: Counter[str] = Counter()
    saw_summary = False
    for number, text in enumerate(out.splitlines(), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise BenchError(f"gardien --json: line {number} is not JSON: {text[:80]!r}") from exc
        if "summary" in obj:
            saw_summary = True
        elif obj.get("match"):
            hosts[str(obj.get("host"))] += 1
    if not saw_summary:
        raise BenchError("gardien --json printed no final {'summary': ...} object")
    return hosts


def fail2ban_hosts(argv: list[str], env: dict[str, str], timeout: float) -> Counter[str]:
    """Hosts of matched lines from ``fail2ban-regex --out ip`` (one per line)."""
    _, out = run(argv, env, timeout)
    return Counter(line.strip() for line in out.splitlines() if line.strip())


def compare_hosts(gardien: Counter[str], fail2ban: Counter[str]) -> dict[str, object]:
    """Summary of the differences between two host multisets."""
    only_gardien = gardien - fail2ban
    only_fail2ban = fail2ban - gardien
    return {
        "equal": gardien == fail2ban,
        "distinct_hosts": len(fail2ban),
        "gardien_total": sum(gardien.values()),
        "fail2ban_total": sum(fail2ban.values()),
        "extra_in_gardien": dict(only_gardien.most_common(10)),
        "missing_in_gardien": dict(only_fail2ban.most_common(10)),
    }


# --------------------------------------------------------------------------- per kind


def ensure_log(kind: str, args: argparse.Namespace) -> tuple[Path, genlogs.GenParams]:
    """The cached log for ``kind`` and the current parameters, generating it if needed."""
    params = genlogs.GenParams(kind, args.lines, args.failure_rate, args.seed)
    directory = args.work_dir / f"n{args.lines}-r{args.failure_rate:g}-s{args.seed}"
    path = directory / f"{kind}.log"
    if not args.regenerate and genlogs.is_cached(params, path):
        log(f"[{kind}] reusing {path}")
    else:
        log(f"[{kind}] generating {path} ({args.lines} lines) ...")
        began = time.perf_counter()
        genlogs.write_log(params, path)
        log(f"[{kind}] generated in {time.perf_counter() - began:.1f}s")
    return path, params


def filter_spec(kind: str, source: str) -> str:
    """Filter path plus parameters, e.g. ``.../postfix.conf[mode=aggressive]``."""
    path = FILTER_DIRS[source] / f"{FILTER_NAMES.get(kind, kind)}.conf"
    if not path.is_file():
        raise BenchError(f"filter file not found: {path}")
    return f"{path}{FILTER_OPTIONS.get(kind, '')}"


def bench_kind(kind: str, args: argparse.Namespace) -> KindResult:
    """Generate, time both tools and compare their results for one kind."""
    path, params = ensure_log(kind, args)
    result = KindResult(kind, str(path), "", params.lines, params.failures)
    genv, fenv = gardien_env(args.engine), dict(os.environ)
    try:
        if args.filter_source == "own":
            # each tool with its own filter file: gardien's bundled one, fail2ban's
            spec, theirs = filter_spec(kind, "gardien"), filter_spec(kind, "fail2ban")
            result.filter = f"{spec} vs {theirs}"
        else:
            result.filter = spec = theirs = filter_spec(kind, args.filter_source)
        result.gardien = measure(gardien_argv(path, spec), args.repeat, genv, args.timeout)
        result.fail2ban = measure(
            fail2ban_argv(args.fail2ban_regex, path, theirs),
            args.repeat_fail2ban,
            fenv,
            args.timeout,
        )
        check_counts(result)
        result.grep_seconds = grep_median(path, args.repeat, args.timeout)
        if args.check_hosts:
            log(f"[{kind}] comparing hosts of matched lines ...")
            result.hosts = compare_hosts(
                gardien_hosts(gardien_argv(path, spec, as_json=True), genv, args.timeout),
                fail2ban_hosts(
                    fail2ban_argv(args.fail2ban_regex, path, theirs, out_ip=True),
                    fenv,
                    args.timeout,
                ),
            )
            if not result.hosts["equal"]:
                result.problems.append(f"host multisets differ: {result.hosts}")
    except BenchError as exc:
        result.problems.append(f"error: {exc}")
    for problem in result.problems:
        log(f"[{kind}] {'!' * 8} MISMATCH/ERROR {'!' * 8}\n{problem}")
    return result


def check_counts(result: KindResult) -> None:
    """Record a problem if the tools disagree on the line counts."""
    assert result.gardien is not None and result.fail2ban is not None
    g, f = result.gardien.summary, result.fail2ban.summary
    for kind in ("matched", "ignored", "missed"):
        ours, theirs = getattr(g, kind), getattr(f, kind)
        if ours != theirs:
            result.problems.append(
                f"MISMATCH: gardien {kind} {ours} lines, fail2ban-regex {theirs}"
            )
    if g.lines != f.lines:
        result.problems.append(f"MISMATCH: gardien read {g.lines} lines, fail2ban-regex {f.lines}")
    if f.matched != result.generated_failures:
        log(
            f"[{result.kind}] note: {f.matched} lines matched, the generator wrote "
            f"{result.generated_failures} failures meant for fail2ban's own filter"
        )


# --------------------------------------------------------------------------- reporting


def _fmt_rate(value: float) -> str:
    return f"{value / 1000:,.0f}k"


def render_table(results: Sequence[KindResult], target: float) -> str:
    """Human-readable result table."""
    header = (
        f"{'kind':<9} {'lines':>9} {'matched':>8} {'gardien s':>10} {'lines/s':>8} "
        f"{'f2b-regex s':>11} {'lines/s':>8} {'ratio':>7} {'grep -c lines/s':>16}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        if r.gardien is None or r.fail2ban is None or r.ratio is None:
            rows.append(f"{r.kind:<9} {r.lines:>9} {'-':>8}  failed: see messages above")
            continue
        mark = "" if not r.problems else "  MISMATCH"
        rows.append(
            f"{r.kind:<9} {r.lines:>9} {r.fail2ban.summary.matched:>8} "
            f"{r.gardien.median:>10.2f} {_fmt_rate(r.gardien.lines_per_second):>8} "
            f"{r.fail2ban.median:>11.2f} {_fmt_rate(r.fail2ban.lines_per_second):>8} "
            f"{r.ratio:>6.1f}x "
            f"{_fmt_rate(r.lines / r.grep_seconds) if r.grep_seconds else '-':>16}{mark}"
        )
    ratios = [r.ratio for r in results if r.ratio is not None]
    if ratios:
        verdict = "meets" if min(ratios) >= target else "BELOW"
        rows.append(f"minimum ratio: {min(ratios):.1f}x ({verdict} the {target:g}x target)")
    return "\n".join(rows)


def environment() -> dict[str, object]:
    """Where the numbers were measured."""
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def to_json(results: Sequence[KindResult], args: argparse.Namespace) -> str:
    """Machine-readable results."""
    ratios = [r.ratio for r in results if r.ratio is not None]
    return json.dumps(
        {
            "parameters": {
                "lines": args.lines,
                "failure_rate": args.failure_rate,
                "seed": args.seed,
                "filter_source": args.filter_source,
                "repeat_gardien": args.repeat,
                "repeat_fail2ban": args.repeat_fail2ban,
                "generator_version": genlogs.GENERATOR_VERSION,
            },
            "environment": environment(),
            "results": [r.as_dict() for r in results],
            "min_ratio": round(min(ratios), 2) if ratios else None,
            "target": args.target,
            "ok": not any(r.problems for r in results),
        },
        indent=2,
    )


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Benchmark gardien regex against fail2ban-regex.")
    p.add_argument("--kind", nargs="+", choices=genlogs.KINDS, default=list(genlogs.KINDS))
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--failure-rate", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/gardien-bench"))
    p.add_argument("--regenerate", action="store_true", help="ignore cached logs")
    p.add_argument(
        "--filter-source",
        choices=[*sorted(FILTER_DIRS), "own"],
        default="gardien",
        help="filter.d used by both tools: gardien's shipped filters or /etc/fail2ban; "
        "own: each tool its own (gardien's bundled filter, fail2ban's)",
    )
    p.add_argument("--repeat", type=int, default=3, help="gardien runs per kind")
    p.add_argument(
        "--engine",
        choices=["auto", "python"],
        default="auto",
        help="gardien's engine: the native core when installed (auto), or Python only",
    )
    p.add_argument("--repeat-fail2ban", type=int, default=1, help="fail2ban-regex runs per kind")
    p.add_argument("--check-hosts", action="store_true", help="also compare matched hosts")
    p.add_argument("--fail2ban-regex", default=DEFAULT_FAIL2BAN_REGEX, metavar="PATH")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per run")
    p.add_argument("--target", type=float, default=20.0, help="speed-up goal (report only)")
    p.add_argument("--strict", action="store_true", help="exit 1 if below --target")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = p.parse_args(argv)
    if args.lines < 1 or args.repeat < 1 or args.repeat_fail2ban < 1:
        p.error("--lines, --repeat and --repeat-fail2ban must be at least 1")
    if not 0.0 <= args.failure_rate <= 1.0:
        p.error("--failure-rate must be within [0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring for the exit status."""
    args = parse_args(argv)
    results = [bench_kind(kind, args) for kind in dict.fromkeys(args.kind)]
    print(to_json(results, args) if args.json else render_table(results, args.target))
    failed = any(r.problems for r in results)
    if failed:
        log("MISMATCH or ERROR: see the messages above")
    ratios = [r.ratio for r in results if r.ratio is not None]
    below = args.strict and (not ratios or min(ratios) < args.target)
    return 1 if failed or below else 0


if __name__ == "__main__":
    sys.exit(main())

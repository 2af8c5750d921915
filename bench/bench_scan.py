"""Benchmark ``gardien scan`` on 1M-line logs: offenders found, rotated files, what-if grid.

For each log kind (asterisk, sshd, postfix[mode=aggressive]) the script reuses or generates
the log of ``bench_regex.py`` (``genlogs.py``, same cache) and times, as whole processes
(``python -m gardien scan ...``, argv lists, no shell), the median of ``--repeat`` runs of:

- **scan**: ``scan LOG --filter F --json``: every ban the daemon's jail (findtime 10m,
  maxretry 5, bantime 10m) would have made;
- **rotated**: the same lines split into three files as logrotate leaves them (``LOG.2.gz``,
  ``LOG.1.gz``, ``LOG``, with increasing modification times), given newest first; the bans
  must be exactly those of the single file (checked, ``MISMATCH`` otherwise);
- **what-if**: ``--what-if maxretry=3,5,10 findtime=10m,1h,1d``, nine combinations from one
  reading of the log.

With ``--fail2ban`` it also times ``fail2ban-regex LOG FILTER`` once per kind: fail2ban has
no scan, and matching the log is the least it would have to do, so that time is a floor for
fail2ban, not a like-for-like figure.

Usage::

    python bench/bench_scan.py                     # all kinds, 1M lines, 3 runs each
    python bench/bench_scan.py --kind asterisk --fail2ban --json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import bench_regex
import genlogs

WHAT_IF = ["--what-if", "maxretry=3,5,10", "findtime=10m,1h,1d"]


def scan_argv(logs: Sequence[Path], filter_spec: str, *extra: str) -> list[str]:
    """``python -m gardien scan LOG... --filter F --json EXTRA...`` with this interpreter."""
    return [
        sys.executable,
        "-m",
        "gardien",
        "scan",
        *(str(path) for path in logs),
        "--filter",
        filter_spec,
        "--json",
        *extra,
    ]


def timed(
    argv: list[str], repeat: int, env: dict[str, str]
) -> tuple[list[float], dict[str, object]]:
    """Wall-clock seconds of ``repeat`` runs, and the JSON report of the last one."""
    seconds = []
    report: dict[str, object] = {}
    for attempt in range(1, repeat + 1):
        elapsed, out = bench_regex.run(argv, env, timeout=3600)
        report = json.loads(out)
        seconds.append(elapsed)
        bench_regex.log(f"    run {attempt}/{repeat}: {elapsed:.2f}s")
    return seconds, report


def rotate(log_path: Path, directory: Path) -> list[Path]:
    """Split ``log_path`` into three logrotate-style files; returned newest first."""
    directory.mkdir(parents=True, exist_ok=True)
    data = log_path.read_bytes()
    cuts = [0]
    for fraction in (1 / 3, 2 / 3):
        cut = data.index(b"\n", int(len(data) * fraction)) + 1
        cuts.append(cut)
    cuts.append(len(data))
    names = [f"{log_path.name}.2.gz", f"{log_path.name}.1.gz", log_path.name]
    paths = []
    now = time.time()
    for index, name in enumerate(names):
        path = directory / name
        chunk = data[cuts[index] : cuts[index + 1]]
        if name.endswith(".gz"):
            with gzip.open(path, "wb", compresslevel=6) as handle:
                handle.write(chunk)
        else:
            path.write_bytes(chunk)
        os.utime(path, (now, now - 3600 * (len(names) - index)))
        paths.append(path)
    return list(reversed(paths))


def bench_kind(kind: str, args: argparse.Namespace) -> dict[str, object]:
    log_path, _params = bench_regex.ensure_log(kind, args)
    spec = bench_regex.filter_spec(kind, "gardien")
    env = bench_regex.gardien_env()
    result: dict[str, object] = {"kind": kind, "lines": args.lines}
    bench_regex.log(f"[{kind}] scan")
    seconds, report = timed(scan_argv([log_path], spec), args.repeat, env)
    bans = report["bans"]
    assert isinstance(bans, list)
    result["scan"] = {
        "median": statistics.median(seconds),
        "runs": seconds,
        "bans": len(bans),
        "banned_addresses": len({ban["ip"] for ban in bans}),
        "failures": report["failures"],
        "addresses": report["addresses"],
    }
    bench_regex.log(f"[{kind}] rotated files")
    rotated = rotate(log_path, args.work_dir / f"rotated-{kind}")
    seconds, rotated_report = timed(scan_argv(rotated, spec), args.repeat, env)
    same = rotated_report["bans"] == report["bans"]
    result["rotated"] = {"median": statistics.median(seconds), "runs": seconds, "same_bans": same}
    bench_regex.log(f"[{kind}] what-if")
    seconds, grid_report = timed(scan_argv([log_path], spec, *WHAT_IF), args.repeat, env)
    result["what_if"] = {
        "median": statistics.median(seconds),
        "runs": seconds,
        "grid": grid_report["what_if"],
    }
    if args.fail2ban:
        bench_regex.log(f"[{kind}] fail2ban-regex (matching only)")
        elapsed, _out = bench_regex.run(
            bench_regex.fail2ban_argv(args.fail2ban_regex, log_path, spec), env, timeout=3600
        )
        result["fail2ban_regex"] = elapsed
    return result


def render(results: Sequence[dict[str, object]]) -> str:
    rows = [
        "kind      lines    scan (s)  lines/s   bans   addr  rotated (s)  same  what-if 9 (s)"
        "  fail2ban-regex (s)"
    ]
    for result in results:
        scan = result["scan"]
        rotated = result["rotated"]
        grid = result["what_if"]
        assert isinstance(scan, dict) and isinstance(rotated, dict) and isinstance(grid, dict)
        fail2ban = result.get("fail2ban_regex")
        lines = int(str(result["lines"]))
        rate = lines / scan["median"]
        rows.append(
            f"{result['kind']:<9} {lines:>7,}  {scan['median']:>8.2f}  {rate:>7,.0f}"
            f"  {scan['bans']:>5}  {scan['banned_addresses']:>5}  {rotated['median']:>11.2f}"
            f"  {'yes' if rotated['same_bans'] else 'MISMATCH':>4}  {grid['median']:>13.2f}"
            f"  {'-' if fail2ban is None else format(fail2ban, '.2f'):>18}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark gardien scan on large logs.")
    parser.add_argument("--kind", nargs="+", choices=genlogs.KINDS, default=list(genlogs.KINDS))
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/gardien-bench"))
    parser.add_argument("--regenerate", action="store_true", help="ignore cached logs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--fail2ban", action="store_true", help="also time fail2ban-regex")
    parser.add_argument("--fail2ban-regex", default=bench_regex.DEFAULT_FAIL2BAN_REGEX)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    try:
        results = [bench_kind(kind, args) for kind in args.kind]
    except bench_regex.BenchError as error:
        print(f"bench_scan: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"results": results, "environment": bench_regex.environment()}, indent=2))
    else:
        print(render(results))
    rotated_ok = all(isinstance(r["rotated"], dict) and r["rotated"]["same_bans"] for r in results)
    return 0 if rotated_ok else 1


if __name__ == "__main__":
    sys.exit(main())

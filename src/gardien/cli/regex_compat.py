"""``fail2ban-regex``, run by gardien: fail2ban-regex 1.0.2's command line and output.

What runs when gardien is invoked under the name ``fail2ban-regex``
(:func:`fail2ban_regex_main`). It takes fail2ban-regex's options and its positional
``LOG REGEX [IGNOREREGEX]``, reads filters from ``/etc/fail2ban`` by default (else
``/etc/gardien``, else gardien's bundled filters), and prints fail2ban-regex's report: every
line is examined, so that every block, the prefregex and date counts included, is what
fail2ban-regex prints. Options gardien cannot honour are accepted and say so in one line on
standard error; errors are one ``ERROR: ...`` line and exit status 255, as fail2ban-regex's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from gardien._version import __version__
from gardien.cli.regex import RegexOptions, run_regex
from gardien.cli.regex_output import SHOWN_BY_DEFAULT
from gardien.config.filters import USEDNS_CHOICES, bundled_config_dir
from gardien.errors import ConfigError, GardienError

__all__ = ["FAIL2BAN_VERSION", "fail2ban_regex_main"]

#: the fail2ban-regex whose command line and output this follows (``-V`` prints it)
FAIL2BAN_VERSION = "1.0.2"
PROG = "fail2ban-regex"
USAGE = f"{PROG} [OPTIONS] <LOG> <REGEX> [IGNOREREGEX]"
EXIT_FAILURE = 255
DESCRIPTION = f"""\
gardien {__version__} running as fail2ban-regex {FAIL2BAN_VERSION}: test a filter against a log.

LOG:
  string                a string representing a log line
  filename              path to a log file (/var/log/auth.log)
  systemd-journal       the systemd journal, optionally with backend parameters
                        (systemd-journal[journalfiles=F], systemd-journal[journalpath=DIR])

REGEX:
  string                a string representing a 'failregex'
  filter                name of filter, optionally with options (sshd[mode=aggressive])
  filename              path to a filter file (filter.d/sshd.conf)

IGNOREREGEX:
  string                a string representing an 'ignoreregex'
"""

# accepted, with what gardien does instead (one line on standard error when given)
_NOT_HONOURED = {
    "verbose": "-v/--verbose/--verbosity: gardien prints the report without the verbose details",
    "verbose_date": "--verbose-date: gardien prints the date templates without their regexes",
    "debuggex": "-D/--debuggex: gardien makes no debuggex.com addresses",
    "invert": "-i/--invert (fail2ban 1.1): not supported; the report is printed as usual",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"Usage: {USAGE}\n\n{PROG}: error: {message}\n")
        raise SystemExit(2)


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        usage=USAGE,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("-c", "--config", metavar="CONFIG", help="set alternate config directory")
    add("-d", "--datepattern", help="set custom pattern used to match date/times")
    add("--timezone", "--TZ", dest="timezone", help="set time-zone used by convert time format")
    add("-e", "--encoding", help="file encoding (gardien reads UTF-8)")
    add("-r", "--raw", action="store_true", help="raw hosts, don't resolve dns")
    add("--usedns", help="DNS specified replacement of tags <HOST> in regexp")
    add("-L", "--maxlines", type=int, help="maxlines for multi-line regex")
    add("-m", "--journalmatch", help='journalctl style matches ("systemd-journal" only)')
    add("-l", "--log-level", dest="log_level", help="log level (gardien logs nothing here)")
    add("-V", dest="short_version", action="store_true", help="print the version (short)")
    add("--version", action="version", version=f"{PROG} {FAIL2BAN_VERSION} (gardien {__version__})")
    add("-v", "--verbose", action="count", default=0, help="increase verbosity")
    add("--verbosity", type=int, help="set numerical level of verbosity (0..4)")
    add("--verbose-date", "--VD", dest="verbose_date", action="store_true")
    add("-D", "--debuggex", action="store_true")
    add("--no-check-all", dest="check_all", action="store_false", help="first match wins")
    add("-o", "--out", help="print only this of each failure (ip, id, msg, row, <tags>...)")
    add("-i", "--invert", action="store_true")
    add("--print-no-missed", action="store_true", help="do not print any missed lines")
    add("--print-no-ignored", action="store_true", help="do not print any ignored lines")
    add("--print-all-matched", action="store_true", help="print all matched lines")
    add("--print-all-missed", action="store_true", help="print all missed lines")
    add("--print-all-ignored", action="store_true", help="print all ignored lines")
    add("-t", "--log-traceback", action="store_true", help="accepted (no tracebacks)")
    add("--full-traceback", action="store_true", help="accepted (no tracebacks)")
    add("args", nargs="*", metavar="LOG REGEX [IGNOREREGEX]")
    return p


def default_config_dir() -> str:
    """fail2ban-regex's default, /etc/fail2ban; where fail2ban is gone, gardien's own."""
    for candidate in ("/etc/fail2ban", "/etc/gardien"):
        if os.path.isdir(candidate):
            return candidate
    return str(bundled_config_dir())


def fail2ban_regex_main(argv: list[str]) -> int:
    """Run ``fail2ban-regex`` with ``argv`` (without the program name); the exit status."""
    parser = _parser()
    try:
        opts = parser.parse_intermixed_args(argv)
    except SystemExit as leaving:
        return int(leaving.code or 0)
    if opts.short_version:
        print(FAIL2BAN_VERSION)
        return 0
    errors = []
    if opts.print_no_missed and opts.print_all_missed:
        errors.append("ERROR: --print-no-missed and --print-all-missed are mutually exclusive.")
    if opts.print_no_ignored and opts.print_all_ignored:
        errors.append("ERROR: --print-no-ignored and --print-all-ignored are mutually exclusive.")
    if len(opts.args) not in (2, 3):
        errors.append("ERROR: provide both <LOG> and <REGEX>.")
    if errors:
        parser.print_help()
        sys.stderr.write("\n" + "\n".join(errors) + "\n")
        return EXIT_FAILURE
    for key, note in _NOT_HONOURED.items():
        if getattr(opts, key) or (key == "verbose" and opts.verbosity):
            sys.stderr.write(f"{PROG}: {note}\n")
    encoding = (opts.encoding or "utf-8").lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8"):
        sys.stderr.write(f"{PROG}: -e {opts.encoding}: gardien reads logs as UTF-8\n")
    try:
        # -r (do not resolve names) is what gardien always does
        usedns = _usedns(opts.usedns)
        options = RegexOptions(
            log=opts.args[0],
            filter_argument=opts.args[1],
            config_dir=opts.config or default_config_dir(),
            ignoreregex=opts.args[2] if len(opts.args) == 3 else None,
            datepattern=opts.datepattern,
            maxlines=opts.maxlines or None,
            journalmatch=opts.journalmatch,
            timezone=opts.timezone,
            out=opts.out,
            print_all_matched=opts.print_all_matched,
            print_all_missed=opts.print_all_missed,
            print_all_ignored=opts.print_all_ignored,
            print_no_missed=opts.print_no_missed,
            print_no_ignored=opts.print_no_ignored,
            threshold=opts.maxlines or SHOWN_BY_DEFAULT,
            examine_all=True,
            check_all=opts.check_all,
            usedns=usedns,
        )
        _run(options)
    except GardienError as error:
        sys.stdout.flush()
        sys.stderr.write(f"ERROR: {error}\n")
        return EXIT_FAILURE
    except BrokenPipeError:  # fail2ban-regex ... | head
        sys.stderr.close()
        return 0
    return 0


def _usedns(value: str | None) -> str | None:
    if value is None:
        return None
    choice = value.strip().lower()
    if choice not in USEDNS_CHOICES:
        raise ConfigError(f"--usedns must be one of {', '.join(USEDNS_CHOICES)}, got {value!r}")
    return choice


def _run(options: RegexOptions) -> None:
    out = sys.stdout

    def write(line: str) -> None:
        out.write(line + "\n")

    run_regex(options, write)
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for a ``fail2ban-regex`` script: exits with :func:`fail2ban_regex_main`."""
    return fail2ban_regex_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # pragma: no cover - python -m gardien.cli.regex_compat
    sys.exit(main())

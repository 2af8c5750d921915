"""``gardien regex`` and ``fail2ban-regex`` (gardien's, :func:`fail2ban_regex_main`) side by
side with the real fail2ban-regex 1.0.2 from Debian, on fail2ban's own filters and sample logs
(read from the installed package, never copied here) and on a real journal file.

The real fail2ban-regex runs with ``-r`` (do not resolve names): it resolves host names through
DNS otherwise, and gardien never does (a line naming a host counts as matched).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.ci import require

REAL = "/usr/bin/fail2ban-regex"

#: What must differ, and is normalised away before comparing (also listed in README.md):
INTENDED_DIFFERENCES = [
    "[processed in N sec]: the time taken",
    "the Prefregex row shows gardien's expansion of <HOST> (same meaning, other text)",
    "-o row: the set of users in gardien's order, and the time always a float",
    "gardien regex (not fail2ban-regex) skips lines that cannot match: its Prefregex total and "
    "Date template hits count only the lines it examined (every line with --print-all-missed)",
]

FILTERS = [
    ("sshd", "sshd"),
    ("sshd[mode=aggressive]", "sshd"),
    ("postfix[mode=auth]", "postfix"),
    ("postfix[mode=aggressive]", "postfix"),
    ("asterisk", "asterisk"),
    ("dovecot", "dovecot"),
    ("apache-auth", "apache-auth"),  # prefregex with <HOST>
    ("named-refused", "named-refused"),
    ("slapd", "slapd"),  # maxlines > 1: lines taken from the buffer move to matched
    ("guacamole", "guacamole"),
    ("ejabberd-auth", "ejabberd-auth"),  # two datepatterns
]
PRINT_ALL = ["--print-all-matched", "--print-all-missed", "--print-all-ignored"]
COMPAT = [
    sys.executable,
    "-c",
    "import sys; from gardien.cli.regex_compat import main; sys.exit(main())",
]
ENV = {**os.environ, "TZ": "UTC"}


@pytest.fixture(scope="module")
def real_regex() -> str:
    require(os.access(REAL, os.X_OK), "fail2ban is not installed (apt-get install fail2ban)")
    return REAL


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def normalise(text: str) -> str:
    text = re.sub(r"\[processed in [\d.]+ sec\]", "[processed in N sec]", text)
    # the row after "Prefregex: N total" is the expanded regex
    return re.sub(r"(Prefregex: \d+ total\n)\|  .*\n", r"\1|  PREFREGEX\n", text)


def real(*args: str) -> str:
    return normalise(run([REAL, "-r", *args]))


def compat(*args: str) -> str:
    return normalise(run([*COMPAT, *args]))


def cli(*args: str) -> str:
    return normalise(run([sys.executable, "-m", "gardien", "-c", "/etc/fail2ban", "regex", *args]))


def block(text: str, title: str) -> str:
    """From a "Title: N total" line to the end of its frame."""
    found = re.search(rf"^{title}: \d+ total\n(?:[|`].*\n)*", text, re.MULTILINE)
    assert found, f"no {title} block in:\n{text}"
    return found.group(0)


@pytest.mark.parametrize(("flt", "sample"), FILTERS)
def test_fail2ban_regex_prints_what_the_real_one_prints(
    flt: str, sample: str, real_regex: str, fail2ban_samples: Path, fail2ban_config: Path
) -> None:
    log = str(fail2ban_samples / sample)
    assert compat(log, flt) == real(log, flt)
    assert compat(log, flt, *PRINT_ALL) == real(log, flt, *PRINT_ALL)


@pytest.mark.parametrize(("flt", "sample"), FILTERS)
def test_gardien_regex_counts_and_lists_lines_as_fail2ban_regex(
    flt: str, sample: str, real_regex: str, fail2ban_samples: Path, fail2ban_config: Path
) -> None:
    log = str(fail2ban_samples / sample)
    expected, ours = real(log, flt), cli(log, flt)
    lines = [line for line in expected.splitlines() if line.startswith("Lines: ")]
    assert lines and lines[0] in ours.splitlines()
    for title in ("Failregex", "Ignoreregex"):
        assert block(ours, title) == block(expected, title)
    assert ours.split("[processed in N sec]")[1] == expected.split("[processed in N sec]")[1]
    # every line examined: the whole report is fail2ban-regex's
    assert cli(log, flt, *PRINT_ALL) == real(log, flt, *PRINT_ALL)


@pytest.mark.parametrize("out", ["ip", "id", "msg", "user", "<ip> <F-USER>"])
@pytest.mark.parametrize(("flt", "sample"), FILTERS[:6])
def test_out_prints_what_the_real_one_prints(
    out: str, flt: str, sample: str, real_regex: str, fail2ban_samples: Path
) -> None:
    log = str(fail2ban_samples / sample)
    expected = run([REAL, "-r", "-o", out, log, flt])
    assert expected, "fail2ban-regex found nothing: the comparison would prove nothing"
    assert run([*COMPAT, "-o", out, log, flt]) == expected
    assert (
        run([sys.executable, "-m", "gardien", "-c", "/etc/fail2ban", "regex", "-o", out, log, flt])
        == expected
    )


def test_out_row_has_the_same_rows(real_regex: str, fail2ban_samples: Path) -> None:
    log = str(fail2ban_samples / "dovecot")

    def rows(text: str) -> list[str]:
        return [re.sub(r",\t(\d+)(?:\.0)?,\t", r",\t\1,\t", line) for line in text.splitlines()]

    expected = rows(run([REAL, "-r", "-o", "row", log, "dovecot"]))
    assert len(expected) > 10
    assert rows(run([*COMPAT, "-o", "row", log, "dovecot"])) == expected


SSHD_ENTRIES = [
    ("sshd", "Failed password for root from 192.0.2.7 port 52000 ssh2"),
    ("sshd", "Connection closed by 192.0.2.8 port 22 [preauth]"),
    ("sshd", "Accepted publickey for bob from 198.51.100.4 port 2 ssh2"),
    ("sshd", "Server listening on 0.0.0.0 port 22."),
    ("cron", "(root) CMD (true)"),
    ("sshd", "Invalid user admin from 203.0.113.5 port 4000"),
]


def test_the_journal_side_by_side(
    tmp_path: Path,
    real_regex: str,
    fail2ban_config: Path,
    write_journal: Callable[[Path, list[dict[str, str | list[str]]]], None],
) -> None:
    journal = tmp_path / "test.journal"
    base = 1795255200_000000
    write_journal(
        journal,
        [
            {
                "__REALTIME_TIMESTAMP": str(base + i * 1_000_000),
                "__MONOTONIC_TIMESTAMP": str(1000 + i),
                "_BOOT_ID": "0123456789abcdef0123456789abcdef",
                "_HOSTNAME": "web",
                "_COMM": comm,
                "SYSLOG_IDENTIFIER": comm,
                "_PID": str(100 + i),
                "MESSAGE": message,
                "_SYSTEMD_UNIT": "ssh.service" if comm == "sshd" else "cron.service",
            }
            for i, (comm, message) in enumerate(SSHD_ENTRIES)
        ],
    )
    log = f"systemd-journal[journalfiles={journal}]"
    expected = real(log, "sshd", *PRINT_ALL)
    # the filter's journalmatch (_COMM=sshd) leaves the cron entry out
    assert "Lines: 5 lines, 2 ignored, 2 matched, 1 missed" in expected
    assert compat(log, "sshd", *PRINT_ALL) == expected
    assert cli(log, "sshd", *PRINT_ALL) == expected
    directory = f"systemd-journal[journalpath={tmp_path}]"
    assert "Lines: 6 lines" in compat("-m", "_HOSTNAME=web", directory, "sshd")
    assert "Lines: 6 lines" in real("-m", "_HOSTNAME=web", directory, "sshd")


GUIDE_SCRIPT = r"""
fail2ban-regex "$1" 'postfix[mode=auth]' --print-all-matched \
  | sed -n '/^|- Matched line(s):/,/^`-/p' \
  | grep -oE '\[[0-9]{1,3}(\.[0-9]{1,3}){3}\]' | tr -d '[]' | sort -u
"""


def test_the_guide_flow_extracts_the_same_addresses(
    tmp_path: Path, real_regex: str, fail2ban_samples: Path
) -> None:
    shim = tmp_path / "bin" / "fail2ban-regex"
    shim.parent.mkdir()
    shim.write_text(
        f"#!{sys.executable}\nimport sys\nfrom gardien.cli.regex_compat import main\n"
        "sys.exit(main())\n"
    )
    shim.chmod(0o755)
    log = str(fail2ban_samples / "postfix")

    def addresses(path: str) -> list[str]:
        env = {**ENV, "PATH": f"{path}:{os.environ['PATH']}"}
        done = subprocess.run(
            ["bash", "-c", GUIDE_SCRIPT, "guide", log],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        return done.stdout.split()

    ours = addresses(str(shim.parent))
    assert len(ours) >= 3
    assert ours == addresses(os.path.dirname(REAL))


def test_mistakes_and_options_not_honoured(real_regex: str) -> None:
    done = subprocess.run([*COMPAT, "only-one"], capture_output=True, text=True, env=ENV)
    assert done.returncode == 255
    assert "ERROR: provide both <LOG> and <REGEX>." in done.stderr
    done = subprocess.run(
        [*COMPAT, "-D", "Nov 21 10:00:01 web sshd[1]: x", "no-such-filter"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert done.returncode == 255
    assert "-D/--debuggex: gardien makes no debuggex.com addresses" in done.stderr
    assert "ERROR: no filter named 'no-such-filter'" in done.stderr
    assert "Traceback" not in done.stderr
    assert run([*COMPAT, "-V"]).strip() == run([REAL, "-V"]).strip()


# ---- counting rules and command-line forms, on filters written here -------------------

# four failregexes and one ignoreregex: fail2ban tries the ignoreregex first, on every line
IGNORE_FIRST = r"""[Definition]
failregex = ^\S+ \S+ app: bad password from <HOST>
            ^\S+ \S+ app: bad (?:password|user) from <HOST>
            ^\S+ \S+ app: <F-NOFAIL>probe</F-NOFAIL> from <HOST>
            ^\S+ \S+ app: unknown user from <HOST>
ignoreregex = from 192\.0\.2\.99
"""
# two failregexes and two ignoreregexes: ignoreregexes are tried on each failregex's match
IGNORE_AFTER = r"""[Definition]
failregex = ^\S+ \S+ app: bad password from <HOST>
            ^\S+ \S+ app: bad \S+ from <HOST>
ignoreregex = from 192\.0\.2\.99
              192\.0\.2\.(?:99|98)
"""
APP_LOG = """\
2026-11-21 10:00:01 app: bad password from 192.0.2.1
2026-11-21 10:00:02 app: bad user from 192.0.2.2
2026-11-21 10:00:03 app: probe from 192.0.2.3
2026-11-21 10:00:04 app: bad password from 192.0.2.99
2026-11-21 10:00:05 app: nothing to see from 192.0.2.99
2026-11-21 10:00:06 app: bad password from 192.0.2.98
2026-11-21 10:00:07 app: started
"""


@pytest.mark.parametrize("definition", [IGNORE_FIRST, IGNORE_AFTER], ids=["first", "after"])
def test_ignoreregex_and_nofail_counting_rules(
    definition: str, tmp_path: Path, real_regex: str
) -> None:
    flt = tmp_path / "app.conf"
    flt.write_text(definition)
    log = tmp_path / "app.log"
    log.write_text(APP_LOG)
    expected = real(str(log), str(flt), *PRINT_ALL)
    assert compat(str(log), str(flt), *PRINT_ALL) == expected
    assert cli(str(log), str(flt), *PRINT_ALL) == expected
    ours = cli(str(log), str(flt))  # the fast path: same counts
    assert block(ours, "Failregex") == block(expected, "Failregex")
    assert block(ours, "Ignoreregex") == block(expected, "Ignoreregex")
    assert re.search(r"^Lines: .*$", ours, re.MULTILINE).group(0) in expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "args",
    [
        ["--print-no-missed", "--print-no-ignored"],
        ["-L", "3"],  # also fail2ban-regex's "fewer than N lines are shown"
        ["--no-check-all"],
        ["-d", "^%Y-%m-%d %H:%M:%S"],
        ["--print-all-matched", "-m", "X=1"],
    ],
)
def test_options_side_by_side(args: list[str], tmp_path: Path, real_regex: str) -> None:
    flt = tmp_path / "app.conf"
    flt.write_text(IGNORE_AFTER)
    log = tmp_path / "app.log"
    log.write_text(APP_LOG * 3)
    assert compat(*args, str(log), str(flt)) == real(*args, str(log), str(flt))


@pytest.mark.parametrize(
    ("log", "regex", "ignore"),
    [
        ("2026-11-21 10:00:01 app: bad password from 192.0.2.1", r"bad password from <HOST>", None),
        (APP_LOG, r"bad \S+ from <HOST>", "192\\.0\\.2\\.2"),
        (APP_LOG.splitlines()[0], "sshd", None),
    ],
    ids=["single-line", "multi-line-text", "line-and-filter-name"],
)
def test_log_and_regex_given_as_text(
    log: str, regex: str, ignore: str | None, real_regex: str
) -> None:
    args = [log, regex, *([ignore] if ignore else [])]
    assert compat(*args, "--print-all-matched") == real(*args, "--print-all-matched")


def test_a_last_line_without_end_of_line_is_not_counted(tmp_path: Path, real_regex: str) -> None:
    log = tmp_path / "growing.log"
    log.write_text(APP_LOG + "2026-11-21 10:00:08 app: bad password from 192.0.2")  # unfinished
    flt = tmp_path / "app.conf"
    flt.write_text(IGNORE_AFTER)
    expected = real(str(log), str(flt))
    assert "Lines: 7 lines" in expected
    assert compat(str(log), str(flt)) == expected
    assert cli(str(log), str(flt)).splitlines()[-4:] == expected.splitlines()[-4:]

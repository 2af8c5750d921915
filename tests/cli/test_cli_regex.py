"""``gardien regex`` as a user runs it: a real process, real files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from support.cli import gardien
from support.samples import SSHD_FAILURE

SSHD_OK = (
    "Nov 21 10:00:02 web sshd[4243]: Accepted publickey for deploy from 198.51.100.4 port 2 ssh2"
)
CRON = "Nov 21 10:00:03 web CRON[77]: (root) CMD (run-parts /etc/cron.hourly)"


@pytest.fixture
def auth_log(tmp_path: Path) -> Path:
    log = tmp_path / "auth.log"
    log.write_text("\n".join([SSHD_FAILURE, SSHD_OK, CRON, "", "# a comment", SSHD_FAILURE]) + "\n")
    return log


def test_summary_line_counts_like_fail2ban_regex(auth_log: Path) -> None:
    result = gardien("regex", str(auth_log), "sshd")
    assert result.returncode == 0, result.stderr
    # empty and comment lines are not counted, as fail2ban-regex does not count them; the
    # Accepted line says the user got in (<F-MLFGAINED>): ignored, as fail2ban-regex counts it
    assert "Lines: 4 lines, 1 ignored, 2 matched, 1 missed" in result.stdout.splitlines()
    assert f"|  {SSHD_OK}" in result.stdout  # fewer than 20 ignored lines: shown


def test_json_has_one_object_per_line_then_a_summary(auth_log: Path) -> None:
    result = gardien("regex", "--json", "--now", "2026-11-22T00:00:00", str(auth_log), "sshd")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    lines, summary = records[:-1], records[-1]
    assert summary == {"summary": {"lines": 4, "ignored": 1, "matched": 2, "missed": 1}}
    assert [r["line"] for r in lines] == [1, 2, 3, 6]
    first = lines[0]
    assert first["match"] is True
    assert first["host"] == "192.0.2.7"
    assert first["user"] == "root"
    assert first["time"] == "2026-11-21T10:00:01"
    assert first["epoch"] == pytest.approx(1795255201.0)
    assert lines[1]["match"] is False and lines[1]["ignored"] is True
    assert lines[2]["match"] is False and lines[2]["host"] is None


def test_now_decides_the_year_of_year_less_dates(auth_log: Path) -> None:
    result = gardien("regex", "--json", "--now", "2027-01-05T00:00:00", str(auth_log), "sshd")
    first = json.loads(result.stdout.splitlines()[0])
    assert first["time"] == "2026-11-21T10:00:01"  # November is in the past: last year
    result = gardien("regex", "--json", "--now", "2026-11-01T00:00:00", str(auth_log), "sshd")
    first = json.loads(result.stdout.splitlines()[0])
    assert first["time"] == "2025-11-21T10:00:01"  # three weeks ahead: the year before


def test_filter_with_parameters_and_raw_regex(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(
        "Nov 21 10:00:01 mx postfix/smtpd[10]: warning: unknown[203.0.113.9]: "
        "SASL LOGIN authentication failed: UGFzc3dvcmQ6\n"
    )
    assert "1 matched" in gardien("regex", str(log), "postfix[mode=auth]").stdout
    raw = gardien("regex", str(log), r"warning: [\w.-]+\[<HOST>\]: SASL \w+ authentication failed")
    assert "1 matched" in raw.stdout, raw.stderr


def test_a_single_log_line_and_standard_input() -> None:
    assert "1 matched" in gardien("regex", SSHD_FAILURE, "sshd").stdout
    piped = gardien("regex", "-", "sshd", stdin=SSHD_FAILURE + "\n" + CRON + "\n")
    assert "Lines: 2 lines, 0 ignored, 1 matched, 1 missed" in piped.stdout


def test_gzip_log(tmp_path: Path) -> None:
    log = tmp_path / "auth.log.1.gz"
    with gzip.open(log, "wt") as handle:
        handle.write(SSHD_FAILURE + "\n")
    assert "1 matched" in gardien("regex", str(log), "sshd").stdout


def test_print_all_options(auth_log: Path) -> None:
    out = gardien("regex", "--print-all-matched", "--print-all-missed", str(auth_log), "sshd")
    assert f"|  {SSHD_FAILURE}" in out.stdout
    assert f"|  {CRON}" in out.stdout


def test_ignoreregex_argument(auth_log: Path) -> None:
    out = gardien("regex", "--print-all-ignored", str(auth_log), "sshd", r"for root from")
    assert "3 ignored, 0 matched" in out.stdout
    assert "|   1) [2] for root from" in out.stdout.splitlines()


def test_config_dir_of_fail2ban_is_read_as_is(auth_log: Path, fail2ban_config: Path) -> None:
    out = gardien("-c", str(fail2ban_config), "regex", str(auth_log), "sshd")
    assert "2 matched" in out.stdout
    assert f"Use   failregex filter file : sshd, basedir: {fail2ban_config}" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["regex", "/no/such/file.log", "sshd"], "/no/such/file.log: no such log file"),
        (["regex", SSHD_FAILURE, "no-such-filter"], "no filter named 'no-such-filter'"),
        (["regex", SSHD_FAILURE, "(unclosed <HOST>"], "not a valid regular expression"),
        (["regex", SSHD_FAILURE, "Failed password"], "has no <HOST>"),
        (["regex", "--now", "yesterday", SSHD_FAILURE, "sshd"], "is not an ISO time"),
        (["regex", "--maxlines", "0", SSHD_FAILURE, "sshd"], "maxlines must be 1 or more"),
        (["regex", "--datepattern", "%Q", SSHD_FAILURE, "sshd"], "unsupported directive"),
        (
            ["regex", "systemd-journal[journalflags=1]", "sshd"],
            "journalflags=...]: gardien reads the system journal, journalfiles or journalpath only",
        ),
        (
            ["regex", "systemd-journal[journalfiles=/no/such/*.journal]", "sshd"],
            "no journal file matches journalfiles",
        ),
        (
            ["regex", "--print-no-missed", "--print-all-missed", SSHD_FAILURE, "sshd"],
            "--print-no-missed and --print-all-missed exclude each other",
        ),
    ],
)
def test_user_mistakes_get_one_clear_line_and_exit_1(args: list[str], message: str) -> None:
    result = gardien(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("gardien: error: ")


def test_bad_filter_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("[Definition]\nfailregex = ^ok from <HOST>$\n            ^broken ( <HOST>\n")
    result = gardien("regex", SSHD_FAILURE, str(bad))
    assert result.returncode == 1
    assert f"{bad}:3:" in result.stderr, result.stderr


def test_environment_variable_sets_config_dir(auth_log: Path, tmp_path: Path) -> None:
    (tmp_path / "filter.d").mkdir()
    (tmp_path / "filter.d" / "mine.conf").write_text(
        "[Definition]\nfailregex = ^ web CRON\\[\\d+\\]: \\(<F-USER>\\w+</F-USER>\\) CMD .* <HOST>?$\n"
        "            ^ web sshd\\[\\d+\\]: Accepted \\S+ for \\S+ from <HOST>\n"
    )
    result = gardien("regex", str(auth_log), "mine", env={"GARDIEN_CONFIG_DIR": str(tmp_path)})
    assert "1 matched" in result.stdout, result.stderr


def test_version_and_help() -> None:
    assert gardien("--version").stdout.startswith("gardien, version ")
    help_text = gardien("regex", "--help").stdout
    for option in (
        "--json",
        "--now",
        "--print-all-matched",
        "--print-all-missed",
        "--print-all-ignored",
        "--datepattern",
        "--maxlines",
    ):
        assert option in help_text

"""gardien's shipped filters against their own annotated sample logs (``data/samples``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gardien.cli.regex import parse_now
from gardien.config.filters import bundled_config_dir
from support.cli import gardien as run_gardien
from support.samples import FAIL2BAN_NOW, SHIPPED, gardien_samples_dir, run_sample


def test_every_shipped_filter_has_a_sample_log() -> None:
    assert {"asterisk", "dovecot", "postfix", "sshd"} <= set(SHIPPED)
    missing = [name for name in SHIPPED if not (gardien_samples_dir() / f"{name}.log").is_file()]
    assert not missing, f"filters without a sample log in data/samples: {missing}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_filter_meets_its_own_samples(name: str, samples_timezone: None) -> None:
    outcome = run_sample(
        gardien_samples_dir() / f"{name}.log",
        name,
        bundled_config_dir(),
        parse_now("2026-11-21T12:00:00"),
    )
    assert outcome.total >= 10
    assert not outcome.failures, "\n".join(outcome.failures)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_failregex_has_a_sample(
    name: str, fail2ban_samples: Path, samples_timezone: None
) -> None:
    """Over fail2ban's samples and ours, each failregex of each mode matches some line."""
    ours = run_sample(
        gardien_samples_dir() / f"{name}.log",
        name,
        bundled_config_dir(),
        parse_now("2026-11-21T12:00:00"),
    )
    outcomes = [ours]
    if (fail2ban_samples / name).is_file():  # gardien's own filters (caddy-auth) have none
        outcomes.append(
            run_sample(fail2ban_samples / name, name, bundled_config_dir(), FAIL2BAN_NOW)
        )
    # as fail2ban's harness does: a regex (by its text) used by any option set counts
    used: set[str] = set()
    for outcome in outcomes:
        for regexes, hits in outcome.coverage.values():
            used |= {regexes[i] for i in hits}
    unused = sorted(
        {
            f"{label}: {regex}"
            for outcome in outcomes
            for label, (regexes, _hits) in outcome.coverage.items()
            for regex in regexes
            if regex not in used
        }
    )
    assert not unused, "failregexes without a sample:\n" + "\n".join(unused)


def test_demo_command_works_on_the_bundled_samples() -> None:
    sample = gardien_samples_dir() / "sshd.log"
    result = run_gardien("regex", "--now", "2026-11-21T12:00:00", str(sample), "sshd")
    assert result.returncode == 0, result.stderr
    assert " matched, " in result.stdout

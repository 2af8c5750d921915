"""Conformance with fail2ban's own test suite: its sample logs, read from the installed package,
run through gardien's engine.

* gardien's shipped filters must meet 100% of the expectations of their samples;
* fail2ban's filters (``/etc/fail2ban``) read through gardien's engine must meet >= 98% overall
  (the rate and the failures are printed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gardien.config.filters import bundled_config_dir
from support.samples import FAIL2BAN_NOW, fail2ban_filter_names, fail2ban_samples_dir, run_sample

#: gardien's bundled filters that have a fail2ban sample log of the same name
_SAMPLES = fail2ban_samples_dir()
SHIPPED = (
    fail2ban_filter_names(bundled_config_dir(), _SAMPLES)
    if _SAMPLES is not None and _SAMPLES.is_dir()
    else ["asterisk", "dovecot", "postfix", "sshd"]
)


@pytest.mark.conformance
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_filter_meets_every_fail2ban_expectation(
    name: str, fail2ban_samples: Path, samples_timezone: None
) -> None:
    outcome = run_sample(fail2ban_samples / name, name, bundled_config_dir(), FAIL2BAN_NOW)
    assert outcome.total > 0, f"no expectations read from the {name} samples"
    assert not outcome.failures, "\n".join(outcome.failures)


@pytest.mark.conformance
def test_fail2ban_filters_through_gardien_engine(
    fail2ban_samples: Path,
    fail2ban_config: Path,
    samples_timezone: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = fail2ban_filter_names(fail2ban_config, fail2ban_samples)
    assert len(names) > 50
    passed = total = 0
    failures: list[str] = []
    for name in names:
        outcome = run_sample(fail2ban_samples / name, name, fail2ban_config, FAIL2BAN_NOW)
        passed += outcome.passed
        total += outcome.total
        failures += outcome.failures
    rate = 100.0 * passed / total
    with capsys.disabled():
        print(
            f"\nfail2ban filters through gardien: {passed}/{total} = {rate:.2f}% "
            f"over {len(names)} filters"
        )
        for failure in failures:
            print("  " + failure)
    assert rate >= 98.0

"""gardien's filters with modes against fail2ban's filter of the same name, mode by mode.

A jail that moves from fail2ban to gardien keeps its ``mode``, so each mode must mean what it
means in fail2ban: on a generated log that mixes every kind of line the service writes (failures
of each mode, lines no mode counts, legitimate traffic), gardien's bundled filter and fail2ban's
filter (``/etc/fail2ban/filter.d``, read through gardien's engine, which runs fail2ban's filters)
must take the same lines, with the same address. A failure names each line on which they
disagree and both verdicts.

Where gardien deliberately differs, :attr:`ModeCase.differences` names the line (by a piece of
its text) and says why; such a line must still differ, so that the list stays true.

To compare another filter, add its generated lines to ``tests/support/mode_logs.py`` and a
:class:`ModeCase` per mode to :data:`CASES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gardien.cli.regex import parse_now
from gardien.clock import FakeClock
from gardien.config.filters import bundled_config_dir, load_filter
from gardien.matching.filter import Filter
from support import mode_logs

NOW = "2026-11-21T12:00:00"


@dataclass(frozen=True)
class ModeCase:
    """One filter in one mode, compared on the lines ``lines()`` generates."""

    filter: str
    mode: str
    lines: Callable[[], Sequence[str]]
    #: pieces of a line's text ("{*}" stands for any text between two pieces) -> why gardien's
    #: verdict on such lines differs from fail2ban's
    differences: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.filter}[mode={self.mode}]"


#: each filter in each of its modes
CASES = [
    ModeCase("postfix", mode, mode_logs.postfix_lines, mode_logs.POSTFIX_DIFFERENCES.get(mode, {}))
    for mode in mode_logs.POSTFIX_MODES
]
CASES += [
    ModeCase("dovecot", mode, mode_logs.dovecot_lines, mode_logs.DOVECOT_DIFFERENCES)
    for mode in ("normal", "aggressive")
]
CASES += [
    ModeCase("exim", mode, mode_logs.exim_lines, mode_logs.EXIM_DIFFERENCES)
    for mode in ("normal", "aggressive")
]
CASES += [
    ModeCase("sendmail-reject", mode, mode_logs.sendmail_lines, mode_logs.SENDMAIL_DIFFERENCES)
    for mode in ("normal", "extra", "aggressive")
]


# ---- the comparison -----------------------------------------------------------------------


def _verdicts(config_dir: Path, case: ModeCase, lines: Sequence[str]) -> list[str | None]:
    spec = load_filter(
        case.filter, config_dir, parameters={"mode": case.mode}, fallback_to_bundled=False
    )
    matcher = Filter(spec).matcher(clock=FakeClock(parse_now(NOW)))
    verdicts: list[str | None] = []
    for line in lines:
        failures = matcher.process(line).failures
        verdicts.append(str(failures[0].host) if failures else None)
    return verdicts


def _shown(verdict: str | None) -> str:
    return f"takes {verdict}" if verdict is not None else "no match"


def _known(case: ModeCase, line: str) -> str | None:
    for piece, reason in case.differences.items():
        pattern = piece.split("{*}")
        position = 0
        for part in pattern:
            position = line.find(part, position)
            if position < 0:
                break
            position += len(part)
        else:
            return reason
    return None


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_mode_means_what_it_means_in_fail2ban(
    case: ModeCase, fail2ban_config: Path, samples_timezone: None
) -> None:
    lines = case.lines()
    ours = _verdicts(bundled_config_dir(), case, lines)
    theirs = _verdicts(fail2ban_config, case, lines)
    assert any(ours), f"{case.label} takes no line of the generated log"
    unexpected: list[str] = []
    stale: set[str] = set(case.differences.values())
    for line, mine, fail2ban in zip(lines, ours, theirs, strict=True):
        reason = _known(case, line)
        if mine == fail2ban:
            if reason is not None:
                unexpected.append(
                    f"{line}\n    listed as a difference ({reason}), but both {_shown(mine)}"
                )
            continue
        if reason is not None:
            stale.discard(reason)
            continue
        unexpected.append(
            f"{line}\n    gardien {case.label}: {_shown(mine)}; fail2ban {case.label}: {_shown(fail2ban)}"
        )
    assert not unexpected, f"{len(unexpected)} lines differ:\n" + "\n".join(unexpected)
    assert not stale, f"differences listed that no line shows: {sorted(stale)}"


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_generated_log_has_no_line_twice(case: ModeCase) -> None:
    lines = case.lines()
    assert len(lines) == len(set(lines)) > 20

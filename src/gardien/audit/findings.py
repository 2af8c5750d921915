"""What an audit reports: findings with a place and a fix, and how they are printed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from gardien.severity import SEVERITIES, fails

__all__ = ["SEVERITIES", "Finding", "fails", "render_json", "render_text"]


@dataclass(frozen=True)
class Finding:
    """One problem: ``id`` (stable, e.g. ``asterisk-allowguest``), ``severity``, the ``file`` and
    ``line`` that hold the offending option (or the section header when an option is missing),
    what is wrong and how to fix it. Never carries a secret."""

    id: str
    severity: str
    file: str
    line: int
    message: str
    fix: str


def render_json(findings: Sequence[Finding]) -> str:
    return json.dumps({"findings": [asdict(f) for f in findings]}, indent=2)


def render_text(findings: Sequence[Finding], what: str) -> str:
    """A report grouped by severity, each finding with file:line and its fix."""
    if not findings:
        return f"{what}: no finding"
    lines: list[str] = []
    for severity in SEVERITIES:
        group = sorted(
            (f for f in findings if f.severity == severity), key=lambda f: (f.file, f.line, f.id)
        )
        if not group:
            continue
        lines.append(f"{severity}s ({len(group)}):")
        for finding in group:
            lines.append(f"  {finding.file}:{finding.line}: {finding.id}: {finding.message}")
            lines.append(f"      fix: {finding.fix}")
    return "\n".join(lines)

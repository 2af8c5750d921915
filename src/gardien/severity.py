"""Severities of findings, shared by ``gardien firewall lint`` and ``gardien audit``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

__all__ = ["SEVERITIES", "Severity", "fails"]

Severity = Literal["error", "warning", "info"]

#: from the most to the least serious, the order of the human output
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


class _Graded(Protocol):
    @property
    def severity(self) -> str: ...


def fails(findings: Iterable[_Graded], fail_on: str) -> bool:
    """Whether a finding is at least as serious as ``fail_on`` (the exit status of a check)."""
    order: tuple[str, ...] = SEVERITIES
    limit = order.index(fail_on)
    return any(order.index(f.severity) <= limit for f in findings)

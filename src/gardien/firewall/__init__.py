"""Firewall rulesets as people write them: reading and checking (``gardien firewall lint``)."""

from gardien.firewall.lint import SEVERITIES, Finding, lint

__all__ = ["SEVERITIES", "Finding", "lint"]

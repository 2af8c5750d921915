"""Hardening audits of the protected services and of the jails (``gardien audit``)."""

from gardien.audit.findings import SEVERITIES, Finding, fails, render_json, render_text

__all__ = ["SEVERITIES", "Finding", "fails", "render_json", "render_text"]

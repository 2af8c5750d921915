"""``gardien regex --explain``: one line through a filter, stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

from gardien.clock import FakeClock
from gardien.config.filters import load_filter
from gardien.matching.explain import explain_line
from gardien.matching.filter import Filter, LineMatcher
from gardien.settings import FilterSpec, RegexSource
from support.cli import gardien

NOW = 1795262400.0  # 2026-11-21T09:00:00Z
SSHD_FAILURE = "Nov 21 10:00:01 web sshd[42]: Failed password for root from 192.0.2.7 port 5 ssh2"
CADDY = (
    '{"level":"error","ts":1795248902.25,"logger":"http.log.access.log0","msg":"handled '
    'request","request":{"remote_ip":"203.0.113.45","uri":"/private","headers":'
    '{"Authorization":[]}},"status":401}'
)


def bundled(name: str) -> LineMatcher:
    return Filter(load_filter(name)).matcher(clock=FakeClock(NOW), log_timezone="UTC")


def test_a_text_failure_stage_by_stage() -> None:
    explained = explain_line(bundled("sshd"), SSHD_FAILURE)
    assert explained.format == "text"
    assert explained.date.text == "Nov 21 10:00:01" and explained.date.template
    assert explained.prefregex_matched
    assert explained.content == "Failed password for root from 192.0.2.7 port 5 ssh2"
    first = explained.trials[0]
    assert first.matched and first.captures["user"] == "root" and first.captures["ip4"]
    assert not any(t.matched for t in explained.trials[1:])
    assert explained.is_failure and explained.host == "192.0.2.7"
    assert explained.reason == "failregex 1 matched first"
    assert explained.fields == {"user": "root"}
    text = "\n".join(explained.lines())
    assert "date:       found by " in text and "'Nov 21 10:00:01'" in text
    assert "failregex 1: matched: " in text and "outcome:    failure: failregex 1" in text


def test_why_a_text_line_is_no_failure() -> None:
    missed = explain_line(bundled("sshd"), "Nov 21 10:00:01 web cron[1]: (root) CMD (true)")
    assert not missed.prefregex_matched and missed.outcome == "no match"
    assert "prefregex did not match" in missed.reason and not missed.trials
    accepted = explain_line(
        bundled("sshd"),
        "Nov 21 10:00:02 web sshd[43]: Accepted password for a from 192.0.2.8 port 1",
    )
    assert accepted.outcome == "no failure by itself"
    undated = explain_line(bundled("sshd"), "web sshd[44]: Failed password for b from 192.0.2.9")
    assert undated.date.template is None and "none found" in undated.date.note


def test_ignoreregex_is_shown_and_wins() -> None:
    spec = FilterSpec(
        name="t",
        failregex=(RegexSource("^fail from <HOST>$"),),
        ignoreregex=(RegexSource("192\\.0\\.2\\.1$"),),
    )
    m = Filter(spec).matcher(clock=FakeClock(NOW))
    explained = explain_line(m, "fail from 192.0.2.1")
    assert explained.outcome == "ignored"
    assert [t.matched for t in explained.ignore_trials] == [True]


def test_a_json_record_with_its_fields_and_conditions() -> None:
    explained = explain_line(bundled("caddy-auth"), CADDY)
    assert explained.format == "json"
    assert ("request.remote_ip", '"203.0.113.45"') in explained.record
    assert explained.date.template == "JSON ts" and explained.date.time == 1795248902.25
    first, second = explained.trials[:2]
    assert not first.matched and [c.holds for c in first.conditions][-1] is False
    assert first.conditions[-1].why_not == "request.client_ip is missing"
    assert second.matched and second.captures == {"ip4": "203.0.113.45"}
    assert explained.is_failure and explained.reason == "failjson 2 matched first"
    text = "\n".join(explained.lines())
    assert "NO  request.client_ip=<HOST>  (request.client_ip is missing)" in text


def test_why_a_json_record_is_no_failure() -> None:
    ok = explain_line(bundled("caddy-auth"), CADDY.replace('"status":401', '"status":200'))
    assert ok.outcome == "no match" and ok.reason == "no failjson rule holds"
    assert "status is '200', not '401'" in [c.why_not for c in ok.trials[0].conditions]
    broken = explain_line(bundled("caddy-auth"), CADDY[:-1])
    assert broken.record_problem.startswith("not valid JSON")
    assert "not decoded" in broken.reason


def test_the_cli_explains_and_says_by_its_exit_status(tmp_path: Path) -> None:
    failure = gardien("regex", "--explain", SSHD_FAILURE, "sshd")
    assert failure.returncode == 0, failure.stderr
    assert "outcome:    failure: failregex 1 matched first" in failure.stdout
    missed = gardien("regex", "--explain", "Nov 21 10:00:01 web sshd[1]: hello there", "sshd")
    assert missed.returncode == 1 and "outcome:    no match" in missed.stdout
    error = gardien("regex", "--explain", SSHD_FAILURE, "no-such-filter")
    assert error.returncode == 2 and "gardien: error: no filter named" in error.stderr
    log = tmp_path / "access.log"
    log.write_text(CADDY + "\n" + CADDY.replace("401", "200") + "\n")
    both = gardien("regex", "--explain", "--json", str(log), "caddy-auth")
    assert both.returncode == 0, both.stderr
    records = [json.loads(text) for text in both.stdout.splitlines()]
    assert [r["outcome"] for r in records] == ["failure", "no match"]
    assert records[0]["host"] == "203.0.113.45"

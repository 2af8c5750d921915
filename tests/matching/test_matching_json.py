"""JSON log lines matched by field: failjson / ignorejson rules, jsontime, decoding limits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.clock import FakeClock
from gardien.config.filters import load_filter_file
from gardien.errors import FilterError
from gardien.matching.filter import Filter, LineMatcher, LineResult
from gardien.matching.jsonrules import MAX_JSON_LENGTH, decode_record, json_start, time_of
from gardien.matching.scan import Prefilter
from gardien.settings import FilterSpec, RegexSource
from gardien.tester import test_log as run_log

NOW = 1795248000.0  # 2026-11-21T05:20:00Z


def matcher(
    *rules: str, ignore: tuple[str, ...] = (), jsontime: str = "", **kw: Any
) -> LineMatcher:
    spec = FilterSpec(
        name="t",
        failregex=tuple(RegexSource(r) for r in kw.pop("failregex", ())),
        failjson=tuple(RegexSource(r) for r in rules),
        ignorejson=tuple(RegexSource(r) for r in ignore),
        jsontime=tuple(jsontime.split()),
    )
    return Filter(spec).matcher(clock=FakeClock(NOW), **kw)


def line(**record: Any) -> str:
    return json.dumps(record)


def hosts(result: LineResult) -> list[str]:
    return [f.host for f in result.failures]


# ---- conditions ------------------------------------------------------------------------


def test_every_condition_must_hold_and_the_address_comes_from_its_field() -> None:
    m = matcher("status=401 request.remote_ip=<HOST>")
    assert hosts(m.process(line(status=401, request={"remote_ip": "192.0.2.1"}))) == ["192.0.2.1"]
    assert hosts(m.process(line(status=200, request={"remote_ip": "192.0.2.1"}))) == []
    assert hosts(m.process(line(status=401))) == []  # missing field: no match


def test_operators() -> None:
    record = line(a="x", n=401, f=1.5, t=True, s="hello world", lst=["p", "q"], nil=None)
    cases = {
        "a=x": True,
        "a!=x": False,
        "a!=y": True,
        "n=401": True,
        "n~40[13]": True,
        "n!~5\\d\\d": True,
        "f=1.5": True,
        "t=true": True,
        's="hello world"': True,
        "s='hello world'": True,
        "s~hello.*": True,
        "s~hello": False,  # regexes match the whole value
        "lst=q": True,  # an array matches when one of its items does
        "lst!=q": False,
        "lst!=r": True,
        "lst.1=q": True,  # a number indexes an array
        "lst.0=q": False,
        "a": True,
        "!a": False,
        "!missing": True,
        "missing": False,
        "missing!=x": False,  # a missing field satisfies no condition, negated or not
        "missing!~x": False,
        "nil": False,  # null counts as missing
        "!nil": True,
        "nil!=x": False,
    }
    for condition, expected in cases.items():
        m = matcher(f"{condition} ip=<HOST>")
        got = bool(m.process(record[:-1] + ', "ip": "192.0.2.9"}').failures)
        assert got is expected, condition


def test_objects_and_empty_arrays_are_present_but_have_no_text() -> None:
    record = line(headers={"Authorization": []}, obj={"k": "v"}, ip="192.0.2.9")
    assert matcher("headers.Authorization ip=<HOST>").process(record).failures
    assert not matcher("headers.Authorization=x ip=<HOST>").process(record).failures
    assert not matcher("obj=x ip=<HOST>").process(record).failures
    assert not matcher("obj!=x ip=<HOST>").process(record).failures
    assert matcher("obj.k=v ip=<HOST>").process(record).failures


def test_a_key_with_a_dot_is_written_with_a_backslash() -> None:
    record = line(**{"meta.user": "root", "meta": {"user": "other"}, "ip": "192.0.2.9"})
    m = matcher(r"meta\.user=<F-USER> ip=<HOST>")
    assert m.process(record).failures[0].fields["user"] == "root"
    m = matcher("meta.user=<F-USER> ip=<HOST>")
    assert m.process(record).failures[0].fields["user"] == "other"


def test_captures_and_regex_tags() -> None:
    m = matcher(
        'msg="Authentication failed" attr.remote~<HOST>:\\d+ attr.principalName=<F-USER>',
        'message~"Failed Login: username=<F-USER>\\S+</F-USER> ip=<HOST>"',
    )
    first = m.process(
        line(
            msg="Authentication failed",
            attr={"remote": "[2001:db8::5]:27017", "principalName": "a b"},
        )
    ).failures[0]
    assert (first.host, first.fields["user"]) == ("2001:db8::5", "a b")
    second = m.process(line(message="Failed Login: username=root ip=192.0.2.7")).failures[0]
    assert (second.host, second.fields["user"], second.regex_index) == ("192.0.2.7", "root", 1)


def test_an_address_field_must_be_an_address_as_a_whole() -> None:
    m = matcher("ip=<ADDR>")
    for value in ("192.0.2.1 192.0.2.250", "192.0.2.250, 192.0.2.1", "x192.0.2.1", "", "host"):
        assert not m.process(line(ip=value)).failures, value
    assert hosts(m.process(line(ip="2001:DB8:0::1"))) == ["2001:db8::1"]  # shown canonical


def test_ignorejson_discards_a_failure() -> None:
    m = matcher("ip=<HOST>", ignore=("ip=192.0.2.1",))
    assert m.process(line(ip="192.0.2.1")).ignored
    assert hosts(m.process(line(ip="192.0.2.2"))) == ["192.0.2.2"]


def test_first_rule_wins_and_check_all_counts_every_rule() -> None:
    rules = ("a=1 ip=<HOST>", "b=2 ip=<HOST>")
    record = line(a="1", b="2", ip="192.0.2.1")
    assert [f.regex_index for f in matcher(*rules).process(record).failures] == [0]
    counted = matcher(*rules, check_all=True).process(record)
    assert list(counted.hits) == [0, 1] and len(counted.failures) == 2


def test_text_lines_go_through_the_regexes_json_records_through_the_rules() -> None:
    m = matcher("ip=<HOST>", failregex=("^Failed from <HOST>$",))
    assert m.process("Failed from 192.0.2.3").failures[0].regex_index == 0
    assert m.process(line(ip="192.0.2.4")).failures[0].regex_index == 1
    # a JSON line never reaches the regexes, even when its text would match one
    assert not m.process('{"x": 1} Failed from 192.0.2.5').failures


def test_a_record_after_a_journal_or_syslog_header() -> None:
    record = line(ip="192.0.2.6")
    m = matcher("ip=<HOST>")
    for prefix in ("web caddy[42]: ", "caddy: ", "2026-11-21T10:00:00+01:00 web caddy[4]: ", "  "):
        assert json_start(prefix + record) == len(prefix), prefix
        assert hosts(m.process(prefix + record)) == ["192.0.2.6"], prefix
    for text in ("web caddy[42] said {", "a b c d e f g h: {", "sshd[1]: Failed {x} from"):
        assert json_start(text) == -1, text


# ---- decoding --------------------------------------------------------------------------


def test_what_is_not_a_json_object_matches_nothing() -> None:
    m = matcher("ip=<HOST>")
    for text in (
        '{"ip": "192.0.2.1"',  # cut
        '{"ip": "192.0.2.1"} {"ip": "192.0.2.2"}',  # trailing data
        '{"ip": "192.0.2.1", "n": NaN}',
        "{ip: '192.0.2.1'}",
        '{"ip": "192.0.2.1", "ip": "192.0.2.2"}',  # duplicate key
        '{"a": {"ip": "192.0.2.1", "ip": "192.0.2.1"}, "ip": "192.0.2.1"}',
        "{" * 100000,
    ):
        assert not m.process(text).failures, text[:60]
    assert decode_record('["ip"]')[1] == "not a JSON object"
    assert "duplicate key 'ip'" in decode_record('{"ip": 1, "ip": 2}')[1]


def test_huge_and_deep_lines_are_bounded() -> None:
    m = matcher("ip=<HOST>")
    padded = line(ip="192.0.2.1", pad="x" * (MAX_JSON_LENGTH - 40))
    assert len(padded) <= MAX_JSON_LENGTH and m.process(padded).failures
    huge = line(ip="192.0.2.1", pad="x" * MAX_JSON_LENGTH)
    assert not m.process(huge).failures
    assert "longer than" in decode_record(huge)[1]
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + ', "ip": "192.0.2.1"}'
    started = time.perf_counter()
    assert not m.process(deep).failures
    assert time.perf_counter() - started < 1.0
    huge_number = '{"n": ' + "9" * 20000 + ', "ip": "192.0.2.1"}'
    assert matcher("n~9+ ip=<HOST>").process(huge_number).failures  # numbers kept as text


@settings(max_examples=200, deadline=None)
@given(
    forged=st.sampled_from(
        ["192.0.2.250", "from 192.0.2.250", "[192.0.2.250]", "rhost=192.0.2.250", "ip=192.0.2.250"]
    ),
    field=st.sampled_from(["uri", "user", "agent", "host"]),
    noise=st.text(max_size=20),
)
def test_forged_addresses_in_other_fields_are_never_taken(
    forged: str, field: str, noise: str
) -> None:
    m = matcher("status=401 remote_ip=<HOST> user=<F-USER>")
    record = {"status": 401, "remote_ip": "203.0.113.9", "uri": "/", "user": "u", "agent": "a"}
    record[field] = noise + forged + noise
    record["host"] = record.get("host", "example.org")
    found = m.process(json.dumps(record)).failures
    assert [f.host for f in found] == ["203.0.113.9"]
    # also when the client's text looks like JSON itself
    record[field] = f'", "remote_ip": "{forged}'
    assert [f.host for f in m.process(json.dumps(record)).failures] == ["203.0.113.9"]


# ---- time ------------------------------------------------------------------------------


def test_jsontime_formats() -> None:
    expected = 1795248902.25  # 2026-11-21T08:15:02.25Z
    for value in (
        expected,
        str(expected),
        expected * 1e3,
        expected * 1e6,
        expected * 1e9,
        "2026-11-21T08:15:02.250Z",
        "2026-11-21T09:15:02.250000000+01:00",
        "2026-11-21 08:15:02.25+00:00",
        {"$date": "2026-11-21T08:15:02.250+00:00"},
        {"$date": {"$numberLong": "1795248902250"}},
        {"$date": 1795248902250},
    ):
        m = matcher("ip=<HOST>", jsontime="ts")
        failure = m.process(json.dumps({"ts": value, "ip": "192.0.2.1"})).failures[0]
        assert failure.time == pytest.approx(expected, abs=1e-3), value


def test_a_time_without_zone_is_in_the_log_zone() -> None:
    assert time_of("2026-11-21T08:15:02", default_offset=60) == 1795248902.0 - 3600
    m = matcher("ip=<HOST>", jsontime="ts", log_timezone="UTC")
    failure = m.process(line(ts="2026-11-21T08:15:02", ip="192.0.2.1")).failures[0]
    assert failure.time == 1795248902.0


def test_the_first_jsontime_path_that_holds_a_time_wins_else_the_source_gives_it() -> None:
    m = matcher("ip=<HOST>", jsontime="StartUTC time")
    found = m.process(line(time="2026-11-21T08:15:03Z", ip="192.0.2.1"))
    assert found.failures[0].time == 1795248903.0 and found.date_format == "JSON time"
    journal = m.process(line(time="not a time", ip="192.0.2.1"), date=1795248000.5)
    assert journal.failures[0].time == 1795248000.5
    # never a date written in a client's field
    undated = matcher("ip=<HOST>").process(line(ip="192.0.2.1", uri="2001-01-01 00:00:00"))
    assert undated.failures[0].time is None and undated.date_format is None


# ---- configuration ---------------------------------------------------------------------


def write_filter(tmp_path: Path, definition: str) -> Path:
    path = tmp_path / "svc.conf"
    path.write_text("[Definition]\n\nfailregex =\n" + definition)
    return path


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("status=401", "no <HOST>"),
        ("status~40[ ip=<HOST>", "not a valid regular expression"),
        ("ip!=<HOST>", "a tag in an = value must be the whole value"),
        ("ip=x<HOST> a=1", "a tag in an = value must be the whole value"),
        ("ip=<HOST> !a=1", "'!PATH' takes no value"),
        ("ip=<HOST> a!~<F-USER>x</F-USER>", "a negated condition cannot capture"),
        ("ip=<HOST> a..b=1", "empty key"),
        ('ip=<HOST> a="x', "cannot read a condition"),
    ],
)
def test_bad_rules_are_configuration_errors_at_their_line(
    tmp_path: Path, rules: str, message: str
) -> None:
    path = write_filter(tmp_path, f"failjson = ip=<HOST>\n           {rules}\n")
    with pytest.raises(FilterError) as raised:
        Filter(load_filter_file(path))
    error = raised.value
    assert message in str(error)
    assert (error.path, error.line, error.option) == (str(path), 5, "failjson")
    assert f"{path}:5: failjson: " in str(error)


def test_a_filter_file_with_json_rules_modes_and_time(tmp_path: Path) -> None:
    path = tmp_path / "svc.conf"
    path.write_text(
        "[Definition]\n"
        "_base = status=401 ip=<HOST>\n"
        "mdrj-normal = %(_base)s user!=-\n"
        "mdrj-ddos = %(_base)s user=-\n"
        "failjson = <mdrj-<mode>>\n"
        "jsontime = ts\n"
        "[Init]\nmode = normal\n"
    )
    spec = load_filter_file(path)
    assert [r.pattern for r in spec.failjson] == ["status=401 ip=<HOST> user!=-"]
    assert spec.jsontime == ("ts",) and spec.failregex == ()
    ddos = load_filter_file(path, parameters={"mode": "ddos"})
    assert [r.pattern for r in ddos.failjson] == ["status=401 ip=<HOST> user=-"]
    m = Filter(ddos).matcher(clock=FakeClock(NOW))
    assert hosts(m.process(line(status=401, ip="192.0.2.1", user="-", ts=NOW))) == ["192.0.2.1"]


def test_a_filter_needs_failregex_or_failjson(tmp_path: Path) -> None:
    with pytest.raises(FilterError, match="has no failregex"):
        Filter(load_filter_file(write_filter(tmp_path, "jsontime = ts\n")))


# ---- the tester and the prefilter ------------------------------------------------------


def test_a_log_of_text_and_json_lines_counts_alike_with_and_without_prefilter(
    tmp_path: Path,
) -> None:
    log = tmp_path / "mixed.log"
    log.write_text(
        "\n".join(
            [
                "Failed from 192.0.2.3",
                line(status=401, ip="192.0.2.4"),
                line(status=200, ip="192.0.2.5"),
                "nothing here",
                "web svc[1]: " + line(status=401, ip="192.0.2.6"),
            ]
        )
        + "\n"
    )
    compiled = matcher("status=401 ip=<HOST>", failregex=("^Failed from <HOST>$",)).filter
    prefilter = Prefilter.for_filter(compiled)
    assert prefilter is not None and b"{" in prefilter.words
    fast = run_log(compiled, str(log), clock=FakeClock(NOW))
    full = run_log(compiled, str(log), clock=FakeClock(NOW), examine_all=True)
    for report in (fast, full):
        assert (report.lines, report.matched, report.missed) == (5, 3, 2)
        assert report.regex_hits == [1, 2]
        assert set(report.hosts) == {"192.0.2.3", "192.0.2.4", "192.0.2.6"}
    json_only = matcher("status=401 ip=<HOST>").filter
    assert Prefilter.for_filter(json_only) == Prefilter((b"{",))


def test_gardien_regex_reports_json_rules_in_blocks_of_their_own() -> None:
    from support.cli import gardien
    from support.samples import gardien_samples_dir

    sample = gardien_samples_dir() / "caddy-auth.log"
    result = gardien("regex", str(sample), "caddy-auth[mode=aggressive]")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Failregex: 0 total" in lines
    start = lines.index("Failjson: 11 total")
    assert lines[start + 1] == "|-  #) [# of hits] regular expression"
    assert lines[start + 2].startswith("|   1) [1] logger~")
    assert "|  [14] JSON ts" in lines  # the records with a time, as date template hits
    assert "Lines: 17 lines, 0 ignored, 11 matched, 6 missed" in lines

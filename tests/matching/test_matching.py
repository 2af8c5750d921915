"""Applying compiled filters to log lines: captures, addresses, multi-line rules, hostile input."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gardien.clock import FakeClock
from gardien.config.filters import load_filter
from gardien.matching.filter import Filter, LineMatcher, LineResult
from gardien.matching.scan import decode
from gardien.matching.tags import expand_tags
from gardien.model import Failure, parse_address
from gardien.settings import FilterSpec, RegexSource
from gardien.tester import test_log as run_log

NOW = 1_795_262_400.0  # 2026-11-21 12:00:00 UTC
PREFIX = "Nov 21 10:00:01 host "
LINE_TIME = 1_795_255_201.0  # Nov 21 10:00:01 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_filter(
    *failregex: str,
    ignoreregex: tuple[str, ...] = (),
    prefregex: str | None = None,
    maxlines: int = 1,
    usedns: str = "warn",
    datepattern: str | None = None,
) -> Filter:
    return Filter(
        FilterSpec(
            name="test",
            failregex=tuple(RegexSource(r, "test.conf", n) for n, r in enumerate(failregex, 1)),
            ignoreregex=tuple(RegexSource(r) for r in ignoreregex),
            prefregex=RegexSource(prefregex) if prefregex else None,
            maxlines=maxlines,
            usedns=usedns,
            datepattern=datepattern,
        )
    )


def matcher(*failregex: str, **options: object) -> LineMatcher:
    return make_filter(*failregex, **options).matcher(  # type: ignore[arg-type]
        clock=FakeClock(NOW)
    )


def failures(m: LineMatcher, *lines: str) -> list[list[Failure]]:
    return [m.process(line).failures for line in lines]


def only(result: LineResult) -> Failure:
    assert len(result.failures) == 1, result
    return result.failures[0]


# ---- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "host"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("[192.0.2.1]", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:DB8::A", "2001:db8::a"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::1", "::1"),
        ("example.com", "example.com"),
    ],
)
def test_host_forms(written: str, host: str) -> None:
    m = matcher(r"^\s*host sshd\[\d+\]: fail from <HOST>$")
    failure = only(m.process(f"{PREFIX}sshd[1]: fail from {written}"))
    assert failure.host == host
    assert failure.time == LINE_TIME
    assert failure.regex_index == 0
    if host != "example.com":
        assert failure.address == ipaddress.ip_address(host)
    else:
        assert failure.address is None


def test_usedns_no_accepts_addresses_only() -> None:
    m = matcher(r"fail from <HOST>$", usedns="no")
    assert failures(m, "fail from example.com") == [[]]
    assert only(m.process("fail from 192.0.2.1")).host == "192.0.2.1"


@pytest.mark.parametrize(
    ("written", "host"),
    [
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.77/24", "192.0.2.0/24"),
        ("192.0.2.77", "192.0.2.77"),
        ("192.0.2.77/32", "192.0.2.77"),
        ("2001:DB8::1/64", "2001:db8::/64"),
    ],
)
def test_subnet(written: str, host: str) -> None:
    m = matcher(r"^blocked <SUBNET>$")
    failure = only(m.process(f"blocked {written}"))
    assert failure.host == host
    assert failure.address == (
        ipaddress.ip_network(host) if "/" in host else ipaddress.ip_address(host)
    )


def test_ip4_and_ip6_tags() -> None:
    m = matcher(r"^v4 <IP4>$", r"^v6 <IP6>$", r"^a <ADDR>$")
    assert only(m.process("v4 192.0.2.1")).host == "192.0.2.1"
    assert failures(m, "v4 2001:db8::1", "a example.com") == [[], []]
    assert only(m.process("v6 2001:db8::1")).host == "2001:db8::1"
    assert only(m.process("a 2001:db8::2")).host == "2001:db8::2"


# ---- captures --------------------------------------------------------------------------------


def test_user_capture() -> None:
    m = matcher(r"^Failed password for (?:invalid user )?<F-USER>\S+</F-USER> from <HOST>")
    failure = only(
        m.process(
            f"{PREFIX}Failed password for invalid user admin from 192.0.2.1".replace(PREFIX, "")
        )
    )
    assert failure.user == "admin"
    assert failure.fields["user"] == "admin"


def test_alternative_user_capture_fills_in_when_the_main_one_is_missing() -> None:
    m = matcher(
        r"^login (?:user=<F-USER>[a-z]+</F-USER>|uid=<F-ALT_USER>\d+</F-ALT_USER>)"
        r"(?: ruser=<F-ALT_USER_2>\S+</F-ALT_USER_2>)? from <HOST>$"
    )
    assert only(m.process("login user=bob from 192.0.2.1")).user == "bob"
    assert only(m.process("login uid=1000 from 192.0.2.1")).user == "1000"
    assert only(m.process("login user=eve ruser=root from 192.0.2.1")).user == "eve"


def test_failure_id_without_address() -> None:
    m = matcher(r"^session <F-ID>\w+</F-ID> rejected$")
    failure = only(m.process("session abc123 rejected"))
    assert failure.host == "abc123"
    assert failure.address is None


def test_failure_id_with_address_keeps_the_address() -> None:
    m = matcher(r"^session <F-ID>\w+</F-ID> from <HOST> rejected$")
    failure = only(m.process("session abc123 from 192.0.2.1 rejected"))
    assert failure.host == "abc123"
    assert failure.fields["ip"] == "192.0.2.1"


def test_port_capture_shorthands() -> None:
    m = matcher(r"^from <HOST> port <F-PORT/>$")
    failure = only(m.process("from 192.0.2.1 port 2222"))
    assert failure.fields["fport"] == "2222"


# ---- prefregex, ignoreregex, order -----------------------------------------------------------


def test_prefregex_content_is_what_failregexes_see() -> None:
    m = matcher(
        r"^auth failed for <HOST>$",
        prefregex=r"^\s*\S+ svc\[<F-MLFID>\d+</F-MLFID>\]: <F-CONTENT>.+</F-CONTENT>$",
    )
    assert failures(m, f"{PREFIX}other[1]: auth failed for 192.0.2.1") == [[]]
    # the failregex is anchored at the start of the content, not of the line
    assert failures(m, f"{PREFIX}svc[1]: x auth failed for 192.0.2.1") == [[]]
    failure = only(m.process(f"{PREFIX}svc[7]: auth failed for 192.0.2.1"))
    assert failure.host == "192.0.2.1"
    assert failure.fields["mlfid"] == "7"
    assert failure.time == LINE_TIME


def test_ignoreregex_discards_a_matching_line() -> None:
    m = matcher(r"^fail from <HOST>", ignoreregex=(r"from 192\.0\.2\.\d+ \(trusted\)",))
    assert only(m.process("fail from 198.51.100.1")).host == "198.51.100.1"
    result = m.process("fail from 192.0.2.5 (trusted)")
    assert result.ignored
    assert result.failures == []
    assert not m.process("fail from 192.0.2.5 (other)").ignored


def test_ignoreregex_alone_classifies_a_line_only_with_many_failregexes() -> None:
    # fail2ban checks the ignoreregexes first when there are few of them and many
    # failregexes: then a line that only an ignoreregex matches counts as ignored
    m = matcher(
        r"^a <HOST>$", r"^b <HOST>$", r"^c <HOST>$", r"^d <HOST>$", ignoreregex=(r"192\.0\.2\.9",)
    )
    assert m.process("c 192.0.2.9").ignored
    assert m.process("zzz 192.0.2.9").ignored
    assert only(m.process("d 192.0.2.8")).regex_index == 3
    # otherwise only a line a failregex matched is checked
    m = matcher(r"^a <HOST>$", ignoreregex=(r"192\.0\.2\.9",))
    assert m.process("a 192.0.2.9").ignored
    assert not m.process("zzz 192.0.2.9").ignored


def test_first_failregex_that_matches_wins() -> None:
    m = matcher(r"from <HOST>$", r"^fail from <HOST>$", r"^fail (?P<word>\w+) <HOST>$")
    assert only(m.process("fail from 192.0.2.1")).regex_index == 0
    m = matcher(r"^nothing <HOST>$", r"^fail from <HOST>$", r"from <HOST>$")
    assert only(m.process("fail from 192.0.2.1")).regex_index == 1
    assert only(m.process("x from 192.0.2.1")).regex_index == 2


def test_inline_flags_inside_a_group_apply_to_that_group_only() -> None:
    m = matcher(r"^(?:(?i)failed) from <HOST>$")
    assert only(m.process("FAILED from 192.0.2.1")).host == "192.0.2.1"
    assert failures(m, "failed FROM 192.0.2.1") == [[]]


def test_date_is_cut_out_before_matching() -> None:
    m = matcher(r"^\[\] NOTICE from <HOST>$")
    failure = only(m.process("[Nov 21 10:00:01] NOTICE from 192.0.2.1"))
    assert failure.time == LINE_TIME


# ---- multi-line ------------------------------------------------------------------------------


def test_maxlines_two() -> None:
    m = matcher(r"^begin <HOST>\n.*\bfailed$", maxlines=2)
    assert failures(m, "begin 192.0.2.1") == [[]]
    failure = only(m.process("auth failed"))
    assert failure.host == "192.0.2.1"
    assert failure.lines == ("begin 192.0.2.1", "auth failed")
    # the lines were used: a second 'failed' does not match again
    assert failures(m, "auth failed") == [[]]
    # three lines apart is too far for maxlines = 2
    assert failures(m, "begin 192.0.2.2", "noise", "auth failed") == [[], [], []]


def test_maxlines_one_does_not_join_lines() -> None:
    m = matcher(r"^begin <HOST>\n.*\bfailed$")
    assert failures(m, "begin 192.0.2.1", "auth failed") == [[], []]


# ---- connections (<F-MLFID>) -----------------------------------------------------------------

SSHD_LIKE = (
    r"^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]: <F-NOFAIL>Connection from</F-NOFAIL> <HOST>$",
    r"^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]: Failed password for <F-USER>\S+</F-USER>$",
    r"^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]: "
    r"<F-NOFAIL><F-MLFFORGET>Disconnected</F-MLFFORGET></F-NOFAIL>$",
    r"^\s*\S+ sshd\[<F-MLFID>\d+</F-MLFID>\]: <F-MLFFORGET><F-MLFGAINED>Accepted"
    r"</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER> from <HOST>$",
)


def test_connection_data_completes_a_later_line() -> None:
    m = matcher(*SSHD_LIKE)
    first = m.process(f"{PREFIX}sshd[7]: Connection from 192.0.2.1")
    assert first.nofail
    assert first.failures == []
    # another connection knows no address
    other = m.process(f"{PREFIX}sshd[8]: Failed password for root")
    assert other.failures == []
    failure = only(m.process(f"{PREFIX}sshd[7]: Failed password for root"))
    assert failure.host == "192.0.2.1"
    assert failure.user == "root"
    assert failure.fields["mlfid"] == "7"


def test_a_forgotten_connection_gives_no_address() -> None:
    m = matcher(*SSHD_LIKE)
    assert m.process(f"{PREFIX}sshd[7]: Connection from 192.0.2.1").nofail
    assert m.process(f"{PREFIX}sshd[7]: Disconnected").failures == []
    assert m.process(f"{PREFIX}sshd[7]: Failed password for root").failures == []


def test_a_pending_failure_is_reported_when_the_address_comes() -> None:
    m = matcher(*SSHD_LIKE)
    assert m.process(f"{PREFIX}sshd[7]: Failed password for root").failures == []
    failure = only(m.process(f"{PREFIX}sshd[7]: Connection from 192.0.2.1"))
    assert failure.host == "192.0.2.1"
    assert failure.user == "root"


def test_access_gained_drops_the_pending_failure() -> None:
    m = matcher(*SSHD_LIKE)
    assert m.process(f"{PREFIX}sshd[7]: Failed password for root").failures == []
    result = m.process(f"{PREFIX}sshd[7]: Accepted for root from 192.0.2.1")
    assert result.failures == []
    assert result.nofail


# ---- hostile input ---------------------------------------------------------------------------


def test_nul_bytes_do_not_break_matching() -> None:
    m = matcher(r"fail from <HOST>", r"^user <F-USER>\S+</F-USER> from <HOST>$")
    assert only(m.process("\x00fail from 192.0.2.1\x00\x00")).host == "192.0.2.1"
    failure = only(m.process("user a\x00b from 192.0.2.2"))
    assert failure.user == "a\x00b"
    assert m.process("\x00" * 1000).failures == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    line = decode(b"fail from 192.0.2.1 user \xff\xfe\xc3(\r\n")
    assert line == "fail from 192.0.2.1 user \ufffd\ufffd\ufffd("
    m = matcher(r"^fail from <HOST> user (?P<rest>.*)$")
    failure = only(m.process(line))
    assert failure.host == "192.0.2.1"


def test_huge_line_is_processed_quickly() -> None:
    m = matcher(r"^\s*host sshd\[\d+\]: .*from <HOST>", r"^\s*(?:\S+ )*x<HOST>$")
    line = f"{PREFIX}sshd[1]: fail from 192.0.2.1 " + "A " * 1_000_000
    assert len(line) > 2_000_000
    started = time.perf_counter()
    assert only(m.process(line)).host == "192.0.2.1"
    assert m.process("1." * 1_000_000).failures == []
    assert m.process(" " * 2_000_000 + "x192.0.2.1").failures == []
    assert time.perf_counter() - started < 2


def test_huge_line_in_a_log_file(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(
        b"Nov 21 10:00:01 host sshd[1]: fail from 192.0.2.1 "
        + b"B" * 2_000_000
        + b"\nNov 21 10:00:02 host sshd[1]: fail from 192.0.2.2\n"
    )
    compiled = make_filter(r"^\s*host sshd\[\d+\]: fail from <HOST>\b", datepattern="{^LN-BEG}")
    started = time.perf_counter()
    for kwargs in ({}, {"every_line": lambda *_: None}):
        report = run_log(compiled, str(log), clock=FakeClock(NOW), **kwargs)  # type: ignore[arg-type]
        assert report.lines == 2
        assert report.hosts == {"192.0.2.1": 1, "192.0.2.2": 1}
    assert time.perf_counter() - started < 3


ASTERISK_PREFIX = (
    r"^\s*(?:\[\])?\s*NOTICE(?:\s*\[\d+\])?:? [^:]+:\d*(?:(?: in)? [^:]+:)? "
    r"<F-CONTENT>.+</F-CONTENT>$"
)
ASTERISK_FAIL = (
    r"^Registration from '[^']*' failed for '<HOST>(:\d+)?' - "
    r"(?:Wrong password|No matching peer found)$"
)


@pytest.mark.parametrize(
    "line",
    [
        "[2026-11-21 10:00:01] NOTICE[1638] chan_sip.c: Registration from "
        "'<sip:1.2.3.4@198.51.100.7>' failed for '192.0.2.9:5060' - Wrong password",
        "[2026-11-21 10:00:01] NOTICE[1638] chan_sip.c: Registration from "
        "'\"failed for 198.51.100.7\" <sip:x@example.com>' failed for '192.0.2.9' - "
        "Wrong password",
    ],
)
def test_cve_2013_7176_injected_address_is_not_the_host(line: str) -> None:
    m = matcher(ASTERISK_FAIL, prefregex=ASTERISK_PREFIX)
    assert only(m.process(line)).host == "192.0.2.9"


def test_cve_2013_7176_injected_failure_text_does_not_match() -> None:
    # the From header imitates the end of a failure line: the anchored regex cannot be fooled
    line = (
        "[2026-11-21 10:00:01] NOTICE[1638] chan_sip.c: Registration from "
        "'<sip:x' failed for '198.51.100.7' - Wrong password@example.com>' failed for "
        "'192.0.2.9' - Wrong password"
    )
    m = matcher(ASTERISK_FAIL, prefregex=ASTERISK_PREFIX)
    assert all(f.host != "198.51.100.7" for f in m.process(line).failures)


def test_cve_2013_7176_with_fail2ban_asterisk_filter() -> None:
    if not Path("/etc/fail2ban/filter.d/asterisk.conf").is_file():
        pytest.skip("fail2ban is not installed")
    compiled = Filter(load_filter("asterisk", "/etc/fail2ban", fallback_to_bundled=False))
    m = compiled.matcher(clock=FakeClock(NOW))
    for line in [
        "[2026-11-21 10:00:01] NOTICE[1638] chan_sip.c: Registration from "
        "'<sip:1.2.3.4@198.51.100.7>' failed for '192.0.2.9:5060' - Wrong password",
        "[2026-11-21 10:00:01] NOTICE[1638] chan_sip.c: Registration from "
        "'<sip:x' failed for '198.51.100.7' - Wrong password@x>' failed for '192.0.2.9' - "
        "Wrong password",
    ]:
        assert all(f.host != "198.51.100.7" for f in m.process(line).failures)
    assert (
        only(
            m.process(
                "[2026-11-21 10:00:01] NOTICE[1638] chan_sip.c: Registration from "
                "'<sip:1.2.3.4@198.51.100.7>' failed for '192.0.2.9:5060' - Wrong password"
            )
        ).host
        == "192.0.2.9"
    )


# ---- properties ------------------------------------------------------------------------------

PROPERTY_FILTER = make_filter(
    r"fail(?:ed)? from <HOST>",
    r"^\s*user <F-USER>\S+</F-USER> net <SUBNET>",
    r"session <F-ID>\w+</F-ID> rejected",
    r"addr=<ADDR>(?:\s|$)",
    r"^\s*host sshd\[<F-MLFID>\d+</F-MLFID>\]: <F-NOFAIL>Connection from</F-NOFAIL> <HOST>",
    r"^\s*host sshd\[<F-MLFID>\d+</F-MLFID>\]: bad password",
    ignoreregex=(r"ignore me",),
)
_ADDRESS_RUN = re.compile(r"[0-9A-Fa-f:.\[\]/]+")


def _canonical_forms(line: str) -> set[str]:
    """Canonical text of every address or network written somewhere in ``line``."""
    forms: set[str] = set()
    for run in _ADDRESS_RUN.findall(line):
        for start in range(len(run)):
            for end in range(start + 2, len(run) + 1):
                address = parse_address(run[start:end])
                if address is not None:
                    forms.add(str(address))
    return forms


_FRAGMENTS = st.sampled_from(
    [
        "fail from ",
        "failed from ",
        "user ",
        " net ",
        "session ",
        " rejected",
        "addr=",
        "[",
        "]",
        "/",
        "/24",
        "/64",
        ":",
        "::ffff:",
        " ",
        "\x00",
        "ignore me",
        "host sshd[12]: ",
        "Connection from ",
        "bad password",
        "example.com",
        "\n",
    ]
)
_LINE_PARTS = st.one_of(
    st.text(max_size=12),
    _FRAGMENTS,
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: str(a).upper()),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
)
_LINES = st.tuples(
    st.sampled_from(["", "Nov 21 10:00:01 ", "2026-11-21 10:00:01 ", "[1795255201] "]),
    st.lists(_LINE_PARTS, max_size=10).map("".join),
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINES, min_size=1, max_size=8))
def test_any_reported_host_comes_from_the_line(lines: list[str]) -> None:
    m = PROPERTY_FILTER.matcher(clock=FakeClock(NOW))
    seen: list[str] = []
    for line in lines:
        seen.append(line)
        result = m.process(line)
        assert isinstance(result, LineResult)
        for failure in result.failures:
            # an address completed from an earlier line of the same connection is also fine
            assert any(
                failure.host in text or failure.host in _canonical_forms(text) for text in seen
            ), (failure, seen)


_HOST_RE = re.compile(expand_tags("^from <HOST>$"))


@given(st.ip_addresses())
def test_host_tag_captures_any_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    # '::' (the unspecified address) cannot be a peer, and fail2ban's <HOST> skips it too
    assume(address != ipaddress.IPv6Address("::"))
    text = str(address)
    match = _HOST_RE.match(f"from {text}")
    assert match is not None, text
    captured = match.group("ip4") or match.group("ip6")
    mapped = getattr(address, "ipv4_mapped", None)
    assert captured == (str(mapped) if mapped is not None and "." in text else text)
    bracketed = _HOST_RE.match(f"from [{text}]")
    assert bracketed is not None
    assert (bracketed.group("ip4") or bracketed.group("ip6")) == captured


@given(st.ip_addresses(v=6))
def test_host_is_reported_in_canonical_form(address: ipaddress.IPv6Address) -> None:
    assume(address != ipaddress.IPv6Address("::"))
    m = matcher(r"^from <HOST>$")
    exploded = address.exploded.upper()
    failure = only(m.process(f"from {exploded}"))
    expected = address.ipv4_mapped if address.ipv4_mapped is not None else address
    assert failure.host == str(expected)


def test_property_filter_has_every_kind_of_capture() -> None:
    """Guard for the property test above: its filter does report each kind of host."""
    m = PROPERTY_FILTER.matcher(clock=FakeClock(NOW))
    hosts: Callable[[str], list[str]] = lambda line: [f.host for f in m.process(line).failures]  # noqa: E731
    assert hosts("failed from 2001:DB8::1") == ["2001:db8::1"]
    assert hosts("user x net 192.0.2.77/24") == ["192.0.2.0/24"]
    assert hosts("session abc rejected") == ["abc"]
    assert hosts("addr=::ffff:192.0.2.1") == ["192.0.2.1"]
    assert hosts("host sshd[12]: Connection from 192.0.2.5") == []
    assert hosts("host sshd[12]: bad password") == ["192.0.2.5"]


# ---- check_all: fail2ban-regex's way of counting -------------------------------------


def checking_all(*failregex: str, **options: object) -> LineMatcher:
    flt = make_filter(*failregex, **options)  # type: ignore[arg-type]
    return flt.matcher(clock=FakeClock(NOW), check_all=True)


def test_check_all_records_every_failregex_that_hits() -> None:
    line = "Nov 21 10:00:01 web app: bad password for root from 192.0.2.7"
    regexes = (
        r"bad password for \S+ from <HOST>",
        r"bad \S+ for root from <HOST>",
        r"^nope <HOST>",
    )
    first = matcher(*regexes).process(line)
    every = checking_all(*regexes).process(line)
    assert [f.regex_index for f in first.failures] == [0]
    assert list(every.hits) == [0, 1]
    assert [f.host for f in every.failures] == ["192.0.2.7", "192.0.2.7"]


def test_check_all_counts_each_ignoreregex_on_each_hit() -> None:
    m = checking_all(
        r"bad password from <HOST>",
        r"bad \S+ from <HOST>",
        ignoreregex=(r"192\.0\.2\.99", r"from 192\.0\.2\.9\d"),
    )
    result = m.process("Nov 21 10:00:01 app: bad password from 192.0.2.99")
    assert result.ignored and not result.failures and not result.hits
    assert list(result.ignore_hits) == [0, 1, 0, 1]  # both ignoreregexes, for both failregexes


def test_check_all_nofail_and_pending_hits() -> None:
    m = checking_all(
        r"^ web app\[<F-MLFID>\d+</F-MLFID>\]: <F-NOFAIL>connect</F-NOFAIL> from <HOST>",
        r"^ web app\[<F-MLFID>\d+</F-MLFID>\]: bad password for <F-USER>\S+</F-USER>$",
    )
    connect = m.process("Nov 21 10:00:01 web app[7]: connect from 192.0.2.7")
    assert connect.nofail and list(connect.hits) == [0] and not connect.failures
    # the address comes from the connection's earlier line
    failed = m.process("Nov 21 10:00:02 web app[7]: bad password for root")
    assert [f.host for f in failed.failures] == ["192.0.2.7"] and not failed.nofail
    pending = m.process("Nov 21 10:00:03 web app[8]: bad password for root")
    assert pending.pending and not pending.failures  # fail2ban-regex counts it matched

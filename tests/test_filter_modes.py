"""gardien's filters with modes against fail2ban's filter of the same name, mode by mode.

A jail that moves from fail2ban to gardien keeps its ``mode``, so each mode must mean what it
means in fail2ban: on a generated log that mixes every kind of line the service writes (failures
of each mode, lines no mode counts, legitimate traffic), gardien's bundled filter and fail2ban's
filter (``/etc/fail2ban/filter.d``, read through gardien's engine, which runs fail2ban's filters)
must take the same lines, with the same address. A failure names each line on which they
disagree and both verdicts.

Where gardien deliberately differs, :attr:`ModeCase.differences` names the line (by a piece of
its text) and says why; such a line must still differ, so that the list stays true.

To compare another filter, add its generated lines and a :class:`ModeCase` per mode to
:data:`CASES`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gardien.cli.regex import parse_now
from gardien.clock import FakeClock
from gardien.config.filters import bundled_config_dir, load_filter
from gardien.matching.filter import Filter

NOW = "2026-11-21T12:00:00"


@dataclass(frozen=True)
class ModeCase:
    """One filter in one mode, compared on the lines ``lines()`` generates."""

    filter: str
    mode: str
    lines: Callable[[], Sequence[str]]
    #: piece of a line's text -> why gardien's verdict on that line differs from fail2ban's
    differences: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.filter}[mode={self.mode}]"


# ---- postfix ------------------------------------------------------------------------------

#: smtpd messages; {client} is "name[addr]" (or "name[addr]:port"), {addr} the bare address
_POSTFIX_SMTPD = (
    # rejects that normal (and so more, extra, aggressive) counts
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 <info@example.org>: Relay access denied;"
    " from=<x@example.com> to=<info@example.org> proto=ESMTP helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 550 5.1.1 <nobody@example.org>: Recipient address"
    " rejected: User unknown in virtual mailbox table; from=<x@example.com>"
    " to=<nobody@example.org> proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 550 5.1.1 <nobody@example.org>: Recipient address"
    " rejected: User unknown in local recipient table; from=<x@example.com>"
    " to=<nobody@example.org> proto=ESMTP helo=<mail.example.net>",
    "4Xb2Kq1Lz9z9tZ: reject: RCPT from {client}: 550 5.1.1 <nobody@example.org>: Recipient"
    " address rejected: User unknown in relay recipient table; from=<x@example.com>"
    " to=<nobody@example.org> proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 550 5.1.1 <nobody@example.org>: Recipient address"
    " rejected: undeliverable address: host mx.example.org[192.0.2.5] said: 550 5.1.1 no such"
    " user (in reply to RCPT TO command); from=<x@example.com> to=<nobody@example.org>"
    " proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: VRFY from {client}: 550 5.1.1 <admin>: Recipient address rejected: User"
    " unknown in local recipient table; to=<admin> proto=SMTP",
    "NOQUEUE: reject: RCPT from {client}: 450 4.1.8 <x@nowhere.example>: Sender address"
    " rejected: Domain not found; from=<x@nowhere.example> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "NOQUEUE: reject: EHLO from {client}: 504 5.5.2 <WIN-1TEST>: Helo command rejected: need"
    " fully-qualified hostname; proto=ESMTP helo=<WIN-1TEST>",
    "NOQUEUE: reject: RCPT from {client}: 450 4.7.1 <nowhere.example>: Helo command rejected:"
    " Host not found; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<nowhere.example>",
    "NOQUEUE: reject: RCPT from {client}: 450 4.7.25 Client host rejected: cannot find your"
    " hostname, [{addr}]; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 450 4.7.1 Client host rejected: cannot find your"
    " reverse hostname, [{addr}]; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 <{client}>: Client host rejected: Access"
    " denied; from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 Service unavailable; Client host [{addr}]"
    " blocked using zen.example.net; https://www.example.net/query/ip/{addr};"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 Service unavailable; Client host [{addr}]"
    " blocked using zen.example.net; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 Service unavailable; Sender address"
    " [x@spam.example] blocked using dbl.example.net; from=<x@spam.example>"
    " to=<bob@example.org> proto=ESMTP helo=<example.com>",
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 Service unavailable; Helo command"
    " [spam.example] blocked using dbl.example.net; from=<x@example.com> to=<bob@example.org>"
    " proto=ESMTP helo=<spam.example>",
    "NOQUEUE: reject: RCPT from {client}: 550 5.5.3 <DATA>: Data command rejected:"
    " Multi-recipient bounce; from=<> to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "4Xb2Kq1Lz9z9tZ: milter-reject: DATA from {client}: 550 5.7.1 Command rejected;"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "4Xb2Kq1Lz9z9tZ: milter-reject: END-OF-MESSAGE from {client}: 550 5.7.1 Command rejected;"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "improper command pipelining after CONNECT from {client}: EHLO scanner\\r\\n",
    "improper command pipelining after EHLO from {client}: MAIL FROM:<x@example.com>\\r\\n"
    "RCPT TO:<bob@example.org>\\r\\n",
    "improper command pipelining after DATA from {client}:",
    "improper command pipelining after RSET from {client}",
    "too many errors after RCPT from {client}",
    "too many errors after AUTH from {client}",
    "too many errors after UNKNOWN from {client}",
    # rejects that no mode counts: policy and temporary replies, authenticated users
    "NOQUEUE: reject: RCPT from {client}: 450 4.2.0 <bob@example.org>: Recipient address"
    " rejected: Greylisted, see http://greylist.example.net/; from=<x@example.com>"
    " to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 554 5.7.1 <bob@example.org>: Recipient address"
    " rejected: Access denied; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 450 4.7.1 <bob@example.org>: Recipient address"
    " rejected: Try again later; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 550 5.7.23 <bob@example.org>: Recipient address"
    " rejected: Message rejected due to: SPF fail - not authorized; from=<x@example.com>"
    " to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 504 5.5.2 <x>: Sender address rejected: need"
    " fully-qualified address; from=<x> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 553 5.7.1 <boss@example.org>: Sender address"
    " rejected: not owned by user alice; from=<boss@example.org> to=<bob@example.org>"
    " proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 450 4.7.1 <x@example.com>: Sender address rejected:"
    " Greylisted for 300 seconds; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 501 5.5.2 <bad_name!>: Helo command rejected:"
    " Invalid name; from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<bad_name!>",
    "NOQUEUE: reject: CONNECT from {client}: 554 5.7.1 <{client}>: Client host rejected:"
    " Access denied; proto=SMTP",
    "NOQUEUE: reject: MAIL from {client}: 552 5.3.4 Message size exceeds fixed limit;"
    " proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: reject: RCPT from {client}: 452 4.3.1 Insufficient system storage;"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "4Xb2Kq1Lz9z9tZ: milter-reject: END-OF-MESSAGE from {client}: 5.7.1 Spam message rejected;"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "4Xb2Kq1Lz9z9tZ: milter-reject: END-OF-MESSAGE from {client}: 4.7.1 Try again later;"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<mail.example.net>",
    "NOQUEUE: filter: RCPT from {client}: <bob@example.org>: Recipient address triggers FILTER"
    " smtp-amavis:[127.0.0.1]:10024; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "NOQUEUE: warn: RCPT from {client}: Helo command rejected: need fully-qualified hostname;"
    " from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<mail>",
    "NOQUEUE: discard: RCPT from {client}: <bob@example.org>: Recipient address triggers"
    " DISCARD action; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>",
    "warning: non-SMTP command from {client}: GET / HTTP/1.1",
    "warning: hostname spoof.example does not resolve to address {addr}: Name or service not known",
    "warning: Illegal address syntax from {client} in RCPT command: <bob@@example.org>",
    "SSL_accept error from {client}: lost connection",
    "warning: Connection rate limit exceeded: 61 from {client} for service smtp",
    # SASL: auth, extra, aggressive
    "warning: {client}: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    "warning: {client}: SASL login authentication failed: UGFzc3dvcmQ6",
    "warning: {client}: SASL PLAIN authentication failed: authentication failure",
    "warning: {client}: SASL PLAIN authentication failed:",
    "warning: {client}: SASL LOGIN authentication failed: Password:",
    "warning: {client}: SASL CRAM-MD5 authentication failed:"
    " PDc3OTEwNTkyNTEyMzA2NDIuMTIyODI1MzA2MUBoZWw+",
    "warning: {client}: SASL LOGIN authentication failed: Connection lost to authentication server",
    "warning: {client}: SASL DIGEST-MD5 authentication failed: Invalid authentication mechanism",
    "warning: SASL authentication failure: Password verification failed",
    # ddos (and aggressive)
    "lost connection after CONNECT from {client}",
    "lost connection after EHLO from {client}",
    "lost connection after HELO from {client}",
    "lost connection after STARTTLS from {client}",
    "lost connection after AUTH from {client}",
    "lost connection after MAIL from {client}",
    "lost connection after RCPT from {client}",
    "lost connection after RSET from {client}",
    "lost connection after UNKNOWN from {client}",
    "lost connection after DATA from {client}",
    "lost connection after BDAT from {client}",
    "lost connection after END-OF-MESSAGE from {client}",
    "lost connection after DATA (0 bytes) from {client}",
    "timeout after AUTH from {client}",
    "timeout after CONNECT from {client}",
    "disconnect from {client} ehlo=1 auth=0/1 quit=1 commands=2/3",
    "disconnect from {client} ehlo=1 auth=0/1 commands=1/2",
    "disconnect from {client} ehlo=1 auth=0/3 rset=1 quit=1 commands=3/6",
    "disconnect from {client} helo=1 auth=0/1 quit=1 commands=2/3",
    # legitimate traffic
    "connect from {client}",
    "disconnect from {client} ehlo=1 quit=1 commands=2",
    "disconnect from {client} commands=0/0",
    "disconnect from {client} ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8",
    "disconnect from {client} ehlo=2 starttls=1 auth=1/2 mail=1 rcpt=1 data=1 quit=1 commands=8/9",
    "Anonymous TLS connection established from {client}: TLSv1.3 with cipher"
    " TLS_AES_256_GCM_SHA384 (256/256 bits)",
    "4Xb2Kq1Lz9z9tZ: client={client}, sasl_method=PLAIN, sasl_username=alice@example.org",
    "4Xb2Kq1Lz9z9tZ: client={client}",
)

#: postscreen messages; {addr} is the client's address
_POSTFIX_POSTSCREEN = (
    "NOQUEUE: reject: RCPT from [{addr}]:41234: 550 5.7.1 Service unavailable; client [{addr}]"
    " blocked using zen.example.net; from=<x@example.com>, to=<bob@example.org>, proto=ESMTP,"
    " helo=<example.com>",
    "NOQUEUE: reject: RCPT from [{addr}]:41234: 450 4.3.2 Service currently unavailable;"
    " from=<x@example.com>, to=<bob@example.org>, proto=ESMTP, helo=<example.com>",
    "PREGREET 11 after 0.21 from [{addr}]:50123: EHLO User\\r\\n",
    "PREGREET 14 after 0.08 from [{addr}]:59415: EHLO ylmf-pc\\r\\n",
    "HANGUP after 2.1 from [{addr}]:40012 in tests after SMTP handshake",
    "HANGUP after 0.5 from [{addr}]:40012 in tests before SMTP handshake",
    "COMMAND TIME LIMIT from [{addr}]:3608 after CONNECT",
    "COMMAND COUNT LIMIT from [{addr}]:15592 after RCPT",
    "COMMAND LENGTH LIMIT from [{addr}]:15592 after DATA",
    "BARE NEWLINE from [{addr}]:15592 after DATA",
    "NON-SMTP COMMAND from [{addr}]:15592 after CONNECT: GET / HTTP/1.1",
    "DNSBL rank 3 for [{addr}]:15592",
    "CONNECT from [{addr}]:15592 to [192.0.2.25]:25",
    "PASS NEW [{addr}]:15592",
    "PASS OLD [{addr}]:15592",
    "DISCONNECT [{addr}]:15592",
    "WHITELISTED [{addr}]:15592",
)

#: other postfix programs: never counted
_POSTFIX_OTHERS = (
    "postfix/cleanup[{pid}]: 4Xb2Kq1Lz9z9tZ: reject: header Subject: win a prize from"
    " {client}; from=<x@example.com> to=<bob@example.org> proto=ESMTP"
    " helo=<mail.example.net>: 5.7.1 message content rejected",
    "postfix/cleanup[{pid}]: 4Xb2Kq1Lz9z9tZ: message-id=<20261121080000.1@example.net>",
    "postfix/qmgr[{pid}]: 4Xb2Kq1Lz9z9tZ: from=<x@example.com>, size=1234, nrcpt=1 (queue active)",
    "postfix/smtp[{pid}]: 4Xb2Kq1Lz9z9tZ: to=<carol@example.net>, relay={client}:25, delay=1.2,"
    " delays=0.1/0/0.5/0.6, dsn=5.1.1, status=bounced (host {client} said: 550 5.1.1"
    " <carol@example.net>: Recipient address rejected: User unknown (in reply to RCPT TO"
    " command))",
    "postfix/smtp[{pid}]: 4Xb2Kq1Lz9z9tZ: SASL authentication failed; server {client} said:"
    " 535 5.7.8 Error: authentication failed: authentication failure",
    "postfix/anvil[{pid}]: statistics: max connection rate 61/60s for (smtp:{addr}) at Nov 21"
    " 08:00:00",
)

#: syslog tags of smtpd: plain, per service (master.cf), another instance
_POSTFIX_SMTPD_TAGS = (
    "postfix/smtpd",
    "postfix/submission/smtpd",
    "postfix-in/smtpd",
    "postfix/smtps/smtpd",
)

#: client forms: unknown name, a DNS name, IPv6, a port after the address
_POSTFIX_CLIENTS = (
    ("unknown[{addr}]", "203.0.113.{n}"),
    ("mail.example.net[{addr}]", "198.51.100.{n}"),
    ("unknown[{addr}]", "2001:db8::{n:x}"),
    ("unknown[{addr}]:50123", "192.0.2.{n}"),
)


def postfix_lines() -> list[str]:
    """Every kind of postfix line, each with every client form, through the smtpd tags."""
    lines: list[str] = []
    clock = itertools.count()
    tags = itertools.cycle(_POSTFIX_SMTPD_TAGS)

    def stamp() -> str:
        minute, second = divmod(next(clock), 60)
        return f"Nov 21 {8 + minute // 60:02d}:{minute % 60:02d}:{second:02d} mx1 "

    for number, (template, (client, address)) in enumerate(
        itertools.product(_POSTFIX_SMTPD, _POSTFIX_CLIENTS)
    ):
        addr = address.format(n=number % 250 + 1)
        text = template.format(client=client.format(addr=addr), addr=addr)
        lines.append(f"{stamp()}{next(tags)}[{20000 + number}]: {text}")
    for number, template in enumerate(_POSTFIX_POSTSCREEN):
        for address in ("203.0.113.{n}", "2001:db8:2::{n:x}"):
            addr = address.format(n=number + 1)
            lines.append(f"{stamp()}postfix/postscreen[1190]: {template.format(addr=addr)}")
    for number, template in enumerate(_POSTFIX_OTHERS):
        addr = f"198.51.100.{number + 1}"
        text = template.format(client=f"relay.example.net[{addr}]", addr=addr, pid=3000 + number)
        lines.append(stamp() + text)
    return lines


_DATA_PHASE = (
    "a connection lost in BDAT (CHUNKING's DATA) is the data phase, which fail2ban leaves out"
    " for DATA only: lawful clients abort there now and then"
)
_POSTSCREEN_DNSBL = (
    "postscreen's DNSBL reject is a DNSBL hit on the client (its own reply code, 550); fail2ban's"
    " rbl mode takes smtpd's only"
)

POSTFIX_MODES = ("normal", "more", "auth", "rbl", "errors", "ddos", "extra", "aggressive")
POSTFIX_DIFFERENCES: dict[str, dict[str, str]] = {
    "rbl": {"postscreen[1190]: NOQUEUE: reject: RCPT from [{addr}]:41234: 550": _POSTSCREEN_DNSBL},
    "ddos": {"lost connection after BDAT": _DATA_PHASE},
    "aggressive": {"lost connection after BDAT": _DATA_PHASE},
}

CASES = [
    ModeCase("postfix", mode, postfix_lines, POSTFIX_DIFFERENCES.get(mode, {}))
    for mode in POSTFIX_MODES
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
        pattern = piece.split("{addr}")
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


def test_generated_postfix_log_has_every_kind_of_line() -> None:
    lines = postfix_lines()
    assert len(lines) == len(set(lines))
    kinds = len(_POSTFIX_SMTPD) * len(_POSTFIX_CLIENTS) + 2 * len(_POSTFIX_POSTSCREEN)
    assert len(lines) == kinds + len(_POSTFIX_OTHERS)

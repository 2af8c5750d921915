"""Generated logs for tests/filters/test_filter_modes.py: every kind of line a service writes (failures
of each mode, lines no mode counts, legitimate traffic), and the lines on which gardien's filter
deliberately differs from fail2ban's, with the reason.

A difference is named by pieces of a line's text, "{*}" standing for any text between two
pieces.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

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
    "rbl": {"postscreen[1190]: NOQUEUE: reject: RCPT from [{*}]:41234: 550": _POSTSCREEN_DNSBL},
    "ddos": {"lost connection after BDAT": _DATA_PHASE},
    "aggressive": {"lost connection after BDAT": _DATA_PHASE},
}


# ---- dovecot ------------------------------------------------------------------------------

#: {svc} is a login process ("imap" for imap-login...), {addr} the client, {local} the server
_DOVECOT_LOGIN = (
    "Disconnected (auth failed, 1 attempts in 2 secs): user=<admin>, method=PLAIN, rip={addr},"
    " lip={local}, TLS, session=<Xk3P0z8BqMAq3DYh>",
    "Aborted login (auth failed, 3 attempts in 12 secs): user=<test>, method=LOGIN, rip={addr},"
    " lip={local}, session=<Xk3P0z8BqMAq3DYh>",
    "Disconnected: Connection closed (auth failed, 1 attempts in 0 secs): user=<alice>,"
    " method=PLAIN, rip={addr}, lip={local}, session=<Xk3P0z8BqMAq3DYh>",
    "Disconnected (auth failed, 1 attempts): user=<bob>, method=PLAIN, rip={addr}, lip={local},"
    " session=<Xk3P0z8BqMAq3DYh>",
    "Disconnected (auth failed, 1 attempts in 2 secs): user=<admin>, method=PLAIN, rip={addr},"
    " lip={local}, TLS: Disconnected, session=<Xk3P0z8BqMAq3DYh>",
    "Disconnected (tried to use disallowed plaintext auth): user=<>, rip={addr}, lip={local},"
    " session=<Xk3P0z8BqMAq3DYh>",
    # aggressive only: sessions that never try to log in
    "Disconnected (no auth attempts in 0 secs): user=<>, rip={addr}, lip={local},"
    " session=<Xk3P0z8BqMAq3DYh>",
    "Disconnected: Connection closed (no auth attempts in 10 secs): user=<>, rip={addr},"
    " lip={local}, TLS handshaking: SSL_accept() failed: error:0A00006C:SSL routines::bad key share",
    "Disconnected (disconnected before auth was ready, waited 0 secs): user=<>, rip={addr},"
    " lip={local}, session=<Xk3P0z8BqMAq3DYh>",
    "Disconnected (client didn't finish SASL auth, waited 3 secs): user=<>, method=PLAIN,"
    " rip={addr}, lip={local}, session=<Xk3P0z8BqMAq3DYh>",
    # legitimate
    "Login: user=<alice>, method=PLAIN, rip={addr}, lip={local}, mpid=2211, TLS,"
    " session=<Qf5Cd08BcMAq3DYk>",
)

#: whole messages after the host name
_DOVECOT_OTHERS = (
    "dovecot: auth-worker(1931): pam(bob,{addr},<Q1x3wC9XkMDGZDiR>): pam_authenticate() failed:"
    " Authentication failure (Password mismatch?)",
    "dovecot: auth-worker(1931): pam(bob,{addr}): pam_authenticate() failed: User not known to"
    " the underlying authentication module",
    "dovecot: auth: passwd-file(eve,{addr},<AbCdEf12GhIjKlMn>): unknown user",
    "dovecot: auth: sql(dave,{addr},<kLmN0pQrStUvWxYz>): Password mismatch",
    "dovecot: auth: ldap(ghost,{addr}): invalid credentials",
    "dovecot: auth: passwd-file(eve,{addr},<AbCdEf12GhIjKlMn>): Password mismatch (given"
    " password: x)",
    "auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot"
    " ruser=frank rhost={addr}  user=frank",
    "dovecot: imap(alice)<2211><Qf5Cd08BcMAq3DYk>: Disconnected: Logged out in=77 out=1234",
    "dovecot: master: Dovecot v2.3.19.1 (9b53102964) starting up for imap, pop3",
)


def dovecot_lines() -> list[str]:
    """Every kind of Dovecot line, IPv4 and IPv6, from each login process."""
    messages = [
        f"dovecot: {service}-login: {template}"
        for template in _DOVECOT_LOGIN
        for service in ("imap", "pop3", "submission", "managesieve")
    ]
    return _numbered(
        [*messages, *_DOVECOT_OTHERS],
        ("203.0.113.{n}", "2001:db8::{n:x}"),
        lambda number: (
            f"Nov 21 {8 + number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d} mail "
        ),
    )


def _numbered(
    templates: Sequence[str], addresses: Sequence[str], stamp: Callable[[int], str]
) -> list[str]:
    """Each template with each address form, numbered (a different address on every line);
    {local} is the server's address of the same family."""
    lines = []
    for number, (template, address) in enumerate(itertools.product(templates, addresses), start=1):
        addr = address.format(n=number % 250 + 1)
        local = "2001:db8::1" if ":" in addr else "192.0.2.10"
        lines.append(stamp(number) + template.format(addr=addr, local=local))
    return lines


DOVECOT_DIFFERENCES = {
    "User not known to the underlying authentication module": (
        "PAM's words for a password tried on a user that does not exist: a failed login like the"
        " others (fail2ban counts it only with a repetition count after it)"
    ),
}


# ---- exim ---------------------------------------------------------------------------------

_EXIM = (
    "plain_server authenticator failed for (scanner) [{addr}]: 535 Incorrect authentication"
    " data (set_id=admin)",
    "login_server authenticator failed for mail.example.net (WIN) [{addr}]:51122"
    " I=[192.0.2.25]:587: 535 Incorrect authentication data (set_id=info@example.org)",
    "dovecot_login authenticator failed for (User) [{addr}]: 535 Incorrect authentication data:"
    " 1 Time(s)",
    "plain_server authenticator failed for (mail.example.com) [{addr}]: 435 Unable to"
    " authenticate at present (set_id=alice): failed to connect to socket",
    "H=(example.com) [{addr}]:40112 F=<x@example.com> rejected RCPT <someone@example.net>: relay"
    " not permitted",
    "1tQm4x-000Ab3-7Q H=mail.example.net [{addr}] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no F=<>"
    " rejected RCPT <nobody@example.org>: Unknown user",
    "H=(a) [{addr}] F=<x@example.com> rejected RCPT <b@example.org>: Unrouteable address",
    "H=(a) [{addr}] F=<x@example.com> rejected RCPT <b@example.org>: Sender verify failed",
    "H=(a) [{addr}] F=<x@example.com> rejected RCPT <b@example.org>: Greylisted, try again later",
    "H=(a) [{addr}] F=<x@example.com> rejected RCPT <b@example.org>: {addr} is listed in"
    " zen.example.net",
    "H=(helo.example) [{addr}] sender verify fail for <x@nowhere.example>: Unrouteable address",
    "H=(helo.example) [{addr}] sender verify defer for <x@nowhere.example>: host lookup did not"
    " complete",
    "SMTP protocol synchronization error (input sent without waiting for greeting): rejected"
    ' connection from H=[{addr}]:40000 I=[192.0.2.25]:25 input="EHLO x\\r\\n"',
    "SMTP protocol synchronization error (next input sent too soon: pipelining was not"
    ' advertised): rejected "RSET" H=(x) [{addr}]:40001 I=[192.0.2.25]:25 next input="QUIT\\r\\n"',
    "SMTP protocol synchronization error (next input sent too soon: pipelining was not"
    ' advertised): rejected "MAIL FROM:<a@example.com>" H=(x) [{addr}]:40001 I=[192.0.2.25]:25'
    ' next input="RCPT TO:<b@example.org>\\r\\n"',
    'SMTP protocol error in "AUTH LOGIN" H=(x) [{addr}]:40003 I=[192.0.2.25]:25 AUTH command'
    " used when not advertised",
    "SMTP call from (x) [{addr}]:40005 I=[192.0.2.25]:25 dropped: too many syntax or protocol"
    ' errors (last command was "RCPT TO:<x>", C=EHLO,MAIL,RCPT)',
    'SMTP call from [{addr}] dropped: too many nonmail commands (last was "NOOP")',
    "SMTP call from [{addr}] dropped: too many unrecognized commands",
    "[5120] no MAIL in SMTP connection from (User) [{addr}]:50001 I=[192.0.2.25]:25 D=3s"
    " C=EHLO,AUTH,QUIT",
    "1tQm4y-000Ab4-2K SMTP connection from (x) [{addr}]:50002 I=[192.0.2.25]:25 closed by DROP"
    " in ACL",
    "SMTP connection from (mail.example.com) [{addr}] lost",
    "SMTP connection from [{addr}] lost while reading message data",
    "1tQm4z-000Ab5-1T <= alice@example.com H=(mail.example.com) [{addr}] P=esmtpsa"
    " A=plain_server:alice S=1234 id=1@example.com",
    "H=(x) [{addr}] rejected EHLO or HELO x_y: syntactically invalid argument(s): x_y",
    "TLS error on connection from (x) [{addr}] (gnutls_handshake): The TLS connection was"
    " non-properly terminated.",
    "H=(x) [{addr}] F=<x@example.com> rejected after DATA: This message contains a virus (Eicar).",
    "unexpected disconnection while reading SMTP command from (x) [{addr}] D=0s",
    # aggressive only: the client's DNS is broken
    "no host name found for IP address {addr}",
    "no IP address found for host spoof.example (during SMTP connection from [{addr}])",
)


def exim_lines() -> list[str]:
    return _numbered(
        _EXIM,
        ("203.0.113.{n}", "2001:db8::{n:x}"),
        lambda number: (
            f"2026-11-21 {8 + number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d} "
        ),
    )


_EXIM_FORMATS = "the same message as fail2ban counts, in the form Exim 4.9x writes it"
EXIM_DIFFERENCES = {
    "X=TLS{*}rejected RCPT": _EXIM_FORMATS + " (TLS fields between the host and F=)",
    'rejected "MAIL FROM:': "a pipelining error after any command, not only after some",
    "C=EHLO,MAIL,RCPT)": _EXIM_FORMATS + " (the commands' list after the last command)",
    "too many unrecognized commands": "Exim's third 'too many' limit, as the other two",
}


# ---- sendmail-reject ----------------------------------------------------------------------

#: {qid} is a queue id, {addr} the client ("IPv6:..." for IPv6)
_SENDMAIL = (
    "{qid}: ruleset=check_rcpt, arg1=<x@example.net>, relay=scanner.example.net [{addr}],"
    " reject=550 5.7.1 <x@example.net>... Relaying denied. Proper authentication required.",
    "{qid}: ruleset=check_rcpt, arg1=<x@example.net>, relay=[{addr}] (may be forged),"
    " reject=550 5.7.1 <x@example.net>... Relaying denied. IP name possibly forged [{addr}]",
    "{qid}: ruleset=check_rcpt, arg1=<x@example.net>, relay=[{addr}], reject=550 5.7.1"
    " <x@example.net>... Relaying denied. IP name lookup failed [{addr}]",
    "{qid}: ruleset=check_rcpt, arg1=<nobody@example.org>, relay=[{addr}], reject=550 5.1.1"
    " <nobody@example.org>... User unknown",
    "{qid}: ruleset=check_mail, arg1=<a@nowhere.example>, relay=mail.example.net [{addr}],"
    " reject=553 5.1.8 <a@nowhere.example>... Domain of sender address a@nowhere.example does"
    " not exist",
    "{qid}: ruleset=check_rcpt, arg1=<b@example.org>, relay=[{addr}], reject=553 5.1.8"
    " <b@example.org>... Domain of sender address a@nowhere.example does not exist",
    "{qid}: ruleset=check_rcpt, arg1=<b@example.org>, relay=[{addr}], reject=550 5.7.1"
    " <b@example.org>... Rejected: {addr} listed at zen.example.net",
    "{qid}: ruleset=check_rcpt, arg1=<b@example.org>, relay=[{addr}], reject=550 5.7.1"
    " <b@example.org>... Fix reverse DNS for {addr}",
    "{qid}: ruleset=check_rcpt, arg1=<b@example.org>, relay=[{addr}], reject=451 4.1.8 Domain"
    " of sender address a@example.com does not resolve",
    "{qid}: ruleset=check_rcpt, arg1=<b@example.org>, relay=[{addr}], reject=550 5.7.1"
    " <b@example.org>... Access denied",
    "ruleset=check_relay, arg1=host.example.net, arg2={addr}, relay=host.example.net [{addr}],"
    " reject=421 4.3.2 Connection rate limit exceeded.",
    "ruleset=check_relay, arg1=host.example.net, arg2={addr}, relay=host.example.net [{addr}],"
    " reject=421 4.3.2 Too many open connections.",
    "ruleset=check_relay, arg1=host.example.net, arg2={addr}, relay=host.example.net [{addr}],"
    " reject=550 5.7.1 Access denied",
    "{qid}: rejecting commands from  [{addr}] due to pre-greeting traffic after 0 seconds",
    "{qid}: rejecting commands from host.example.net [{addr}] due to pre-greeting traffic after"
    " 6 seconds",
    "{qid}: host.example.net [{addr}]: VRFY root [rejected]",
    "{qid}: [{addr}]: expn info [rejected]",
    "{qid}: lost input channel from host.example.net [{addr}] to MTA after rcpt",
    "{qid}: timeout waiting for input from host.example.net [{addr}] during server cmd read",
    "{qid}: host.example.net [{addr}]: Possible SMTP RCPT flood, throttling.",
    "{qid}: [{addr}]: possible SMTP attack: command=AUTH, count=5",
    "{qid}: from=<alice@example.com>, size=1234, class=0, nrcpts=1, msgid=<1@example.com>,"
    " proto=ESMTP, daemon=MTA, relay=mail.example.com [{addr}]",
    "{qid}: from=<y@example.com>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA,"
    " relay=mail.example.net [{addr}]",
    # extra and aggressive
    "{qid}: host.example.net [{addr}] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA",
    "{qid}: host.example.net [{addr}] (may be forged) did not issue MAIL/EXPN/VRFY/ETRN during"
    " connection to MSA",
)


def sendmail_lines() -> list[str]:
    """Every kind of sendmail line (each connection its own process), and envelopes whose
    every recipient was refused (their lines tied by the queue id), with and without BODY=."""
    lines = []
    for number, (template, address) in enumerate(
        itertools.product(_SENDMAIL, ("203.0.113.{n}", "IPv6:2001:db8::{n:x}")), start=1
    ):
        addr, qid = address.format(n=number), f"5ALH{number:04d}b1007{number:03d}"
        text = template.format(addr=addr, qid=qid).replace("arg2=IPv6:", "arg2=")
        lines.append(
            f"Nov 21 08:{number // 60:02d}:{number % 60:02d} mx1 sm-mta[{7000 + number}]: {text}"
        )
    for number, body in ((1, " bodytype=8BITMIME,"), (2, "")):
        qid = f"5ALH{number:04d}c1008{number:03d}"
        lines += [
            f"Nov 21 09:00:0{number} mx1 sm-mta[{8000 + number}]: {qid}: <nobody@example.org>..."
            " No such user here",
            f"Nov 21 09:00:0{number} mx1 sm-mta[{8000 + number}]: {qid}: from=<x@example.com>,"
            f" size=0, class=0, nrcpts=0,{body} proto=ESMTP, daemon=MTA, relay=mail.example.net"
            f" [198.51.100.{70 + number}]",
        ]
    return lines


SENDMAIL_DIFFERENCES = {
    "relay=[IPv6:{*}Relaying denied. IP name": (
        "sendmail writes an IPv6 client as [IPv6:ADDR] in every line; fail2ban reads it so in"
        " some only"
    ),
    "ruleset=check_mail": (
        "the sender-domain reject of check_rcpt, written at MAIL FROM when sendmail runs without"
        " FEATURE(delay_checks)"
    ),
    "nrcpts=0, proto=ESMTP, daemon=MTA, relay=mail.example.net [198.51.100.72]": (
        "an envelope whose every recipient was refused names the client whether or not it"
        " sent BODY= (fail2ban needs bodytype=)"
    ),
}

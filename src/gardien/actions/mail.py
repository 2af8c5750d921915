"""Mail alerts: an action that reports bans by e-mail through the SMTP relay of ``[mail]``.

Three modes (the ``mode`` parameter):

``each``
    one mail per ban (fail2ban's ``sendmail-whois`` and friends);
``digest``
    one mail per period ``every`` (default 1h) listing that period's bans;
``threshold``
    one alert when the bans within a sliding ``period`` (default 1h) reach ``bans``, and not
    again until the count has fallen below it: an attack wave gives one mail, not hundreds.

fail2ban's mail action names are accepted (:data:`MAIL_ACTIONS`) so that
``action = %(action_mw)s`` works unchanged. No whois or other lookup is made about the banned
address: gardien sends no network query about an attacker. Jail start and stop mails are not
sent (a restart would mail every recipient for every jail).

A ban is never delayed: :meth:`MailAction.ban` only queues a notice (see
:mod:`gardien.actions.outbox`); a background task sends it with ``smtplib`` in a thread,
retrying temporary failures (4xx answers, a relay that cannot be reached) with exponential
backoff, and logging permanent ones with the relay's answer.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address as MailAddress
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from typing import Protocol

from gardien.actions.outbox import Outbox, backoff_delays
from gardien.clock import Clock, SystemClock
from gardien.config.mail import MailRelay, parse_addresses
from gardien.config.values import Spec, parse_bool, parse_duration
from gardien.errors import ConfigError
from gardien.model import Ban, Unban

__all__ = [
    "MAIL_ACTIONS",
    "DigestMode",
    "EachMode",
    "MailAction",
    "Notice",
    "SmtpRelay",
    "ThresholdMode",
    "mail_action",
]

logger = logging.getLogger("gardien.actions.mail")

#: action name -> (mode, with the matched log lines)
MAIL_ACTIONS: dict[str, tuple[str, bool]] = {
    "mail": ("each", False),
    "sendmail": ("each", False),
    "sendmail-common": ("each", False),
    "sendmail-whois": ("each", False),
    "sendmail-whois-lines": ("each", True),
    "sendmail-whois-matches": ("each", True),
    "sendmail-whois-ipmatches": ("each", True),
    "sendmail-whois-ipjailmatches": ("each", True),
    "sendmail-geoip-lines": ("each", True),
    "mail-whois": ("each", False),
    "mail-whois-lines": ("each", True),
    "sendmail-buffered": ("digest", False),
    "mail-buffered": ("digest", False),
}
MODES = ("each", "digest", "threshold")
_PARAMETERS = frozenset(
    {"mode", "dest", "destemail", "sender", "sendername", "lines", "every", "bans", "period"}
)
#: what fail2ban's mail actions take and gardien has no use for (it runs no mail command and
#: greps no log file: the ban carries its matched lines)
_IGNORED = frozenset(
    {
        "name",
        "port",
        "protocol",
        "chain",
        "logpath",
        "actname",
        "bantime",
        "blocktype",
        "returntype",
        "mailcmd",
        "mailargs",
        "tmpfile",
        "grepmax",
        "greplimit",
        "grepopts",
    }
)
#: bans listed in one digest or alert mail; the rest are counted
LISTED = 100
_TAGS = ("<fq-hostname>", "<hostname>")


# ---- what a mail says ----------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """One mail to send: its subject and text, and the addresses it is about."""

    subject: str
    body: str
    addresses: tuple[str, ...] = ()


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(seconds))


def _span(seconds: float) -> str:
    """``90`` -> ``1 min 30 s``, ``3600`` -> ``1 h``."""
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts) or f"{seconds:g} s"


def _printable(line: str) -> str:
    """A log line (attacker-controlled text) with control characters made harmless."""
    return "".join(char if char.isprintable() or char == "\t" else "?" for char in line)


def _until(ban: Ban) -> str:
    if ban.end is None:
        return "for ever"
    return f"{_when(ban.end)} ({_span(ban.end - ban.start)})"


class Composer:
    """Writes the subjects and texts of a jail's mails."""

    def __init__(self, jail: str, host: str, *, with_lines: bool) -> None:
        self.jail = jail
        self.host = host
        self.with_lines = with_lines

    def each(self, ban: Ban) -> Notice:
        failures = f" after {ban.failures} failures" if ban.failures else ""
        lines = [
            f"gardien on {self.host} banned {ban.address} in jail {self.jail}.",
            "",
            f"  jail:      {self.jail}",
            f"  address:   {ban.address}",
            f"  banned at: {_when(ban.start)}",
            f"  until:     {_until(ban)}",
            f"  failures:  {ban.failures}",
            f"  ban:       #{ban.count}"
            + (" (this address was banned before)" if ban.count > 1 else ""),
        ]
        if self.with_lines:
            lines += ["", "Matched log lines:"]
            lines += [f"  {_printable(line)}" for line in ban.matches] or ["  (none kept)"]
        return Notice(
            f"[gardien] {self.jail}: banned {ban.address}{failures}",
            "\n".join(lines) + "\n",
            (str(ban.address),),
        )

    def listing(self, bans: Sequence[Ban], more: int) -> list[str]:
        """One line per ban (followed by its log lines when asked), then how many more."""
        lines: list[str] = []
        for ban in bans:
            until = "ever" if ban.end is None else _when(ban.end)
            lines.append(
                f"  {_when(ban.start)}  {ban.address!s:<39}  {ban.failures:>4} failures  "
                f"until {until}"
            )
            if self.with_lines:
                lines += [f"      {_printable(line)}" for line in ban.matches]
        if more:
            lines.append(f"  ... and {more} more")
        return lines

    def digest(self, bans: Sequence[Ban], more: int, since: float, now: float) -> Notice:
        total = len(bans) + more
        lines = [
            f"gardien on {self.host}: {total} ban(s) in jail {self.jail} "
            f"from {_when(since)} to {_when(now)}.",
            "",
            *self.listing(bans, more),
        ]
        return Notice(
            f"[gardien] {self.jail}: {total} ban(s) in the last {_span(now - since)}",
            "\n".join(lines) + "\n",
            tuple(str(ban.address) for ban in bans),
        )

    def alert(self, bans: Sequence[Ban], threshold: int, period: float) -> Notice:
        lines = [
            f"gardien on {self.host}: {len(bans)} bans in jail {self.jail} within "
            f"{_span(period)}, the alert threshold ({threshold}).",
            "No further alert is sent until the bans within that period fall below it.",
            "",
            "The latest bans:",
            *self.listing(bans[-LISTED:], max(0, len(bans) - LISTED)),
        ]
        return Notice(
            f"[gardien] {self.jail}: {len(bans)} bans within {_span(period)} "
            f"(alert threshold {threshold})",
            "\n".join(lines) + "\n",
            tuple(str(ban.address) for ban in bans),
        )

    def dropped(self, count: int, addresses: Sequence[str]) -> Notice:
        lines = [
            f"gardien on {self.host}: {count} mail(s) about jail {self.jail} were not sent: too "
            "many were waiting for the relay. The bans themselves took effect.",
        ]
        if addresses:
            lines += ["", "Addresses they were about (first ones):"]
            lines += [f"  {address}" for address in addresses]
        return Notice(
            f"[gardien] {self.jail}: {count} alert mail(s) not sent", "\n".join(lines) + "\n"
        )


# ---- when to mail: the modes (pure, they take the time they are given) ----------------------
class Mode(Protocol):
    """Decides which notices a jail's bans give, and when."""

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        """Notices due because of ``bans``."""
        ...

    def due(self, now: float) -> list[Notice]:
        """Notices due because time passed."""
        ...

    def flush(self, now: float) -> list[Notice]:
        """At stop: what is pending (a digest in progress)."""
        ...


class EachMode:
    """One mail per ban."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        return [self.composer.each(ban) for ban in bans]

    def due(self, now: float) -> list[Notice]:
        return []

    def flush(self, now: float) -> list[Notice]:
        return []


class DigestMode:
    """One mail per period listing its bans (none for a period without bans); also as soon as
    ``size`` bans are waiting when set (fail2ban's ``sendmail-buffered``)."""

    def __init__(
        self, composer: Composer, every: float, *, size: int | None = None, start: float
    ) -> None:
        self.composer = composer
        self.every = every
        self.size = size
        self.since = start
        self.bans: list[Ban] = []
        self.more = 0  # bans beyond the listed ones

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        for ban in bans:
            if len(self.bans) < LISTED:
                self.bans.append(ban)
            else:
                self.more += 1
        if self.size is not None and len(self.bans) + self.more >= self.size:
            return self.flush(now)
        return []

    def due(self, now: float) -> list[Notice]:
        if now - self.since < self.every:
            return []
        return self.flush(now)

    def flush(self, now: float) -> list[Notice]:
        notices = []
        if self.bans:
            notices.append(self.composer.digest(self.bans, self.more, self.since, now))
        self.bans, self.more, self.since = [], 0, now
        return notices


class ThresholdMode:
    """One alert when the bans within ``period`` reach ``threshold``; re-armed when they fall
    below it again."""

    def __init__(self, composer: Composer, threshold: int, period: float) -> None:
        self.composer = composer
        self.threshold = threshold
        self.period = period
        # the count within the period reaches the threshold exactly when the threshold-th
        # latest ban is within it: older ones need not be kept
        self.recent: deque[Ban] = deque(maxlen=threshold)
        self.armed = True

    def _within(self, now: float) -> int:
        return sum(1 for ban in self.recent if ban.start > now - self.period)

    def add(self, bans: Sequence[Ban], now: float) -> list[Notice]:
        notices = []
        for ban in bans:
            self.recent.append(ban)
            reached = self._within(now) >= self.threshold
            if reached and self.armed:
                self.armed = False
                inside = [b for b in self.recent if b.start > now - self.period]
                notices.append(self.composer.alert(inside, self.threshold, self.period))
            elif not reached:
                self.armed = True
        return notices

    def due(self, now: float) -> list[Notice]:
        if self._within(now) < self.threshold:
            self.armed = True
        return []

    def flush(self, now: float) -> list[Notice]:
        return []


# ---- how it goes: the relay ----------------------------------------------------------------
class DeliveryError(Exception):
    """A mail could not be delivered; ``temporary`` says whether trying again may help."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


def _answer(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}"


class SmtpRelay:
    """Sends messages through the relay of ``[mail]`` (blocking: call it from a thread)."""

    def __init__(self, settings: MailRelay, *, local_hostname: str) -> None:
        self.settings = settings
        self.local_hostname = local_hostname

    def _context(self) -> ssl.SSLContext:
        # verified always: a relay that cannot prove who it is does not get the password
        return ssl.create_default_context(cafile=self.settings.cafile)

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; :class:`DeliveryError` otherwise."""
        try:
            self._send(message)
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as error:
            answers = [_answer(code, text) for code, text in error.recipients.values()]
            temporary = all(400 <= code < 500 for code, _ in error.recipients.values())
            raise DeliveryError(
                "recipients refused: " + "; ".join(answers), temporary=temporary
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"the relay answered {_answer(error.smtp_code, error.smtp_error)}",
                temporary=400 <= error.smtp_code < 500,
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise DeliveryError(
                f"the relay's certificate is not trusted ({error.verify_message}); "
                "set cafile in [mail] to the CA that signed it",
                temporary=False,
            ) from None
        except smtplib.SMTPException as error:  # no AUTH offered, no common AUTH method...
            if isinstance(error, smtplib.SMTPServerDisconnected):
                raise DeliveryError(f"the relay hung up: {error}", temporary=True) from None
            raise DeliveryError(str(error), temporary=False) from None
        except OSError as error:  # refused, unreachable, timed out, TLS broken
            reason = error.strerror or str(error) or type(error).__name__
            raise DeliveryError(
                f"cannot reach {self.settings.host}:{self.settings.port}: {reason}",
                temporary=True,
            ) from None

    def _send(self, message: EmailMessage) -> None:
        relay = self.settings
        client: smtplib.SMTP
        if relay.tls == "implicit":
            client = smtplib.SMTP_SSL(
                relay.host,
                relay.port,
                local_hostname=self.local_hostname,
                timeout=relay.timeout,
                context=self._context(),
            )
        else:
            client = smtplib.SMTP(
                relay.host, relay.port, local_hostname=self.local_hostname, timeout=relay.timeout
            )
        with client:
            client.ehlo()
            if relay.tls in ("auto", "starttls"):
                if client.has_extn("starttls"):
                    client.starttls(context=self._context())
                    client.ehlo()
                elif relay.tls == "starttls":
                    raise DeliveryError(
                        "the relay does not offer STARTTLS (tls = starttls in [mail]): "
                        "nothing sent in clear",
                        temporary=False,
                    )
                elif relay.user is not None:
                    raise DeliveryError(
                        "the relay does not offer STARTTLS: the password is not sent in clear",
                        temporary=False,
                    )
            if relay.user is not None and relay.password is not None:
                self._login(client, relay.user, relay.password)
            refused = client.send_message(message)
            if refused:
                logger.warning(
                    "mail %r: refused for %s",
                    message["Subject"],
                    "; ".join(f"{who} ({_answer(*answer)})" for who, answer in refused.items()),
                )

    @staticmethod
    def _login(client: smtplib.SMTP, user: str, password: str) -> None:
        """AUTH PLAIN, else LOGIN: one attempt (``smtplib.login`` would try each mechanism in
        turn with a password the relay has just refused)."""
        offered = client.esmtp_features.get("auth", "").upper().split()
        client.user, client.password = user, password
        if "PLAIN" in offered:
            client.auth("PLAIN", client.auth_plain)
        elif "LOGIN" in offered:
            client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        else:
            raise DeliveryError(
                "the relay offers no AUTH PLAIN or LOGIN (offered: "
                + (" ".join(offered) or "no AUTH at all")
                + ")",
                temporary=False,
            )


class Transport(Protocol):
    """What sends a composed message (an :class:`SmtpRelay`; a double in unit tests)."""

    def send(self, message: EmailMessage) -> None: ...


# ---- the action ----------------------------------------------------------------------------
class MailAction:
    """An :class:`~gardien.actions.base.Action` that mails about a jail's bans."""

    def __init__(
        self,
        jail: str,
        mode: Mode,
        composer: Composer,
        transport: Transport,
        *,
        recipients: Sequence[str],
        sender: str,
        sendername: str = "gardien",
        clock: Clock | None = None,
        name: str = "mail",
        capacity: int = 100,
        attempts: int = 5,
        retry_delay: float = 5.0,
        stop_timeout: float = 10.0,
        poll_every: float = 1.0,
    ) -> None:
        self.name = name
        self.jail = jail
        self.mode = mode
        self.composer = composer
        self.transport = transport
        self.recipients = tuple(recipients)
        self.sender = sender
        self.sendername = sendername
        self.clock = clock or SystemClock()
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.stop_timeout = stop_timeout
        self.outbox: Outbox[Notice] = Outbox(
            f"[{jail}] action {name}",
            self._deliver,
            composer.dropped,
            capacity=capacity,
            poll=lambda: self.mode.due(self.clock.now()),
            poll_every=poll_every,
        )

    async def start(self) -> None:
        self.outbox.start()

    async def restore(self, bans: Sequence[Ban]) -> None:
        """Bans given back after a restart were reported when they were made: no mail."""

    async def stop(self) -> None:
        await self.outbox.close(self.mode.flush(self.clock.now()), timeout=self.stop_timeout)

    async def ban(self, bans: Sequence[Ban]) -> None:
        for notice in self.mode.add(bans, self.clock.now()):
            self.outbox.put(notice, notice.addresses)

    async def unban(self, unbans: Sequence[Unban]) -> None:
        """Unbans are not mailed (fail2ban's mail actions do not either)."""

    def message(self, notice: Notice) -> EmailMessage:
        """The mail of ``notice``."""
        message = EmailMessage(policy=SMTP_POLICY)
        user, _, domain = self.sender.rpartition("@")
        message["From"] = MailAddress(self.sendername, user, domain)
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = notice.subject
        message["Date"] = formatdate(self.clock.now(), localtime=True)
        message["Message-ID"] = make_msgid("gardien", domain=self.composer.host)
        message["Auto-Submitted"] = "auto-generated"  # no vacation replies to a robot
        message.set_content(notice.body)
        return message

    async def _deliver(self, notice: Notice) -> bool:
        message = self.message(notice)
        delays = backoff_delays(self.retry_delay, self.attempts)
        for attempt in range(1, self.attempts + 1):
            try:
                await asyncio.to_thread(self.transport.send, message)
            except DeliveryError as error:
                if not error.temporary:
                    logger.error("[%s] mail %r not sent: %s", self.jail, notice.subject, error)
                    return False
                delay = next(delays, None)
                if delay is None:
                    logger.error(
                        "[%s] mail %r not sent after %d attempts: %s",
                        self.jail,
                        notice.subject,
                        attempt,
                        error,
                    )
                    return False
                logger.warning(
                    "[%s] mail %r: %s; trying again in %.1f s",
                    self.jail,
                    notice.subject,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                logger.info("[%s] mailed %r to %s", self.jail, notice.subject, message["To"])
                return True
        return False


def _positive(spec: Spec, option: str, text: str, *, whole: bool = False) -> float:
    try:
        value = float(int(text)) if whole else parse_duration(text)
    except (ValueError, ConfigError):
        kind = "a whole number" if whole else "a duration (e.g. 30s, 10m, 1h)"
        raise ConfigError(f"action {spec.name!r}: {option} must be {kind}, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"action {spec.name!r}: {option} must be more than 0, got {text!r}")
    return value


def mail_action(
    spec: Spec,
    jail: str,
    relay: MailRelay | None = None,
    *,
    clock: Clock | None = None,
    hostname: str | None = None,
) -> MailAction:
    """The mail action ``spec`` names (``mail[dest=..., mode=digest, every=1h]``,
    ``sendmail-whois-lines[...]``); :class:`ConfigError` naming a wrong parameter."""
    relay = relay or MailRelay()
    clock = clock or SystemClock()
    host = hostname or socket.gethostname()
    params = {key.lower(): value.strip() for key, value in spec.params.items()}
    unknown = sorted(set(params) - _PARAMETERS - _IGNORED)
    if unknown:
        raise ConfigError(
            f"action {spec.name!r} has no parameter {unknown[0]!r} (it takes "
            + ", ".join(sorted(_PARAMETERS))
            + ")"
        )
    mode_name, with_lines = MAIL_ACTIONS[spec.name]
    buffered = mode_name == "digest"
    mode_name = (params.get("mode") or mode_name).lower()
    if mode_name not in MODES:
        raise ConfigError(
            f"action {spec.name!r}: mode {mode_name!r} is not one of " + ", ".join(MODES)
        )
    size: int | None = None
    lines_text = params.get("lines")
    if lines_text:
        if buffered and lines_text.isdigit():  # fail2ban's sendmail-buffered: a batch size
            size = int(_positive(spec, "lines", lines_text, whole=True))
        else:
            try:
                with_lines = parse_bool(lines_text)
            except ConfigError:
                raise ConfigError(
                    f"action {spec.name!r}: lines must be yes or no, got {lines_text!r}"
                ) from None
    elif buffered:
        size = 5  # fail2ban's default for sendmail-buffered

    dest_text = params.get("dest") or params.get("destemail") or relay.destemail
    if not dest_text:
        raise ConfigError(
            f"action {spec.name!r} needs dest=ADDRESS[,ADDRESS...] "
            "(or destemail in the [mail] section of gardien.conf)"
        )
    try:
        recipients = parse_addresses(dest_text)
    except ConfigError as error:
        raise ConfigError(f"action {spec.name!r}: dest: {error.message}") from None

    sender_text = params.get("sender") or ""
    if any(tag in sender_text for tag in _TAGS) and relay.sender:
        sender_text = relay.sender  # fail2ban's stock 'root@<fq-hostname>' yields to [mail]
    for tag in _TAGS:
        sender_text = sender_text.replace(tag, host)
    sender_text = sender_text or relay.sender or f"gardien@{host}"
    try:
        (sender,) = parse_addresses(sender_text)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"action {spec.name!r}: sender: {sender_text!r} is not one mail address"
        ) from None
    sendername = params.get("sendername") or "gardien"
    if not sendername.isprintable():
        raise ConfigError(f"action {spec.name!r}: sendername must be printable text")

    composer = Composer(jail, host, with_lines=with_lines)
    mode: Mode
    poll_every = 1.0
    if mode_name == "each":
        mode = EachMode(composer)
    elif mode_name == "digest":
        every = _positive(spec, "every", params.get("every") or "1h")
        mode = DigestMode(composer, every, size=size, start=clock.now())
        poll_every = min(1.0, every / 4)
    else:
        if not params.get("bans"):
            raise ConfigError(f"action {spec.name!r}: mode threshold needs bans=N")
        threshold = int(_positive(spec, "bans", params["bans"], whole=True))
        period = _positive(spec, "period", params.get("period") or "1h")
        mode = ThresholdMode(composer, threshold, period)
        poll_every = min(1.0, period / 4)
    return MailAction(
        jail,
        mode,
        composer,
        SmtpRelay(relay, local_hostname=host),
        recipients=recipients,
        sender=sender,
        sendername=sendername,
        clock=clock,
        name=spec.name,
        poll_every=poll_every,
    )

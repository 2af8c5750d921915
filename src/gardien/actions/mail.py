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

This module holds the action and its parameters; what a mail says and when it is due are in
:mod:`gardien.actions._mail_compose`, the SMTP client in :mod:`gardien.actions._mail_relay`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from email.headerregistry import Address as MailAddress
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid

from gardien.actions._mail_compose import (
    Composer,
    DigestMode,
    EachMode,
    Mode,
    Notice,
    ThresholdMode,
)
from gardien.actions._mail_relay import DeliveryError, SmtpRelay, Transport
from gardien.actions.outbox import Outbox, backoff_delays
from gardien.clock import Clock, SystemClock
from gardien.config.mail import parse_addresses
from gardien.config.values import parse_bool, parse_duration
from gardien.errors import ConfigError
from gardien.model import Ban, Unban
from gardien.settings import MailRelay, Spec

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
_TAGS = ("<fq-hostname>", "<hostname>")


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

"""Mail alerts, how they go: :class:`SmtpRelay` delivers a message through the relay of
``[mail]`` with ``smtplib`` (implicit TLS, STARTTLS or none as ``tls`` says, the certificate
always verified, one AUTH PLAIN or LOGIN attempt) and turns every failure into a
:class:`DeliveryError` that says whether trying again may help (4xx answers, a relay that
cannot be reached) or not. Blocking: the action in :mod:`gardien.actions.mail` calls it from a
thread.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from gardien.settings import MailRelay

__all__ = ["DeliveryError", "SmtpRelay", "Transport"]

# the records keep the name of the mail action's logger, which they are about
logger = logging.getLogger("gardien.actions.mail")


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

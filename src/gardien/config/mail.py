"""Mail relay settings: the ``[mail]`` section of ``gardien.conf``.

The mail alerts (:mod:`gardien.actions.mail`) send through one SMTP relay, configured once for
all jails::

    [mail]
    host = smtp.example.org
    port = 587
    tls = starttls
    user = gardien
    password_file = /etc/gardien/smtp.password
    sender = gardien@example.org
    destemail = admin@example.org

The password lives in a file of its own that others cannot read: ``gardien.conf`` is usually
readable by everyone, so a ``password`` option there is refused. A fail2ban directory (no
``gardien.conf``, or no ``[mail]`` in it) gives the defaults: the local MTA on port 25.
"""

from __future__ import annotations

import os
from pathlib import Path

from gardien.config.ini import Located
from gardien.config.reader import ConfigSet, resource_files
from gardien.config.values import parse_duration
from gardien.errors import ConfigError
from gardien.secretfile import read_secret  # re-exported: it was defined here
from gardien.settings import MailRelay  # re-exported: it was defined here

__all__ = ["TLS_MODES", "MailRelay", "load_mail_relay", "parse_addresses", "read_secret"]

SECTION = "mail"
#: ``auto``: STARTTLS when the relay offers it; ``starttls``: required; ``implicit``: TLS from
#: the first byte (port 465); ``none``: never
TLS_MODES = ("auto", "starttls", "implicit", "none")
_OPTIONS = frozenset(
    {"host", "port", "tls", "cafile", "user", "password_file", "sender", "destemail", "timeout"}
)


def load_mail_relay(config_dir: str | os.PathLike[str]) -> MailRelay:
    """Read ``[mail]`` of ``gardien.conf`` under ``config_dir``; defaults when there is none."""
    files = resource_files(Path(config_dir), "gardien")
    if not files:
        return MailRelay()
    config = ConfigSet.read_files(files)
    if not config.has_section(SECTION):
        return MailRelay(files=tuple(config.files))

    def located(option: str) -> Located | None:
        # only the section's own options: [DEFAULT] ones belong to the daemon settings
        return config.sections[SECTION].get(option)

    def invalid(option: str, message: str) -> ConfigError:
        where = located(option)
        if where is None:
            path, line = config.where(SECTION)
            return ConfigError(message, path=path, line=line, section=SECTION, option=option)
        return ConfigError(
            message, path=where.path, line=where.line, section=SECTION, option=option
        )

    def text(option: str) -> str | None:
        where = located(option)
        if where is None:
            return None
        try:
            value = config.interpolate(SECTION, where).strip()
        except ConfigError as error:
            raise error.located(
                path=where.path, line=where.line, section=SECTION, option=option
            ) from None
        return value or None

    for option in config.options(SECTION):
        if option == "password":
            raise invalid(
                "password",
                "gardien.conf is readable by others: put the password in a file of its own "
                "(chmod 600) and name it with password_file",
            )
        if option not in _OPTIONS:
            raise invalid(option, "unknown option (known: " + ", ".join(sorted(_OPTIONS)) + ")")

    tls = (text("tls") or "auto").lower()
    if tls not in TLS_MODES:
        raise invalid("tls", f"{tls!r} is not one of " + ", ".join(TLS_MODES))
    port_text = text("port")
    port = 465 if tls == "implicit" else 25
    if port_text is not None:
        try:
            port = int(port_text)
        except ValueError:
            raise invalid("port", f"{port_text!r} is not a port number") from None
        if not 0 < port < 65536:
            raise invalid("port", f"{port} is not a port number (1-65535)")
    if tls == "auto" and port == 465 and located("tls") is None:
        tls = "implicit"  # port 465 (submissions) speaks TLS from the first byte

    timeout = MailRelay.timeout
    timeout_text = text("timeout")
    if timeout_text is not None:
        try:
            timeout = parse_duration(timeout_text)
        except ConfigError as error:
            raise invalid("timeout", error.message) from None
        if timeout <= 0:
            raise invalid("timeout", "the timeout must be longer than 0 seconds")

    cafile = text("cafile")
    if cafile is not None and not os.path.isfile(cafile):
        raise invalid("cafile", f"no such file: {cafile}")

    user = text("user")
    password_file = text("password_file")
    password = None
    if password_file is not None:
        if user is None:
            raise invalid("password_file", "a password needs a user (user = ...)")
        try:
            password = read_secret(password_file)
        except ConfigError as error:
            raise invalid("password_file", error.message) from None
    if user is not None and password is None:
        raise invalid("user", "a user needs a password: password_file = /path/to/file")
    if user is not None and tls == "none":
        raise invalid("tls", "tls = none would send the password in clear; use starttls")

    sender = text("sender")
    destemail = text("destemail")
    for option, value in (("sender", sender), ("destemail", destemail)):
        if value is not None:
            try:
                addresses = parse_addresses(value)
            except ConfigError as error:
                raise invalid(option, error.message) from None
            if option == "sender" and len(addresses) > 1:
                raise invalid(option, "one sender address, not a list")
    return MailRelay(
        host=text("host") or MailRelay.host,
        port=port,
        tls=tls,
        cafile=cafile,
        user=user,
        password=password,
        sender=sender,
        destemail=destemail,
        timeout=timeout,
        files=tuple(config.files),
    )


def parse_addresses(text: str) -> tuple[str, ...]:
    """The mail addresses of a comma-separated list, each one checked to look like
    ``user@domain`` and to be unable to break a mail header; :class:`ConfigError` otherwise."""
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    if not addresses:
        raise ConfigError("no mail address given")
    for address in addresses:
        local, at, domain = address.rpartition("@")
        if (
            not at
            or not local
            or not domain
            or any(char.isspace() or char in "<>,;\"'()[]\\" for char in address)
            or not address.isprintable()
        ):
            raise ConfigError(f"{address!r} is not a mail address")
    return addresses

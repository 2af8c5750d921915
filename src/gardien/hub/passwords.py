"""Dashboard credentials: argon2 password hashes and TOTP codes (RFC 6238) with replay
protection.

A code is checked against the time steps just before, at and after now (a clock a little
off on either side still works), and the step it matched is returned so the caller records
it: a step at or before the last one a user spent is refused, so a code seen over a shoulder
or in a log cannot be used a second time.
"""

from __future__ import annotations

import hmac
import re

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "ISSUER",
    "MIN_PASSWORD_LENGTH",
    "TOTP_STEP",
    "Passwords",
    "new_totp_secret",
    "provisioning_uri",
    "totp_code",
    "verify_totp",
]

#: the issuer authenticator apps show beside the account name
ISSUER = "gardien hub"
#: seconds per TOTP step (what every authenticator app uses)
TOTP_STEP = 30
#: the shortest password ``gardien hub user add`` accepts
MIN_PASSWORD_LENGTH = 12

_CODE = re.compile(r"\A[0-9]{6}\Z")


class Passwords:
    """Hashes and checks passwords with argon2id. The default cost is argon2-cffi's (RFC 9106
    low-memory profile); tests may pass a cheaper :class:`PasswordHasher`."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Checked when a name is unknown, so that a wrong name costs as long as a wrong
        # password and timing does not tell which names exist.
        self._dummy = self._hasher.hash("gardien: not a real password")

    def hash(self, password: str) -> str:
        """The argon2id hash to store for ``password`` (salted, self-describing)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; ``None`` (no such user) is checked
        against a dummy hash and is always false."""
        try:
            if password_hash is None:
                self._hasher.verify(self._dummy, password)
                return False
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def new_totp_secret() -> str:
    """A fresh random TOTP secret (base32, 160 bits as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def provisioning_uri(name: str, secret: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads (as text or QR code)."""
    return pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(name=name, issuer_name=ISSUER)


def totp_code(secret: str, when: float) -> str:
    """The six-digit code of ``secret`` at time ``when`` (for tests and tooling)."""
    return pyotp.TOTP(secret, interval=TOTP_STEP).at(int(when))


def verify_totp(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    """The time step ``code`` matches (now, or one step either side), or ``None``.

    A step at or before ``last_step`` (the last one this user spent) is refused: each code
    works once. The caller stores the returned step as the user's new last step.
    """
    code = code.strip().replace(" ", "")
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    current = int(now // TOTP_STEP)
    matched: int | None = None
    for step in (current - 1, current, current + 1):
        # compare every candidate, in constant time, whatever matched before
        if hmac.compare_digest(totp.generate_otp(step), code) and matched is None:
            matched = step
    if matched is None or (last_step is not None and matched <= last_step):
        return None
    return matched

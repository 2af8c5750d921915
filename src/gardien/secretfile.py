"""Secrets kept in files of their own: the mail relay's password, the hub and webhook tokens.

A configuration file is often readable by everyone, so secrets are named by a path instead;
the file is refused when others may read or change it. Shared by the configuration reader,
the actions and the hub feed, so it depends on nothing but :mod:`gardien.errors`.
"""

from __future__ import annotations

import os
import stat

from gardien.errors import ConfigError

__all__ = ["read_secret"]


def read_secret(path: str) -> str:
    """The secret (password, token) in the file ``path``, without its final line break.

    Refused (:class:`ConfigError`) when others may read or change the file, or it is empty."""
    try:
        status = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if status.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(f"{path} can be read or written by anyone: chmod 600 {path}")
    try:
        with open(path, encoding="utf-8") as file:
            secret = file.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    if not secret:
        raise ConfigError(f"{path} is empty")
    return secret

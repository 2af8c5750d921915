"""Jails for the domain tests: settings with defaults, a jail on a fake clock, failures."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace

from gardien.clock import FakeClock
from gardien.config.values import parse_spec
from gardien.jails import Jail
from gardien.model import Ban, Failure
from gardien.settings import JailSettings

T0 = 1_700_000_000.0  # 2023-11-14, a plausible "now"


def settings(**options: object) -> JailSettings:
    """An sshd jail; findtime 600, maxretry 3, bantime 3600 unless told otherwise."""
    base = JailSettings(
        name="sshd",
        enabled=True,
        filter=parse_spec("sshd"),
        actions=(),
        logpath=("/var/log/auth.log",),
        findtime=600,
        maxretry=3,
        bantime=3600,
        maxmatches=3,
        ignoreself=False,
    )
    return replace(base, **options)  # type: ignore[arg-type]


def make_jail(clock: FakeClock | None = None, **options: object) -> Jail:
    return Jail(settings(**options), clock=clock or FakeClock(T0), random=random.Random(0))


def fail(host: str, at: float | None, line: str = "") -> Failure:
    return Failure(host, at, 0, lines=(line or f"Failed password from {host}",))


def feed(jail: Jail, host: str, times: list[float]) -> list[Ban]:
    return [ban for at in times if (ban := jail.add_failure(fail(host, at))) is not None]


IP = ipaddress.ip_address

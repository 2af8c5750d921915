"""The daemon's Prometheus endpoint (``metrics = 127.0.0.1:9191`` in ``gardien.conf``).

Nothing is counted here: the daemon keeps its counters on each :class:`JailRuntime` (lines read
and time spent matching, added once per chunk) and each :class:`~gardien.jails.Jail` (failures,
bans). At scrape time, :class:`DaemonCollector` asks the event loop for a snapshot of them, so
the HTTP thread never walks dictionaries the loop is changing, and jails replaced by a reload
show up at the next scrape. A loop too busy to answer within :data:`SNAPSHOT_TIMEOUT` gives
``gardien_up 0`` rather than a hung scrape.

The endpoint listens on loopback only (see :func:`gardien.config.daemon.parse_metrics_address`)
and has its own registry: no other collector of the process leaks into it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from gardien._version import __version__
from gardien.errors import ConfigError

if TYPE_CHECKING:
    from gardien.daemon.interface import DaemonControl

__all__ = ["SNAPSHOT_TIMEOUT", "DaemonCollector", "JailSample", "MetricsEndpoint", "jail_samples"]

logger = logging.getLogger("gardien.daemon")
SNAPSHOT_TIMEOUT = 5.0  # seconds a scrape waits for the event loop (Prometheus waits 10 s)
T = TypeVar("T")


@dataclass(frozen=True)
class JailSample:
    """The numbers of one jail at one instant, as the endpoint shows them."""

    jail: str
    lines_read: int
    matching_seconds: float
    over_budget: int  # lines given up on after their step budget (missed)
    failures: int  # counted towards a ban
    ignored: int  # dropped: ignoreip, ignoreself, ignorecommand...
    invalid: int  # dropped: the host is not an address
    failing: int  # addresses with failures within findtime
    bans: int  # made or restored since the jail started
    banned: int  # banned now
    files: int  # log files followed


def jail_samples(daemon: DaemonControl) -> list[JailSample]:
    """A snapshot of every running jail. Call it in the event loop's thread."""
    now = daemon.clock.now()
    samples: list[JailSample] = []
    for runtime in list(daemon.jails.values()):
        status = runtime.jail.status(now)
        samples.append(
            JailSample(
                jail=runtime.name,
                lines_read=runtime.lines_read,
                matching_seconds=runtime.matching_seconds,
                over_budget=runtime.over_budget,
                failures=status.total_failed,
                ignored=status.ignored,
                invalid=status.invalid,
                failing=status.currently_failed,
                bans=status.total_banned,
                banned=status.currently_banned,
                files=daemon.log_sources(runtime.name),
            )
        )
    return samples


def _on_loop(loop: asyncio.AbstractEventLoop, function: Callable[[], T], timeout: float) -> T:
    """Run ``function`` in ``loop``'s thread, between two of its steps, and wait for it."""
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        if not result.set_running_or_notify_cancel():
            return  # the scrape gave up waiting
        try:
            result.set_result(function())
        except Exception as exc:  # handed over to the waiting thread
            result.set_exception(exc)

    loop.call_soon_threadsafe(call)
    try:
        return result.result(timeout)
    finally:
        result.cancel()


# name (without _total for counters), help, kind; per jail, in this order
_JAIL_METRICS: tuple[tuple[str, str, str, Callable[[JailSample], float]], ...] = (
    ("gardien_lines_read", "Log lines (or journal entries) read.", "counter",
     lambda s: s.lines_read),
    ("gardien_matching_seconds", "Time spent matching lines and counting failures.", "counter",
     lambda s: s.matching_seconds),
    ("gardien_lines_over_budget", "Lines given up on after their step budget (missed).",
     "counter", lambda s: s.over_budget),
    ("gardien_failures", "Failures counted towards a ban.", "counter", lambda s: s.failures),
    ("gardien_failures_ignored", "Failures dropped: the address is ignored (ignoreip...).",
     "counter", lambda s: s.ignored),
    ("gardien_failures_invalid", "Failures dropped: the host is not an IP address.", "counter",
     lambda s: s.invalid),
    ("gardien_failing", "Addresses with failures within findtime, not banned.", "gauge",
     lambda s: s.failing),
    ("gardien_bans", "Bans made (or restored at start) since the jail started.", "counter",
     lambda s: s.bans),
    ("gardien_banned", "Addresses banned now.", "gauge", lambda s: s.banned),
    ("gardien_log_sources", "Log files (or journals) followed.", "gauge", lambda s: s.files),
)  # fmt: skip


class DaemonCollector:
    """A Prometheus collector that reads the daemon's jails at each scrape.

    Per jail (label ``jail``): ``gardien_lines_read_total``, ``gardien_matching_seconds_total``,
    ``gardien_lines_over_budget_total``,
    ``gardien_failures_total``, ``gardien_failures_ignored_total``,
    ``gardien_failures_invalid_total``, ``gardien_failing``, ``gardien_bans_total``,
    ``gardien_banned``, ``gardien_log_sources``; and ``gardien_up``, ``gardien_jails``,
    ``gardien_build_info``. Counters start again from 0 when a reload replaces a jail.
    """

    def __init__(
        self, samples: Callable[[], Sequence[JailSample]], *, version: str = __version__
    ) -> None:
        self._samples = samples
        self._version = version

    def _families(
        self,
    ) -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        InfoMetricFamily,
        list[CounterMetricFamily | GaugeMetricFamily],
    ]:
        per_jail: list[CounterMetricFamily | GaugeMetricFamily] = []
        for name, documentation, kind, _value in _JAIL_METRICS:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            per_jail.append(family(name, documentation, labels=["jail"]))
        return (
            GaugeMetricFamily("gardien_up", "1 if the daemon answered this scrape in time."),
            GaugeMetricFamily("gardien_jails", "Jails running."),
            InfoMetricFamily("gardien_build", "The version of gardien."),
            per_jail,
        )

    def describe(self) -> list[Metric]:
        """The metric names, without values (registering must not wait for the loop)."""
        up, jails, build, per_jail = self._families()
        return [up, jails, build, *per_jail]

    def collect(self) -> Iterator[Metric]:
        """The metrics now (called by prometheus_client at each scrape)."""
        up, jails, build, per_jail = self._families()
        build.add_metric([], {"version": self._version})
        samples: Sequence[JailSample] | None = None
        try:
            samples = self._samples()
        except TimeoutError:
            logger.warning("metrics: the event loop did not answer within %s s", SNAPSHOT_TIMEOUT)
        except Exception:  # the scrape fails softly (gardien_up 0), the reason goes to the log
            logger.exception("metrics: no snapshot of the jails")
        up.add_metric([], 0 if samples is None else 1)
        yield up
        yield build
        if samples is None:
            return
        jails.add_metric([], len(samples))
        yield jails
        for family, (_name, _documentation, _kind, value) in zip(
            per_jail, _JAIL_METRICS, strict=True
        ):
            for sample in samples:
                family.add_metric([sample.jail], value(sample))
            yield family


class MetricsEndpoint:
    """The HTTP endpoint (``GET /metrics``), served by a thread of prometheus_client."""

    def __init__(self, daemon: DaemonControl, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.registry = CollectorRegistry()
        self.registry.register(
            DaemonCollector(lambda: _on_loop(loop, lambda: jail_samples(daemon), SNAPSHOT_TIMEOUT))
        )
        ProcessCollector(registry=self.registry)  # CPU, memory, open files, start time
        self.host, self.port = host, port
        self._server: WSGIServer | None = None

    def start(self) -> None:
        """Listen; a :class:`ConfigError` if the address is taken or is not loopback."""
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            server, _thread = start_http_server(self.port, self.host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {where}: {exc.strerror or exc}",
                section="Definition",
                option="metrics",
            ) from None
        self._server = server
        # a name (localhost) could resolve elsewhere through /etc/hosts: check what was bound
        bound = ipaddress.ip_address(str(server.server_address[0]).split("%")[0])
        if not bound.is_loopback:
            self.stop()
            raise ConfigError(
                f"{self.host} resolves to {bound}, which is not a loopback address",
                section="Definition",
                option="metrics",
            )
        logger.info("metrics on http://%s/metrics", where)

    def stop(self) -> None:
        """Stop listening (waits for the serving thread; blocking, up to half a second)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

"""gardien: intrusion prevention for servers on the Internet.

The public API; everything not listed in ``__all__`` is internal and may change.
"""

from gardien.clock import Clock, FakeClock, SystemClock
from gardien.config.daemon import DaemonSettings, load_daemon_settings
from gardien.config.filters import FilterSpec, load_filter, load_filter_file
from gardien.config.jails import BanTimeIncrement, JailSettings, load_jails
from gardien.config.reader import ConfigSet
from gardien.config.values import Spec, parse_bool, parse_duration, parse_spec
from gardien.errors import (
    BackendError,
    ConfigError,
    ControlError,
    FilterError,
    GardienError,
    StoreError,
)
from gardien.matching.filter import Filter, LineMatcher, LineResult
from gardien.model import Failure, parse_address

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BanTimeIncrement",
    "Clock",
    "ConfigError",
    "ConfigSet",
    "ControlError",
    "DaemonSettings",
    "Failure",
    "FakeClock",
    "Filter",
    "FilterError",
    "FilterSpec",
    "GardienError",
    "JailSettings",
    "LineMatcher",
    "LineResult",
    "Spec",
    "StoreError",
    "SystemClock",
    "__version__",
    "load_daemon_settings",
    "load_filter",
    "load_filter_file",
    "load_jails",
    "parse_address",
    "parse_bool",
    "parse_duration",
    "parse_spec",
]

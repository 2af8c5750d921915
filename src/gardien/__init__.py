"""gardien: intrusion prevention for servers on the Internet.

The public API; everything not listed in ``__all__`` is internal and may change.
"""

from gardien.clock import Clock, FakeClock, SystemClock
from gardien.config.filters import FilterSpec, load_filter, load_filter_file
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
    "Clock",
    "ConfigError",
    "ConfigSet",
    "ControlError",
    "Failure",
    "FakeClock",
    "Filter",
    "FilterError",
    "FilterSpec",
    "GardienError",
    "LineMatcher",
    "LineResult",
    "Spec",
    "StoreError",
    "SystemClock",
    "__version__",
    "load_filter",
    "load_filter_file",
    "parse_address",
    "parse_bool",
    "parse_duration",
    "parse_spec",
]

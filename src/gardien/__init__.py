"""gardien: intrusion prevention for servers on the Internet.

The public API; everything not listed in ``__all__`` is internal and may change.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from gardien._version import __version__

if _TYPE_CHECKING:  # for type checkers; at run time each name is imported when first used
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

#: where each name of the public API lives: ``import gardien`` imports none of them (the
#: command line would pay for the configuration reader and the matcher before it needs them)
_LOCATIONS = {
    "BackendError": "gardien.errors",
    "BanTimeIncrement": "gardien.config.jails",
    "Clock": "gardien.clock",
    "ConfigError": "gardien.errors",
    "ConfigSet": "gardien.config.reader",
    "ControlError": "gardien.errors",
    "DaemonSettings": "gardien.config.daemon",
    "Failure": "gardien.model",
    "FakeClock": "gardien.clock",
    "Filter": "gardien.matching.filter",
    "FilterError": "gardien.errors",
    "FilterSpec": "gardien.config.filters",
    "GardienError": "gardien.errors",
    "JailSettings": "gardien.config.jails",
    "LineMatcher": "gardien.matching.filter",
    "LineResult": "gardien.matching.filter",
    "Spec": "gardien.config.values",
    "StoreError": "gardien.errors",
    "SystemClock": "gardien.clock",
    "load_daemon_settings": "gardien.config.daemon",
    "load_filter": "gardien.config.filters",
    "load_filter_file": "gardien.config.filters",
    "load_jails": "gardien.config.jails",
    "parse_address": "gardien.model",
    "parse_bool": "gardien.config.values",
    "parse_duration": "gardien.config.values",
    "parse_spec": "gardien.config.values",
}


def __getattr__(name: str) -> _Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'gardien' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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

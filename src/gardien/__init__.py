"""gardien: intrusion prevention for servers on the Internet.

The public API; everything not listed in ``__all__`` is internal and may change.

Importing ``gardien`` loads only its version: each name is imported from its module the first
time it is asked for (PEP 562), so a program pays only for what it uses. (Inside gardien,
modules import from the module that defines a name, never from here.)
"""

import typing as _typing

from gardien._version import __version__

if _typing.TYPE_CHECKING:
    from gardien.clock import Clock, FakeClock, SystemClock
    from gardien.config.daemon import load_daemon_settings
    from gardien.config.filters import load_filter, load_filter_file
    from gardien.config.jails import load_jails
    from gardien.config.reader import ConfigSet
    from gardien.config.values import parse_bool, parse_duration, parse_spec
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
    from gardien.settings import (
        BanTimeIncrement,
        DaemonSettings,
        FilterSpec,
        JailSettings,
        Spec,
    )

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

#: the module each public name is defined in
_MODULES = {
    "BackendError": "gardien.errors",
    "BanTimeIncrement": "gardien.settings",
    "Clock": "gardien.clock",
    "ConfigError": "gardien.errors",
    "ConfigSet": "gardien.config.reader",
    "ControlError": "gardien.errors",
    "DaemonSettings": "gardien.settings",
    "Failure": "gardien.model",
    "FakeClock": "gardien.clock",
    "Filter": "gardien.matching.filter",
    "FilterError": "gardien.errors",
    "FilterSpec": "gardien.settings",
    "GardienError": "gardien.errors",
    "JailSettings": "gardien.settings",
    "LineMatcher": "gardien.matching.filter",
    "LineResult": "gardien.matching.filter",
    "Spec": "gardien.settings",
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


def __getattr__(name: str) -> _typing.Any:
    """``gardien.NAME``: the public name, imported from its module on first use."""
    module_name = _MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'gardien' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # asked for once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

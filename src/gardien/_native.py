"""Where the native core (the ``gardien_core`` extension, Rust, in ``native/``) is found.

The core is optional: ``pip install ./native`` needs a Rust compiler. Without it, or with
``GARDIEN_NO_NATIVE`` set to anything but ``0`` or nothing, :func:`core` is ``None`` and the
pure-Python reference does everything: the matching engine for
:mod:`gardien.matching.native`, cysystemd's reader for :mod:`gardien.sources.journal`.
This module imports nothing of gardien, so that every layer may ask.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["core", "reset_for_tests"]

#: the loaded core (``None``: not there, or turned off), once looked for
_state: dict[str, ModuleType | None] = {}


def core() -> ModuleType | None:
    """The ``gardien_core`` module, or ``None`` when it is not installed or turned off."""
    if "core" not in _state:
        found: ModuleType | None = None
        if os.environ.get("GARDIEN_NO_NATIVE", "0") in ("", "0"):
            try:
                import gardien_core  # type: ignore[import-untyped]

                found = gardien_core
            except ImportError:
                found = None
        _state["core"] = found
    return _state["core"]


def reset_for_tests(module: ModuleType | bool | None = True) -> None:
    """Look for the core again (``True``), or use ``module`` (``None``: no core)."""
    _state.clear()
    if module is not True:
        _state["core"] = module if isinstance(module, ModuleType) else None

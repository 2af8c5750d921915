"""The public API is what ``gardien.__all__`` says, no more, no less."""

from __future__ import annotations

import gardien


def test_all_lists_exactly_the_public_names() -> None:
    # dir(): the names are imported when first asked for (PEP 562), so vars() may lack some
    public = {name for name in dir(gardien) if not name.startswith("_")}
    # submodules imported as a side effect of importing the package are not API
    modules = {name for name in public if type(getattr(gardien, name)).__name__ == "module"}
    assert sorted(public - modules) == sorted(set(gardien.__all__) - {"__version__"})
    for name in gardien.__all__:
        assert getattr(gardien, name) is not None


def test_every_public_callable_is_documented() -> None:
    for name in gardien.__all__:
        value = getattr(gardien, name)
        if callable(value):
            assert value.__doc__, f"gardien.{name} has no docstring"

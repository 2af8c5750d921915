"""The public API is what ``gardien.__all__`` says, no more, no less."""

from __future__ import annotations

import gardien


def test_all_lists_exactly_the_public_names() -> None:
    # the names are imported when first used (PEP 562): dir() lists them all, and nothing
    # else public is ever there
    assert dir(gardien) == sorted(gardien.__all__)
    # submodules imported as a side effect of importing the package are not API
    public = {
        name
        for name, value in vars(gardien).items()
        if not name.startswith("_") and type(value).__name__ != "module"
    }
    assert public <= set(gardien.__all__)
    for name in gardien.__all__:
        getattr(gardien, name)
    public = {name for name in vars(gardien) if not name.startswith("_")}
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


def test_importing_gardien_imports_nothing_but_its_version() -> None:
    import subprocess
    import sys

    code = "import gardien, sys; print(sorted(m for m in sys.modules if m.startswith('gardien')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['gardien', 'gardien._version']"

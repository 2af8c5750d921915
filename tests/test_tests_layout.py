"""The test suite's own layout: tests mirror the packages, and share through ``tests/support``.

Test modules live in a directory named after the part of gardien they test (``tests/jails/``
for ``gardien.jails``), or after the kind of proof they are (``services``, ``filters``,
``packaging``); a handful of project-wide checks stay at the top. What tests share (fixtures,
the daemon runner, the network lab, the hub database...) is in ``tests/support``, registered
through ``pytest_plugins`` in ``conftest.py``: a test module never imports another.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import REPO

TESTS = REPO / "tests"
PACKAGE = REPO / "src" / "gardien"
#: directories that are not a package of gardien: what kind of proof their tests are
KINDS = {
    "filters": "the filter library (data/filter.d) against its samples and fail2ban's",
    "services": "the filters against real services attacked by real clients",
    "packaging": "the Debian package and its manual pages",
    "support": "what the tests share (no tests)",
}
#: project-wide checks, at the top
TOP = {"test_docs.py", "test_layers.py", "test_public_api.py", "test_retries.py",
       "test_tests_layout.py", "test_version.py"}  # fmt: skip


def all_test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_no_test_module_imports_another_or_conftest() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in [*all_test_modules(), *(TESTS / "support").glob("*.py")]
        for line, module in imported_modules(path)
        if module.split(".")[0] in {"conftest", "tests"}
        or module.split(".")[-1].startswith("test_")
    ]
    assert not wrong, "shared code belongs in tests/support:\n" + "\n".join(wrong)


def test_every_test_module_sits_in_the_directory_of_what_it_tests() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    misplaced = []
    for path in all_test_modules():
        where = path.relative_to(TESTS).parts
        if len(where) == 1:
            if path.name not in TOP:
                misplaced.append(f"{path.relative_to(REPO)}: at the top of tests/")
        elif where[0] not in packages | set(KINDS) or where[0] == "support":
            misplaced.append(f"{path.relative_to(REPO)}: {where[0]}/ is no package of gardien")
    assert not misplaced, "\n".join(misplaced)


def test_each_package_of_gardien_with_tests_has_its_directory() -> None:
    """The packages whose tests the issue of this layout named all have a directory."""
    for name in ("matching", "config", "jails", "sources", "actions", "backends", "store",
                 "daemon", "cli", "hub"):  # fmt: skip
        assert list((TESTS / name).glob("test_*.py")), f"tests/{name}/ has no tests"


def test_shared_helpers_are_defined_once_in_support() -> None:
    """Helpers once written in several test modules (free_port, the gardien runner, the
    daemon runner) are defined only in tests/support."""
    shared = {"free_port", "gardien", "Running", "eventually", "require"}
    defined: dict[str, list[str]] = {}
    for path in [*all_test_modules(), *(TESTS / "support").glob("*.py")]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in shared:
                defined.setdefault(node.name, []).append(str(path.relative_to(TESTS)))
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert not twice, twice
    assert all(where[0].startswith("support/") for where in defined.values()), defined

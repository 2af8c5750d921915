"""gardien's packages depend on each other in one direction (DESIGN.md, "Boundaries").

From the bottom up: the values everything shares (``model``, ``errors``, ``clock``,
``settings``, ``_version``); the domain (``matching``, ``jails``, ``sources``, ``store``,
``backends``), which never reaches up to how it is configured or driven (``config``,
``actions``, ``daemon``, ``cli``, the hub's server side); the CLI, which nothing else imports.
The source is read with :mod:`ast`: every ``import`` counts, also those inside a function
(imported later, still a dependency) or under ``TYPE_CHECKING``. A failure names the module,
its line and what it imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "gardien"

#: the shared values at the bottom: they import nothing of gardien but each other
FOUNDATION = frozenset(
    {"gardien.model", "gardien.errors", "gardien.clock", "gardien.settings", "gardien._version"}
)
#: the domain: pure or I/O-only packages, usable without a configuration or a daemon
DOMAIN = ("matching", "jails", "sources", "store", "backends")
#: what drives the domain, which the domain must not know
ABOVE_DOMAIN = ("config", "actions", "daemon", "cli")
#: the agent's side of the hub, which the hub feed source and the hub action may use
HUB_AGENT_SIDE = frozenset({"gardien.hub", "gardien.hub.client", "gardien.hub.model"})
#: what the public package may import when it is imported (the rest comes on demand);
#: importlib is part of Python's import machinery, loaded at start-up anyway
ROOT_IMPORTS = frozenset({"gardien._version", "typing", "importlib"})

#: (rule, importing module, imported module) -> why it is allowed anyway
ALLOWED = {
    ("cli", "gardien.__main__", "gardien.cli"): "`python -m gardien` is the CLI's entry point",
}


@dataclass(frozen=True)
class Import:
    """One ``import`` statement's target, as seen in ``module``'s source."""

    module: str  # the importing module: gardien.jails.jail
    target: str  # the module imported: gardien.config.jails (for any module, not just ours)
    path: Path
    line: int
    at_import_time: bool  # module level and not under TYPE_CHECKING: runs when module loads
    from_root: tuple[str, ...] = ()  # names taken from the package root (`from gardien import X`)

    def __str__(self) -> str:
        where = f"{self.path.relative_to(SRC.parent)}:{self.line}"
        return f"{self.module} ({where}) imports {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_submodule(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    # TYPE_CHECKING, typing.TYPE_CHECKING, or imported under a private name (_TYPE_CHECKING)
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
    return name.lstrip("_") == "TYPE_CHECKING"


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path) -> None:
        self.module = module
        self.path = path
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.deferred = 0  # inside a function, or under TYPE_CHECKING
        self.imports: list[Import] = []

    def _add(self, target: str, node: ast.stmt, from_root: tuple[str, ...] = ()) -> None:
        self.imports.append(
            Import(self.module, target, self.path, node.lineno, not self.deferred, from_root)
        )

    def _deferred(self, node: ast.AST) -> None:
        self.deferred += 1
        self.generic_visit(node)
        self.deferred -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _deferred

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.deferred += 1
        for child in node.body:
            self.visit(child)
        self.deferred -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        if module != "gardien":
            self._add(module, node)
            return
        # `from gardien import X`: a submodule, or a name of the public package
        names = tuple(
            alias.name for alias in node.names if not _is_submodule(f"gardien.{alias.name}")
        )
        for alias in node.names:
            if _is_submodule(f"gardien.{alias.name}"):
                self._add(f"gardien.{alias.name}", node)
        if names:
            self._add("gardien", node, names)


@cache
def imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        collector = _Collector(_module_name(path), path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found.extend(collector.imports)
    return tuple(found)


def _ours(name: str) -> bool:
    return name == "gardien" or name.startswith("gardien.")


def _in(name: str, package: str) -> bool:
    """Whether module ``name`` is gardien's ``package`` or inside it."""
    return name == f"gardien.{package}" or name.startswith(f"gardien.{package}.")


def _concrete_backend_or_sqlite(name: str) -> bool:
    return (
        _in(name, "backends") and name not in ("gardien.backends", "gardien.backends.base")
    ) or (_in(name, "store.sqlite"))


def _loaded_at_import_time(module: str) -> set[str]:
    """gardien's modules that importing ``module`` runs: its imports at module level, the
    packages above each (their ``__init__`` runs first), and so on."""
    direct: dict[str, set[str]] = {}
    for item in imports():
        if item.at_import_time and _ours(item.target):
            direct.setdefault(item.module, set()).add(item.target)
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:end]) for end in range(1, len(parts)))
        todo.extend(direct.get(name, ()))
    seen.discard(module)
    return seen


def _violations(rule: str) -> Iterator[str]:
    for item in imports():
        if (rule, item.module, item.target) in ALLOWED:
            continue
        source, target = item.module, item.target
        if rule == "foundation" and source in FOUNDATION:
            if _ours(target) and target not in FOUNDATION:
                yield f"{item}: {source} is a foundation module; it may import only {sorted(FOUNDATION)}"
        elif rule == "domain" and any(_in(source, package) for package in DOMAIN):
            above = [package for package in ABOVE_DOMAIN if _in(target, package)]
            if above or (_in(target, "hub") and target not in HUB_AGENT_SIDE):
                what = above[0] if above else "the hub's server side"
                yield f"{item}: the domain ({', '.join(DOMAIN)}) must not depend on {what}"
            elif _in(source, "store") and _in(target, "sources"):
                yield f"{item}: the store keeps checkpoints; it must not depend on the sources"
        elif rule == "jails" and _in(source, "jails") and _concrete_backend_or_sqlite(target):
            yield f"{item}: jails know the Firewall and BanStore protocols, not an implementation"
        elif rule == "cli" and _in(target, "cli") and not _in(source, "cli"):
            yield f"{item}: only the CLI imports the CLI"
        elif rule == "root" and item.from_root:
            yield (
                f"{item} ({', '.join(item.from_root)}): inside gardien, import a name from the "
                "module that defines it, not from the public package"
            )
        elif (
            rule == "root"
            and source == "gardien"
            and item.at_import_time
            and target not in ROOT_IMPORTS
        ):
            yield f"{item}: the public package imports {sorted(ROOT_IMPORTS)} only, the rest lazily"
    if rule == "jails":
        for module in sorted({item.module for item in imports() if _in(item.module, "jails")}):
            for loaded in sorted(
                filter(_concrete_backend_or_sqlite, _loaded_at_import_time(module))
            ):
                yield f"importing {module} loads {loaded}: jails must not need an implementation"


RULES = ("foundation", "domain", "jails", "cli", "root")


def test_the_source_is_read() -> None:
    modules = {item.module for item in imports()}
    assert {"gardien", "gardien.jails.jail", "gardien.store.base", "gardien.model"} <= modules
    assert any(item.target == "gardien.settings" for item in imports())


@pytest.mark.parametrize("rule", RULES)
def test_imports_point_one_way(rule: str) -> None:
    problems = sorted(set(_violations(rule)))
    assert not problems, "\n".join(problems)


def test_every_allowed_exception_is_still_needed() -> None:
    used = {(item.module, item.target) for item in imports()}
    stale = [key for key in ALLOWED if key[1:] not in used]
    assert not stale, f"allowed exceptions no code needs any more: {stale}"


def test_the_root_imports_lazily_what_it_exports() -> None:
    """``gardien/__init__``: the lazy map, the TYPE_CHECKING imports (what mypy sees) and
    ``__all__`` name the same things, from the same modules."""
    import gardien

    lazy = gardien._LOCATIONS
    assert set(lazy) == set(gardien.__all__) - {"__version__"}
    checked: dict[str, str] = {}
    for item in ast.walk(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))):
        if isinstance(item, ast.If) and _is_type_checking(item.test):
            for statement in item.body:
                assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
                checked.update((alias.name, statement.module or "") for alias in statement.names)
    assert checked == lazy
    for name, module in lazy.items():
        defined = sys.modules.get(module) or __import__(module, fromlist=[name])
        assert getattr(defined, name) is getattr(gardien, name), name


def _loaded_by(code: str) -> list[str]:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\n{code}\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'gardien')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.split()


def test_a_public_name_loads_its_module_only() -> None:
    loaded = _loaded_by("import gardien; gardien.JailSettings")
    assert "gardien.settings" in loaded
    assert not [name for name in loaded if _in(name, "config") or _in(name, "matching")], loaded

"""Read a fail2ban-style configuration resource: ``.conf`` files, their ``.local`` overrides,
``.d/`` drop-in directories and ``[INCLUDES] before/after``, merged in fail2ban's order, with
``%(name)s`` interpolation.

A resource is a base name under the configuration directory, e.g. ``jail`` or ``filter.d/sshd``.
Its files are read in this order, later ones overriding earlier ones option by option::

    NAME.conf, NAME.d/*.conf (sorted), NAME.local, NAME.d/*.local (sorted)

and every file (included ones too) pulls in its own ``.local`` right after itself, its
``[INCLUDES] before`` files before itself and ``after`` files after. When a later file overrides an
option, the value it replaces stays reachable as ``%(known/option)s``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gardien.config.ini import IniFile, Located, parse_ini
from gardien.errors import ConfigError

__all__ = ["ConfigSet", "resource_files"]

INCLUDES_SECTION = "INCLUDES"
MAX_INTERPOLATION_DEPTH = 10
_REFERENCE_RE = re.compile(r"%\(([^)]*)\)s")


def resource_files(basedir: str | os.PathLike[str], name: str) -> list[str]:
    """The files of resource ``name`` under ``basedir`` that exist, in reading order."""
    base = os.path.join(os.fspath(basedir), name)
    candidates = [base + ".conf"]
    candidates += sorted(str(p) for p in Path(base + ".d").glob("*.conf"))
    candidates.append(base + ".local")
    candidates += sorted(str(p) for p in Path(base + ".d").glob("*.local"))
    return [c for c in candidates if os.path.isfile(c)]


@dataclass
class ConfigSet:
    """Merged sections of one or more files, with interpolation and the ``known/`` history."""

    defaults: dict[str, Located] = field(default_factory=dict)
    sections: dict[str, dict[str, Located]] = field(default_factory=dict)
    known: dict[str, dict[str, Located]] = field(default_factory=dict)
    section_origins: dict[str, Located] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    # ---- reading -------------------------------------------------------------------------
    @classmethod
    def read_resource(cls, basedir: str | os.PathLike[str], name: str) -> ConfigSet:
        """Read resource ``name`` (e.g. ``"jail"``) from ``basedir``; empty if no file exists."""
        return cls.read_files(resource_files(basedir, name))

    @classmethod
    def read_files(cls, files: Iterable[str]) -> ConfigSet:
        """Read ``files`` with their includes and ``.local`` companions, in order."""
        result = cls()
        cache: dict[str, IniFile] = {}
        ordered: list[str] = []
        for path in _with_locals(list(files)):
            for included in _expand_includes(path, [], cache):
                if included not in ordered:
                    ordered.append(included)
        for path in ordered:
            result._merge(_load(path, cache))
        return result

    def _merge(self, ini: IniFile) -> None:
        self.files.append(ini.path)
        self.defaults.update(ini.defaults)
        for name, options in ini.sections.items():
            existing = self.sections.get(name)
            if existing is None:
                self.sections[name] = dict(options)
                self.section_origins[name] = Located(name, ini.path, ini.section_lines.get(name, 0))
                continue
            history = self.known.setdefault(name, {})
            for option in options:
                if option in existing:
                    history[option] = existing[option]
            existing.update(options)

    # ---- queries -------------------------------------------------------------------------
    def has_section(self, section: str) -> bool:
        return section in self.sections

    def options(self, section: str, *, with_defaults: bool = False) -> list[str]:
        """Option names of ``section`` in file order (and the ``[DEFAULT]`` ones if asked)."""
        names = list(self.sections.get(section, {}))
        if with_defaults:
            names += [n for n in self.defaults if n not in names]
        return names

    def raw(self, section: str, option: str) -> Located | None:
        """The uninterpolated value of ``option`` in ``section`` (or ``[DEFAULT]``), if any."""
        option = option.lower()
        found = self.sections.get(section, {}).get(option)
        if found is None:
            found = self.defaults.get(option)
        return found

    def where(self, section: str) -> tuple[str | None, int | None]:
        """The file and line where ``section`` was first declared, if known."""
        origin = self.section_origins.get(section)
        return (origin.path, origin.line) if origin else (None, None)

    def get(
        self,
        section: str,
        option: str,
        variables: Mapping[str, str] | None = None,
    ) -> str | None:
        """The interpolated value of ``option`` in ``section``; ``None`` when it is not set.

        ``variables`` take precedence over the section's own options, as fail2ban's jail and
        bracket parameters do. ``option`` may be ``section/option``, ``known/option`` or
        ``default/option``.
        """
        variables = _lower_keys(variables)
        scope, slash, name = option.partition("/")
        if slash and scope.lower() not in ("known", "default") and scope in self.sections:
            # 'section/option' is read as that section's own option, in its own context
            located = self._lookup(scope, name, variables)
            if located is not None:
                return self.interpolate(scope, located, variables)
        located = self._lookup(section, option, variables)
        if located is None:
            return None
        return self.interpolate(section, located, variables)

    def interpolate(
        self,
        section: str,
        located: Located,
        variables: Mapping[str, str] | None = None,
    ) -> str:
        """Expand ``%(name)s`` references in ``located.value`` as seen from ``section``."""
        return self._interpolate(section, located.value, located, _lower_keys(variables), 0)

    def _lookup(self, section: str, name: str, variables: Mapping[str, str]) -> Located | None:
        """Find option ``name`` (``option``, ``section/option``, ``known/option``...) as seen
        from ``section``: option names are case-insensitive, section names are not."""
        scope, slash, option = name.rpartition("/")
        name = f"{scope}/{option.lower()}" if slash else name.lower()
        if name in variables:
            return Located(variables[name], "<parameters>", 0)
        if name == "__name__":
            return Located(section, "<section name>", 0)
        if "/" in name:
            scope, _, option = name.partition("/")
            scope_lower = scope.lower()
            if scope_lower == "known":
                found = self.known.get(section, {}).get(option)
                return found if found is not None else self.defaults.get(option)
            if scope_lower == "default":
                return self.defaults.get(option)
            if scope not in self.sections:
                return None
            found = self.sections[scope].get(option)
            return found if found is not None else self.defaults.get(option)
        found = self.sections.get(section, {}).get(name)
        if found is None:
            found = self.defaults.get(name)
        return found

    def _interpolate(
        self,
        section: str,
        text: str,
        origin: Located,
        variables: Mapping[str, str],
        depth: int,
    ) -> str:
        if "%" not in text:
            return text
        if depth > MAX_INTERPOLATION_DEPTH:
            raise ConfigError(
                f"%(...)s references nest deeper than {MAX_INTERPOLATION_DEPTH} levels "
                "(do two options refer to each other?)",
                path=origin.path,
                line=origin.line,
                section=section,
            )
        out: list[str] = []
        pos = 0
        while True:
            percent = text.find("%", pos)
            if percent < 0:
                out.append(text[pos:])
                break
            out.append(text[pos:percent])
            following = text[percent + 1 : percent + 2]
            if following == "%":
                out.append("%")
                pos = percent + 2
                continue
            reference = _REFERENCE_RE.match(text, percent)
            if following != "(" or reference is None or not reference.group(1):
                found = text[percent : percent + 12]
                raise ConfigError(
                    f"'%' must be followed by '%' or '(name)s', found {found!r}"
                    " (write '%%' for a literal percent sign)",
                    path=origin.path,
                    line=origin.line,
                    section=section,
                )
            target = self._lookup(section, reference.group(1), variables)
            if target is None:
                raise ConfigError(
                    f"%({reference.group(1)})s refers to an option that is not defined "
                    f"in [{section}] nor in [DEFAULT]",
                    path=origin.path,
                    line=origin.line,
                    section=section,
                )
            out.append(self._interpolate(section, target.value, origin, variables, depth + 1))
            pos = reference.end()
        return "".join(out)


def _lower_keys(variables: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (variables or {}).items()}


def _with_locals(files: list[str]) -> list[str]:
    out: list[str] = []
    for name in files:
        out.append(name)
        local = os.path.splitext(name)[0] + ".local"
        if local not in files and local not in out and os.path.isfile(local):
            out.append(local)
    return out


def _load(path: str, cache: dict[str, IniFile]) -> IniFile:
    cached = cache.get(path)
    if cached is not None:
        return cached
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (byte {exc.start})", path=path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=path) from exc
    parsed = parse_ini(text, path)
    cache[path] = parsed
    return parsed


def _expand_includes(path: str, seen: list[str], cache: dict[str, IniFile]) -> list[str]:
    if not os.path.isfile(path):
        return []
    ini = _load(path, cache)
    includes = ini.sections.get(INCLUDES_SECTION, {})
    before: list[str] = []
    after: list[str] = []
    directory = os.path.dirname(path)
    for key, bucket in (("before", before), ("after", after)):
        located = includes.get(key)
        if located is None:
            continue
        for item in located.value.split("\n"):
            name = item.strip()
            if not name:
                continue
            target = name if os.path.isabs(name) else os.path.join(directory, name)
            if target in seen or target == path:
                continue
            for included in _with_locals([target]):
                bucket.extend(_expand_includes(included, [*seen, path], cache))
    return [*before, path, *after]

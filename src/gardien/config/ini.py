"""Parse one INI file the way fail2ban's configuration files are written, keeping line numbers.

The dialect is Python's ``configparser`` as fail2ban configures it: ``[section]`` headers,
``option = value`` or ``option: value``, option names folded to lower case, values continued on
more-indented lines (blank lines inside a value kept, trailing ones dropped), full-line comments
starting with ``#`` or ``;`` (also inside a continued value), inline comments after `` ;``.
A section name like ``Init?family=inet6`` is a conditional section: its options are stored with
the ``?family=inet6`` suffix in section ``Init``.

Unlike ``configparser`` every value remembers the file and line it came from, so that errors found
much later (a bad regex, a missing option) can still point at ``file:line``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gardien.errors import ConfigError

__all__ = ["DEFAULT_SECTION", "IniFile", "Located", "parse_ini"]

DEFAULT_SECTION = "DEFAULT"

_SECTION_RE = re.compile(r"\[(?P<name>.+)\]")
_OPTION_RE = re.compile(r"(?P<name>.*?)\s*[=:]\s*(?P<value>.*)$")
_CONDITIONAL_RE = re.compile(r"^(\w+)(\?.+)$")
_INLINE_COMMENT_RE = re.compile(r"(?<=\s);")


@dataclass(frozen=True)
class Located:
    """A configuration value with the place it was written."""

    value: str
    path: str
    line: int
    #: the file line of each line of ``value`` (for values continued over several lines)
    line_numbers: tuple[int, ...] = ()

    def line_of(self, text: str) -> int:
        """The file line holding ``text`` as one of this value's lines, else the first line."""
        wanted = text.strip()
        for number, line in zip(self.line_numbers, self.value.split("\n"), strict=False):
            if line.strip() == wanted:
                return number
        return self.line

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class IniFile:
    """The sections of one file, in file order; ``DEFAULT`` is kept apart as ``defaults``."""

    path: str
    defaults: dict[str, Located] = field(default_factory=dict)
    sections: dict[str, dict[str, Located]] = field(default_factory=dict)
    section_lines: dict[str, int] = field(default_factory=dict)


def parse_ini(text: str, path: str) -> IniFile:
    """Parse ``text`` (the content of ``path``) into an :class:`IniFile`.

    Raises :class:`ConfigError` with ``path:line`` for a line that is neither a section header,
    an option, a continuation nor a comment, for an option outside any section, and for an option
    or section given twice in the same file.
    """
    result = IniFile(path)
    current: dict[str, Located] | None = None
    current_name: str | None = None
    seen_sections: set[str] = set()
    # The option being read: its name, the line it starts on, its indentation, its value lines.
    opt_name: str | None = None
    opt_line = 0
    opt_indent = 0
    opt_lines: list[str] = []
    opt_numbers: list[int] = []

    def finish() -> None:
        nonlocal opt_name
        if current is not None and opt_name is not None:
            value = "\n".join(opt_lines).rstrip()
            count = value.count("\n") + 1
            current[opt_name] = Located(value, path, opt_line, tuple(opt_numbers[:count]))
        opt_name = None

    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith(("#", ";")):
            continue
        cut = _INLINE_COMMENT_RE.search(raw)
        line = raw[: cut.start()] if cut else raw
        value = line.strip()
        if not value:
            if opt_name is not None:
                opt_lines.append("")
                opt_numbers.append(number)
            continue
        indent = len(line) - len(line.lstrip())
        if opt_name is not None and indent > opt_indent:
            opt_lines.append(value)
            opt_numbers.append(number)
            continue
        finish()
        header = _SECTION_RE.match(value)
        if header:
            name = header.group("name")
            if name in seen_sections:
                raise ConfigError(
                    f"section [{name}] is given twice in this file", path=path, line=number
                )
            seen_sections.add(name)
            conditional = _CONDITIONAL_RE.match(name)
            suffix = ""
            if conditional:
                name, suffix = conditional.group(1), conditional.group(2)
            if name == DEFAULT_SECTION:
                current = result.defaults
            else:
                current = result.sections.setdefault(name, {})
                result.section_lines.setdefault(name, number)
            current_name = name
            if suffix:
                current = _SuffixedSection(current, suffix)
            continue
        option = _OPTION_RE.match(value)
        if option is None or not option.group("name"):
            raise ConfigError(
                f"cannot read {value[:60]!r}: expected '[section]', 'option = value' "
                "or an indented continuation line",
                path=path,
                line=number,
            )
        if current is None:
            raise ConfigError(
                f"option {option.group('name')!r} comes before any [section] header",
                path=path,
                line=number,
            )
        name = option.group("name").strip().lower()
        if name in current:
            raise ConfigError(
                f"option {name!r} is given twice in section [{current_name}] "
                f"(first at line {current[name].line})",
                path=path,
                line=number,
            )
        opt_name, opt_line, opt_indent = name, number, indent
        opt_lines = [option.group("value")]
        opt_numbers = [number]
    finish()
    return result


class _SuffixedSection(dict[str, Located]):
    """A view that stores options of a conditional section under ``name?cond`` in the base one."""

    def __init__(self, base: dict[str, Located], suffix: str) -> None:
        super().__init__()
        self._base = base
        self._suffix = suffix

    def __setitem__(self, key: str, value: Located) -> None:
        self._base[key + self._suffix] = value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key + self._suffix) in self._base

    def __getitem__(self, key: str) -> Located:
        return self._base[key + self._suffix]

    def get(self, key: str, default: object = None) -> Located | None:  # type: ignore[override]
        return self._base.get(key + self._suffix)

"""Load filter definitions (``filter.d/NAME.conf``) into typed :class:`FilterSpec` values.

A filter file has a ``[Definition]`` section (``failregex``, ``ignoreregex``, ``prefregex``,
``datepattern``, ``maxlines``, ``usedns``, ``journalmatch``, the JSON rules ``failjson``,
``ignorejson`` and ``jsontime`` (:mod:`gardien.matching.jsonrules`) and helper options) and
optionally an ``[Init]`` section of parameters a jail may override
(``filter = sshd[mode=aggressive]``).
Values are first interpolated (``%(name)s``), then ``<name>`` tags naming other options or
parameters are replaced recursively, which is how ``<mdre-<mode>>`` selects a mode's regexes.
``<HOST>`` and the ``<F-...>`` captures are left for :mod:`gardien.matching`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from gardien.config.ini import Located
from gardien.config.reader import ConfigSet, resource_files
from gardien.config.values import parse_spec
from gardien.errors import ConfigError
from gardien.settings import FilterSpec, RegexSource  # re-exported: defined here before

__all__ = [
    "FilterSpec",
    "RegexSource",
    "bundled_config_dir",
    "filter_files",
    "load_filter",
    "load_filter_file",
    "substitute_tags",
]

DEFINITION = "Definition"
INIT = "Init"
_FILTER_OPTIONS = (
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
    "failjson",
    "ignorejson",
    "jsontime",
)
_TAG_RE = re.compile(r"<([^ <>]+)>")
_CONDITIONAL_RE = re.compile(r"^(\w+)(\?.+)$")
MAX_TAG_REPLACEMENTS = 25
USEDNS_CHOICES = ("yes", "warn", "no", "raw")


def bundled_config_dir() -> Path:
    """The configuration shipped inside the package (filters and default jails)."""
    return Path(str(resources.files("gardien") / "data"))


def load_filter(
    name: str,
    config_dir: str | os.PathLike[str] | None = None,
    *,
    parameters: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    fallback_to_bundled: bool = True,
) -> FilterSpec:
    """Load filter ``name`` (may carry ``[param=value]``) from ``config_dir``/filter.d.

    ``parameters`` add to (and override) bracket parameters; ``variables`` are the options of the
    jail using the filter, visible to ``%(name)s``. When the directory has no such filter and
    ``fallback_to_bundled`` is set, gardien's own filter of that name is used.
    """
    spec = parse_spec(name)
    params = dict(spec.params)
    params.update(parameters or {})
    files = filter_files(spec.name, config_dir, fallback_to_bundled=fallback_to_bundled)
    if files:
        return _build(spec.name, ConfigSet.read_files(files), params, variables, files[0])
    searched = " and ".join(
        str(d / "filter.d") for d in _filter_dirs(config_dir, fallback_to_bundled)
    )
    raise ConfigError(f"no filter named {spec.name!r} in {searched}")


def _filter_dirs(config_dir: str | os.PathLike[str] | None, fallback: bool) -> list[Path]:
    directories: list[Path] = []
    if config_dir is not None:
        directories.append(Path(config_dir))
    if fallback or config_dir is None:
        directories.append(bundled_config_dir())
    return directories


def filter_files(
    name: str,
    config_dir: str | os.PathLike[str] | None = None,
    *,
    fallback_to_bundled: bool = True,
) -> list[str]:
    """The files of filter ``name`` (without parameters) in the first directory that has it:
    ``config_dir``, then (if allowed) gardien's bundled filters; empty when none has it."""
    for directory in _filter_dirs(config_dir, fallback_to_bundled):
        files = resource_files(directory, os.path.join("filter.d", name))
        if files:
            return files
    return []


def load_filter_file(
    path: str | os.PathLike[str],
    *,
    parameters: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
) -> FilterSpec:
    """Load a filter from a file path (its ``.local`` and includes are read beside it)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError("no such filter file", path=path)
    stem = os.path.splitext(os.path.basename(path))[0]
    base = os.path.splitext(path)[0]
    files = [path]
    drop_ins = Path(base + ".d")
    files += sorted(str(p) for p in drop_ins.glob("*.conf"))
    if os.path.isfile(base + ".local") and path != base + ".local":
        files.append(base + ".local")
    files += sorted(str(p) for p in drop_ins.glob("*.local"))
    return _build(stem, ConfigSet.read_files(files), dict(parameters or {}), variables, path)


def _build(
    name: str,
    config: ConfigSet,
    parameters: dict[str, str],
    variables: Mapping[str, str] | None,
    path: str,
) -> FilterSpec:
    if not config.has_section(DEFINITION):
        raise ConfigError(f"filter {name!r} has no [{DEFINITION}] section", path=path)
    params = {k.lower(): v for k, v in parameters.items()}
    # What %(name)s sees: the jail's options, overridden by the filter's parameters.
    lookup = {k.lower(): v for k, v in (variables or {}).items()}
    lookup.update(params)

    # [Definition] options known to filters, interpolated (parameters take precedence).
    options: dict[str, str] = {}
    origins: dict[str, Located] = {}
    for option in _FILTER_OPTIONS:
        if option in params:
            continue
        located = config.raw(DEFINITION, option)
        if located is None:
            continue
        origins[option] = located
        options[option] = _interpolated(config, DEFINITION, located, option, lookup)
    # [Init] parameters: defaults for what the jail did not set; 'known/x' keeps the file's own.
    init_params = dict(params)
    if config.has_section(INIT):
        for option in config.options(INIT):
            if option == "__name__":
                continue
            located = config.raw(INIT, option)
            if located is None:
                continue
            value = _interpolated(config, INIT, located, option, None)
            if not option.startswith("known/"):
                init_params["known/" + option] = value
            init_params.setdefault(option, value)
    combined = {**options, **init_params}

    def extra(tag: str) -> str | None:
        try:
            return config.get(DEFINITION, tag, lookup)
        except ConfigError:
            return None

    ignore = {m.group(1) for n in combined if (m := _CONDITIONAL_RE.match(n))}
    _check_mode(name, config, combined, origins, path)
    resolved = substitute_tags(combined, ignore=ignore, lookup=extra)

    def regexes(option: str) -> tuple[RegexSource, ...]:
        value = resolved.get(option)
        if not value:
            return ()
        origin = origins.get(option)
        lines = [line for line in value.split("\n") if line.strip()]
        numbers: list[int | None] = [None] * len(lines)
        if origin is not None:
            written = [
                (number, text)
                for number, text in zip(origin.line_numbers, origin.value.split("\n"), strict=False)
                if text.strip()
            ]
            if len(written) == len(lines):
                # one written line per regex: interpolation changed words, not lines
                numbers = [number for number, _text in written]
            else:
                numbers = [origin.line_of(line) for line in lines]
        return tuple(
            RegexSource(line, origin.path if origin else None, number)
            for line, number in zip(lines, numbers, strict=True)
        )

    def option_error(option: str, message: str) -> ConfigError:
        origin = origins.get(option)
        return ConfigError(
            message,
            path=origin.path if origin else None,
            line=origin.line if origin else None,
            section=DEFINITION,
            option=option,
        )

    maxlines = 1
    if resolved.get("maxlines"):
        try:
            maxlines = int(resolved["maxlines"])
        except ValueError:
            raise option_error(
                "maxlines", f"maxlines must be a whole number, got {resolved['maxlines']!r}"
            ) from None
        if maxlines < 1:
            raise option_error("maxlines", "maxlines must be 1 or more")
    usedns = (resolved.get("usedns") or "warn").strip().lower()
    if usedns not in USEDNS_CHOICES:
        raise option_error(
            "usedns", f"usedns must be one of {', '.join(USEDNS_CHOICES)}, got {usedns!r}"
        )
    pref = regexes("prefregex")
    journal = tuple(
        line.strip() for line in (resolved.get("journalmatch") or "").split("\n") if line.strip()
    )
    datepattern = resolved.get("datepattern")
    return FilterSpec(
        name=name,
        failregex=regexes("failregex"),
        ignoreregex=regexes("ignoreregex"),
        prefregex=pref[0] if pref else None,
        datepattern=datepattern.strip() if datepattern and datepattern.strip() else None,
        maxlines=maxlines,
        usedns=usedns,
        journalmatch=journal,
        parameters={k: v for k, v in init_params.items() if not k.startswith("known/")},
        files=tuple(config.files),
        path=path,
        options_set=frozenset(
            o for o in ("maxlines", "datepattern") if resolved.get(o, "").strip()
        ),
        failjson=regexes("failjson"),
        ignorejson=regexes("ignorejson"),
        jsontime=tuple((resolved.get("jsontime") or "").split()),
    )


#: ``<mdre-<mode>>``: an option chosen by the filter's ``mode`` parameter
_MODE_TAG_RE = re.compile(r"<([\w.-]+)-<mode>>")


def _check_mode(
    name: str,
    config: ConfigSet,
    options: Mapping[str, str],
    origins: Mapping[str, Located],
    path: str,
) -> None:
    """A mode the filter does not have is a mistake to name, not a filter that matches
    nothing (or an error about a missing <HOST>)."""
    mode = options.get("mode")
    if mode is None:
        return
    defined = set(config.options(DEFINITION)) | set(options)
    for option in ("failregex", "failjson"):
        for prefix in _MODE_TAG_RE.findall(options.get(option, "")):
            if f"{prefix}-{mode.strip()}".lower() in defined:
                continue
            modes = sorted(
                o[len(prefix) + 1 :]
                for o in defined
                if o.startswith(prefix + "-") and "<" not in o and o[len(prefix) + 1 :]
            )
            origin = origins.get(option)
            raise ConfigError(
                f"filter {name!r} has no mode {mode.strip()!r}"
                + (f" (its modes: {', '.join(modes)})" if modes else ""),
                path=origin.path if origin else path,
                line=origin.line if origin else None,
                section=DEFINITION,
                option=option,
            )


def _interpolated(
    config: ConfigSet,
    section: str,
    located: Located,
    option: str,
    lookup: Mapping[str, str] | None,
) -> str:
    """``located`` interpolated in ``section``; errors point at the option's file and line."""
    try:
        return config.interpolate(section, located, lookup)
    except ConfigError as error:
        raise error.located(path=located.path, line=located.line, option=option) from None


def substitute_tags(
    values: Mapping[str, str],
    *,
    ignore: set[str] | None = None,
    lookup: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """Replace ``<name>`` tags in every value by the value of option ``name``, recursively.

    Tags are resolved innermost first, so ``<lt_<logtype>/datepattern>`` becomes
    ``<lt_file/datepattern>`` and then that option's value. A tag that names nothing known is
    left as it is (``<HOST>`` and ``<F-USER>`` reach the regex compiler untouched). ``lookup``
    supplies options that are not in ``values``. A tag that refers to itself raises
    :class:`ConfigError`.
    """
    ignore = ignore or set()
    result = dict(values)
    for _ in range(MAX_TAG_REPLACEMENTS * 4):
        changed = False
        for key, value in list(result.items()):
            if key in ignore or "<" not in value:
                continue
            new = _substitute_once(key, value, result, ignore, lookup)
            if new != value:
                result[key] = new
                changed = True
        if not changed:
            return result
    raise ConfigError(
        "tags refer to each other in a loop: "
        + ", ".join(k for k, v in result.items() if _TAG_RE.search(v) and k not in ignore)
    )


def _substitute_once(
    key: str,
    value: str,
    values: Mapping[str, str],
    ignore: set[str],
    lookup: Callable[[str], str | None] | None,
) -> str:
    out: list[str] = []
    pos = 0
    for match in _TAG_RE.finditer(value):
        tag = match.group(1)
        if tag in ignore:
            continue
        if tag == key:
            raise ConfigError(f"option {key!r} refers to itself through <{tag}>")
        replacement = values.get(tag)
        if replacement is None and lookup is not None:
            replacement = lookup(tag)
        if replacement is None:
            continue
        out.append(value[pos : match.start()])
        out.append(replacement)
        pos = match.end()
    if not out:
        return value
    out.append(value[pos:])
    return "".join(out)

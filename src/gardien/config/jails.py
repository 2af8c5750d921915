"""Jails: ``jail.conf``, ``jail.d/*.conf``, ``jail.local``, ``jail.d/*.local`` -> settings.

Every section but ``[INCLUDES]`` and ``[DEFAULT]`` is a jail, as in fail2ban; options missing
from a jail come from ``[DEFAULT]``. Only the options gardien reads are interpolated, so an
unused helper such as fail2ban's ``action_cf_mwl`` (which refers to options nobody sets) does
not make a working configuration fail. Errors name the file, line, jail and option.
"""

from __future__ import annotations

import ast
import operator
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gardien.config.filters import load_filter
from gardien.config.ini import Located
from gardien.config.reader import ConfigSet
from gardien.config.values import (
    parse_bool,
    parse_duration,
    parse_spec,
    split_specs,
)
from gardien.errors import ConfigError, GardienError
from gardien.matching.dates import zone_offset
from gardien.settings import (  # BanTimeIncrement, JailSettings: re-exported (defined here once)
    BanTimeIncrement,
    FeedOptions,
    FilterSpec,
    JailSettings,
    RegexSource,
    Spec,
    is_hub_backend,
)

__all__ = [
    "BanTimeIncrement",
    "JailSettings",
    "feed_options",
    "jail_filter",
    "load_jails",
    "read_jails",
]

NOT_JAILS = frozenset({"INCLUDES", "DEFAULT"})
#: the fail2ban version whose configuration language gardien follows
FAIL2BAN_COMPATIBLE_VERSION = "1.0.2"
#: options read (and so interpolated) for every jail; the rest stay as written
READ_OPTIONS = (
    "enabled",
    "filter",
    "action",
    "logpath",
    "backend",
    "findtime",
    "bantime",
    "maxretry",
    "maxmatches",
    "maxpending",
    "ignoreip",
    "ignoreself",
    "ignorecommand",
    "usedns",
    "logencoding",
    "logtimezone",
    "journalmatch",
    "datepattern",
    "maxlines",
    "failregex",
    "ignoreregex",
    "port",
    "protocol",
    "chain",
    "banaction",
    "banaction_allports",
    "mode",
    "bantime.increment",
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
)


def load_jails(
    config_dir: str | os.PathLike[str], *, only_enabled: bool = False
) -> list[JailSettings]:
    """The jails configured under ``config_dir``, in file order; the first problem of
    :func:`read_jails` is raised."""
    jails, problems = read_jails(config_dir)
    if problems:
        raise problems[0]
    return [jail for jail in jails if jail.enabled or not only_enabled]


def read_jails(
    config_dir: str | os.PathLike[str],
) -> tuple[list[JailSettings], list[ConfigError]]:
    """Every jail configured under ``config_dir`` (enabled or not, in file order), and the
    problem of each section that cannot be read: one broken jail does not hide the others.
    A file that cannot be read at all is the one problem, with no jails."""
    try:
        config = ConfigSet.read_resource(Path(config_dir), "jail")
    except ConfigError as error:
        return [], [error]
    # what fail2ban provides to its jail files (e.g. ignorecommand paths)
    for key, value in (
        ("fail2ban_confpath", str(config_dir)),
        ("fail2ban_version", FAIL2BAN_COMPATIBLE_VERSION),
        ("gardien_confpath", str(config_dir)),
    ):
        config.defaults[key] = Located(value, "<built-in>", 0)
    jails: list[JailSettings] = []
    problems: list[ConfigError] = []
    for name in config.sections:
        if name in NOT_JAILS:
            continue
        try:
            jails.append(_jail(config, name))
        except ConfigError as error:
            problems.append(error)
    return jails, problems


class _Reader:
    """Typed access to one jail's options, with errors located at the option's line."""

    def __init__(self, config: ConfigSet, jail: str) -> None:
        self.config = config
        self.jail = jail
        self.values: dict[str, str] = {}

    def located(self, option: str) -> Located | None:
        return self.config.raw(self.jail, option)

    def error(self, option: str, message: str) -> ConfigError:
        located = self.located(option)
        path, line = self.config.where(self.jail)
        return ConfigError(
            message,
            path=located.path if located else path,
            line=located.line if located else line,
            section=self.jail,
            option=option,
        )

    def text(self, option: str, default: str | None = None) -> str | None:
        located = self.located(option)
        if located is None:
            return default
        try:
            value = self.config.interpolate(self.jail, located)
        except ConfigError as error:
            raise error.located(
                path=located.path, line=located.line, section=self.jail, option=option
            ) from None
        self.values[option] = value
        return value

    def duration(self, option: str, default: float | None) -> float | None:
        value = self.text(option)
        if value is None or not value.strip():
            return default
        try:
            return parse_duration(value)
        except ConfigError as error:
            raise self.error(option, error.message) from None

    def required_duration(self, option: str, default: float) -> float:
        value = self.duration(option, default)
        return default if value is None else value

    def integer(self, option: str, default: int) -> int:
        value = self.text(option)
        if value is None or not value.strip():
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise self.error(option, f"expected a whole number, got {value.strip()!r}") from None

    def number(self, option: str, default: float) -> float:
        """A number, or simple arithmetic on numbers as fail2ban allows (``2.0 / 2.885385``)."""
        value = self.text(option)
        if value is None or not value.strip():
            return default
        try:
            return _arithmetic(value.strip())
        except ValueError:
            raise self.error(
                option, f"expected a number (or + - * / on numbers), got {value.strip()!r}"
            ) from None

    def boolean(self, option: str, default: bool) -> bool:
        value = self.text(option)
        if value is None or not value.strip():
            return default
        try:
            return parse_bool(value)
        except ConfigError as error:
            raise self.error(option, error.message) from None


_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _arithmetic(text: str) -> float:
    """The value of ``text``: a number or + - * / and parentheses on numbers (nothing else is
    evaluated). Raises ValueError otherwise."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ValueError(text) from None

    def value(node: ast.AST) -> float:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            try:
                return _OPERATORS[type(node.op)](value(node.left), value(node.right))
            except ZeroDivisionError:
                raise ValueError(text) from None
        raise ValueError(text)

    return value(tree)


def _feed_parameter_error(option: str, message: str) -> ConfigError:
    return ConfigError(f"backend 'hub': {option}: {message}")


def feed_options(spec: Spec) -> FeedOptions:
    """The options of ``backend = hub[url=..., token_file=..., every=5s, timeout=30s,
    resync=1h]``; :class:`ConfigError` naming the wrong one. Reads no file."""
    # imported here: only a configuration with a hub feed needs the HTTP client
    from gardien.hub.client import endpoint_url

    params = {key.lower(): value.strip() for key, value in spec.params.items()}
    known = ("url", "token_file", "every", "timeout", "resync")
    for option in params:
        if option not in known:
            raise _feed_parameter_error(option, f"unknown parameter (known: {', '.join(known)})")
    url = endpoint_url(params, _feed_parameter_error)
    durations: dict[str, float] = {"every": 5.0, "timeout": 30.0, "resync": 3600.0}
    for option in tuple(durations):
        if option not in params:
            continue
        try:
            seconds = parse_duration(params[option])
        except ConfigError as error:
            raise _feed_parameter_error(option, error.message) from None
        if seconds <= 0:
            raise _feed_parameter_error(option, "must be longer than 0 seconds")
        durations[option] = seconds
    return FeedOptions(url, params["token_file"], **durations)


def _check_hub_feed(read: _Reader, backend: str, actions: list[Spec]) -> None:
    """``backend = hub[...]``: its parameters (no file read here), and no ``hub`` action: a
    jail fed by a hub reporting its bans back would make the hub confirm itself."""
    try:
        feed_options(parse_spec(backend))
    except ConfigError as error:
        raise read.error("backend", error.message) from None
    if any(spec.name == "hub" for spec in actions):
        raise read.error(
            "action",
            "a jail with backend = hub cannot report to a hub (the hub would count its own "
            "list as reports): remove the hub action",
        )


def _jail(config: ConfigSet, name: str) -> JailSettings:
    read = _Reader(config, name)
    for option in READ_OPTIONS:
        if option not in ("filter", "action"):
            read.text(option)
    enabled = read.boolean("enabled", False)
    filter_text = (read.text("filter") or name).strip()
    try:
        filter_spec = parse_spec(filter_text)
    except ConfigError as error:
        raise read.error("filter", error.message) from None
    actions: list[Spec] = []
    for item in split_specs(read.text("action") or ""):
        try:
            actions.append(parse_spec(item))
        except ConfigError as error:
            raise read.error("action", error.message) from None
    logpath = tuple(
        line.strip() for line in (read.values.get("logpath") or "").split("\n") if line.strip()
    )
    maxretry = read.integer("maxretry", 5)
    if maxretry < 1:
        raise read.error("maxretry", "maxretry must be 1 or more")
    maxpending = read.integer("maxpending", 100_000)
    if maxpending < 1:
        raise read.error("maxpending", "maxpending must be 1 or more")
    findtime = read.required_duration("findtime", 600.0)
    bantime = read.required_duration("bantime", 600.0)
    if findtime <= 0:
        raise read.error("findtime", "findtime must be longer than 0 seconds")
    multipliers_text = (read.values.get("bantime.multipliers") or "").split()
    try:
        multipliers = tuple(int(m) for m in multipliers_text)
    except ValueError:
        raise read.error(
            "bantime.multipliers", "expected whole numbers separated by spaces, e.g. 1 2 4 8 16"
        ) from None
    increment = BanTimeIncrement(
        enabled=read.boolean("bantime.increment", False),
        factor=read.number("bantime.factor", 1.0),
        formula=(read.values.get("bantime.formula") or "").strip() or None,
        multipliers=multipliers,
        maxtime=read.duration("bantime.maxtime", None),
        rndtime=read.duration("bantime.rndtime", None),
        overalljails=read.boolean("bantime.overalljails", False),
    )
    usedns = (read.values.get("usedns") or "warn").strip().lower()
    if usedns not in ("yes", "warn", "no", "raw"):
        raise read.error("usedns", f"usedns must be yes, warn, no or raw, got {usedns!r}")
    logtimezone = (read.values.get("logtimezone") or "").strip() or None
    if logtimezone is not None:
        try:
            zone_offset(logtimezone)
        except GardienError as error:
            raise read.error("logtimezone", f"{error} (UTC, +0200, -05:00, CET...)") from None
    backend = (read.values.get("backend") or "auto").strip()
    if is_hub_backend(backend):
        _check_hub_feed(read, backend, actions)
    path, line = config.where(name)
    return JailSettings(
        name=name,
        enabled=enabled,
        filter=filter_spec,
        actions=tuple(actions),
        logpath=logpath,
        backend=backend,
        findtime=findtime,
        bantime=bantime,
        maxretry=maxretry,
        maxmatches=read.integer("maxmatches", maxretry),
        maxpending=maxpending,
        ignoreip=tuple((read.values.get("ignoreip") or "").replace(",", " ").split()),
        ignoreself=read.boolean("ignoreself", True),
        ignorecommand=(read.values.get("ignorecommand") or "").strip(),
        usedns=usedns,
        logencoding=(read.values.get("logencoding") or "auto").strip(),
        logtimezone=logtimezone,
        increment=increment,
        options=dict(read.values),
        path=path,
        line=line,
    )


def jail_filter(settings: JailSettings, config_dir: str | os.PathLike[str]) -> FilterSpec:
    """The filter of a configured jail, with its ``[params]`` and with the jail's own
    (one-line) options visible to the filter's ``%(name)s``; :class:`ConfigError` (not yet
    located at the jail: callers say where) when it cannot be loaded."""
    variables = {k: v for k, v in settings.options.items() if "\n" not in v}
    spec = load_filter(
        settings.filter.name,
        config_dir,
        parameters=settings.filter.params,
        variables=variables,
    )
    return _with_jail_overrides(spec, settings)


def _with_jail_overrides(spec: FilterSpec, settings: JailSettings) -> FilterSpec:
    """The filter options a jail sets itself (in its section or [DEFAULT]), applied as
    fail2ban applies them: ``datepattern``, ``maxlines``, ``journalmatch`` and ``usedns``
    replace the filter's, ``failregex`` and ``ignoreregex`` lines are added to its own."""
    options = settings.options
    changes: dict[str, Any] = {}

    def error(option: str, message: str) -> ConfigError:
        return ConfigError(
            message, path=settings.path, line=settings.line, section=settings.name, option=option
        )

    if (options.get("datepattern") or "").strip():
        changes["datepattern"] = options["datepattern"].strip()
    if (options.get("maxlines") or "").strip():
        try:
            changes["maxlines"] = int(options["maxlines"])
        except ValueError:
            raise error(
                "maxlines", f"maxlines must be a whole number, got {options['maxlines']!r}"
            ) from None
        if changes["maxlines"] < 1:
            raise error("maxlines", "maxlines must be 1 or more")
    journal = tuple(
        line.strip() for line in (options.get("journalmatch") or "").split("\n") if line.strip()
    )
    if journal:
        changes["journalmatch"] = journal
    if "usedns" in options:
        changes["usedns"] = settings.usedns
    for option in ("failregex", "ignoreregex"):
        lines = [line for line in (options.get(option) or "").split("\n") if line.strip()]
        if lines:
            added = tuple(RegexSource(line, settings.path, settings.line) for line in lines)
            changes[option] = getattr(spec, option) + added
    return replace(spec, **changes) if changes else spec

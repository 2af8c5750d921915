"""The manual page ``gardien(1)``, generated from the click command tree so that it cannot drift.

:func:`render_manpage` walks every command and subcommand that is not hidden and returns one
roff page: each command's usage line, help text, options (with their metavar, default, range
and environment variable, as click knows them) and arguments, between sections written here
(description, environment, files, exit status, see also). It reads no file and runs nothing.

``python -m gardien.cli._manpage`` prints the page of the ``gardien`` command, dated by
``SOURCE_DATE_EPOCH`` when it is set (reproducible builds); ``scripts/gen-docs`` writes it
beside the other pages and the shell completions.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence

import click

from gardien.config.daemon import DaemonSettings

__all__ = ["escape", "manual_date", "render_manpage"]

_SEPARATORS = (", ", " / ", "; ")
_SEPARATOR_RE = re.compile("(" + "|".join(re.escape(s) for s in _SEPARATORS) + ")")
#: metavars in a usage line: words in capitals (LOG, [JAIL], SETTING=V1,V2, HOST:PORT...)
_METAVAR_RE = re.compile(r"[A-Z][A-Z0-9_]*(?:[=:,][A-Z0-9_]+)*")


# ---- roff ----------------------------------------------------------------------------------
def escape(text: str) -> str:
    """``text`` as roff text: backslashes printed, every ``-`` a real hyphen-minus (``\\-``, as
    options must be to be typed as read), non-ASCII characters as ``\\[uXXXX]`` escapes, and no
    line taken for a request (a leading ``.`` or ``'``)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n")
    )


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def _quoted(text: str) -> str:
    """A macro argument in double quotes."""
    return '"' + escape(text).replace('"', "\\(dq") + '"'


def _paragraphs(text: str) -> list[list[str]]:
    """Help text as click shows it, in roff lines, one list per paragraph: paragraphs split at
    blank lines and filled, except those click keeps as written (first line ``\\b``)."""
    paragraphs: list[list[str]] = []
    text = inspect.cleandoc(text).partition("\f")[0].strip()
    for paragraph in re.split(r"\n\s*\n", text) if text else []:
        rows = paragraph.splitlines()
        if rows[0].strip() == "\b":
            paragraphs.append([".nf", *(escape(row.rstrip()) for row in rows[1:]), ".fi"])
        else:
            paragraphs.append([escape(row.strip()) for row in rows if row.strip()])
    return paragraphs


def _body(paragraphs: list[list[str]], *, first: str | None, then: str) -> list[str]:
    """Paragraphs, each after a macro: ``first`` before the first one (none when ``None``, to
    follow a ``.TP`` tag), ``then`` before the others."""
    lines: list[str] = []
    for number, paragraph in enumerate(paragraphs):
        macro = first if number == 0 else then
        lines += ([] if macro is None else [macro]) + paragraph
    return lines


def _usage(pieces: Sequence[str]) -> str:
    """A usage line's pieces (``[OPTIONS]``, ``LOG...``), metavars in italics."""
    out: list[str] = []
    for piece in pieces:
        parts: list[str] = []
        position = 0
        for match in _METAVAR_RE.finditer(piece):
            parts.append(escape(piece[position : match.start()]) + _italic(match.group()))
            position = match.end()
        parts.append(escape(piece[position:]))
        out.append("".join(parts))
    return " ".join(out)


def _option_spec(spec: str) -> str:
    """Click's ``-c, --config-dir DIR``: names in bold, metavars in italics."""
    out: list[str] = []
    for part in _SEPARATOR_RE.split(spec):
        if part in _SEPARATORS:
            out.append(escape(part))
            continue
        name, _, metavar = part.partition(" ")
        out.append(_bold(name) + (" " + _italic(metavar) if metavar else ""))
    return "".join(out)


def _short_spec(spec: str) -> str:
    """``-c, --config-dir DIR`` as a synopsis shows it: ``-c DIR``."""
    parts = _SEPARATOR_RE.split(spec)
    name = parts[0].partition(" ")[0]
    metavar = parts[-1].partition(" ")[2]
    return f"{name} {metavar}" if metavar else name


# ---- the command tree ----------------------------------------------------------------------
def _context(
    command: click.Command, name: str, parent: click.Context | None = None
) -> click.Context:
    """The context click would make to run ``command`` (for its environment variable prefix
    and help option), without parsing or invoking anything."""
    return command.context_class(command, info_name=name, parent=parent, **command.context_settings)


def _walk(
    command: click.Command, ctx: click.Context, path: str
) -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command below ``command`` that is not hidden, depth first, by name."""
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = _context(sub, name, ctx)
        yield f"{path} {name}", sub, sub_ctx
        yield from _walk(sub, sub_ctx, f"{path} {name}")


def _envvars(param: click.Parameter, ctx: click.Context) -> list[str]:
    """The environment variables click reads ``param`` from: its own ``envvar``, else (options
    only) the automatic ``PREFIX_NAME`` one, as click's help computes it."""
    if not param.expose_value:
        return []  # --help, --version
    if param.envvar:
        return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
    if (
        isinstance(param, click.Option)
        and param.allow_from_autoenv
        and ctx.auto_envvar_prefix
        and param.name
    ):
        return [f"{ctx.auto_envvar_prefix}_{param.name.upper()}"]
    return []


def _environment_note(param: click.Parameter, ctx: click.Context) -> list[str]:
    variables = _envvars(param, ctx)
    if not variables:
        return []
    return [".br", "Environment: " + ", ".join(_bold(v) for v in variables) + "."]


def _option_lines(option: click.Option, ctx: click.Context) -> list[str]:
    record = option.get_help_record(ctx)
    if record is None:  # hidden
        return []
    spec, help_text = record
    lines = [".TP", _option_spec(spec), *_body(_paragraphs(help_text), first=None, then=".IP")]
    return lines + _environment_note(option, ctx)


def _argument_lines(argument: click.Argument, ctx: click.Context) -> list[str]:
    notes = ["required" if argument.required else "optional"]
    if argument.nargs == -1:
        notes.append("repeatable")
    default = argument.get_default(ctx, call=False)
    if isinstance(default, (str, os.PathLike)) and os.fspath(default):
        notes.append(f"default: {os.fspath(default)}")
    lines = [".TP", _usage(argument.get_usage_pieces(ctx))]
    help_text = getattr(argument, "help", None)  # click 8.5.1 and later
    if help_text:
        lines += _body(_paragraphs(help_text), first=None, then=".IP")
    lines.append(escape(f"({', '.join(notes)})"))
    return lines + _environment_note(argument, ctx)


def _command_lines(path: str, command: click.Command, ctx: click.Context) -> list[str]:
    lines = [f".SS {_quoted(path)}", _bold(path) + " " + _usage(command.collect_usage_pieces(ctx))]
    lines += _body(_paragraphs(command.help or command.short_help or ""), first=".PP", then=".PP")
    if isinstance(command, click.Group):
        names = [
            name
            for name in command.list_commands(ctx)
            if (sub := command.get_command(ctx, name)) is not None and not sub.hidden
        ]
        lines += [".PP", "Commands: " + ", ".join(_bold(name) for name in names) + "."]
    for param in command.params:  # arguments first, as in the usage line
        if isinstance(param, click.Argument):
            lines += _argument_lines(param, ctx)
    for param in command.params:
        if isinstance(param, click.Option):
            lines += _option_lines(param, ctx)
    return lines


# ---- the page ------------------------------------------------------------------------------
_DESCRIPTION = """\
gardien reads the logs of the services a server exposes (Asterisk, Postfix, SSH...), \
recognises failed logins with fail2ban-compatible filters, and bans the offending addresses \
in the firewall (nftables, ipset, iptables) for a while. Its configuration language is \
fail2ban's: "gardien -c /etc/fail2ban ..." reads a fail2ban configuration directory as it is.

"gardien run" is the daemon. The client commands (status, get, set, banned, unban, reload, \
stop, ping, version) speak to it over its control socket. The other commands work without a \
daemon: regex tests a filter against a log, scan replays old logs through a jail, stats reads \
the ban history, config checks and shows the configuration, audit checks the protected \
services, firewall writes and checks rulesets, hub runs the shared blocklist service \
that many gardien servers report to, and migrate moves a running fail2ban (its jails, bans \
and ban history) to gardien without a moment where a banned address gets through.

The daemon's settings are described in gardien.conf(5), the jails, filters and actions in \
gardien-jail.conf(5)."""

_EXIT_STATUS = (
    ("0", "Success."),
    (
        "1",
        'An error gardien explains on one "gardien: error:" line (a missing file, a broken '
        "configuration with its file:line, a daemon that does not answer), or a finding at "
        "or above --fail-on for the commands that have it.",
    ),
    ("2", "A usage error: an unknown command or option, a missing or invalid argument."),
    (
        "regex --explain",
        "0 when a line explained is a failure, 1 when none is, 2 for an error (of the "
        "filter, the line or the options).",
    ),
)

_SEE_ALSO = (
    ("gardien.conf", "5"),
    ("gardien-jail.conf", "5"),
    ("nft", "8"),
    ("iptables", "8"),
    ("ipset", "8"),
    ("journalctl", "1"),
)


def _files(config_dir: str) -> list[tuple[str, str]]:
    daemon = DaemonSettings()
    return [
        (
            f"{config_dir}/gardien.conf",
            "The daemon's settings; override them in gardien.local or gardien.d/*.local. "
            "See gardien.conf(5).",
        ),
        (f"{config_dir}/jail.conf", "The jails shipped with gardien; do not edit it."),
        (
            f"{config_dir}/jail.local",
            "Your changes to the jails, option by option. See gardien-jail.conf(5).",
        ),
        (f"{config_dir}/jail.d/", "Drop-in jail files (*.conf, then *.local), read in name order."),
        (f"{config_dir}/filter.d/", "Filters: the regular expressions that recognise failures."),
        (daemon.dbfile, "The ban store (SQLite): active bans, ban history and log positions."),
        (daemon.socket, "The daemon's control socket (mode 0600, root only)."),
        (daemon.pidfile, "The daemon's process id."),
        (
            "/var/log/gardien/gardien.log",
            "The daemon's log when logtarget names it, as the Debian package's gardien.conf "
            "does (gardien's own default is STDERR).",
        ),
    ]


def _definition_list(items: Sequence[tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for term, text in items:
        lines += [".TP", _bold(term), escape(text)]
    return lines


def render_manpage(
    root: click.Group,
    *,
    version: str,
    date: str,
    name: str = "gardien",
    config_dir: str = "/etc/gardien",
) -> str:
    """The roff source of the manual page of the command ``root`` (section 1), dated ``date``
    (``YYYY-MM-DD``); ``config_dir`` is the default configuration directory, for FILES."""
    ctx = _context(root, name)
    summary = inspect.cleandoc(root.help or "").partition("\n")[0]
    summary = summary.removeprefix(f"{name}:").strip().rstrip(".")
    entries = list(_walk(root, ctx, name))
    global_options = [p for p in root.get_params(ctx) if isinstance(p, click.Option)]
    records = [o.get_help_record(ctx) for o in global_options if o.expose_value]
    synopsis = "".join(f" [{_option_spec(_short_spec(record[0]))}]" for record in records if record)
    lines = [
        f'.\\" {name}(1), generated by gardien.cli._manpage from the commands; do not edit.',
        f".TH {name.upper()} 1 {_quoted(date)} {_quoted(f'{name} {version}')} "
        + _quoted(f"{name} manual"),
        ".nh",  # no hyphenation: option names and values stay whole
        ".ad l",
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        _bold(name) + synopsis + " " + _usage(["COMMAND", "[ARGS]..."]),
        ".br",
        _bold(name) + " " + _bold("--version"),
        ".br",
        _bold(name) + " " + _usage(["[COMMAND]..."]) + " " + _bold("--help"),
        ".SH DESCRIPTION",
    ]
    for paragraph in _DESCRIPTION.split("\n\n"):
        lines += [".PP", escape(paragraph)]
    lines += [".SH GLOBAL OPTIONS", ".PP", "They come before the command."]
    for option in global_options:
        lines += _option_lines(option, ctx)
    lines += [
        ".PP",
        escape("-h and --help also follow any command, and show its help."),
        ".SH COMMANDS",
    ]
    for path, command, command_ctx in entries:
        lines += _command_lines(path, command, command_ctx)
    lines += _environment([(name, root, ctx), *entries])
    lines += [".SH FILES", *_definition_list(_files(config_dir))]
    lines += ['.SH "EXIT STATUS"', *_definition_list(_EXIT_STATUS)]
    lines += ['.SH "SEE ALSO"']
    lines += [
        f".BR {page} ({section})" + ("," if number < len(_SEE_ALSO) - 1 else "")
        for number, (page, section) in enumerate(_SEE_ALSO)
    ]
    return "\n".join(lines) + "\n"


def _environment(entries: Sequence[tuple[str, click.Command, click.Context]]) -> list[str]:
    """ENVIRONMENT: how option variables are named, those of the global options and those
    several commands share (``envvar=``), then the variables gardien reads itself. ``entries``
    are the commands, the root one first."""
    _root_path, root, ctx = entries[0]
    prefix = ctx.auto_envvar_prefix or ""
    example = next(
        (
            (path, option, variables[0])
            for path, command, command_ctx in entries[1:]
            for option in command.params
            if isinstance(option, click.Option)
            and not option.envvar
            and (variables := _envvars(option, command_ctx))
        ),
        None,
    )
    lines = [".SH ENVIRONMENT", ".PP"]
    text = (
        f"Every option can also be given in the environment: {prefix}_, then the words of the "
        "command and the option's parameter name, in capitals with underscores. Each option "
        "above names its variable. An option given on the command line wins."
    )
    if example is not None:
        path, option, variable = example
        text += f" For example, {variable} is {max(option.opts, key=len)} of {path}."
    lines.append(escape(text))
    uses: dict[str, list[tuple[str, str]]] = {}
    for path, command, command_ctx in entries:
        for param in command.params:
            if command is root or param.envvar:
                for variable in _envvars(param, command_ctx):
                    uses.setdefault(variable, []).append((path, max(param.opts, key=len)))
    for variable, where in uses.items():
        options = sorted({option for _path, option in where})
        paths = [path for path, _option in where]
        common = [
            words[0]
            for words in zip(*(p.split() for p in paths), strict=False)
            if len(set(words)) == 1
        ]
        scope = paths[0] if len(paths) == 1 else f"the {' '.join(common)} commands that have it"
        text = f"The value of {', '.join(options)} of {scope}, when not given."
        lines += [".TP", _bold(variable), escape(text)]
    lines += _definition_list(
        [
            (
                f"{prefix}_NO_HYPERSCAN",
                "When set, the pure-Python scan finds candidate lines even where Hyperscan is "
                "installed (the results are the same, found more slowly).",
            ),
            (
                "SSH_CONNECTION",
                "Set by sshd: gardien firewall apply refuses a policy that would cut this "
                "session, and gardien audit jails checks that ignoreip holds its client.",
            ),
            ("TZ", "The time zone of gardien stats, unless --utc."),
            (
                f"_{prefix}_COMPLETE",
                "Set by the bash and zsh completion scripts, to ask gardien for completions.",
            ),
        ]
    )
    return lines


def manual_date(environ: Mapping[str, str] = os.environ) -> str:
    """The date printed on the pages: ``SOURCE_DATE_EPOCH`` (UTC) when set, else today."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    seconds = float(epoch) if epoch else time.time()
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gardien.cli._manpage``: print gardien(1)."""
    from gardien._version import __version__
    from gardien.cli import DEFAULT_CONFIG_DIR, cli

    if sys.argv[1:] if argv is None else argv:
        print("usage: python -m gardien.cli._manpage > gardien.1", file=sys.stderr)
        sys.exit(2)
    sys.stdout.write(
        render_manpage(cli, version=__version__, date=manual_date(), config_dir=DEFAULT_CONFIG_DIR)
    )


if __name__ == "__main__":
    main()

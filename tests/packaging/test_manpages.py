"""The manual pages and shell completions of the Debian package (``scripts/gen-docs``), tested
against the code: every command and option in gardien(1), every option gardien reads in
gardien.conf(5) and gardien-jail.conf(5), pages that man (as lintian runs it) finds no fault
with, and completion scripts that work in a real bash and parse in zsh."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import click
import pytest

from gardien._version import __version__
from gardien.actions.firewall import BACKEND_OF
from gardien.actions.mail import MAIL_ACTIONS
from gardien.cli import _register, cli
from gardien.cli._manpage import escape, manual_date, render_manpage
from gardien.config import filters, mail
from gardien.config.jails import READ_OPTIONS
from gardien.settings import DaemonSettings, FeedOptions
from support import REPO
from support.ci import require

_register()  # the commands are imported lazily; walk them all here

ROOT = REPO
EPOCH = "1700000000"
EPOCH_DATE = "2023-11-14"
PAGES = ("gardien.1", "gardien.conf.5", "gardien-jail.conf.5")
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is missing (Debian package {package})")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``PY=<this python> scripts/gen-docs DIR`` writes, dated by SOURCE_DATE_EPOCH."""
    _tool("rst2man", "python3-docutils")
    _tool("bash", "bash")
    out = tmp_path_factory.mktemp("docs")
    environ = {**os.environ, "PY": sys.executable, "SOURCE_DATE_EPOCH": EPOCH}
    result = subprocess.run(
        [str(ROOT / "scripts" / "gen-docs"), str(out)],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return out


def _render(page: Path) -> str:
    """The page as man shows it, wide (so that terms are not wrapped), as plain text."""
    _tool("man", "man-db")
    _tool("groff", "groff-base")
    environ = {k: v for k, v in os.environ.items() if k not in ("MAN_KEEP_FORMATTING", "MANOPT")}
    environ.update(LC_ALL="C.UTF-8", MANWIDTH="200")
    result = subprocess.run(
        ["man", "-E", "UTF-8", "-l", str(page)], env=environ, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    # groff may print hyphens and minus signs as Unicode ones
    return result.stdout.translate({0x2010: "-", 0x2011: "-", 0x2212: "-"})


def _section(text: str, heading: str) -> str:
    """The text of section ``heading`` (a line of its own), up to the next section."""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    assert match, f"no section {heading!r}"
    return match.group(1)


def _commands(
    command: click.Command, ctx: click.Context, path: str
) -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command of the tree that is not hidden, with the context click would run it in."""
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            if not sub.hidden:
                sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
                yield from _commands(sub, sub_ctx, f"{path} {name}")


def _tree() -> list[tuple[str, click.Command, click.Context]]:
    root = click.Context(cli, info_name="gardien", **cli.context_settings)
    return list(_commands(cli, root, "gardien"))


def _command_text(text: str, path: str) -> str:
    """The part of gardien(1) about one command (its .SS subsection)."""
    match = re.search(rf"^   {re.escape(path)}\n(.*?)(?=^   \S|^\S|\Z)", text, re.M | re.S)
    assert match, f"gardien(1) has no subsection for {path!r}"
    return match.group(1)


# ---- gardien(1) ----------------------------------------------------------------------------
def test_every_command_option_and_argument_is_in_gardien_1(docs: Path) -> None:
    text = _render(docs / "gardien.1")
    missing: list[str] = []
    tree = _tree()
    assert len(tree) > 30  # the walk found the tree
    for path, command, ctx in tree:
        part = _section(text, "GLOBAL OPTIONS") if command is cli else _command_text(text, path)
        if command is not cli:
            usage = " ".join([path, *command.collect_usage_pieces(ctx)])
            if usage not in part:
                missing.append(f"{path}: usage {usage!r}")
            words = command.get_short_help_str(200).split()[:4]
            if not re.search(r"\s+".join(map(re.escape, words)), part):
                missing.append(f"{path}: help {' '.join(words)!r}")
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                missing += [
                    f"{path} {o}" for o in param.opts + param.secondary_opts if o not in part
                ]
            elif isinstance(param, click.Argument) and param.make_metavar(ctx) not in part:
                missing.append(f"{path} {param.make_metavar(ctx)}")
    assert not missing, f"not in gardien.1: {missing}"


def test_the_environment_variables_gardien_1_names_are_those_click_reads(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _render(docs / "gardien.1")
    for path, command, ctx in _tree():
        part = _section(text, "GLOBAL OPTIONS") if command is cli else _command_text(text, path)
        named = re.findall(r"Environment: (\S+)\.", part)
        for param in command.params:
            if not isinstance(param, click.Option) or not param.expose_value:
                continue
            read = []
            for variable in named:
                with monkeypatch.context() as patch:
                    patch.setenv(variable, "from-the-environment")
                    if param.resolve_envvar_value(ctx) == "from-the-environment":
                        read.append(variable)
            assert read, f"{path} {param.opts[0]}: none of {named} is read by click"


def test_hidden_commands_are_not_in_gardien_1(docs: Path) -> None:
    roff = (docs / "gardien.1").read_text()
    hidden = [
        name
        for _path, command, _ctx in _tree()
        if isinstance(command, click.Group)
        for name, sub in command.commands.items()
        if sub.hidden
    ]
    assert hidden, "the tree has a hidden command (firewall _rollback) to check this with"
    for name in hidden:
        assert escape(name) not in roff


def test_gardien_1_has_the_sections_and_files(docs: Path) -> None:
    text = _render(docs / "gardien.1")
    for heading in (
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "GLOBAL OPTIONS",
        "COMMANDS",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "SEE ALSO",
    ):
        assert re.search(rf"^{heading}$", text, re.M), heading
    files = _section(text, "FILES")
    defaults = DaemonSettings()
    for path in (
        "/etc/gardien/gardien.conf",
        "/etc/gardien/jail.conf",
        "/etc/gardien/jail.local",
        "/etc/gardien/jail.d/",
        "/etc/gardien/filter.d/",
        defaults.dbfile,
        defaults.socket,
        "/var/log/gardien/gardien.log",
    ):
        assert path in files
    assert "GARDIEN_CONFIG_DIR" in _section(text, "ENVIRONMENT")
    status = _section(text, "EXIT STATUS")
    assert all(re.search(rf"^\s+{code}\s", status, re.M) for code in "012")
    see_also = _section(text, "SEE ALSO")
    for page in ("gardien.conf(5)", "gardien-jail.conf(5)", "nft(8)", "iptables(8)", "ipset(8)"):
        assert page in see_also
    assert "journalctl(1)" in see_also


# ---- every page ----------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_man_finds_no_fault_with_the_page(docs: Path, page: str) -> None:
    """What lintian runs (its manpage-has-errors-from-man check), and the whatis entry."""
    _tool("man", "man-db")
    _tool("groff", "groff-base")
    environ = {**os.environ, "LC_ALL": "C.UTF-8", "MANROFFSEQ": "", "MANWIDTH": "80"}
    result = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(docs / page)],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert result.stderr == ""
    name = page.rsplit(".", 1)[0]
    whatis = subprocess.run(
        [_tool("lexgrog", "man-db"), str(docs / page)], capture_output=True, text=True
    )
    assert whatis.returncode == 0, whatis.stdout + whatis.stderr
    assert f'"{name} - ' in whatis.stdout


@pytest.mark.parametrize("page", PAGES)
def test_the_page_is_dated_by_source_date_epoch_and_versioned(docs: Path, page: str) -> None:
    text = _render(docs / page)
    footer = text.rstrip().splitlines()[-1]
    assert EPOCH_DATE in footer
    assert f"gardien {__version__}" in footer
    for heading in (
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "FILES" if page == "gardien.1" else "EXAMPLES",
        "SEE ALSO",
    ):
        assert re.search(rf"^{heading}$", text, re.M), heading


def test_pages_are_reproducible() -> None:
    assert manual_date({"SOURCE_DATE_EPOCH": EPOCH}) == EPOCH_DATE
    first = render_manpage(cli, version="1", date=EPOCH_DATE)
    assert first == render_manpage(cli, version="1", date=EPOCH_DATE)


def test_roff_escaping() -> None:
    assert escape(".start") == "\\&.start"
    assert escape("'quote") == "\\&'quote"
    assert escape("a\\b") == "a\\eb"
    assert escape("--all") == "\\-\\-all"
    assert escape("x\n.y") == "x\n\\&.y"
    assert escape("sshd \u2192 ssh") == "sshd \\[u2192] ssh"


# ---- the configuration pages ---------------------------------------------------------------
def _is_term(part: str, option: str) -> bool:
    """Whether ``option`` is a term of a definition list (``option = VALUE``, possibly among
    several on one line) and not merely mentioned."""
    return re.search(rf"^ {{7}}(?:.*, )?{re.escape(option)}(?: = |$)", part, re.M) is not None


def test_every_daemon_option_is_in_gardien_conf_5(docs: Path) -> None:
    text = _render(docs / "gardien.conf.5")
    definition = _section(text, "OPTIONS OF [DEFINITION]")
    options = [f.name for f in fields(DaemonSettings) if f.name != "files"]
    assert "dbpurgeage" in options
    assert [o for o in options if not _is_term(definition, o)] == []
    relay = _section(text, "THE [MAIL] SECTION")
    assert [o for o in sorted(mail._OPTIONS) if not _is_term(relay, o)] == []
    assert "fail2ban.conf" in _section(text, "FAIL2BAN COMPATIBILITY")
    overrides = _section(text, "FILES AND OVERRIDES")
    assert all(f in overrides for f in ("gardien.conf", "gardien.d/*.conf", "gardien.local"))


def test_every_jail_option_is_in_gardien_jail_conf_5(docs: Path) -> None:
    text = _render(docs / "gardien-jail.conf.5")
    jail = _section(text, "JAIL OPTIONS")
    assert [o for o in READ_OPTIONS if not _is_term(jail, o)] == []
    filter_part = _section(text, "FILTERS")
    assert [o for o in filters._FILTER_OPTIONS if not _is_term(filter_part, o)] == []
    actions = _section(text, "ACTIONS")
    known = sorted({*BACKEND_OF, *MAIL_ACTIONS, "log", "mail", "webhook", "hub"})
    assert [a for a in known if not re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", actions)] == []
    feed = _section(text, "HUB FEED")
    assert [f.name for f in fields(FeedOptions) if f.name not in feed] == []
    overrides = _section(text, "FILES AND OVERRIDES")
    assert all(f in overrides for f in ("jail.conf", "jail.d/*.conf", "jail.local", "filter.d/"))


# ---- shell completion ----------------------------------------------------------------------
def _complete_in_bash(script: Path, words: list[str]) -> list[str]:
    _tool("bash", "bash")
    require(
        BASH_COMPLETION.is_file(), "bash-completion is missing (Debian package bash-completion)"
    )
    gardien = Path(sys.executable).parent / "gardien"
    require(gardien.is_file(), f"no gardien script beside {sys.executable}")
    program = (
        f"source {BASH_COMPLETION}\n"
        f"source {script}\n"
        "complete -p gardien\n"
        f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
        "_gardien_completion gardien\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    environ = {**os.environ, "PATH": f"{gardien.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    registration, *replies = result.stdout.splitlines()
    assert "-F _gardien_completion" in registration
    return sorted(replies)


def test_bash_completion_completes_commands(docs: Path) -> None:
    script = docs / "completion" / "gardien"
    assert _complete_in_bash(script, ["gardien", "sta"]) == [
        "start",
        "statistics",
        "stats",
        "status",
    ]
    assert _complete_in_bash(script, ["gardien", "firewall", "l"]) == ["lint"]


def test_zsh_completion_is_valid_zsh(docs: Path) -> None:
    zsh = _tool("zsh", "zsh")
    script = docs / "completion" / "_gardien"
    assert script.read_text().startswith("#compdef gardien\n")
    result = subprocess.run([zsh, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_names_the_build_entry_point() -> None:
    assert "scripts/gen-docs" in (ROOT / "README.md").read_text()

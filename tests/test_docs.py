"""Docs tested against the code: every command and option is in the README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gardien.cli import _register, cli

_register()  # the commands are imported lazily; walk them all here

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _options(command: click.Command) -> list[str]:
    names: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option):
            names += [n for n in param.opts if n.startswith("--") and n not in ("--help",)]
    return names


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_command_and_option_is_in_the_readme() -> None:
    missing = [o for o in _options(cli) if o not in README and o != "--version"]
    for name, command in _commands(cli, "gardien"):
        if name not in README:
            missing.append(name)
        missing += [f"{name} {o}" for o in _options(command) if f"`{o}" not in README]
    assert not missing, f"undocumented: {missing}"


def test_readme_quick_start_scripts_exist() -> None:
    root = Path(__file__).resolve().parent.parent
    assert "./scripts/test" in README and (root / "scripts" / "test").is_file()
    assert "./scripts/demo" in README and (root / "scripts" / "demo").is_file()
    assert "./scripts/run" in README and (root / "scripts" / "run").is_file()
    assert "scripts/test" in (root / ".ci" / "run").read_text()


def test_the_readme_command_reference_is_what_help_prints() -> None:
    """The reference is generated; a command or option changed without regenerating it fails
    here (python -m gardien.cli._reference README.md regenerates it)."""
    from gardien.cli._reference import render_reference

    assert render_reference() in README, (
        "the README's command reference is out of date: "
        "run .venv/bin/python -m gardien.cli._reference README.md"
    )


@pytest.mark.parametrize("path", ["gardien", "gardien regex", "gardien hub serve", "gardien set"])
def test_the_reference_shows_each_commands_own_help(path: str) -> None:
    """What the reference holds for a command is what ``gardien COMMAND --help`` prints."""
    from gardien.cli._reference import WIDTH, help_text

    words = path.split()[1:]
    printed = CliRunner().invoke(cli, [*words, "--help"], prog_name="gardien", terminal_width=WIDTH)
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == help_text(path)
    assert f"```text\n{help_text(path)}```" in README

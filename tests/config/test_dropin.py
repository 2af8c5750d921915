"""``gardien compat install|remove``: the drop-in fail2ban-client and fail2ban-regex links, never
over a real fail2ban."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gardien import dropin
from gardien.errors import GardienError
from support.cli import gardien


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A gardien executable and an empty bin directory, with nothing else on PATH."""
    gardien = tmp_path / "lib" / "gardien"
    gardien.parent.mkdir()
    gardien.write_text("#!/bin/sh\n")
    gardien.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return gardien, bin_dir


def test_install_links_both_commands_and_is_idempotent(system: tuple[Path, Path]) -> None:
    gardien, bin_dir = system
    made = dropin.install(bin_dir, gardien, system_directories=())
    assert [m.path.name for m in made] == ["fail2ban-client", "fail2ban-regex"]
    for name in dropin.DROP_IN_COMMANDS:
        assert (bin_dir / name).resolve() == gardien.resolve()
    again = dropin.install(bin_dir, gardien, system_directories=())
    assert [m.path for m in again] == [m.path for m in made]
    assert dropin.remove(bin_dir, gardien) == [bin_dir / n for n in dropin.DROP_IN_COMMANDS]
    assert not any(bin_dir.iterdir())


def test_install_never_hides_a_real_fail2ban(system: tuple[Path, Path], tmp_path: Path) -> None:
    gardien, bin_dir = system
    elsewhere = tmp_path / "usr-bin"
    elsewhere.mkdir()
    (elsewhere / "fail2ban-server").write_text("#!/usr/bin/python3\n")
    with pytest.raises(GardienError, match=r"fail2ban is installed \(.*fail2ban-server\)"):
        dropin.install(bin_dir, gardien, system_directories=(str(elsewhere),))
    assert not any(bin_dir.iterdir())  # nothing changed


def test_a_file_of_ours_is_never_removed_nor_a_foreign_one(system: tuple[Path, Path]) -> None:
    gardien, bin_dir = system
    (bin_dir / "fail2ban-regex").write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(GardienError, match="fail2ban is installed"):
        dropin.install(bin_dir, gardien, system_directories=())
    assert dropin.remove(bin_dir, gardien) == []
    assert (bin_dir / "fail2ban-regex").read_text().endswith("mine\n")


def test_the_cli_refuses_where_fail2ban_is_installed(tmp_path: Path) -> None:
    fake = tmp_path / "sbin"
    fake.mkdir()
    (fake / "fail2ban-server").write_text("#!/bin/sh\n")
    (fake / "fail2ban-server").chmod(0o755)
    target = tmp_path / "bin"
    target.mkdir()
    result = gardien(
        "compat",
        "install",
        "--dir",
        str(target),
        env={"PATH": f"{fake}{os.pathsep}{Path(sys.executable).parent}"},
    )
    assert result.returncode == 1
    assert "fail2ban is installed" in result.stderr and "Traceback" not in result.stderr
    assert not any(target.iterdir())

"""The version is written once, in ``gardien/_version.py``; what else shows it agrees."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import gardien
from gardien._version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_and_its_metadata_show_the_one_version() -> None:
    assert gardien.__version__ == __version__
    # pip installed gardien from this checkout: setuptools read the version from _version.py
    assert importlib.metadata.version("gardien") == __version__


def test_pyproject_reads_it_from_version_py() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "gardien._version.__version__"}


def test_the_debian_changelog_packages_that_version() -> None:
    # dpkg takes the package's version from the changelog's first entry; a Debian revision
    # (-1) or a local build's suffix (+test1, ~prev1) may follow the upstream version
    first = (ROOT / "debian" / "changelog").read_text(encoding="utf-8").splitlines()[0]
    match = re.match(r"gardien \(([^)]+)\)", first)
    assert match, first
    upstream = re.split(r"[-+~]", match.group(1), maxsplit=1)[0]
    assert upstream == __version__, f"debian/changelog says {match.group(1)}"

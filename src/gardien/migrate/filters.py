"""The filter a migrated jail names, and the files of fail2ban's to copy so that it resolves to
the filter fail2ban used.

A filter gardien does not ship is copied into ``filter.d/`` (with its includes gardien lacks);
a filter gardien ships is gardien's own unless fail2ban's copy was changed by the administrator
(its checksum differs from the Debian package's), in which case it is copied as
``NAME-fail2ban.conf`` and the jail names that. ``.local`` files and ``.d/`` drop-ins of the
administrator are copied beside. gardien's own ``filter.d/*.conf`` (conffiles of its package)
are never written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gardien.config.filters import bundled_config_dir, filter_files
from gardien.config.reader import ConfigSet
from gardien.migrate.notes import FileCopy, NotCarried
from gardien.settings import JailSettings, Spec

__all__ = ["FAIL2BAN_PACKAGE_DIR", "migrated_filter", "package_checksums"]

#: where Debian's fail2ban package installs its configuration (its conffiles' checksums)
FAIL2BAN_PACKAGE_DIR = "/etc/fail2ban"


def package_checksums(package: str = "fail2ban") -> dict[str, str]:
    """The MD5 of each conffile of ``package`` as installed (``dpkg-query``); empty when dpkg
    or the package is not there. A file whose checksum differs was changed by the admin."""
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return {}
    try:
        result = subprocess.run(
            [dpkg, "-W", "-f=${Conffiles}\n", package],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    sums: dict[str, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("/"):
            sums[parts[0]] = parts[1]
    return sums


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def migrated_filter(
    jail: JailSettings,
    source: Path,
    target: Path,
    sums: Mapping[str, str],
    copies: dict[Path, FileCopy],
    changes: list[str],
    notes: list[NotCarried],
) -> str:
    """The filter the migrated jail names, with the files to copy so that it resolves to what
    fail2ban used."""
    name = jail.filter.name
    source_filters = source / "filter.d"
    shipped_dir = bundled_config_dir() / "filter.d"
    files = filter_files(name, source, fallback_to_bundled=False)
    all_files = ConfigSet.read_files(files).files

    def changed(path: Path) -> bool:
        """Whether an admin wrote or changed ``path`` (it is not fail2ban's as packaged)."""
        packaged = sums.get(f"{FAIL2BAN_PACKAGE_DIR}/{path.relative_to(source)}")
        return packaged is None or packaged != _md5(path)

    own = Path(files[0])
    rename = (shipped_dir / own.name).is_file() and changed(own)
    new_name = f"{name}-fail2ban" if rename else name
    if rename:
        changes.append(
            f"[{jail.name}] filter {name}: fail2ban's {own} was changed; copied as "
            f"filter.d/{new_name}.conf (gardien ships its own {name}.conf)"
        )
    for text in all_files:
        path = Path(text)
        try:
            relative = path.relative_to(source_filters)
        except ValueError:
            continue  # an include outside filter.d: read where it is
        stem = os.path.splitext(relative.parts[0])[0]
        is_drop_in = len(relative.parts) > 1 or path.suffix == ".local"
        if stem == name and rename:
            parts = (relative.parts[0].replace(name, new_name, 1), *relative.parts[1:])
            relative = Path(*parts)
        elif not is_drop_in and (shipped_dir / relative).is_file():
            if changed(path):
                notes.append(
                    NotCarried(
                        f"changes to {path}",
                        f"gardien ships its own filter.d/{relative} (a conffile), used instead; "
                        f"put your changes in filter.d/{relative.with_suffix('.local')}",
                    )
                )
            continue
        destination = target / "filter.d" / relative
        copies.setdefault(destination, FileCopy(path, destination))
    spec = Spec(new_name, dict(jail.filter.params))
    return str(spec)

"""``gardien migrate``: the plan (everything read and checked, nothing changed) and its
execution, in the order that never leaves the server unprotected.

1. write gardien's configuration (only the files that change) and import fail2ban's bans into
   gardien's store (only those it lacks);
2. start gardien's daemon, which puts every ban in the kernel at start, in ``table inet
   gardien``, beside fail2ban's chains; wait until it runs. If it cannot start, fail2ban was
   not touched and still protects the server;
3. stop fail2ban (its actions remove its chains) and keep it from starting at boot;
   (a gardien already running, as its package starts it, reloads instead);
4. import what fail2ban banned during the switch, and ban it in the running daemon;
5. remove what fail2ban left in the firewall (``f2b-*`` chains, tables, sets).

A plan computed again after a complete migration has nothing left to do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gardien.config.daemon import load_daemon_settings
from gardien.daemon.assembly import assemble, pretend_firewalls
from gardien.daemon.control import ControlClient
from gardien.errors import ConfigError, MigrateError
from gardien.migrate import system
from gardien.migrate.fail2ban_db import Fail2banBans, read_fail2ban_db
from gardien.migrate.translate import (
    GENERATED_DAEMON,
    GENERATED_JAILS,
    GENERATED_MARK,
    NotCarried,
    Translation,
    translate,
)
from gardien.model import Ban
from gardien.settings import DaemonSettings
from gardien.store.sqlite import SQLiteBanStore, active_ban_counts, history_keys

__all__ = ["FileWrite", "Plan", "build_plan", "execute"]

_BANIP_BATCH = 500  # addresses per control request when banning in a running daemon


@dataclass(frozen=True)
class FileWrite:
    """A file gardien migrate writes (new, or different from what is there)."""

    path: Path
    content: bytes
    what: str


@dataclass
class Plan:
    """Everything ``gardien migrate`` would do, computed without changing anything."""

    translation: Translation
    writes: list[FileWrite]
    #: gardien's settings once the files are written (its socket, store)
    settings: DaemonSettings
    bans: Fail2banBans | None
    #: fail2ban's active bans gardien's store lacks, and how many history records it lacks
    new_active: list[Ban]
    new_history: int
    #: ``"systemd"``, ``"server"`` or ``None`` (fail2ban not running)
    fail2ban: str | None
    gardien_running: bool
    leftovers: list[system.Leftover]
    not_carried: list[NotCarried] = field(default_factory=list)
    history_to_import: list[Ban] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not (
            self.writes
            or self.new_active
            or self.new_history
            or self.fail2ban
            or not self.gardien_running
            or self.leftovers
        )

    def describe(self) -> list[str]:
        """The plan as lines of text, for the administrator."""
        t = self.translation
        lines = [f"configuration: {t.source_dir} -> {t.target_dir}"]
        lines.append(f"  jails enabled in fail2ban: {', '.join(t.jails) or 'none'}")
        for write in self.writes:
            lines.append(f"  write {write.path} ({write.what})")
        if not self.writes:
            lines.append("  gardien's configuration is up to date")
        for change in t.changes:
            lines.append(f"  {change}")
        if self.bans is None:
            dbfile = t.fail2ban.dbfile.strip() or "(none)"
            lines.append(f"bans: none to import (dbfile {dbfile}: no such database)")
        else:
            lines.append(f"bans: {self.bans.path} -> {self.settings.dbfile}")
            per_jail: dict[str, int] = {}
            for ban in self.new_active:
                per_jail[ban.jail] = per_jail.get(ban.jail, 0) + 1
            for jail, count in self.bans.active_by_jail().items():
                new = per_jail.get(jail, 0)
                lines.append(
                    f"  {jail}: {count} active ban(s), {new} to import"
                    + ("" if jail in t.jails else " (jail not enabled: kept, not applied)")
                )
            lines.append(
                f"  {self.bans.expired} expired ban(s) become history; "
                f"{self.new_history} history record(s) to import"
            )
            if self.bans.not_addresses:
                lines.append(
                    f"  left out: {len(self.bans.not_addresses)} banned identifier(s) that are "
                    f"not IP addresses ({', '.join(self.bans.not_addresses[:5])})"
                )
        lines.append("switch-over:")
        step = 1
        if not self.gardien_running:
            lines.append(f"  {step}. start gardien and wait until its bans are in the kernel")
            step += 1
        elif self.writes or self.new_active:
            lines.append(f"  {step}. reload the running gardien, which restores the bans")
            step += 1
        if self.fail2ban:
            how = (
                "systemctl disable --now fail2ban"
                if self.fail2ban == "systemd"
                else (f"fail2ban-client -s {t.fail2ban.socket} stop")
            )
            lines.append(f"  {step}. stop fail2ban ({how})")
            step += 1
        if self.fail2ban or self.leftovers:
            found = ", ".join(str(item) for item in self.leftovers) or "none now"
            lines.append(f"  {step}. remove fail2ban's chains and sets left over ({found})")
        if self.nothing_to_do:
            lines.append("  nothing to do: gardien already runs fail2ban's jails and bans")
        if self.not_carried:
            lines.append("not carried over:")
            lines += [f"  - {note}" for note in self.not_carried]
        return lines


def build_plan(
    source_dir: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    now: float | None = None,
    checksums: dict[str, str] | None = None,
) -> Plan:
    """Read fail2ban's configuration and database and gardien's state; check that gardien's
    configuration with the migrated files passes ``gardien config check``. Changes nothing.
    Raises :class:`ConfigError` (file:line) or :class:`MigrateError` on what stops a migration.
    """
    now = time.time() if now is None else now
    target = Path(target_dir)
    translation = translate(source_dir, target, checksums=checksums)
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    writes = _generated_writes(translation, stamp) + _copy_writes(translation)
    settings = _check_staged(target, writes)
    notes = list(translation.not_carried)
    dbfile = translation.fail2ban.dbfile.strip()
    bans: Fail2banBans | None = None
    new_active: list[Ban] = []
    new_history_bans: list[Ban] = []
    new_history = 0
    if dbfile and dbfile.lower() not in (":memory:", "none") and not Path(dbfile).exists():
        notes.append(NotCarried(f"dbfile = {dbfile}", "no such file: fail2ban has no bans kept"))
    elif dbfile and dbfile.lower() not in (":memory:", "none"):
        bans = read_fail2ban_db(dbfile, now)
        known = history_keys(settings.dbfile)
        new_active = [
            b for b, k in zip(bans.active, bans.active_keys, strict=True) if k not in known
        ]
        new_history_bans = [
            b for b, k in zip(bans.history, bans.history_keys, strict=True) if k not in known
        ]
        new_history = len(new_history_bans)
        # the records of the new active bans come with them: not a second time
        importing = {k for k in bans.active_keys if k not in known}
        new_history_bans = [
            b
            for b, k in zip(bans.history, bans.history_keys, strict=True)
            if k not in known and k not in importing
        ]
        for jail, count in bans.active_by_jail().items():
            if jail not in translation.jails:
                notes.append(
                    NotCarried(
                        f"{count} active ban(s) of jail {jail}",
                        "the jail is not enabled in fail2ban's configuration: imported into "
                        "the store, not applied",
                    )
                )
    elif dbfile:
        notes.append(NotCarried(f"dbfile = {dbfile}", "fail2ban keeps no bans across restarts"))
    return Plan(
        translation=translation,
        writes=writes,
        settings=settings,
        bans=bans,
        new_active=new_active,
        new_history=new_history,
        history_to_import=new_history_bans,
        fail2ban=system.fail2ban_running(translation.fail2ban.socket, translation.fail2ban.pidfile),
        gardien_running=system.gardien_running(settings.socket),
        leftovers=system.find_leftovers(),
        not_carried=notes,
    )


def _generated_writes(translation: Translation, stamp: str) -> list[FileWrite]:
    writes = []
    for relative, body, what in (
        (GENERATED_JAILS, translation.jail_local, f"{len(translation.jails)} jail(s)"),
        (GENERATED_DAEMON, translation.daemon_local, "dbpurgeage, loglevel, logtarget"),
    ):
        path = translation.target_dir / relative
        header = (
            f"{GENERATED_MARK} on {stamp} from {translation.source_dir}.\n"
            "# Running it again rewrites this file; put your own changes in a file of your own\n"
            "# (jail.local, jail.d/*.local, gardien.local), read after it.\n"
            "# Read from:\n" + "".join(f"#   {name}\n" for name in translation.sources) + "\n"
        )
        if path.exists():
            current = path.read_text(errors="replace")
            if not current.startswith(GENERATED_MARK):
                raise MigrateError(
                    f"{path}: exists and was not written by gardien migrate; move it away"
                )
            if _body(current) == body:
                continue
        writes.append(FileWrite(path, (header + body).encode(), what))
    return writes


def _body(text: str) -> str:
    """A generated file without its header (the comment lines before the first blank one)."""
    head, _, body = text.partition("\n\n")
    return body if all(line.startswith("#") for line in head.splitlines()) else text


def _copy_writes(translation: Translation) -> list[FileWrite]:
    writes = []
    for copy in translation.copies:
        content = copy.source.read_bytes()
        if copy.target.exists():
            if copy.target.read_bytes() == content:
                continue
            raise MigrateError(
                f"{copy.target}: exists and differs from {copy.source}; merge them or move "
                "it away, then run gardien migrate again"
            )
        writes.append(FileWrite(copy.target, content, f"copy of {copy.source}"))
    return writes


def _check_staged(target: Path, writes: list[FileWrite]) -> DaemonSettings:
    """Check gardien's configuration as it will be (a copy of ``target`` with ``writes``), as
    ``gardien config check`` does; its daemon settings. :class:`MigrateError` listing every
    problem when it fails."""
    with tempfile.TemporaryDirectory(prefix="gardien-migrate-") as temporary:
        staged = Path(temporary) / "etc"
        if target.is_dir():
            shutil.copytree(target, staged, symlinks=True)
        else:  # gardien will read only what migrate writes (and its bundled filters)
            staged.mkdir()
        for write in writes:
            path = staged / write.path.relative_to(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(write.content)
        try:
            problems = check_configuration(staged)
            settings = load_daemon_settings(staged)
        except ConfigError as error:
            problems = [str(error)]
    if problems:
        text = "; ".join(p.replace(str(staged), str(target)) for p in problems)
        raise MigrateError(
            f"the migrated configuration would not pass gardien config check: {text} "
            "(nothing was changed)"
        )
    return settings


def check_configuration(config_dir: Path) -> list[str]:
    """The problems ``gardien config check`` would report for ``config_dir``."""
    load_daemon_settings(config_dir)
    assembly = assemble(config_dir, firewalls=pretend_firewalls())
    return [str(problem) for problem in assembly.problems]


# ---- execution ----------------------------------------------------------------------------


def execute(plan: Plan, report: Callable[[str], None]) -> None:
    """Carry out ``plan`` (see the module docstring for the order); ``report`` is told each
    step as it is done. Raises :class:`MigrateError` saying what was done and what was not."""
    translation = plan.translation
    for write in plan.writes:
        _write(write.path, write.content)
        report(f"wrote {write.path}")
    if plan.new_active or plan.history_to_import:
        active, history = _import(plan.settings.dbfile, plan.new_active, plan.history_to_import)
        report(f"imported {len(active)} active ban(s) and {history} history record(s)")
    socket = plan.settings.socket
    applied = [ban for ban in plan.new_active if ban.jail in translation.jails]
    if not plan.gardien_running:
        log = Path(plan.settings.dbfile).parent / "gardien-run.log"
        probe = str(applied[0].address) if applied else None
        how = system.start_gardien(translation.target_dir, socket, log, probe)
        count = _banned_count(plan.settings.dbfile, translation.jails)
        report(f"started gardien ({how}) with the {count} active ban(s) of its store")
    elif plan.writes or plan.new_active:
        # gardien already runs (its package started it with its own jails): it reloads, and
        # each jail restarts with the imported bans (fail2ban still runs meanwhile)
        system.reload_gardien(socket, str(applied[0].address) if applied else None)
        count = _banned_count(plan.settings.dbfile, translation.jails)
        report(f"reloaded the running gardien with the {count} active ban(s) of its store")
    if plan.fail2ban:
        command = system.stop_fail2ban(
            plan.fail2ban, translation.fail2ban.socket, translation.fail2ban.pidfile
        )
        report(f"stopped fail2ban ({command})")
        _catch_up(plan, report)
    leftovers = system.find_leftovers()
    if leftovers:
        failed = system.remove_leftovers(leftovers)
        removed = [str(item) for item in leftovers if str(item) not in failed]
        if removed:
            report(f"removed fail2ban's {', '.join(removed)}")
        if failed:
            raise MigrateError(f"could not remove {', '.join(failed)}; gardien runs all the same")


def _banned_count(dbfile: str, jails: tuple[str, ...]) -> int:
    """How many active bans of ``jails`` the store holds: what the daemon restored at start."""
    counts = active_ban_counts(dbfile, time.time())
    return sum(count for jail, count in counts.items() if jail in jails)


def _write(path: Path, content: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.gardien-migrate")
    temporary.write_bytes(content)
    temporary.chmod(0o644)
    os.replace(temporary, path)


def _import(dbfile: str, active: list[Ban], history: list[Ban]) -> tuple[list[Ban], int]:
    with SQLiteBanStore(dbfile) as store:
        return store.import_bans(active, history)


def _ban_in_daemon(socket: str, bans: list[Ban]) -> None:
    """Ban ``bans`` in the running daemon (each for its jail's bantime, from now)."""
    client = ControlClient(socket, timeout=120)
    by_jail: dict[str, list[str]] = {}
    for ban in bans:
        by_jail.setdefault(ban.jail, []).append(str(ban.address))
    for jail, addresses in by_jail.items():
        for start in range(0, len(addresses), _BANIP_BATCH):
            client.call("set", jail, "banip", *addresses[start : start + _BANIP_BATCH])


def _catch_up(plan: Plan, report: Callable[[str], None]) -> None:
    """What fail2ban banned between the plan and its stop (the rows it wrote since): imported,
    and banned in gardien."""
    if plan.bans is None:
        return
    late = read_fail2ban_db(plan.bans.path, time.time(), after=plan.bans.last_rows)
    if not late.active and not late.history:
        return
    added, _ = _import(plan.settings.dbfile, list(late.active), list(late.history))
    applied = [ban for ban in added if ban.jail in plan.translation.jails]
    if applied:
        _ban_in_daemon(plan.settings.socket, applied)
    report(f"imported {len(added)} ban(s) fail2ban made during the switch")

"""A journal opened on given files (``systemd[journalfiles=FILE]``) follows the file at that
path when it is archived and replaced, as journald does on ``journalctl --rotate`` or at its
size limits: the archived file is renamed ``NAME@...journal`` and a new file starts at the path.
The journal files are real ones, written by systemd-journal-remote."""

from __future__ import annotations

from pathlib import Path

from gardien.sources.journal import JournalSource
from test_journal import SSHD, Writer, lines, sshd


def failed(port: int) -> str:
    return f"Failed password for root from 198.51.100.7 port {port} ssh2"


def rotate(journal: Path) -> None:
    journal.rename(journal.with_name("system@0123456789abcdef-0000000000000001-0005f000.journal"))


def test_journal_files_given_by_path_are_followed_across_a_rotation(
    tmp_path: Path, write_journal: Writer
) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(i, failed(1000 + i), pid=str(10 + i)) for i in range(3)])
    with JournalSource([SSHD], files=[str(journal)], since=0) as source:
        assert [line.rsplit(" ", 2)[1] for line in lines(source)] == ["1000", "1001", "1002"]
        rotate(journal)
        write_journal(journal, [sshd(10 + i, failed(2000 + i), pid=str(20 + i)) for i in range(2)])
        assert [line.rsplit(" ", 2)[1] for line in lines(source)] == ["2000", "2001"]
        assert lines(source) == []  # nothing twice
        write_journal(journal, [sshd(20, failed(3000), pid="30")])
        assert [line.rsplit(" ", 2)[1] for line in lines(source)] == ["3000"]


def test_entries_written_before_the_rotation_and_not_read_yet_are_not_lost(
    tmp_path: Path, write_journal: Writer
) -> None:
    journal = tmp_path / "system.journal"
    write_journal(journal, [sshd(0, failed(1000), pid="10")])
    with JournalSource([SSHD], files=[str(journal)], since=0) as source:
        assert len(lines(source)) == 1
        write_journal(journal, [sshd(1, failed(1001), pid="11")])  # not read before...
        rotate(journal)  # ...the rotation
        write_journal(journal, [sshd(2, failed(1002), pid="12")])
        assert [line.rsplit(" ", 2)[1] for line in lines(source)] == ["1001", "1002"]

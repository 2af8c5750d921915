"""Sources resuming from their checkpoints: a log file rotated while gardien was not reading
it (rename or copytruncate) is read to its end from the checkpoint, then the new file."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from gardien.model import Checkpoint
from gardien.sources.files import FileSource, position_from_state


def read_all(source: FileSource) -> list[str]:
    async def run() -> list[str]:
        lines: list[str] = []
        while (batch := await source.read()) is not None:
            lines += batch.records
        return lines

    return asyncio.run(run())


def checkpoint_after(path: Path, lines: list[str]) -> Checkpoint:
    path.write_text("".join(f"{line}\n" for line in lines))
    source = FileSource(str(path))
    assert read_all(source) == lines
    checkpoint = source.checkpoint()
    source.close()
    return checkpoint


def test_a_checkpoint_resumes_after_its_last_line(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    checkpoint = checkpoint_after(log, ["one", "two"])
    with log.open("a") as handle:
        handle.write("three\n")
    source = FileSource(str(log), checkpoint=checkpoint)
    assert read_all(source) == ["three"]
    position = position_from_state(str(log), source.checkpoint().state)
    assert position is not None and position.offset == len("one\ntwo\nthree\n")


def test_a_file_renamed_since_the_checkpoint_is_read_to_its_end_then_the_new_one(
    tmp_path: Path,
) -> None:
    log = tmp_path / "auth.log"
    checkpoint = checkpoint_after(log, ["one", "two"])
    with log.open("a") as handle:
        handle.write("three\n")  # written before the rotation, not read yet
    log.rename(tmp_path / "auth.log.1")
    log.write_text("four\n")
    source = FileSource(str(log), checkpoint=checkpoint)
    assert read_all(source) == ["three", "four"]


def test_a_file_copied_and_truncated_since_the_checkpoint_is_read_from_the_copy(
    tmp_path: Path,
) -> None:
    log = tmp_path / "auth.log"
    checkpoint = checkpoint_after(log, ["one", "two"])
    with log.open("a") as handle:
        handle.write("three\n")
    shutil.copy(log, tmp_path / "auth.log-20261203")
    with log.open("r+") as handle:
        handle.truncate(0)
    with log.open("a") as handle:
        handle.write("four\n")
    source = FileSource(str(log), checkpoint=checkpoint)
    assert read_all(source) == ["three", "four"]


def test_a_compressed_or_unrelated_file_is_not_taken_for_the_rotated_one(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    checkpoint = checkpoint_after(log, ["one", "two"])
    log.rename(tmp_path / "auth.log.1.gz")  # as if compressed: not read
    (tmp_path / "auth.logger").write_text("one\ntwo\nnot this\n")  # another log
    log.write_text("new\n")
    source = FileSource(str(log), checkpoint=checkpoint)
    assert read_all(source) == ["new"]


def test_a_checkpoint_that_is_not_one_starts_as_without_one(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("one\n")
    source = FileSource(str(log), "tail", checkpoint=Checkpoint(f"file:{log}", "garbage"))
    with log.open("a") as handle:
        handle.write("two\n")
    assert read_all(source) == ["two"]

"""Log sources: following files across rotations, logpath globs, and the watcher."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.sources import (
    MAX_LINE_BYTES,
    FilePosition,
    FileTail,
    FileWatcher,
    RawLines,
    expand_logpaths,
    parse_logpath_entry,
)
from support.ci import require


def append(path: Path | str, data: str | bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


def texts(lines: list[tuple[str, int]]) -> list[str]:
    return [text for text, _offset in lines]


def read_all(tail: FileTail) -> list[str]:
    return texts(tail.read_lines())


def numbered(start: int, count: int) -> list[str]:
    return [f"line {n} " + "x" * (n % 23) for n in range(start, start + count)]


def write_lines(path: Path | str, lines: list[str]) -> None:
    append(path, "".join(line + "\n" for line in lines))


# growing files


def test_lines_are_read_as_the_file_grows(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "one\n")
    with FileTail(str(log)) as tail:
        assert tail.read_lines() == [("one", 4)]
        assert tail.read_lines() == []
        append(log, "two\nthree\n")
        assert tail.read_lines() == [("two", 8), ("three", 14)]
        assert tail.position().offset == 14


def test_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "first\nsec")
    with FileTail(str(log)) as tail:
        assert tail.read_lines() == [("first", 6)]
        assert tail.position().offset == 6
        append(log, "ond")
        assert tail.read_lines() == []
        append(log, "\nthi")
        assert tail.read_lines() == [("second", 13)]
        assert tail.position().offset == 13


def test_a_backlog_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    written = numbered(0, 2000)
    write_lines(log, written)
    got: list[str] = []
    calls = 0
    with FileTail(str(log)) as tail:
        while lines := tail.read_lines(max_bytes=4096):
            calls += 1
            size = sum(len(text) + 1 for text in texts(lines))
            assert size <= 4096 + 40  # the line begun in the previous chunk, and these
            got += texts(lines)
        assert got == written
        assert calls > 5
        assert tail.position().offset == log.stat().st_size


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(
        st.lists(
            st.sampled_from([b"a", b"\xc3\xa9", b"\xe2\x82", b"\xff", b"\r", b"\n", b"x" * 20]),
            max_size=40,
        ).map(b"".join),
        min_size=1,
        max_size=8,
    ),
    limit=st.sampled_from([8, 64, 4096]),
)
def test_lines_read_block_by_block_are_those_of_the_whole_file(
    chunks: list[bytes], limit: int
) -> None:
    """Written in pieces and read after each, the lines and their offsets are those of the
    whole file, each cut at ``max_line_bytes`` and decoded alone (invalid bytes replaced, a
    line ending's CR dropped), whichever way a block was split and decoded."""
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "app.log"
        log.write_bytes(b"")
        got: list[tuple[str, int]] = []
        with FileTail(str(log), max_line_bytes=limit) as tail:
            for chunk in chunks:
                with log.open("ab") as out:
                    out.write(chunk)
                got += tail.read_lines()
        content = b"".join(chunks)
        expected, end = [], 0
        for raw in content.split(b"\n")[:-1]:
            end += len(raw) + 1
            expected.append((raw[:limit].decode("utf-8", "replace").rstrip("\r\n"), end))
        assert got == expected


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(
        st.lists(
            st.sampled_from([b"a", b"\xc3\xa9", b"\xff", b"\r", b"\n", b"x" * 20]),
            max_size=40,
        ).map(b"".join),
        min_size=1,
        max_size=8,
    ),
    limit=st.sampled_from([8, 64, 4096]),
    budget=st.sampled_from([None, 5, 64]),
)
def test_a_block_of_raw_lines_holds_the_lines_read_one_by_one(
    chunks: list[bytes], limit: int, budget: int | None
) -> None:
    """What the daemon hands the native core: the raw block read after each write holds the
    lines :meth:`FileTail.read_lines` gives (each cut at ``max_line_bytes``, then decoded), at
    the same position, whatever the writes and the read budget."""
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "app.log"
        log.write_bytes(b"")
        by_lines: list[str] = []
        by_block: list[str] = []
        with (
            FileTail(str(log), max_line_bytes=limit) as lines,
            FileTail(str(log), max_line_bytes=limit) as blocks,
        ):
            for chunk in chunks:
                with log.open("ab") as out:
                    out.write(chunk)
                while got := lines.read_lines(max_bytes=budget):
                    by_lines += texts(got)
                while block := blocks.read_block(max_bytes=budget):
                    assert block.endswith(b"\n")
                    by_block += list(RawLines(block))
                assert blocks.position() == lines.position()
        assert by_block == by_lines


def test_a_line_longer_than_max_bytes_is_still_returned_whole(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "a" * 5000 + "\nb\n")
    with FileTail(str(log)) as tail:
        got = texts(tail.read_lines(max_bytes=10))
        assert got[0] == "a" * 5000
        while lines := tail.read_lines(max_bytes=10):
            got += texts(lines)
        assert got == ["a" * 5000, "b"]


def test_line_endings_and_invalid_utf8(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, b"caf\xe9 \xc3\xa9t\xc3\xa9\r\n\n#comment\n")
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["caf\ufffd été", "", "#comment"]


def test_a_line_over_one_mebibyte_is_cut_and_reading_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    long_line = b"0123456789abcdef" * (3 * (1 << 20) // 16)  # 3 MiB
    append(log, long_line + b"\nafter\n")
    with FileTail(str(log)) as tail:
        lines = tail.read_lines()
        assert [len(text) for text in texts(lines)] == [MAX_LINE_BYTES, 5]
        assert lines[0] == (long_line[:MAX_LINE_BYTES].decode(), len(long_line) + 1)
        assert lines[1] == ("after", len(long_line) + 7)


def test_a_long_line_written_in_pieces_is_kept_bounded(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "start\n")
    with FileTail(str(log), max_line_bytes=100) as tail:
        assert read_all(tail) == ["start"]
        for _ in range(50):
            append(log, "y" * 37)
            assert tail.read_lines() == []
            assert len(tail._pending) <= 100
        append(log, "\nend\n")
        assert read_all(tail) == ["y" * 100, "end"]


# rotation


def test_rename_and_create_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a1", "a2"])
    with FileTail(str(log)) as tail, open(log, "ab", buffering=0) as writer:
        assert read_all(tail) == ["a1", "a2"]
        writer.write(b"a3\n")
        log.rename(tmp_path / "auth.log.1")
        writer.write(b"a4\n")  # the writer has not reopened yet
        write_lines(log, ["b1", "b2"])
        writer.write(b"a5\n")
        assert read_all(tail) == ["a3", "a4", "a5", "b1", "b2"]
        write_lines(log, ["b3"])
        assert read_all(tail) == ["b3"]
        assert tail.position().inode == log.stat().st_ino


def test_rename_without_a_new_file_yet(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a1"])
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["a1"]
        write_lines(log, ["a2"])
        log.rename(tmp_path / "auth.log.1")
        assert read_all(tail) == ["a2"]
        assert read_all(tail) == []
        write_lines(log, ["b1"])
        assert read_all(tail) == ["b1"]


def test_copytruncate_starts_again_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, numbered(0, 10))
    with FileTail(str(log)) as tail:
        assert read_all(tail) == numbered(0, 10)
        shutil.copyfile(log, tmp_path / "auth.log.1")
        os.truncate(log, 0)
        assert read_all(tail) == []
        write_lines(log, ["new 1"])
        assert read_all(tail) == ["new 1"]
        write_lines(log, ["new 2"])
        assert read_all(tail) == ["new 2"]


def test_copytruncate_noticed_after_the_file_grew_past_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["old 1", "old 2"])
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["old 1", "old 2"]
        os.truncate(log, 0)
        fresh = numbered(100, 20)
        write_lines(log, fresh)  # larger than the old offset before we look
        assert read_all(tail) == fresh


def test_delete_and_recreate(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a1"])
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["a1"]
        write_lines(log, ["a2"])
        log.unlink()
        assert read_all(tail) == ["a2"]  # still readable through the open descriptor
        write_lines(log, ["b1"])
        write_lines(log, ["b2"])
        assert read_all(tail) == ["b1", "b2"]


def test_delete_and_recreate_before_reading(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a1"])
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["a1"]
        write_lines(log, ["a2"])
        log.unlink()
        write_lines(log, ["b1"])
        assert read_all(tail) == ["a2", "b1"]


def test_the_unfinished_last_line_of_a_rotated_file_is_read(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "a1\na2")
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["a1"]
        log.rename(tmp_path / "auth.log.1")
        write_lines(log, ["b1"])
        assert tail.read_lines() == [("a2", 5), ("b1", 3)]


def test_a_missing_file_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    with FileTail(str(log), start="tail") as tail:
        assert tail.read_lines() == []
        assert tail.position() == FilePosition(str(log), 0, 0, "")
        write_lines(log, ["x1", "x2"])  # a file that appears is read from its start
        assert read_all(tail) == ["x1", "x2"]


def test_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        FileTail(str(tmp_path))


def test_a_closed_tail_cannot_be_read(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a"])
    tail = FileTail(str(log))
    tail.close()
    with pytest.raises(ValueError, match="closed"):
        tail.read_lines()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="start"):
        FileTail(str(tmp_path / "x"), start="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="if_new"):
        FileTail(str(tmp_path / "x"), if_new="middle")  # type: ignore[arg-type]
    with FileTail(str(tmp_path / "x")) as tail, pytest.raises(ValueError, match="max_bytes"):
        tail.read_lines(max_bytes=0)


# where reading starts


def test_head_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "old 1\nold 2\nbeing writ")
    with FileTail(str(log), start="head") as head, FileTail(str(log), start="tail") as tail:
        append(log, "ten\nnew\n")
        assert read_all(head) == ["old 1", "old 2", "being written", "new"]
        assert read_all(tail) == ["being written", "new"]


def test_tail_of_an_empty_file_and_of_one_without_newline(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.touch()
    partial = tmp_path / "partial.log"
    append(partial, "no newline yet")
    with FileTail(str(empty), start="tail") as a, FileTail(str(partial), start="tail") as b:
        append(empty, "e\n")
        append(partial, "!\n")
        assert read_all(a) == ["e"]
        assert read_all(b) == ["no newline yet!"]


def test_position_describes_the_file(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    append(log, "first line\nsecond\n")
    with FileTail(str(log)) as tail:
        read_all(tail)
        position = tail.position()
    assert position == FilePosition(
        path=str(log),
        inode=log.stat().st_ino,
        offset=18,
        first_line_hash=hashlib.sha256(b"first line").hexdigest(),
    )


def test_resume_from_a_saved_position_in_the_same_file(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a1", "a2"])
    with FileTail(str(log)) as tail:
        assert read_all(tail) == ["a1", "a2"]
        saved = tail.position()
    write_lines(log, ["a3"])
    with FileTail(str(log), start=saved) as tail:
        assert read_all(tail) == ["a3"]
    # copied elsewhere (another inode), the same file still: resumed
    shutil.copyfile(log, tmp_path / "copy")
    os.replace(tmp_path / "copy", log)
    with FileTail(str(log), start=saved, if_new="tail") as tail:
        assert read_all(tail) == ["a3"]


def test_a_different_file_at_the_same_path_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a1", "a2"])
    with FileTail(str(log)) as tail:
        read_all(tail)
        saved = tail.position()
    log.unlink()
    write_lines(log, ["b1", "b2", "b3"])
    with FileTail(str(log), start=saved) as tail:
        assert read_all(tail) == ["b1", "b2", "b3"]
    with FileTail(str(log), start=saved, if_new="tail") as tail:
        assert read_all(tail) == []
        write_lines(log, ["b4"])
        assert read_all(tail) == ["b4"]


def test_a_file_shorter_than_the_saved_offset_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["same first", "a2", "a3"])
    with FileTail(str(log)) as tail:
        read_all(tail)
        saved = tail.position()
    log.write_text("same first\n")
    with FileTail(str(log), start=saved) as tail:
        assert read_all(tail) == ["same first"]


def test_a_position_saved_before_any_line_resumes_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.touch()
    with FileTail(str(log)) as tail:
        saved = tail.position()
    assert saved.first_line_hash == ""
    write_lines(log, ["a1"])
    with FileTail(str(log), start=saved, if_new="tail") as tail:
        assert read_all(tail) == ["a1"]


# never lose or repeat a line

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 6)),
        st.tuples(st.just("append_old"), st.integers(1, 3)),
        st.tuples(st.just("read"), st.none() | st.integers(1, 200)),
        st.tuples(st.sampled_from(["rename", "copytruncate", "delete"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations=OPERATIONS, exists_at_start=st.booleans())
def test_rotations_never_lose_or_repeat_a_line(
    operations: list[tuple[str, int | None]], exists_at_start: bool
) -> None:
    """Any mix of writes, reads and rotations gives each line once, in order.

    Two limits every log reader shares are respected: a file that came to the path since the
    last full read is read before it is rotated away (a file that comes and goes between two
    reads is never seen), and a full read comes before a copytruncate (what is copied and not
    yet read is gone from the file).
    """
    with tempfile.TemporaryDirectory() as directory:
        log = os.path.join(directory, "log")
        files: list[list[str]] = []  # the lines of each file, in the order they were created
        current: int | None = None  # the file at the path
        old: tuple[int, str] | None = None  # a renamed file the writer still writes to
        unseen = False  # the file at the path came since the last full read
        counter = 0
        got: list[str] = []

        def new_lines(count: int) -> list[str]:
            nonlocal counter
            counter += count
            return numbered(counter - count, count)

        if exists_at_start:
            files.append(new_lines(2))
            current = 0
            write_lines(log, files[0])
        tail = FileTail(log)

        def read(max_bytes: int | None = None) -> None:
            nonlocal old, unseen
            got.extend(texts(tail.read_lines(max_bytes)))
            old = None  # the reader may have moved on: writing there now would be lost
            if max_bytes is None:
                unseen = False

        for operation, argument in operations:
            if operation == "append":
                assert argument is not None
                if current is None:
                    files.append([])
                    current = len(files) - 1
                    unseen = True
                lines = new_lines(argument)
                files[current] += lines
                write_lines(log, lines)
            elif operation == "append_old" and old is not None:
                assert argument is not None
                lines = new_lines(argument)
                files[old[0]] += lines
                write_lines(old[1], lines)
            elif operation == "read":
                read(argument)
            elif current is not None and operation in ("rename", "delete"):
                if unseen:
                    read()
                if operation == "rename":
                    old = (current, f"{log}.{len(files)}")
                    os.rename(log, old[1])
                else:
                    os.unlink(log)
                current = None
            elif current is not None and operation == "copytruncate":
                read()
                shutil.copyfile(log, log + ".copy")
                os.truncate(log, 0)
                files.append([])
                current = len(files) - 1
        read()
        tail.close()
        assert got == [line for lines in files for line in lines]
        if current is not None:
            assert tail.position().offset == os.path.getsize(log)


# logpath globs


def test_expand_logpaths(tmp_path: Path) -> None:
    for name in ("b.log", "a.log", "c.txt"):
        (tmp_path / name).touch()
    (tmp_path / "dir.log").mkdir()
    (tmp_path / "dangling.log").symlink_to(tmp_path / "nowhere")
    missing = str(tmp_path / "missing.log")
    unmatched = str(tmp_path / "*.gz")
    entries = [f"{tmp_path}/*.log", f"{tmp_path}/a.log tail", missing, unmatched, "  "]
    expected = sorted([str(tmp_path / "a.log"), str(tmp_path / "b.log"), missing])
    assert expand_logpaths(entries) == expected
    assert expand_logpaths("\n".join(entries)) == expected
    assert expand_logpaths([]) == []


def test_parse_logpath_entry() -> None:
    assert parse_logpath_entry("/var/log/auth.log") == ("/var/log/auth.log", "head")
    assert parse_logpath_entry(" /var/log/auth.log  tail ") == ("/var/log/auth.log", "tail")
    assert parse_logpath_entry("/var/log/auth.log HEAD") == ("/var/log/auth.log", "head")
    assert parse_logpath_entry("/srv/my logs/a.log") == ("/srv/my logs/a.log", "head")


# the watcher


async def next_change(watcher: FileWatcher, path: Path, timeout: float = 2.0) -> None:
    """Wait until ``path`` is reported changed (fails after ``timeout`` seconds)."""

    async def until_seen() -> None:
        async for changed in watcher:
            if str(path) in changed:
                return

    await asyncio.wait_for(until_seen(), timeout)


def inotify_usable() -> bool:
    from gardien.sources.watch import _new_inotify

    found = _new_inotify()
    if found is None:
        return False
    found.close()
    return True


@pytest.fixture
def inotify() -> None:
    require(inotify_usable(), "inotify is not available")


@pytest.mark.usefixtures("inotify")
def test_watcher_with_inotify_reports_changes(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    later = tmp_path / "later.log"
    write_lines(log, ["a"])

    async def scenario() -> None:
        async with FileWatcher([str(log), str(later)], poll_interval=60) as watcher:
            assert watcher.mode == "inotify"
            write_lines(log, ["b"])
            await next_change(watcher, log)
            write_lines(later, ["created"])
            await next_change(watcher, later)
            log.rename(tmp_path / "auth.log.1")
            await next_change(watcher, log)
            os.truncate(later, 0)
            await next_change(watcher, later)

    asyncio.run(scenario())


@pytest.mark.usefixtures("inotify")
def test_watcher_coalesces_a_burst(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.touch()

    async def scenario() -> None:
        async with FileWatcher([str(log)], poll_interval=60, batch_delay=0.2) as watcher:
            for n in range(200):
                write_lines(log, [f"line {n}"])
            first = await asyncio.wait_for(watcher.__anext__(), 2)
            assert first == frozenset({str(log)})
            # the whole burst came in that one report
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(watcher.__anext__(), 0.2)

    asyncio.run(scenario())


@pytest.mark.usefixtures("inotify")
def test_watcher_glob_pattern_and_directory_created_later(tmp_path: Path) -> None:
    logs = tmp_path / "app"
    pattern = str(logs / "*.log")

    async def scenario() -> None:
        async with FileWatcher([pattern], poll_interval=0.05) as watcher:
            logs.mkdir()
            write_lines(logs / "one.log", ["x"])
            await next_change(watcher, logs / "one.log")
            write_lines(logs / "two.log", ["x"])
            await next_change(watcher, logs / "two.log")
            write_lines(logs / "other.txt", ["x"])
            write_lines(logs / "one.log", ["y"])
            await next_change(watcher, logs / "one.log")
            shutil.rmtree(logs)  # watched again when it comes back
            logs.mkdir()
            write_lines(logs / "three.log", ["x"])
            await next_change(watcher, logs / "three.log")

    asyncio.run(scenario())


def test_watcher_polling_reports_changes(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write_lines(log, ["a"])
    pattern = str(tmp_path / "*.txt")

    async def scenario() -> None:
        async with FileWatcher([str(log), pattern], use_inotify=False, poll_interval=0.05) as w:
            assert w.mode == "polling"
            write_lines(log, ["b"])
            await next_change(w, log)
            log.unlink()
            await next_change(w, log)
            write_lines(log, ["c"])
            await next_change(w, log)
            write_lines(tmp_path / "new.txt", ["c"])
            await next_change(w, tmp_path / "new.txt")

    asyncio.run(scenario())


def test_watcher_polls_when_inotify_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncinotify

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(asyncinotify, "Inotify", refuse)
    log = tmp_path / "auth.log"

    async def scenario() -> None:
        async with FileWatcher([str(log)], poll_interval=0.05) as watcher:
            assert watcher.mode == "polling"
            write_lines(log, ["a"])
            await next_change(watcher, log)

    asyncio.run(scenario())


@pytest.mark.usefixtures("inotify")
def test_watcher_polls_a_directory_inotify_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncinotify

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (watch limit)")

    monkeypatch.setattr(asyncinotify.Inotify, "add_watch", refuse)
    log = tmp_path / "auth.log"
    write_lines(log, ["a"])

    async def scenario() -> None:
        async with FileWatcher([str(log)], poll_interval=0.05) as watcher:
            write_lines(log, ["b"])
            await next_change(watcher, log)

    asyncio.run(scenario())


def test_watcher_add_discard_and_close(tmp_path: Path) -> None:
    one = tmp_path / "one.log"
    two = tmp_path / "two.log"

    async def scenario() -> None:
        watcher = FileWatcher([str(one)], use_inotify=False, poll_interval=0.05)
        async with watcher:
            watcher.add(str(two))
            watcher.discard(str(one))
            assert watcher.paths == {str(two)}
            write_lines(two, ["x"])
            await next_change(watcher, two)
        assert [changed async for changed in watcher] == []

    asyncio.run(scenario())

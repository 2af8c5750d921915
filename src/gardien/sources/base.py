"""What every source of a jail is: batches of records, each with the checkpoint after it.

A log file (:class:`~gardien.sources.files.FileSource`), the systemd journal
(:class:`~gardien.sources.journal.JournalEntries`) and a hub's blocklist
(:class:`~gardien.sources.hub.HubFeed`) are each a :class:`Source`. The daemon follows each
the same way::

    source.resume(store.checkpoint(jail, source.key))
    while True:
        batch = await source.read()
        if batch is None:                  # nothing new now
            await source.wait(1.0)
            continue
        decisions = match_and_decide(batch.records)
        store.save_progress(Progress(jail, ..., checkpoint=batch.checkpoint, ...))
        act(decisions)

The checkpoint is stored in the transaction of the bans and pending failures the batch led to,
so after a crash the source resumes after the last batch stored: a batch is read again only if
none of it was stored, and is then counted as if for the first time. A source whose batch could
not be stored is :meth:`~Source.resume`\\ d from the last checkpoint that was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from gardien.model import Checkpoint

__all__ = ["Batch", "Source"]

Record_co = TypeVar("Record_co", covariant=True)


@dataclass(frozen=True)
class Batch(Generic[Record_co]):
    """Records read together, and where the source resumes after them (``None`` when the
    source has no checkpoint to give yet, such as a journal read before its first entry)."""

    records: Sequence[Record_co]
    checkpoint: Checkpoint | None


class Source(Protocol[Record_co]):
    """One source of records of one jail."""

    @property
    def key(self) -> str:
        """Which source of its jail this is, stable across restarts: ``file:PATH``,
        ``journal``, ``hub``. Checkpoints are stored under it."""
        ...

    @property
    def description(self) -> str:
        """What is read, for logs: ``/var/log/auth.log``, ``the system journal (...)``."""
        ...

    def resume(self, checkpoint: Checkpoint | None) -> None:
        """Go on after ``checkpoint`` (one this source gave), or from where a source without
        one starts (``None``). A checkpoint that no longer describes what is there (a file
        replaced, a journal vacuumed) is no error: the source starts as without one."""
        ...

    async def read(self) -> Batch[Record_co] | None:
        """The next batch (bounded in size, so that the loop stays responsive), or ``None``
        when there is nothing new now. Raises ``OSError`` when the source cannot be read."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return when there may be something new, or after ``timeout`` seconds at most."""
        ...

    def close(self) -> None:
        """Release what the source holds open; it cannot be read afterwards."""
        ...

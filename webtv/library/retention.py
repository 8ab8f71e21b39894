"""Retention: keeps the library under the ``[library]`` quotas, ``max_bytes`` and ``max_clips``.

Both count every indexed clip, broken ones included, by the size it had when it entered.

Deletion order. Clips go in this order, one at a time, until both quotas are met:

1. broken clips first (they never air again),
2. then the most aired (``times_aired`` descending),
3. then the oldest (``created`` ascending; the id breaks ties).

So a clip that aired many times goes before one that aired once, and among clips aired
equally often the oldest goes first. Never-aired clips of other themes sort last: the loop
airs them before anything else, and once they have aired they take their place in the order.

Never deleted:

- clips marked keep (``POST /api/clips/{id}/keep``, ``Library.set_keep``);
- every clip of the block on air and of the next block (already chosen), and the candidates
  of a block being chosen: ``Programmer.protected_clip_ids()``;
- fresh clips of the current theme (never aired): they wait for their first airing.

When the quotas cannot be met with what may be deleted, retention deletes all it may, logs a
warning (once, until the library is back under quota) and ``/api/status`` shows
``library.over_quota: true``. The library then stays over quota until protected clips become
deletable: fresh clips after their first airing, a block's clips when the block after it goes
on air, kept clips when their mark is lifted. The producer is not throttled: it keeps at most
``[producer] ahead`` fresh clips ready, so the excess is bounded by that and two blocks.

When: at start, every ``check_interval_s``, right after each ingest, and at once when an
edited ``[library]`` comes in (``reconfigure``). And when the disk is short of space
(``make_room``, asked by ``webtv.library.space.DiskGuard`` before production pauses): the same
order and the same protections, until enough bytes are freed, whatever the quotas. Choosing
the clips and deleting their rows happen in one synchronous step on the event loop, so the programmer never picks a clip that
is being deleted; the files are removed afterwards in a worker thread. A crash in between leaves files without rows, which
``Library.reconcile`` removes at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from webtv.config import LibrarySection
from webtv.library.index import Clip, Library

log = logging.getLogger("webtv.library.retention")


@dataclass(frozen=True)
class LibraryStatus:
    """The library's size and the retention of it, as ``/api/status`` shows it under ``library``."""

    clips: int  # airable clips
    seconds: float  # of airable clips
    airable_bytes: int
    bytes: int  # every indexed clip, broken ones included: what the quota counts
    clips_total: int
    max_bytes: int | None
    max_clips: int | None
    over_quota: bool
    kept: int
    deleted: int  # since start
    deleted_bytes: int


@dataclass
class RetentionState:
    deleted: int = 0  # clips deleted since start
    deleted_bytes: int = 0
    over_quota: bool = False  # the last check could not meet the quota
    last_error: str | None = None


def within(quota: LibrarySection, clips: int, size: int) -> bool:
    return (quota.max_clips is None or clips <= quota.max_clips) and (
        quota.max_bytes is None or size <= quota.max_bytes)


class Retention:
    """Deletes clips down to the quota; ``run()`` is the channel's retention task."""

    def __init__(
        self,
        library: Library,
        quota: LibrarySection,
        protected: Callable[[], set[int]],
        theme: Callable[[], str],
        on_deleted: Callable[[list[int]], None] | None = None,
    ):
        self.library = library
        self.quota = quota
        self.protected = protected
        self.theme = theme
        self.on_deleted = on_deleted
        self.state = RetentionState()
        self._unlink: list[Path] = []  # files whose rows are gone, to remove off the loop
        self._wake = asyncio.Event()

    def reconfigure(self, quota: LibrarySection) -> None:
        """An edited ``[library]``: checked against at once."""
        self.quota = quota
        self._wake.set()

    def victims(self) -> list[Clip]:
        """The clips to delete now to meet the quota, in deletion order (see the module)."""
        quota = self.quota
        clips, size = self.library.usage()
        if within(quota, clips, size):
            self.state.over_quota = False
            return []
        chosen = []
        for clip in self.deletable():
            if within(quota, clips, size):
                break
            chosen.append(clip)
            clips, size = clips - 1, size - clip.size
        over = not within(quota, clips, size)
        if over and not self.state.over_quota:
            log.warning("library over quota: clips=%d bytes=%d max_clips=%s max_bytes=%s; the rest is on air,"
                        " next, fresh of the theme or kept", clips, size, quota.max_clips, quota.max_bytes)
        self.state.over_quota = over
        return chosen

    def deletable(self) -> list[Clip]:
        """Every clip retention may delete now, in deletion order (see the module)."""
        protected, theme = self.protected(), self.theme()
        return [clip for clip in self.library.deletion_order() if not (
            clip.id in protected or (clip.state == "ok" and clip.times_aired == 0 and clip.theme == theme))]

    async def make_room(self, need_bytes: int) -> int:
        """Delete clips, in deletion order, until ``need_bytes`` are freed or nothing more may go
        (the disk is short of space); returns the bytes freed."""
        chosen, freed = [], 0
        for clip in self.deletable():
            if freed >= need_bytes:
                break
            chosen.append(clip)
            freed += clip.size
        if chosen:
            self._delete(chosen, "to make room on disk")
            await self.flush()
        return freed

    def trim(self) -> list[int]:
        """Delete the rows of the clips over quota now (synchronous, on the event loop); their
        files are queued for ``flush``. Returns the deleted ids."""
        chosen = self.victims()
        if not chosen:
            return []
        return self._delete(chosen, "over quota")

    def _delete(self, chosen: list[Clip], why: str) -> list[int]:
        ids = [c.id for c in chosen]
        self._unlink += self.library.forget(ids)
        self.state.deleted += len(ids)
        self.state.deleted_bytes += sum(c.size for c in chosen)
        log.info("retention: deleted %s: clips=%d bytes=%d ids=%s", why, len(ids), sum(c.size for c in chosen),
                 ids[:20])
        if self.on_deleted is not None:
            try:
                self.on_deleted(ids)
            except Exception:  # noqa: BLE001
                log.exception("on_deleted callback failed")
        return ids

    async def flush(self) -> None:
        """Remove the files of deleted rows, in a worker thread."""
        while self._unlink:
            paths, self._unlink = self._unlink, []
            await asyncio.to_thread(Library.remove_files, paths)

    async def enforce(self) -> list[int]:
        ids = self.trim()
        await self.flush()
        return ids

    def after_ingest(self) -> list[int]:
        """A clip entered: trim at once (rows now, files soon). Never raises."""
        try:
            ids = self.trim()
        except Exception as exc:  # noqa: BLE001 - retention must not stop production
            self.state.last_error = str(exc)
            log.exception("retention after ingest failed")
            return []
        if self._unlink:
            self._wake.set()
        return ids

    async def run(self) -> None:
        while True:
            try:
                await self.enforce()
                self.state.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - try again at the next check
                self.state.last_error = str(exc)
                log.exception("retention check failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.quota.check_interval_s)
            except TimeoutError:
                pass

    def status(self) -> LibraryStatus:
        quota = self.quota
        airable, seconds = self.library.stats()
        clips, size = self.library.usage()
        return LibraryStatus(
            clips=airable, seconds=round(seconds, 3), airable_bytes=self.library.total_bytes(), bytes=size,
            clips_total=clips, max_bytes=quota.max_bytes, max_clips=quota.max_clips,
            over_quota=not within(quota, clips, size), kept=self.library.count_kept(),
            deleted=self.state.deleted, deleted_bytes=self.state.deleted_bytes,
        )

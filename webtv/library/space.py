"""Disk space: production pauses when there is no room for a clip, and resumes by itself.

The README's layout keeps the channel file, ``library/``, ``playlists/`` and ``hls/`` in one
folder, usually on one filesystem, so a full disk hits every writer at once. What each does:

- the producer asks ``DiskGuard.room()`` before each sequence. Below ``need_bytes()`` free, the
  guard first asks retention for room (``Retention.make_room``: the same order and protections
  as the quota), and only when that is not enough production pauses: ``disk_full`` in
  ``/api/status`` and ``/metrics``, no render started, free space read again every
  ``poll_s`` (so production resumes within about ``poll_s`` of space returning). Retention is
  asked once per pause (a pause that began with a render failing for want of space too): when another process takes every byte freed (a runaway log), asking
  again at each poll would delete the whole library into it. A render that
  fails for want of space (``is_disk_full``) pauses production in the same way, until more
  room is free than there was when it failed;
- the library keeps a small ``Reserve`` file: when retention's deletion of rows fails with the
  disk full to the last byte, the library gives the reserve up and deletes again, so the
  clips' files can go and free real room. The reserve is for that alone; the guard makes it
  again once there is room for it and a clip besides. Meanwhile the other writers have their
  own fallbacks (``webtv.programmer``: the block before airs again, aired counts wait).

Free space is read with ``os.statvfs`` (``f_bavail``: what an unprivileged writer may use).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

log = logging.getLogger("webtv.library.space")

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# What ffmpeg and other tools print for those errors (their strerror), for failures that reach
# us only as a message.
_NO_SPACE_TEXT = tuple(os.strerror(code) for code in _NO_SPACE)
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a write refused for want of space."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if any(text in str(exc) for text in _NO_SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def free_bytes(folder: Path) -> int:
    """Bytes a writer may still use on ``folder``'s filesystem. Blocking (a syscall)."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


class Reserve:
    """A file of ``size`` bytes held on the library's filesystem, given up when retention cannot
    delete rows for want of space (SQLite needs a few pages to delete rows, too)."""

    def __init__(self, path: Path, size: int = 1 << 20):
        self.path = Path(path)
        self.size = size

    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def restore(self) -> bool:
        """Make the reserve when it is missing; False when there is no room for it. Blocking."""
        if self.held():
            return True
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(b"\0" * self.size)  # written, not sparse: the blocks are really taken
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return True
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno not in _NO_SPACE:
                log.warning("cannot make the space reserve %s: %s", self.path, exc)
            return False

    def release(self) -> bool:
        """Give the reserve up; True when there was one to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("disk full: gave up the %d KB space reserve so retention can delete clips",
                    self.size // 1024)
        return True


@dataclass(frozen=True)
class DiskStatus:
    """The library's filesystem, as ``/api/status`` shows it under ``disk``."""

    full: bool  # production paused: no room for a clip, even after retention made what room it could
    free_bytes: int
    need_bytes: int  # free space production wants before it starts a clip
    full_since: float | None  # Unix time production paused; None while not full
    pauses: int  # times production paused for a full disk, since start


class DiskGuard:
    """Decides whether production may start another clip (``room()``); on the event loop.

    ``clip_bytes()``: the size one clip will take (the library's recent ones); ``headroom``:
    what the other writers need meanwhile (HLS segments); ``make_room(bytes)``: retention,
    deleting what it may to free that much, returning the bytes freed; ``on_space_back()``:
    called when a pause ends (what waited for space may be written now).
    """

    def __init__(
        self,
        folder: Path,
        clip_bytes: Callable[[], int],
        headroom: int,
        make_room: Callable[[int], Awaitable[int]],
        reserve: Reserve | None = None,
        poll_s: float = 1.0,
        on_space_back: Callable[[], object] | None = None,
    ):
        self.folder = Path(folder)
        self.clip_bytes = clip_bytes
        self.headroom = headroom
        self.make_room = make_room
        self.reserve = reserve
        self.poll_s = poll_s
        self.on_space_back = on_space_back
        self.full = False
        self.full_since: float | None = None
        self.pauses = 0
        self.free = 0
        self._failed_at_free: int | None = None  # free bytes when a render last failed for want of space
        self._asked_retention = False  # asked for room since room() last said yes (once a pause)

    def need_bytes(self) -> int:
        need = 2 * self.clip_bytes() + self.headroom
        if self._failed_at_free is not None:  # that much was not enough last time
            need = max(need, self._failed_at_free + self.clip_bytes())
        return need

    async def room(self) -> bool:
        """True when a clip may be started now. Asks retention for room when free space is short;
        pauses (``full``) when that is not enough, resumes when it is."""
        self.free = await asyncio.to_thread(free_bytes, self.folder)
        need = self.need_bytes()
        if self.free < need and not self._asked_retention:  # once a pause: what something else eats is not ours to feed
            self._asked_retention = True
            try:
                freed = await self.make_room(need - self.free)
            except Exception as exc:  # noqa: BLE001 - no room made; production pauses below
                (log.debug if self.full else log.warning)("disk: retention could not make room: %s", exc)
                freed = 0
            if freed:
                log.info("disk: retention deleted %d KB to make room (free %d KB, need %d KB)",
                         freed // 1024, self.free // 1024, need // 1024)
                self.free = await asyncio.to_thread(free_bytes, self.folder)
        ok = self.free >= need
        if ok:
            self._asked_retention = False
        if ok and self.reserve is not None and self.free >= need + self.reserve.size:
            await asyncio.to_thread(self.reserve.restore)
        self._set_full(not ok, need)
        return ok

    def render_failed(self, exc: BaseException) -> bool:
        """A render failed; True (and production pauses) when it was for want of space."""
        if not is_disk_full(exc):
            return False
        self._failed_at_free = self.free
        self._set_full(True, self.need_bytes())
        return True

    def clip_made(self) -> None:
        self._failed_at_free = None

    def _set_full(self, full: bool, need: int) -> None:
        if full and not self.full:
            self.pauses += 1
            self.full_since = time.time()
            log.error("disk full: production paused (free %d KB, need %d KB on %s); it resumes by itself"
                      " when space returns", self.free // 1024, need // 1024, self.folder)
        elif not full and self.full:
            log.warning("disk: space is back (free %d KB); production resumes after %.0f s paused",
                        self.free // 1024, time.time() - (self.full_since or time.time()))
            self.full_since = None
            if self.on_space_back is not None:
                try:
                    self.on_space_back()
                except Exception:  # noqa: BLE001 - production resumes whatever a listener does
                    log.exception("on_space_back callback failed")
        self.full = full

    def status(self) -> DiskStatus:
        return DiskStatus(self.full, self.free, self.need_bytes(), self.full_since, self.pauses)

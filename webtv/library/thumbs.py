"""Thumbnails: one JPEG per clip, from its middle frame, in ``<library>/thumbs/<id>.jpg``.

Made right after a clip enters the library, for clips that have none at start (a library
from before thumbnails, or a crash between ingest and thumbnail), and on demand when one is
asked for and missing. Made off the event loop, one at a time, never ahead of what airs.
A thumbnail is written under a private name and renamed into place, so a reader sees a whole
JPEG or none; one made for a clip deleted meanwhile is removed again (and ``reconcile``
removes any a crash left behind). ``Library.remove_files`` removes it with its clip.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

from webtv.library.index import Clip, Library
from webtv.media.commands import thumbnail_command

log = logging.getLogger("webtv.library.thumbs")

WIDTH = 320


def make_thumbnail(clip_file: Path, duration: float, out: Path, width: int = WIDTH) -> None:
    """Write ``out``: the frame in the middle of ``clip_file``. Blocking; raises OSError."""
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.jpg")
    try:
        done = subprocess.run(thumbnail_command(clip_file, max(0.0, duration / 2), width, tmp),
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"ffmpeg made no thumbnail of {clip_file.name}: "
                          f"{done.stderr.decode(errors='replace').strip()[-300:] or done.returncode}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


class Thumbnails:
    """The library's thumbnails; on the event loop, the ffmpeg runs in a worker thread."""

    def __init__(self, library: Library):
        self.library = library
        self._lock = asyncio.Lock()  # one ffmpeg at a time: air and renders come first

    async def ensure(self, clip: Clip) -> Path | None:
        """``clip``'s thumbnail, made now when missing; None when it cannot be made."""
        path = self.library.thumb_path(clip)
        if path.exists():
            return path
        async with self._lock:
            if path.exists():
                return path
            try:
                await asyncio.to_thread(make_thumbnail, clip.path, clip.duration, path)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("thumbnail not made: clip=%d: %s", clip.id, exc)
                return None
        if self.library.get(clip.id) is None:  # deleted while it was made
            path.unlink(missing_ok=True)
            return None
        return path

    async def backfill(self) -> int:
        """Make the thumbnails missing for clips in the library (at start); how many were made."""
        made = 0
        for clip in self.library.without_thumbnail():
            if await self.ensure(clip) is not None:
                made += 1
        if made:
            log.info("thumbnails made for clips that had none: %d", made)
        return made

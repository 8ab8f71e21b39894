"""The input side: one ``ffmpeg -re -f concat`` per block, MPEG-TS on its stdout, no re-encode.

Clips are in the house format already (H.264 + AAC in MP4, closed GOP, each clip starts with a
keyframe), so the decoder only remuxes (``webtv.media.commands.decoder_command``). It also
gives the block's packets their stream time (``offset``), so the relay passes on one
continuous timeline and the outputs never re-base.

Its stdout is polled (``Child(stdout="polled")``), not watched: the decoder flushes every
packet (about 70 writes a second), and the relay takes them in batches every ``read``
interval instead, so the daemon and the outputs wake at the reader's pace, not the decoder's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from webtv.media.commands import decoder_command

from .block import Block
from .clipfile import AirFiles
from .proc import Child

log = logging.getLogger(__name__)


class Decoder:
    """Block ``block``'s decoder, the ``seq``-th started. ``due``: the loop time its first
    byte is scheduled to air; ``offset``: the stream time (ticks) its packets start at.

    With ``files`` (``clipfile.open_for_air``) it reads the block's clips through those open
    descriptors, listed in a private ffconcat file beside the block's playlist (removed when
    the decoder ends); without, it reads the block's playlist as written."""

    def __init__(self, block: Block, due: float, offset: int, seq: int, files: AirFiles | None = None):
        self.block = block
        self.due = due
        self.offset = offset
        self.seq = seq
        self.files = files
        self.air_list: Path | None = None
        playlist = block.playlist
        if files is not None:
            self.air_list = playlist.with_name(f".{playlist.name}.{seq}.air")
            playlist = self.air_list
        self.child = self._child(playlist, list(files.fds.values()) if files is not None else [])
        self.bytes_out = 0
        self.first_byte_at: float | None = None  # loop time the relay read its first byte
        self.accounted = False  # its CPU time is in the playout's total
        self.skipped = False  # killed by an operator's skip: ending early is what was asked

    async def start(self) -> None:
        try:
            if self.files is not None:
                try:
                    self.air_list.write_text(self.files.ffconcat(self.block))
                except OSError as exc:  # a full disk must not take the block off air
                    log.warning("block %d: cannot write %s (%s); the decoder reads the playlist",
                                self.block.number, self.air_list.name, exc.strerror)
                    self.air_list = None
                    self.child = self._child(self.block.playlist, [])
            await self.child.spawn()
        except BaseException:
            self._remove_list()
            raise
        finally:
            if self.files is not None:
                self.files.close()  # the child holds its own copies
        log.debug("block %d: decoder pid %d for %s", self.block.number, self.child.pid, self.block.playlist)

    def _child(self, playlist: Path, fds: list[int]) -> Child:
        return Child(decoder_command(playlist, self.offset), name=f"decoder-{self.block.number}", stdout="polled",
                     tail=12, pass_fds=fds)

    @property
    def pid(self) -> int | None:
        return self.child.pid

    async def read(self, every_s: float) -> bytes:
        """What the decoder wrote since the last read, looking every ``every_s`` until there is
        some; b"" at its end (EOF, or killed)."""
        while (data := self.child.read_ready()) is None:
            await asyncio.sleep(every_s)
        return data

    async def finish(self) -> int | None:
        """Wait for the exit after EOF on stdout; kill it if it lingers."""
        code = await self.child.wait(2.0)
        if code is None:
            code = await self.child.kill()
        self.child.cleanup()
        self._remove_list()
        return code

    async def kill(self) -> None:
        await self.child.kill()
        self._remove_list()

    def _remove_list(self) -> None:
        if self.air_list is not None:
            try:
                os.unlink(self.air_list)
            except OSError:
                pass

    def stderr_text(self) -> str:
        return " | ".join(self.child.stderr_tail)

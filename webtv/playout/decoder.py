"""The input side: one ``ffmpeg -re -f concat`` per block, MPEG-TS on its stdout, no re-encode.

Clips are in the house format already (H.264 + AAC in MP4, closed GOP, each clip starts with a
keyframe), so the decoder only remuxes (``webtv.media.commands.decoder_command``). It also
gives the block's packets their stream time (``offset``), so the relay passes on one
continuous timeline and the outputs never re-base.
"""

from __future__ import annotations

import logging

from webtv.media.commands import decoder_command

from .block import Block
from .proc import Child

log = logging.getLogger(__name__)


class Decoder:
    """Block ``block``'s decoder, the ``seq``-th started. ``due``: the loop time its first
    byte is scheduled to air; ``offset``: the stream time (ticks) its packets start at."""

    def __init__(self, block: Block, due: float, offset: int, seq: int):
        self.block = block
        self.due = due
        self.offset = offset
        self.seq = seq
        self.child = Child(
            decoder_command(block.playlist, offset), name=f"decoder-{block.number}", stdout=True, tail=12
        )
        self.bytes_out = 0
        self.first_byte_at: float | None = None  # loop time the relay read its first byte
        self.accounted = False  # its CPU time is in the playout's total

    async def start(self) -> None:
        await self.child.spawn()
        log.debug("block %d: decoder pid %d for %s", self.block.number, self.child.pid, self.block.playlist)

    @property
    def pid(self) -> int | None:
        return self.child.pid

    async def read(self, n: int = 1 << 16) -> bytes:
        return await self.child.stdout.read(n)

    async def finish(self) -> int | None:
        """Wait for the exit after EOF on stdout; kill it if it lingers."""
        code = await self.child.wait(2.0)
        if code is None:
            code = await self.child.kill()
        self.child.cleanup()
        return code

    async def kill(self) -> None:
        await self.child.kill()

    def stderr_text(self) -> str:
        return " | ".join(self.child.stderr_tail)

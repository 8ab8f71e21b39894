"""The input side: one ``ffmpeg -re -f concat`` per block, MPEG-TS on its stdout, no re-encode.

Clips are in the house format already (H.264 + AAC in MP4, closed GOP, each clip starts with a
keyframe), so the decoder only remuxes: ``-c copy -bsf:v h264_mp4toannexb -f mpegts``.
``-flush_packets 1`` makes every packet leave at once instead of in 32 KB lumps, so the relay
and the outputs see a smooth, real-time stream.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ffmpeg

from webtv.media import ffmpeg_exe

from .block import Block
from .proc import Child

log = logging.getLogger(__name__)

GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning")


def with_globals(argv: list[str]) -> list[str]:
    """ffmpeg-python appends global options after the output; ffmpeg wants them first."""
    return [argv[0], *GLOBAL_ARGS, *argv[1:]]


def decoder_command(playlist: Path | str) -> list[str]:
    src = ffmpeg.input(str(playlist), f="concat", safe=0, re=None)
    out = ffmpeg.output(
        src["v:0"],
        src["a:0"],
        "pipe:1",
        c="copy",
        f="mpegts",
        muxdelay=0,
        flush_packets=1,
        **{"bsf:v": "h264_mp4toannexb"},
    )
    return with_globals(out.compile(cmd=ffmpeg_exe()))


class Decoder:
    """One block's decoder. ``due`` is the loop time its first byte is scheduled to air."""

    def __init__(self, block: Block, due: float):
        self.block = block
        self.due = due
        self.child = Child(
            decoder_command(block.playlist), name=f"decoder-{block.number}", stdout=True, tail=12
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

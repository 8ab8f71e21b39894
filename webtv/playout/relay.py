"""The relay: MPEG-TS from the decoder on air, fanned out to every output.

Data moves in whole 188-byte TS packets. Each output gets its own bounded buffer (its stdin
transport); an output that falls ``buffer_kb`` behind is restarted by itself, so a slow or
stuck destination never holds up the relay or the others.

The relay keeps a GOP cache: the last PAT and PMT, then every byte since the last video
keyframe (a packet of the video PID with payload_unit_start and random_access_indicator set;
ffmpeg's mpegts muxer marks each keyframe so). A (re)started output is primed with it, so it
begins at a keyframe at once instead of waiting up to a GOP.
"""

from __future__ import annotations

import asyncio
import logging

from .output import Output

log = logging.getLogger(__name__)

TS_PACKET = 188
SYNC = 0x47
_VIDEO_STREAM_TYPES = {0x01, 0x02, 0x10, 0x1B, 0x24, 0x42}


def _section(packet: bytes) -> bytes | None:
    """The PSI section starting in this packet (payload_unit_start packets only)."""
    afc = (packet[3] >> 4) & 3
    pos = 4
    if afc & 2:
        pos += 1 + packet[4]
    if not afc & 1 or pos >= TS_PACKET:
        return None
    pos += 1 + packet[pos]  # pointer_field
    if pos + 3 > TS_PACKET:
        return None
    length = ((packet[pos + 1] & 0x0F) << 8) | packet[pos + 2]
    return packet[pos : pos + 3 + length]


def parse_pat(packet: bytes) -> int | None:
    """PID of the first programme's PMT."""
    sec = _section(packet)
    if not sec or sec[0] != 0x00:
        return None
    end = min(len(sec) - 4, TS_PACKET)
    for i in range(8, end - 3, 4):
        program = (sec[i] << 8) | sec[i + 1]
        if program != 0:
            return ((sec[i + 2] & 0x1F) << 8) | sec[i + 3]
    return None


def parse_pmt(packet: bytes) -> int | None:
    """PID of the first video elementary stream."""
    sec = _section(packet)
    if not sec or sec[0] != 0x02 or len(sec) < 16:
        return None
    info_len = ((sec[10] & 0x0F) << 8) | sec[11]
    i = 12 + info_len
    end = len(sec) - 4
    while i + 5 <= end:
        stream_type = sec[i]
        pid = ((sec[i + 1] & 0x1F) << 8) | sec[i + 2]
        if stream_type in _VIDEO_STREAM_TYPES:
            return pid
        i += 5 + (((sec[i + 3] & 0x0F) << 8) | sec[i + 4])
    return None


class GopCache:
    """PAT + PMT + the bytes since the last video keyframe."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pmt_pid: int | None = None
        self.video_pid: int | None = None
        self.pat = b""
        self.pmt = b""
        self.gop = bytearray()
        self.valid = False  # gop starts at a keyframe and fits the limit
        self.keyframes = 0

    def scan(self, chunk: bytes) -> None:
        """Take in packet-aligned bytes."""
        key_at = -1
        video_pid = self.video_pid
        for off in range(0, len(chunk) - TS_PACKET + 1, TS_PACKET):
            b1 = chunk[off + 1]
            if not b1 & 0x40:  # only payload_unit_start packets matter here
                continue
            pid = ((b1 & 0x1F) << 8) | chunk[off + 2]
            if pid == video_pid:
                # adaptation field present, non-empty, random_access_indicator
                if chunk[off + 3] & 0x20 and chunk[off + 4] and chunk[off + 5] & 0x40:
                    key_at = off
            elif pid == 0:
                packet = chunk[off : off + TS_PACKET]
                pmt_pid = parse_pat(packet)
                if pmt_pid is not None:
                    self.pat = packet
                    self.pmt_pid = pmt_pid
            elif pid == self.pmt_pid:
                packet = chunk[off : off + TS_PACKET]
                vpid = parse_pmt(packet)
                if vpid is not None:
                    self.pmt = packet
                    self.video_pid = video_pid = vpid
        if key_at >= 0:
            self.keyframes += 1
            self.gop = bytearray(chunk[key_at:])
            self.valid = True
        elif self.valid:
            self.gop += chunk
        if len(self.gop) > self.limit:
            self.gop = bytearray()
            self.valid = False

    def snapshot(self) -> bytes:
        if not self.valid or not self.pat or not self.pmt:
            return b""
        return self.pat + self.pmt + bytes(self.gop)


class JoinOrder:
    """Puts a new block's first video frames ahead of its first audio.

    The output ffmpeg re-bases timestamps at a join from whichever stream's packet it meets
    first. Its H.264 parser hands a frame on only once the next frame has begun, so without
    help the new block's first audio packets arrive first and the re-base follows the audio,
    whose clips may run a fraction of a frame past the video: the video then jumps by that
    much (or, after a block shorter than 10 s, by a whole block, when the previous block's
    last frame comes out after the re-base). Holding the new block's non-video packets until
    ``video_starts`` video PES packets have gone by lets the video fix the offset: the video
    continues exactly one frame on, and the audio (a few milliseconds of overlap, which the
    muxers smooth) follows. Only the first ~0.1 s of each block is reordered; no timestamp
    is touched.
    """

    def __init__(self, video_starts: int = 3, max_held: int = 400):
        self.video_starts = video_starts
        self.max_held = max_held  # packets; give up (release) beyond this
        self.active = False
        self.pmt_pid: int | None = None
        self.video_pid: int | None = None
        self._seen = 0
        self._held: list[bytes] = []

    def start(self, pmt_pid: int | None, video_pid: int | None) -> None:
        self.active = True
        self.pmt_pid, self.video_pid = pmt_pid, video_pid
        self._seen = 0
        self._held = []

    def flush(self) -> bytes:
        """Whatever is held (the source ended early)."""
        self.active = False
        held, self._held = self._held, []
        return b"".join(held)

    def reorder(self, chunk: bytes) -> bytes:
        out = bytearray()
        for off in range(0, len(chunk), TS_PACKET):
            packet = chunk[off : off + TS_PACKET]
            if not self.active:
                out += chunk[off:]
                break
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            pusi = packet[1] & 0x40
            if pid == 0 or pid == 0x11 or pid == 0x1FFF:
                if pid == 0 and pusi:
                    self.pmt_pid = parse_pat(packet) or self.pmt_pid
                out += packet
            elif pid == self.pmt_pid:
                if pusi:
                    self.video_pid = parse_pmt(packet) or self.video_pid
                out += packet
            elif pid == self.video_pid:
                if pusi:
                    self._seen += 1
                out += packet
                if self._seen >= self.video_starts:
                    out += self.flush()
            else:
                self._held.append(packet)
                if len(self._held) > self.max_held:
                    out += self.flush()
        return bytes(out)


class Relay:
    def __init__(self, gop_limit: int):
        self.cache = GopCache(gop_limit)
        self.outputs: dict[str, Output] = {}
        self.bytes = 0
        self.last_byte_at: float | None = None  # loop time
        self.resyncs = 0
        self.join = JoinOrder()
        self._rest = b""

    def add(self, output: Output) -> None:
        output._prime = self.cache.snapshot
        self.outputs[output.name] = output

    def remove(self, name: str) -> Output | None:
        return self.outputs.pop(name, None)

    def new_source(self) -> None:
        """A new decoder is about to be read: drop any partial packet of the previous one."""
        self._rest = b""
        held = self.join.flush()
        if held:
            self.feed(held)
        if self.bytes:  # a join, not the very start
            self.join.start(self.cache.pmt_pid, self.cache.video_pid)

    def take(self, data: bytes) -> None:
        """Bytes from the decoder on air, any alignment."""
        if self._rest:
            data = self._rest + data
            self._rest = b""
        if data[:1] != b"\x47":
            data = self._resync(data)
        usable = len(data) - len(data) % TS_PACKET
        if usable < len(data):
            self._rest = data[usable:]
            data = data[:usable]
        if data and self.join.active:
            data = self.join.reorder(data)
        if data:
            self.feed(data)

    def _resync(self, data: bytes) -> bytes:
        self.resyncs += 1
        i = data.find(b"\x47")
        while i >= 0:
            if i + TS_PACKET >= len(data) or data[i + TS_PACKET] == SYNC:
                log.warning("relay: lost TS sync, skipped %d bytes", i)
                return data[i:]
            i = data.find(b"\x47", i + 1)
        return b""

    def feed(self, chunk: bytes) -> None:
        """Packet-aligned bytes to every output; never blocks."""
        self.cache.scan(chunk)
        self.bytes += len(chunk)
        self.last_byte_at = asyncio.get_running_loop().time()
        for output in list(self.outputs.values()):
            output.feed(chunk)

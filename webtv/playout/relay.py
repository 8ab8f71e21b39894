"""The relay: MPEG-TS from the decoder on air, fanned out to every output.

The decoders have already given every packet its stream time (one continuous timeline), so
the relay never touches a timestamp and a join is plain concatenation: it only reads the
video PTS to learn how much stream time each source covered (``span``). Data moves in whole 188-byte TS packets. Each output gets its own bounded buffer (its stdin
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

from .output import TS_PACKET, Output
from .timeline import VideoSpan

log = logging.getLogger(__name__)

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


def pes_pts(packet: bytes) -> int | None:
    """The PTS of the PES packet starting in this TS packet (payload_unit_start packets only)."""
    afc = (packet[3] >> 4) & 3
    pos = 4
    if afc & 2:
        pos += 1 + packet[4]
    if not afc & 1 or pos + 14 > TS_PACKET:
        return None
    if packet[pos : pos + 3] != b"\x00\x00\x01" or not packet[pos + 7] & 0x80:  # no PES start / no PTS
        return None
    p = packet[pos + 9 : pos + 14]
    return ((p[0] >> 1) & 7) << 30 | p[1] << 22 | (p[2] >> 1) << 15 | p[3] << 7 | p[4] >> 1


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

    def scan(self, chunk: bytes) -> list[int]:
        """Take in packet-aligned bytes; the PTS of the video frames that start in them."""
        key_at = -1
        pts: list[int] = []
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
                found = pes_pts(chunk[off : off + TS_PACKET])
                if found is not None:
                    pts.append(found)
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
        return pts

    def snapshot(self) -> bytes:
        if not self.valid or not self.pat or not self.pmt:
            return b""
        return self.pat + self.pmt + bytes(self.gop)


class Relay:
    """Fans the source on air out to the outputs. ``add`` registers an output (each one is
    primed from ``snapshot()``, the GOP cache, when its process starts); ``new_source(origin)``
    begins a decoder whose packets start at stream time ``origin``."""

    def __init__(self, gop_limit: int):
        self.cache = GopCache(gop_limit)
        self.outputs: dict[str, Output] = {}
        self.bytes = 0
        self.last_byte_at: float | None = None  # loop time
        self.resyncs = 0
        self.span = VideoSpan(0)  # the stream time the source on air has covered so far
        self._rest = b""

    def snapshot(self) -> bytes:
        return self.cache.snapshot()

    def add(self, output: Output) -> None:
        self.outputs[output.name] = output

    def remove(self, name: str) -> Output | None:
        return self.outputs.pop(name, None)

    def new_source(self, origin: int) -> None:
        """A new decoder is about to be read: drop any partial packet of the previous one."""
        self._rest = b""
        self.span = VideoSpan(origin)

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
        for pts in self.cache.scan(chunk):
            self.span.add(pts)
        self.bytes += len(chunk)
        self.last_byte_at = asyncio.get_running_loop().time()
        for output in list(self.outputs.values()):
            output.feed(chunk)

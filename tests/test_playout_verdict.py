"""The playout's pure logic: the verdict on an aired block, and stream time across the 2^33 wrap."""

from __future__ import annotations

import pytest

from webtv.media.commands import TS_HZ, TS_WRAP
from webtv.playout.relay import TS_PACKET, pes_pts
from webtv.playout.timeline import VideoSpan, advance, between, ticks
from webtv.playout.verdict import judge

pytestmark = pytest.mark.fast

FRAME = TS_HZ // 24  # 3750 ticks


def verdict(**kw):
    args = dict(bytes_out=1_000_000, exit_code=0, media_s=9.0, duration_s=9.0)
    return judge(**{**args, **kw})


def test_a_full_block_is_ok():
    assert verdict().ok and verdict().kind == "ok"
    assert verdict(media_s=8.6).ok  # a few frames short is still the block
    assert verdict(media_s=9.3).ok


@pytest.mark.parametrize("kw, kind, says", [
    (dict(stalled_s=5.0), "stalled", "no output for 5 s"),
    (dict(overran_s=3.25), "overran", "ran 3.2 s past its slot"),
    (dict(exit_code=1, media_s=3.0), "exit", "exit code 1"),
    (dict(exit_code=-9), "exit", "exit code -9"),
    (dict(exit_code=None), "exit", "did not exit"),
    (dict(bytes_out=0, media_s=0.0), "silent", "wrote nothing"),
    (dict(media_s=3.0), "short", "ended 6.0 s early"),
])
def test_what_went_wrong(kw, kind, says):
    v = verdict(**kw)
    assert not v.ok and v.kind == kind and v.reason == says


def test_the_first_cause_wins():
    # killed for silence: the kill's exit code and the missing stream time follow from it
    assert verdict(stalled_s=5.0, overran_s=4.0, exit_code=-9, media_s=1.0).kind == "stalled"
    assert verdict(overran_s=4.0, exit_code=-9, media_s=5.0).kind == "overran"
    assert verdict(exit_code=1, bytes_out=0, media_s=0.0).kind == "exit"
    assert verdict(bytes_out=0, media_s=0.0).kind == "silent"


def test_stream_time_wraps_like_a_ts_stream():
    assert advance(TS_WRAP - 10, 25) == 15
    assert between(15, TS_WRAP - 10) == 25 and between(TS_WRAP - 10, 15) == -25
    assert between(ticks(1.0), ticks(3.0)) == -2 * TS_HZ
    # months of 9 s blocks: the sum never leaves [0, 2^33) and loses no tick
    at = 0
    for _ in range(1_000_000):
        at = advance(at, ticks(9.0))
    assert at == (1_000_000 * 9 * TS_HZ) % TS_WRAP


def test_video_span_across_the_wrap():
    origin = TS_WRAP - 2 * TS_HZ  # two seconds before the wrap
    span = VideoSpan(origin)
    assert span.length(FRAME) == 0 and span.end(FRAME) == origin  # nothing aired: the next starts here
    lead = 1920  # the house format's lead-in before the first frame (AAC priming)
    order = [0, 3, 1, 2, 4, 7, 5, 6]  # B-frames: decode order, not presentation order
    for i in order + list(range(8, 96)):
        span.add((origin + lead + i * FRAME) % TS_WRAP)
    assert span.length(FRAME) == 96 * FRAME  # 4 s, half of it after the wrap
    assert span.end(FRAME) == advance(origin, 96 * FRAME) == 2 * TS_HZ


def pes_packet(pid: int, pts: int, adaptation: bytes = b"") -> bytes:
    p = [0x21 | ((pts >> 29) & 0x0E), (pts >> 22) & 0xFF, ((pts >> 14) & 0xFE) | 1, (pts >> 7) & 0xFF, ((pts << 1) & 0xFE) | 1]
    afc = 0x30 if adaptation else 0x10
    head = bytes([0x47, 0x40 | (pid >> 8), pid & 0xFF, afc]) + (bytes([len(adaptation)]) + adaptation if adaptation else b"")
    pes = b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + bytes(p)
    return (head + pes).ljust(TS_PACKET, b"\xff")


@pytest.mark.parametrize("pts", [0, 1, 90_000, TS_WRAP - 1, 0x1_5555_5555])
def test_pes_pts(pts):
    assert pes_pts(pes_packet(0x100, pts)) == pts
    assert pes_pts(pes_packet(0x100, pts, adaptation=b"\x50" + bytes(6))) == pts  # with a PCR in front
    no_pes = bytearray(pes_packet(0x100, pts))
    no_pes[6] = 0x02
    assert pes_pts(bytes(no_pes)) is None

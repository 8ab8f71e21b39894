"""Stream time: where each block's packets sit on the channel's one timeline.

Stream time is counted in MPEG-TS ticks (90 kHz) modulo 2^33, as the PTS of a TS stream is:
it wraps about every 26.5 hours, and every sum and difference here is taken modulo the wrap,
so a channel that runs for months never overflows or loses a tick to rounding. Block k's
decoder shifts its packets to start at ``offset(k)``; offset(k+1) = offset(k) + the stream
time block k covered, so the outputs see one continuous timeline and never re-base.
"""

from __future__ import annotations

from webtv.media.commands import TS_HZ, TS_WRAP


def ticks(seconds: float) -> int:
    return round(seconds * TS_HZ)


def seconds(ticks_: int) -> float:
    return ticks_ / TS_HZ


def advance(at: int, by: int) -> int:
    """``at`` + ``by``, modulo the wrap."""
    return (at + by) % TS_WRAP


def between(a: int, b: int) -> int:
    """a - b on the wrapping timeline: the signed difference of smallest size."""
    d = (a - b) % TS_WRAP
    return d - TS_WRAP if d >= TS_WRAP // 2 else d


class VideoSpan:
    """The stream time one source's video covered, from the PTS of its video frames.

    Kept relative to the ``origin`` its decoder was given, as the first and last PTS seen
    (largest, not latest: with B-frames frames leave in decode order). The source covered
    ``length`` = last - first + one frame; the next source continues the timeline when it
    starts ``length`` after this one's origin (every block has the same lead-in before its
    first frame: the house format's AAC priming).
    """

    def __init__(self, origin: int):
        self.origin = origin
        self.first: int | None = None
        self.last: int | None = None

    def add(self, pts: int) -> None:
        rel = between(pts, self.origin)
        if self.first is None or rel < self.first:
            self.first = rel
        if self.last is None or rel > self.last:
            self.last = rel

    def length(self, frame_ticks: int) -> int:
        if self.first is None or self.last is None:
            return 0
        return self.last - self.first + frame_ticks

    def end(self, frame_ticks: int) -> int:
        """The offset the next source must be given to follow on without a gap."""
        return advance(self.origin, self.length(frame_ticks))

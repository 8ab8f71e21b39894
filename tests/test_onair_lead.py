"""The viewer caption's clock (``onair.js`` ``dateLead``/``entryAt``) on HLS playlists made the
way ffmpeg's HLS muxer makes them, run in chromium: which clip a picture's program date
belongs to, around skips and bans that cut clips short."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import chromium

ONAIR = Path(__file__).parent.parent / "webtv" / "http" / "static" / "onair.js"
GOP = 2.0  # [house] gop_seconds, also the HLS target duration


def segment_starts(entries: list[tuple[float, float, float]], gop: float = GOP) -> list[float]:
    """Where ffmpeg's HLS muxer opens segments on this stream (stream seconds): at the first
    keyframe at least ``gop`` after the segment's start. ``entries`` are (start, end on air,
    clip duration); each clip has keyframes every ``gop`` from its own start."""
    keyframes = sorted({round(start + k * gop, 3) for start, end, _ in entries
                        for k in range(int((end - start) / gop) + 1) if start + k * gop < end})
    starts = [keyframes[0]]
    for key in keyframes[1:]:
        if key - starts[-1] >= gop - 1e-6:
            starts.append(key)
    return starts


def programme(entries: list[tuple[float, float, float]]) -> list[dict]:
    return [{"clip_id": i, "block": i, "start": s + 7.3, "end": e + 7.3, "stream_start": s, "stream_end": e}
            for i, (s, e, _) in enumerate(entries)]


@pytest.fixture(scope="module")
def page():
    with chromium() as browser:
        page = browser.new_page()
        page.evaluate("async (src) => { window.onair = await import('data:text/javascript,' + encodeURIComponent(src)); }",
                      ONAIR.read_text())
        yield page


def on_screen(page, entries, lead: float, at: float) -> tuple[float, int | None]:
    """The lead the page works out and the clip it names for the picture at stream time ``at``."""
    dates = [1000 * (s + lead) for s in segment_starts(entries)]
    return page.evaluate(
        """([fragments, entries, date]) => {
            const player = { hls: { latestLevelDetails: { targetduration: %g, fragments } } };
            const lead = window.onair.dateLead(player, entries);
            const entry = window.onair.entryAt(entries, date - 1000 * lead);
            return [lead, entry ? entry.clip_id : null];
        }""" % GOP,
        [[{"programDateTime": d} for d in dates], programme(entries), 1000 * (at + lead)])


FULL = [(100.0, 104.0, 4.0), (104.0, 108.0, 4.0), (108.0, 112.0, 4.0), (112.0, 116.0, 4.0)]
# a skip 0.66 s into the third clip, then a ban 0.73 s into the next: neither cut opens a segment
CUT = [(100.0, 104.0, 4.0), (104.0, 108.0, 4.0), (108.0, 108.66, 4.0), (108.66, 109.39, 4.0),
       (109.39, 113.39, 4.0), (113.39, 117.39, 4.0), (117.39, 121.39, 4.0)]


@pytest.mark.parametrize("lead", [0.05, 0.4, 0.9, 1.4])
def test_lead_found_on_full_clips(page, lead):
    found, clip = on_screen(page, FULL, lead, at=109.0)
    assert found == pytest.approx(lead, abs=0.01) and clip == 2


@pytest.mark.parametrize("lead", [0.05, 0.4, 0.9, 1.4])
def test_lead_found_after_a_skip_and_a_ban(page, lead):
    """The segment opened at 108 holds both cuts, so the clip from 108.66 has a date 0.66 s
    short of the lead after it (the first date at or after its start is the 108 one)."""
    found, _ = on_screen(page, CUT, lead, at=110.0)
    assert found == pytest.approx(lead, abs=0.01)
    for at, clip in [(108.3, 2), (109.0, 3), (109.6, 4), (114.0, 5)]:
        assert on_screen(page, CUT, lead, at)[1] == clip, f"picture at {at} named the wrong clip (lead {lead})"


def test_segments_open_as_ffmpeg_opens_them():
    assert segment_starts(CUT) == [100.0, 102.0, 104.0, 106.0, 108.0, 111.39, 113.39, 115.39, 117.39, 119.39]
    assert segment_starts(FULL) == [100.0 + 2 * k for k in range(8)]

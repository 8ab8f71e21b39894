"""The viewer caption's clock (``onair.js`` ``dateLead``/``entryAt``) on HLS playlists made the
way ffmpeg's HLS muxer makes them, run in chromium: which clip a picture's program date
belongs to, for clip lengths that are and are not multiples of the GOP, and around skips and
bans that cut clips short. How the muxer opens segments is checked against Debian's ffmpeg
running the daemon's own HLS command line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.browser import chromium
from webtv.media.commands import HLS_INDEX, ffmpeg_exe, hls_command

ONAIR = Path(__file__).parent.parent / "webtv" / "http" / "static" / "onair.js"
GOP = 2.0  # [house] gop_seconds, also the HLS target duration


def segment_starts(entries: list[tuple[float, float, float]], gop: float = GOP) -> list[float]:
    """Where ffmpeg's HLS muxer opens segments on this stream (stream seconds): the n-th at the
    first keyframe at least ``n * gop`` after the stream's first packet (``hls_time`` is the
    GOP). ``entries`` are (start, end on air, clip duration); each clip has keyframes every
    ``gop`` from its own start."""
    keyframes = sorted({round(start + k * gop, 3) for start, end, _ in entries
                        for k in range(int((end - start) / gop) + 1) if start + k * gop < end})
    starts = [keyframes[0]]
    for key in keyframes[1:]:
        if key - keyframes[0] >= len(starts) * gop - 1e-6:
            starts.append(key)
    return starts


def aired(lengths: list[float], at: float = 100.0) -> list[tuple[float, float, float]]:
    entries = []
    for length in lengths:
        entries.append((at, round(at + length, 3), length))
        at = round(at + length, 3)
    return entries


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


def on_screen(page, entries, lead: float, at: float, window: int = 6) -> tuple[float, int | None]:
    """The lead the page works out and the clip it names for the picture at stream time ``at``,
    from the playlist hls.js holds then: the last ``window`` segments, the picture three
    segments behind the live edge."""
    starts = [s for s in segment_starts(entries) if s <= at + 3 * GOP][-window:]
    target = max(b - a for a, b in zip(starts, starts[1:]))
    return page.evaluate(
        """([fragments, targetduration, entries, date, keyframeS]) => {
            const player = { hls: { latestLevelDetails: { targetduration, fragments } } };
            const lead = window.onair.dateLead(player, entries, keyframeS);
            const entry = window.onair.entryAt(entries, date - 1000 * lead);
            return [lead, entry ? entry.clip_id : null];
        }""",
        [[{"programDateTime": 1000 * (s + lead)} for s in starts], round(target + 0.499), programme(entries),
         1000 * (at + lead), GOP])


FULL = aired([4.0] * 8)
THREE = aired([3.0] * 12)  # the default clip length: a clip start opens a segment only every other clip
# a skip 0.66 s into the third clip, then a ban 0.73 s into the next: neither cut opens a segment
CUT = [(100.0, 104.0, 4.0), (104.0, 108.0, 4.0), (108.0, 108.66, 4.0), (108.66, 109.39, 4.0),
       (109.39, 113.39, 4.0), (113.39, 117.39, 4.0), (117.39, 121.39, 4.0)]


@pytest.mark.parametrize("lead", [0.05, 0.4, 0.9, 1.4])
@pytest.mark.parametrize("entries", [FULL, THREE, aired([2.5] * 16)], ids=["4s", "3s", "2.5s"])
def test_lead_found_on_whole_clips(page, entries, lead):
    """Wherever the playlist window is, the lead comes out right and the picture is named."""
    for at in (117.2, 119.6, 121.1, 122.9, 124.4):
        found, clip = on_screen(page, entries, lead, at)
        assert found == pytest.approx(lead, abs=0.01), f"lead at {at}"
        assert clip == next(i for i, (s, e, _) in enumerate(entries) if s <= at < e), f"clip at {at}"


@pytest.mark.parametrize("lead", [0.05, 0.4, 0.9, 1.4])
def test_lead_found_after_a_skip_and_a_ban(page, lead):
    """The segment opened at 108 holds both cuts, so the clip from 108.66 has a date 0.66 s
    short of the lead after it (the first date at or after its start is the 108 one)."""
    found, _ = on_screen(page, CUT, lead, at=110.0)
    assert found == pytest.approx(lead, abs=0.01)
    for at, clip in [(108.3, 2), (109.0, 3), (109.6, 4), (114.0, 5)]:
        assert on_screen(page, CUT, lead, at)[1] == clip, f"picture at {at} named the wrong clip (lead {lead})"


def test_lead_on_a_playlist_the_daemon_wrote(page):
    """``hls/index.m3u8`` and ``/api/programme`` read from a daemon airing 3 s clips (stream
    seconds mod 1000): the dates sit 0.204 s after keyframes, and three of the four clip starts
    in reach are 2.204 s before the next date (the rule of the gaps took that for the lead)."""
    dates = [372.817, 375.817, 376.817, 378.817, 381.817]
    entries = [(354.613, 356.613, 2.0), (356.613, 358.613, 2.0), *aired([3.0] * 7, at=358.613),
               (379.613, 382.597, 3.0), (382.613, 385.613, 3.0)]
    lead = page.evaluate(
        """([fragments, entries]) => window.onair.dateLead(
            { hls: { latestLevelDetails: { targetduration: 3, fragments } } }, entries, 2.0)""",
        [[{"programDateTime": 1000 * d} for d in dates], programme(entries)])
    assert lead == pytest.approx(0.204, abs=0.002)


def test_segments_open_as_ffmpeg_opens_them():
    assert segment_starts(CUT) == [100.0, 102.0, 104.0, 106.0, 108.0, 111.39, 113.39, 115.39, 117.39, 119.39]
    assert segment_starts(FULL) == [100.0 + 2 * k for k in range(16)]
    assert segment_starts(THREE)[:7] == [100.0, 102.0, 105.0, 106.0, 108.0, 111.0, 112.0]


def test_the_segment_model_is_what_ffmpegs_hls_muxer_does(tmp_path):
    """Clips of several lengths, each encoded with the house GOP (a keyframe at its start and
    every 2 s), joined as playout joins them and cut by the daemon's HLS command line: the
    segments' durations are the model's."""
    fps = 24
    lengths = [3.0, 3.0, 3.0, 4.0, 1.5, 2.5, 3.0, 5.0, 3.0]
    listing = []
    for i, length in enumerate(lengths):
        clip = tmp_path / f"clip{i}.ts"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=64x36:rate={fps}:duration={length}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(int(GOP * fps)),
                        "-keyint_min", str(int(GOP * fps)), "-sc_threshold", "0", "-f", "mpegts", str(clip)], check=True)
        listing.append(f"file '{clip.name}'")
    (tmp_path / "list.txt").write_text("\n".join(listing) + "\n")
    hls = tmp_path / "hls"
    hls.mkdir()
    joined = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "concat", "-i", str(tmp_path / "list.txt"), "-c", "copy",
                             "-f", "mpegts", "pipe:1"], check=True, capture_output=True).stdout
    subprocess.run(hls_command(GOP, 100, 0), cwd=hls, input=joined, check=True, capture_output=True)
    durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+),", (hls / HLS_INDEX).read_text())]
    starts = segment_starts(aired(lengths, at=0.0))
    expected = [b - a for a, b in zip(starts, [*starts[1:], sum(lengths)])]
    assert durations == pytest.approx(expected, abs=0.05), (durations, expected)

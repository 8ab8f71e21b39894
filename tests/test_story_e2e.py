"""Story mode on air: the daemon on the embedded default (offline story writer, procedural
video, synth music, espeak-ng) with a cast from channel.toml, read back from a real nginx-rtmp.

What a viewer would notice: the narration line on screen (OCR of a frame of the stream) and in
the sound (espeak's own rendering of the line found in the stream's audio), the music ducked
under the voice, each clip as long as its line within the bounds, the voice over before its
clip ends, a cast member drawn with the same look in every shot, and the story going on with
the next episode after a restart.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.listen import RATE, Found, clip_audio, ducking, espeak_line, find, frame_text, words_seen

pytestmark = pytest.mark.e2e

MIN_S, MAX_S, BREATH_S, DUCK_DB = 3.0, 8.0, 0.75, 12.0
HERO = {"name": "Mira", "look": "a small girl in a bright yellow raincoat", "aliases": ["the girl"]}


@pytest.fixture(scope="module")
def story(tmp_path_factory, rtmp_server):
    folder = tmp_path_factory.mktemp("story") / "channel"
    daemon = Daemon(
        folder,
        rtmp_urls=[f"{rtmp_server}/story"],
        house={"width": 640, "height": 360, "video_kbps": 900},
        director={"shots_per_sequence": 3},
        producer={"ahead": 3},
        programme={"block_seconds": 10.0, "filler_seconds": 2.0},
        story={"enabled": True, "min_shot_seconds": MIN_S, "max_shot_seconds": MAX_S, "breath_s": BREATH_S},
        voice={"backend": "espeak", "duck_db": DUCK_DB},
        **{"story.cast": [HERO]},
    )
    daemon.start_on_air(f"{rtmp_server}/story", timeout=30)
    try:
        yield daemon
    finally:
        daemon.stop()


def clips(daemon: Daemon) -> list[dict]:
    db = sqlite3.connect(f"file:{daemon.folder / 'library' / 'index.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM clips ORDER BY id")]
    finally:
        db.close()


def record(url: str, seconds: float, out: Path) -> Path:
    """``seconds`` of the stream as a viewer receives it, copied into a file."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-rw_timeout", "15000000", "-i", url, "-t", str(seconds),
                    "-c", "copy", str(out)], check=True, timeout=seconds + 30)
    return out


def test_a_narrated_clip_on_air_shows_and_speaks_its_line_over_ducked_music(story, rtmp_server, tmp_path):
    status = story.wait_for(lambda s: (s["now_playing"] or {}).get("narration"), timeout=90,
                            message="a narrated clip on air")
    now = status["now_playing"]
    assert now["episode"]["number"] >= 1 and now["episode"]["title"], now
    # the stream from the moment a narrated clip is on air: the line is read back from it
    aired = record(f"{rtmp_server}/story", 2 * MAX_S, tmp_path / "aired.flv")
    lines = {c["id"]: c["narration"] for c in clips(story) if c["narration"]}
    audio = clip_audio(aired)
    best = None
    for at in (0.8, 2.2, 3.6, 5.0, 6.4, 7.8, 9.2, 10.6, 12.0, 13.4):
        seen = frame_text(aired, at)
        for clip_id, line in lines.items():
            share = words_seen(line, seen)
            if best is None or share > best[0]:
                best = (share, clip_id, line, at, seen)
    assert best is not None and best[0] >= 0.5, f"no frame of the stream shows half a line's words: {best}"
    _, clip_id, line, at, seen = best
    spoken = espeak_line(line)
    # the line is looked for only where it would be heard with that frame (a second either side):
    # under load the library is small and a clip can air twice in the recording
    near = max(0, round((at - 1.0) * RATE) - len(spoken))
    found = find(spoken, audio[near:round((at + 1.0) * RATE) + len(spoken)])
    found = Found(found.start + near / RATE, found.end + near / RATE, found.score)
    assert found.score > 0.5, f"the line {line!r} (seen at {at} s) is not heard around it: {found}"
    assert found.start - 1.0 <= at <= found.end + 1.0, (found, at)
    # the music is up at full level only in the breath after a line (and before the first):
    # further out it is under the neighbouring shots' lines, so "around" is the breath either side
    breath = int(BREATH_S * 0.8 * RATE)
    start = max(0, round(found.start * RATE) - breath)
    window = audio[start:round(found.end * RATE) + breath]
    duck = ducking(window, spoken, find(spoken, window))
    assert duck.depth_db >= DUCK_DB - 2, f"music only {duck.depth_db:.1f} dB lower under the voice ({duck})"


def test_every_clip_lasts_as_its_line_and_its_voice_ends_before_it(story):
    story.wait_for(lambda s: s["producer"]["clips_made"] >= 4, timeout=90, message="four clips made")
    made = [c for c in clips(story) if c["narration"]]
    assert len(made) >= 4
    for clip in made:
        assert MIN_S - 0.1 <= clip["duration"] <= MAX_S + 0.1, clip
        found = find(espeak_line(clip["narration"]), clip_audio(story.folder / "library" / "clips" / clip["file"]))
        assert found.score > 0.5, (clip["narration"], found)
        assert found.end < clip["duration"], f"voice runs to {found.end:.2f} s of a {clip['duration']:.2f} s clip"


def test_the_cast_keeps_its_look_and_the_story_goes_on_after_a_restart(story):
    before = clips(story)
    featuring = [c for c in before if "Mira" in json.loads(c["characters"] or "[]")]
    assert featuring, [(c["characters"], c["prompt"]) for c in before]
    for clip in featuring:
        assert clip["prompt"].count(HERO["look"]) == 1, clip["prompt"]
    last_episode = max(c["episode"] or 0 for c in before)
    story.stop()
    story.start()
    story.wait_for(lambda s: any((c.get("episode") or 0) > last_episode for c in clips(story)), timeout=90,
                   message=f"an episode after {last_episode} made after the restart")
    numbers = sorted({c["episode"] for c in clips(story) if c["episode"]})
    assert numbers == list(range(1, numbers[-1] + 1)), f"episodes numbered {numbers}"

"""Story mode's narrator on real parts: Debian's espeak-ng speaking, ffmpeg encoding with libass
subtitles, tesseract reading the frame back, and a tiny random VITS model built with
transformers' own classes. One narrated clip made by ``webtv render --narration`` is looked
at and listened to by several tests (helpers in tests/listen.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import REPO
from tests.listen import clip_audio, ducking, espeak_line, find, frame_text, words_seen
from webtv.config import Config, HouseSection, VitsVoiceSection
from webtv.director import Sequence, Shot
from webtv.media import probe
from webtv.producer import ClipPipeline, make_stages
from webtv.producer.narration import Narration, frames_of

LINE = "The keeper lights the lamp."  # short: the 3 s shot leaves music to hear around the voice
HOUSE = {"width": 640, "height": 360, "fps": 12, "x264_preset": "ultrafast"}
SETTINGS = Narration()  # the defaults a channel without [story] gets: shots of 3-8 s, a 0.75 s breath


@pytest.fixture(scope="module")
def narrated(tmp_path_factory) -> Path:
    """One clip from ``webtv render PROMPT --narration LINE`` (espeak, the default voice)."""
    folder = tmp_path_factory.mktemp("narrated")
    (folder / "channel.toml").write_text("[house]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"')
                                                               for k, v in HOUSE.items()))
    out = folder / "clip.mp4"
    done = subprocess.run([sys.executable, "-m", "webtv", "render", "a lighthouse on a cliff at dusk",
                           "--narration", LINE, "--out", str(out), "--config", str(folder / "channel.toml")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def heard(narrated):
    audio, reference = clip_audio(narrated), espeak_line(LINE)
    return audio, reference, find(reference, audio)


def test_the_subtitles_show_the_line(narrated):
    seen = frame_text(narrated, 1.0)
    assert words_seen(LINE, seen) >= 0.5, f"OCR read {seen!r}"


def test_the_line_is_in_the_audio_and_ends_before_the_clip(narrated, heard):
    audio, reference, found = heard
    assert found.score > 0.6, f"espeak's own rendering of the line is not in the clip ({found})"
    assert found.start == pytest.approx(SETTINGS.lead_s, abs=0.02)
    assert found.end < probe(narrated).duration - 0.3, "the voice ends before the clip does"


def test_the_clip_lasts_as_its_line_within_the_bounds(narrated, heard):
    _, reference, _ = heard
    duration = probe(narrated).duration
    expected = frames_of(min(max(len(reference) / 16000 + SETTINGS.breath_s, 3.0), 8.0), HOUSE["fps"])
    assert SETTINGS.min_shot_seconds <= duration <= SETTINGS.max_shot_seconds
    assert duration == pytest.approx(expected, abs=1.5 / HOUSE["fps"])


def test_the_music_ducks_under_the_voice(heard):
    audio, reference, found = heard
    level = ducking(audio, reference, found)
    assert level.depth_db >= Config().voice.duck_db - 2, level


def _sequence(*lines: str) -> Sequence:
    shots = tuple(Shot(prompt="a lighthouse", seed=3, theme="sea", sequence_id="s", index=i, narration=line)
                  for i, line in enumerate(lines))
    return Sequence(id="s", theme="sea", music_prompt="the sea", seed=3, shots=shots)


def test_a_line_too_long_for_its_shot_is_cut_between_words_and_spoken_again():
    config = Config(house=HouseSection(**HOUSE))
    pipeline = ClipPipeline.from_config(config, make_stages(config))
    one_sentence = ("The keeper climbs the winding stairs of the old stone tower while the wind howls across "
                    "the cliffs and the grey waves break against the rocks far below her tired feet")
    track = pipeline.compose(_sequence(one_sentence, "Ships turn home."))
    cut, short = track.lines
    assert one_sentence.startswith(cut.text) and one_sentence[len(cut.text)] == " ", "a prefix of whole words"
    assert track.aired(_sequence(one_sentence).shots[0]).narration == cut.text, "the library records what aired"
    assert len(cut.text.split()) < len(one_sentence.split())
    assert cut.seconds == SETTINGS.max_shot_seconds and cut.end <= cut.seconds - 0.4
    assert cut.speedup <= config.voice.max_speedup
    found = find(espeak_line(cut.text, rate=16000), espeak_line(one_sentence, rate=16000))
    assert found.start < 0.05, "what airs is the cut text spoken again, from its start"
    assert short.text == "Ships turn home." and short.seconds == SETTINGS.min_shot_seconds
    assert len(track.samples) == round((cut.seconds + short.seconds) * config.house.sample_rate)


def test_a_tiny_vits_model_speaks_a_line_from_its_folder(tmp_path):
    pytest.importorskip("transformers")
    from tests.tiny_vits import tiny_vits

    folder = tiny_vits(tmp_path / "vits")
    config = Config(house=HouseSection(**HOUSE), voice=VitsVoiceSection(model=str(folder), device="cpu"))
    stages = make_stages(config)
    track = ClipPipeline.from_config(config, stages).compose(_sequence(LINE))
    (line,) = track.lines
    assert line.text == LINE and line.voice_seconds > 0.2 and abs(line.samples).max() > 0
    faster = stages.voice.speak(LINE, None, 320, config.house.sample_rate)
    assert len(faster) < len(line.samples), "words_per_minute sets VITS's speaking_rate"

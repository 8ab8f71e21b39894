"""Story mode's narration logic without a voice: where a line may be cut, how a shot's length
follows its line (sped up, else cut, never mid-word), the music ducked under the voice, the
subtitle script, and the [voice] / [subtitles] config. The speech here is a stand-in whose
length follows the text (0.06 s a character), so every length is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from webtv.config import ConfigError, HouseSection, SubtitlesSection, load_config
from webtv.director import Character, Sequence, Shot
from webtv.producer.narration import (MIX_PEAK, RAMP_S, Narration, cuts, duck_envelope, fit_line, frames_of, mix,
                                      voice_of)
from webtv.producer.subtitles import Layout, Subtitle, ass_script, pages

pytestmark = pytest.mark.fast

RATE = 1000  # samples a second: small arrays, exact lengths
PER_CHAR = 0.06
SETTINGS = Narration()  # 160 wpm, 12 dB, 1.15x, shots 3-8 s, breath 0.75 s


def speech(text: str) -> np.ndarray:
    return np.full(round(len(text) * PER_CHAR * RATE), 0.5, np.float32)


def faster(samples: np.ndarray, factor: float) -> np.ndarray:
    return samples[: round(len(samples) / factor)]


def fit(text: str, settings: Narration = SETTINGS):
    return fit_line(text, speech(text), speech, faster, RATE, 12, settings)


def test_cuts_are_whole_sentences_first_then_words_of_the_first_sentence():
    text = "The keeper climbs. She lights the lamp! Ships turn home."
    assert cuts(text) == ["The keeper climbs. She lights the lamp!", "The keeper climbs.", "The keeper", "The"]
    for cut in cuts("One long sentence with no end at all"):
        assert "One long sentence with no end at all".startswith(cut) and not cut.endswith(" ")
    assert cuts("Word.") == []


def test_a_short_line_gets_the_shortest_shot_and_a_longer_one_its_speech_plus_a_breath():
    short = fit("The lamp.")  # 0.54 s of speech
    assert short.seconds == 3.0 and short.speedup == 1.0 and short.text == "The lamp."
    line = "The keeper climbs the long stairs to the lamp."  # 46 chars: 2.76 s
    made = fit(line)
    assert made.seconds == frames_of(2.76 + 0.75, 12) and made.start == 0.25
    assert made.end <= made.seconds - 0.5, "the voice ends before the shot does"


def test_a_line_a_little_too_long_is_sped_up_at_most_max_speedup():
    line = "x" * 120  # 7.2 s of speech, room 7.25 s: fits as is
    assert fit(line).speedup == 1.0
    line = "x" * 130  # 7.8 s: sped up to 7.25 s
    made = fit(line)
    assert 1.0 < made.speedup <= SETTINGS.max_speedup and made.seconds == 8.0 and made.text == line
    assert made.end <= 8.0 - 0.5


def test_a_line_too_long_even_sped_up_is_cut_at_a_sentence_end_and_spoken_again():
    first = "The keeper climbs the stairs of the old tower at night."  # 55 chars
    line = f"{first} {first} {first}"  # 9.9 s: too long
    made = fit(line)
    assert made.text == f"{first} {first}" and made.speedup <= SETTINGS.max_speedup
    assert len(made.samples) <= (8.0 - 0.75) * RATE


def test_one_long_sentence_is_cut_at_a_word_boundary():
    line = " ".join(["lighthouse"] * 20)  # one sentence of 209 chars
    made = fit(line)
    assert line.startswith(made.text) and line[len(made.text)] == " ", "a prefix of whole words"
    assert made.text.split() == ["lighthouse"] * len(made.text.split())
    assert len(speech(made.text)) / RATE <= 7.25 * 1.15


def test_a_line_whose_first_word_does_not_fit_is_dropped():
    assert fit("x" * 200) is None


def test_the_first_character_with_a_voice_speaks_the_line():
    cast = (Character("Ada", "red coat"), Character("Bo", "blue hat", voice="en+f3"), Character("Cy", "c", voice="de"))
    sequence = Sequence(id="s", theme="t", music_prompt="m", seed=1, cast=cast)
    assert voice_of(Shot("p", 1, "t", characters=("Ada", "Bo", "Cy")), sequence) == "en+f3"
    assert voice_of(Shot("p", 1, "t", characters=("Ada",)), sequence) is None


def test_the_music_ducks_by_duck_db_under_the_voice_with_short_ramps():
    env = duck_envelope(6 * RATE, RATE, 1.0, 4.0, 12.0)
    db = 20 * np.log10(env)
    assert np.allclose(db[1000:4001], -12.0) and np.allclose(db[: round((1.0 - RAMP_S) * RATE)], 0.0)
    assert np.allclose(db[round((4.0 + RAMP_S) * RATE) + 1:], 0.0)
    assert np.all(np.diff(db[880:1000]) <= 0) and np.all(np.diff(db[4000:4121]) >= 0)


def test_the_mix_puts_the_voice_over_the_ducked_music_without_clipping():
    music = np.full((3 * RATE, 2), 0.5, np.float32)
    line = fit("The lamp.")
    out = mix(music, line, 12.0)
    assert out.shape == music.shape and np.max(np.abs(out)) <= MIX_PEAK + 1e-6
    assert out[0, 0] == pytest.approx(0.5), "away from the voice the music is as it was"
    assert out[round(line.end * RATE) - 5, 0] < 0.5 * 10 ** (-11 / 20) + 0.8 + 1e-6
    voiced = out[round(line.start * RATE) + 10]
    assert voiced[0] == voiced[1] and voiced[0] > out[0, 0], "the voice is on both channels, over the music"


def test_subtitles_keep_inside_the_safe_margins_and_show_long_lines_in_turns():
    house = HouseSection(width=640, height=360)
    style = SubtitlesSection(max_lines=2)
    layout = Layout.of(house, style)
    assert layout.font_px == round(360 * 0.06) and layout.margin_x == round(640 * 0.06)
    assert layout.per_line * layout.font_px * 0.55 <= 640 - 2 * layout.margin_x
    line = " ".join(["lighthouse keeper"] * 12)
    groups = pages(line, layout.per_line, 2)
    assert len(groups) > 1 and all(len(g) <= 2 for g in groups)
    script = ass_script(Subtitle(line, 0.25, 6.0), house, style, 7.0)
    events = [row for row in script.splitlines() if row.startswith("Dialogue:")]
    assert len(events) == len(groups)
    assert events[0].startswith("Dialogue: 0,0:00:00.25,") and events[-1].split(",")[2] == "0:00:06.30"
    style_row = next(row for row in script.splitlines() if row.startswith("Style:")).split(",")
    assert style_row[2] == str(layout.font_px) and style_row[-5:] == ["2", str(layout.margin_x), str(layout.margin_x),
                                                                      str(layout.margin_y), "1"]
    assert "PlayResX: 640" in script and "PlayResY: 360" in script  # bottom-centred, inside the margins


def test_subtitle_text_cannot_carry_ass_override_tags():
    script = ass_script(Subtitle("a {\\b1} b\\N", 0.0, 1.0), HouseSection(), SubtitlesSection(), 2.0)
    text = next(row for row in script.splitlines() if row.startswith("Dialogue:")).split(",", 9)[9]
    assert text == "a (/b1) b/N"


def test_voice_and_subtitles_config(tmp_path):
    path = tmp_path / "channel.toml"
    path.write_text('[voice]\nvoice = "en-us"\nwords_per_minute = 150\n[subtitles]\ncolour = "#FFEE00"\n')
    config = load_config(path)
    assert config.voice.backend == "espeak" and config.voice.voice == "en-us" and config.voice.duck_db == 12
    narration = Narration.from_config(config)
    assert (narration.words_per_minute, narration.max_speedup, narration.min_shot_seconds) == (150, 1.15, 3.0)


@pytest.mark.parametrize("text, key", [
    ('[voice]\nbackend = "none"\nvoice = "en"\n', "voice.voice"),  # a key of another backend
    ('[voice]\nbackend = "piper"\n', "voice"),
    ('[subtitles]\ncolour = "white"\n', "subtitles.colour"),
    ('[voice]\nvoice = "en; rm -rf"\n', "voice.voice"),
])
def test_bad_voice_and_subtitles_config_names_the_key(tmp_path, text, key):
    path = tmp_path / "channel.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key):
        load_config(path)

"""The offline director: varied, deterministic sequences that keep one character and setting."""

from __future__ import annotations

import re

import pytest

from webtv.config import Config
from webtv.director import make_director
from webtv.director.offline import OfflineDirector

pytestmark = pytest.mark.fast

THEME = "a calm journey through imaginary landscapes"
CAMERA = re.compile(
    r"\b(slow|gentle|steady|fast) (pan|tilt|dolly|zoom|orbit|tracking shot) ?(left|right|up|down|in|out)\b"
)


async def test_same_theme_and_seed_give_the_same_sequence():
    director = OfflineDirector()
    a = await director.write_sequence(THEME, 4, 7)
    b = await director.write_sequence(THEME, 4, 7)
    assert a == b
    assert len(a.shots) == 4


async def test_different_seeds_and_themes_give_different_sequences():
    director = OfflineDirector()
    base = await director.write_sequence(THEME, 4, 1)
    other_seeds = [await director.write_sequence(THEME, 4, s) for s in range(2, 7)]
    other_theme = await director.write_sequence("neon city at night", 4, 1)
    for seq in other_seeds + [other_theme]:
        assert seq.id != base.id
        assert [s.prompt for s in seq.shots] != [s.prompt for s in base.shots]
    # the character or the setting changes across seeds, not just the camera moves
    details = {tuple(OfflineDirector.details(THEME, s).values())[:2] for s in range(1, 7)}
    assert len(details) >= 4


async def test_every_shot_keeps_the_sequence_character_and_setting():
    director = OfflineDirector()
    for theme, seed in [(THEME, 0), ("neon city at night", 3), ("winter forest", 11), ("ocean", 5)]:
        seq = await director.write_sequence(theme, 5, seed)
        plan = OfflineDirector.details(theme, seed)
        prompts = [s.prompt for s in seq.shots]
        for prompt in prompts:
            assert plan["character"] in prompt
            assert plan["setting"] in prompt
            assert plan["style"] in prompt
        assert len(set(prompts)) == len(prompts), "shots of a sequence should differ"


async def test_shots_carry_camera_moves_ids_seeds_and_tags():
    director = OfflineDirector()
    seq = await director.write_sequence("Neon City at Night", 6, 42)
    assert seq.id.startswith("seq-") and seq.id == (await director.write_sequence("Neon City at Night", 6, 42)).id
    assert seq.seed == 42 and seq.theme == "Neon City at Night"
    assert seq.music_prompt and re.search(r"tempo", seq.music_prompt)
    assert seq.tags and all(t == t.lower() and " " not in t for t in seq.tags)
    assert {"neon", "city", "night"} <= set(seq.tags)
    moves = set()
    for index, shot in enumerate(seq.shots):
        assert shot.index == index
        assert shot.sequence_id == seq.id
        assert shot.theme == seq.theme
        assert shot.tags == seq.tags
        match = CAMERA.search(shot.prompt)
        assert match, f"no camera move with speed and direction in {shot.prompt!r}"
        moves.add(match.group(0))
    assert len(moves) >= 3
    assert len({s.seed for s in seq.shots}) == len(seq.shots)


async def test_music_prompt_follows_the_theme_mood():
    director = OfflineDirector()
    calm = await director.write_sequence("a calm peaceful lake", 2, 0)
    dark = await director.write_sequence("a dark haunted night", 2, 0)
    assert "calm" in calm.music_prompt
    assert "dark" in dark.music_prompt


async def test_no_words_a_video_model_paints_as_text():
    director = OfflineDirector()
    banned = re.compile(
        r"\b(canon|nikon|sony|arri|alexa|leica|kodak|fujifilm|gopro|dslr|red epic|panavision|imax|"
        r"logo|watermark|text|caption|subtitle|signature|brand)\b"
    )
    for seed in range(40):
        for theme in (THEME, "city", "space opera", "desert"):
            seq = await director.write_sequence(theme, 3, seed)
            for shot in seq.shots:
                assert not banned.search(shot.prompt.lower()), shot.prompt


def test_write_is_fast_and_needs_no_event_loop():
    director = OfflineDirector()
    seq = director.write("", 1, 0)
    assert len(seq.shots) == 1 and seq.shots[0].prompt
    assert make_director(Config().director).__class__ is OfflineDirector

"""Story mode's pure parts: the offline story writer, cast looks in prompts, the summary bound,
the word budget, episode replies and the ``[story]`` section's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webtv.config import ConfigError, parse_config, summary
from webtv.director import Character, EpisodeBrief, Series
from webtv.director.cast import cast_prompt, look_phrase
from webtv.director.openai import ReplyError, parse_episode
from webtv.director.story import bounded_summary, fit_line, word_budget, write_episode

pytestmark = pytest.mark.fast

THEME = "a quiet harbour at dawn"
MARA = Character("Mara", "a tall woman in a long red coat", aliases=("the captain",))
OWL = Character("Bo", "a barn owl with golden eyes")


def brief(series: Series | None = None, words: int = 19, summary_chars: int = 800) -> EpisodeBrief:
    return EpisodeBrief(series or Series(THEME), words, summary_chars)


@pytest.mark.parametrize("shots", [1, 2, 3, 4, 7])
def test_an_offline_episode_is_a_little_story_told_one_line_a_shot(shots):
    series = Series(THEME, (MARA, OWL), episodes=1, summary="Episode 1: Bo lost a feather.")
    episode = write_episode(THEME, shots, 11, brief(series))
    lines = [shot.narration for shot in episode.shots]

    assert episode == write_episode(THEME, shots, 11, brief(series))  # deterministic
    assert episode != write_episode(THEME, shots, 12, brief(series))
    assert episode.episode.number == 2 and episode.episode.title.startswith(OWL.name)  # the cast takes turns
    assert len(lines) == shots and all(0 < len(line.split()) <= 19 for line in lines)
    assert "sets out to" in lines[0] and "at last" in lines[-1].lower()  # a goal, then its resolution
    if shots >= 3:
        assert lines[1].startswith("But ")  # the obstacle
    assert all(OWL.name in shot.characters for shot in episode.shots)
    for shot in episode.shots:
        assert [look_phrase(c) in shot.prompt for c in (MARA, OWL)] == [c.name in shot.characters for c in (MARA, OWL)]
    assert episode.episode.summary.startswith("Episode 1: Bo lost a feather. Episode 2: Bo set out to")
    assert episode.cast == (MARA, OWL)


def test_the_first_episode_invents_its_characters_and_lines_fit_a_small_budget():
    episode = write_episode(THEME, 5, 3, brief(words=4))
    hero, helper = episode.cast  # a protagonist and, in a longer episode, a companion
    assert hero.look and helper.look and hero.name != helper.name
    assert any(helper.name in shot.characters for shot in episode.shots)
    for shot in episode.shots:
        assert 0 < len(shot.narration.split()) <= 4 and shot.narration.endswith(".")
    assert fit_line("Mara sets out to find the lost lantern.", 4) == "Mara sets out to."
    assert fit_line("But the storm, it rolls in.", 3) == "But the storm."


def test_the_summary_keeps_its_bound_by_dropping_the_oldest_sentences():
    text = " ".join(f"Episode {n}: something happened to somebody." for n in range(1, 40))
    bounded = bounded_summary(text, 200)
    assert len(bounded) <= 200 and bounded.endswith("Episode 39: something happened to somebody.")
    assert bounded.startswith("Episode ")
    assert len(bounded_summary("word " * 100, 50)) <= 50
    series = Series(THEME, (MARA,), episodes=30, summary=text)
    assert len(write_episode(THEME, 3, 1, brief(series, summary_chars=300)).episode.summary) <= 300


def test_the_word_budget_follows_the_longest_shot_and_the_voice():
    assert word_budget(8.0, 0.75, 160) == 19
    assert word_budget(3.0, 0.5, 120) == 5
    assert word_budget(1.0, 0.9, 100) == 1


def test_a_look_goes_into_every_prompt_its_character_is_in_once_and_the_same_way():
    cast = (MARA, OWL)
    prompt, names = cast_prompt("wide shot of mara's boat at dawn", cast)
    assert names == ("Mara",) and prompt == "wide shot of mara's boat at dawn. Mara: a tall woman in a long red coat."
    assert cast_prompt(prompt, cast) == (prompt, names)  # never twice
    assert cast_prompt("The Captain waves", cast)[1] == ("Mara",)  # an alias, any case
    assert cast_prompt("Maradona waves, bored owls", cast) == ("Maradona waves, bored owls", ())  # whole words only
    prompt, names = cast_prompt("an owl flies over the pier", cast, named=["bo", "the captain", "Nobody"])
    assert names == ("Mara", "Bo") and prompt.endswith(f". {look_phrase(MARA)}; {look_phrase(OWL)}.")


def reply(**changes) -> str:
    shots = [{"prompt": "wide shot of Mara on the pier", "narration": "Mara waits.", "characters": ["Mara"]}] * 2
    body = {"title": "The Pier", "music_prompt": "calm piano", "tags": ["sea"], "cast": [], "shots": shots,
            "summary": "Mara waited."}
    return json.dumps({**body, **changes})


def test_an_episode_reply_is_checked_before_it_is_used():
    assert [s.narration for s in parse_episode(reply(), 1).shots] == ["Mara waits."]
    with pytest.raises(ReplyError, match="1 shots, 2 were asked"):
        parse_episode(reply(shots=[{"prompt": "wide shot", "narration": "x", "characters": []}]), 2)
    with pytest.raises(ReplyError, match="shots.0.narration"):
        parse_episode(reply(shots=[{"prompt": "wide shot", "narration": "a\u0007bell", "characters": []}]), 1)
    with pytest.raises(ReplyError, match="title"):
        parse_episode(reply(title=""), 1)
    with pytest.raises(ReplyError, match="summary"):
        parse_episode(reply(summary=None), 1)


@pytest.mark.parametrize("table, line, error", [
    ('[[story.cast]]\nname = "Mara"\nlook = "a"\naliases = ["Cap"]\n[[story.cast]]\nname = "cap"\nlook = "b"\n', 6,
     "story.cast[1].name: 'cap' names two characters (cast[0].aliases and cast[1].name)"),
    ('[[story.cast]]\nname = "Ma\\u0007ra"\nlook = "a"\n', 2, "story.cast[0].name: name holds a control character"),
    ('[[story.cast]]\nname = "Mara"\nlook = " "\n', 3, "story.cast[0].look: look must not be empty"),
    ('[[story.cast]]\nname = "Mara"\nlook = "a"\nlooks = "b"\n', 4, "story.cast[0].looks: unknown key"),
    ("[story]\nmin_shot_seconds = 5\nmax_shot_seconds = 4\n", 3, "story.max_shot_seconds: must be at least min_shot"),
    ("[story]\nmax_shot_seconds = 2\nbreath_s = 2\nmin_shot_seconds = 1\n", 3, "story.breath_s: leaves no time"),
])
def test_story_config_errors_name_the_key_and_line(table, line, error):
    with pytest.raises(ConfigError) as raised:
        parse_config(table, Path("/srv/channel.toml"), {})
    assert str(raised.value).startswith(f"/srv/channel.toml:{line}: {error}")


def test_story_is_off_by_default_and_the_cast_is_read_as_written():
    assert "story:      off (showreel)" in summary(parse_config("", Path("/srv/channel.toml"), {}))
    config = parse_config('[story]\nenabled = true\n[[story.cast]]\nname = " Mara "\nlook = "a  red coat"\n'
                          'voice = "en-us"\n', Path("/srv/channel.toml"), {})
    assert "story:      episodes, cast: Mara; shots of 3-8 s" in summary(config)  # what `webtv check` shows
    story = config.story
    assert (story.cast[0].name, story.cast[0].look, story.cast[0].voice) == ("Mara", "a red coat", "en-us")

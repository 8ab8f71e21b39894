"""Story mode against real parts: the LLM director on a real OpenAI-compatible HTTP server
(tests/openai_server.py), the SequenceSource that hands out episodes, a real Library on disk
(reopened, as after a restart), and the ``webtv story`` command in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from webtv.config import ModerationSection, OfflineDirectorSection, OpenAIDirectorSection, StorySection
from webtv.director.cast import look_phrase
from webtv.library import Library
from webtv.producer.sequences import SequenceSource
from webtv.programmer.programmer import Programmer

ROOT = Path(__file__).resolve().parent.parent
THEME = "a quiet harbour at dawn"
MARA = {"name": "Mara", "look": "a tall woman in a long red coat with a brass spyglass", "aliases": ["the captain"]}


def story(**overrides) -> StorySection:
    return StorySection(**{"enabled": True, "cast": [MARA], **overrides})


def llm(server, **overrides) -> OpenAIDirectorSection:
    fields = dict(backend="openai", base_url=server.url, model="fake-model", timeout_s=0.5, retries=0,
                  cooldown_s=0.0, shots_per_sequence=3)
    return OpenAIDirectorSection(**{**fields, **overrides})


def source(director, library: Library, section: StorySection | None = None) -> SequenceSource:
    return SequenceSource.from_config(director, ModerationSection(), library, section or story())


def user_message(request) -> str:
    return next(m["content"] for m in request.messages if m["role"] == "user")


def looks_of(shot, cast) -> dict[str, int]:
    """How often each cast member's look phrase is in ``shot``'s prompt."""
    return {c.name: shot.prompt.count(look_phrase(c)) for c in cast}


async def test_the_cast_keeps_its_looks_and_the_series_goes_on_after_a_restart(openai_server, tmp_path, clip_file):
    root = tmp_path / "library"
    library = Library(root)
    episodes = source(llm(openai_server), library)
    try:
        first = await episodes.next(THEME)
        second = await episodes.next(THEME)
        for episode in (first, second):  # each made: a clip of it entered the library
            made = library.incoming_path()
            shutil.copy(clip_file, made)
            library.ingest(made, episode.shots[0], 1.0)
    finally:
        await episodes.aclose()
        library.close()

    requests = openai_server.chat_requests()
    assert [r.body["response_format"]["json_schema"]["name"] for r in requests] == ["episode", "episode"]
    assert "Words per narration line: at most 19" in user_message(requests[0])  # (8 - 0.75) s at 160 words a minute
    assert first.episode.number == 1 and second.episode.number == 2
    assert first.episode.summary in user_message(requests[1])  # episode 2 is written from episode 1's story
    assert f"- Wren: {openai_server.newcomer[1]}, as drawn in episode 1" in user_message(requests[1])

    for episode in (first, second):
        mara, wren = episode.cast[0], next(c for c in episode.cast if c.name == "Wren")
        assert (mara.look, wren.look) == (MARA["look"], f"{openai_server.newcomer[1]}, as drawn in episode 1")
        for shot in episode.shots:
            # Mara is named in every prompt; Wren only by the director, in every other shot
            assert shot.characters == (("Mara", "Wren") if shot.index % 2 == 0 else ("Mara",))
            assert looks_of(shot, episode.cast) == {"Mara": 1, "Wren": 1 if "Wren" in shot.characters else 0}
            assert shot.narration == f"Line {shot.index + 1} of episode {episode.episode.number}."

    library = Library(root)  # a restart
    episodes = source(llm(openai_server), library)
    try:
        assert library.series(THEME).episodes == 2
        third = await episodes.next(THEME)
        made = library.incoming_path()
        shutil.copy(clip_file, made)
        clip = library.ingest(made, third.shots[0], 1.0)
        entry = Programmer._entry(library.get(clip.id), "fresh")
        unmade = await episodes.next(THEME)  # handed out, then the daemon stops before a clip of it is made
    finally:
        await episodes.aclose()
        library.close()
    assert third.episode.number == 3 and unmade.episode.number == 4
    library = Library(root)  # episode 4 never aired: the series goes on from episode 3, as number 4
    try:
        assert (library.series(THEME).episodes, library.series(THEME).summary) == (3, third.episode.summary)
    finally:
        library.close()
    assert second.episode.summary in user_message(openai_server.chat_requests()[2])
    assert next(c for c in third.cast if c.name == "Wren").look.endswith("as drawn in episode 1")
    # the clip airs with its line, its cast and its episode
    assert (clip.narration, clip.characters, clip.episode, clip.episode_title) == (
        "Line 1 of episode 3.", ("Mara", "Wren"), 3, "The Pier, part 3")
    assert (entry.narration, entry.characters, entry.episode, entry.episode_title) == (
        clip.narration, clip.characters, 3, "The Pier, part 3")
    assert clip.prompt == third.shots[0].prompt and look_phrase(third.cast[0]) in clip.prompt


async def test_a_failing_server_falls_back_to_the_offline_writer_for_that_episode(openai_server, tmp_path):
    openai_server.slow_s = 1.5
    library = Library(tmp_path / "library")
    episodes = source(llm(openai_server), library)
    state = episodes.director.state
    got = []
    try:
        for mode, error in [("ok", None), ("error500", "HTTP 500"), ("malformed", "not JSON"),
                            ("slow", "timed out after 0.5 s"), ("ok", None)]:
            openai_server.behave(mode)
            before = library.series(THEME)
            episode = await episodes.next(THEME)
            got.append(episode.id.split("-")[0])
            assert episode.episode.number == before.episodes + 1
            assert state.fallback_active == (error is not None)
            if error is not None:  # the offline writer's episode, written from the same series
                assert error in state.last_error
                assert episode.episode.summary.startswith(before.summary[:40])
                assert all(shot.narration and len(shot.narration.split()) <= 19 for shot in episode.shots)
                assert all(look_phrase(episode.cast[0]) in shot.prompt for shot in episode.shots
                           if "Mara" in shot.characters)
    finally:
        await episodes.aclose()
        library.close()
    assert got == ["llm", "ep", "ep", "ep", "llm"] and state.fallbacks == 3 and state.sequences == 2


async def test_story_mode_switches_on_live_and_the_showreel_is_left_as_it_was(tmp_path):
    library = Library(tmp_path / "library")
    director = OfflineDirectorSection(shots_per_sequence=2)
    sequences = source(director, library, story(enabled=False))
    try:
        showreel = await sequences.next(THEME)
        await sequences.reconfigure(director, ModerationSection(), story())
        episode = await sequences.next(THEME)
    finally:
        await sequences.aclose()
        library.close()
    assert showreel.episode is None and not any(shot.narration for shot in showreel.shots)
    assert episode.episode.number == 1 and all(shot.narration for shot in episode.shots)


def test_webtv_story_prints_the_next_episode_and_leaves_the_series_as_it_was(tmp_path):
    root = tmp_path / "library"
    library = Library(root)
    config = tmp_path / "channel.toml"
    config.write_text(
        f'[paths]\nlibrary = "{root}"\n[story]\nenabled = true\n'
        f'[[story.cast]]\nname = "{MARA["name"]}"\nlook = "{MARA["look"]}"\naliases = ["the captain"]\n',
        encoding="utf-8")
    try:  # the daemon holds the library while the command reads it
        sequences = source(OfflineDirectorSection(), library)
        asyncio.run(sequences.next(THEME))
        command = [sys.executable, "-m", "webtv", "story", THEME, "-n", "5", "--json", "--config", str(config)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        runs = [subprocess.run(command, capture_output=True, text=True, timeout=60, env=env) for _ in range(2)]
        assert library.series(THEME).episodes == 1
    finally:
        library.close()
    assert runs[0].returncode == 0, runs[0].stderr
    printed = json.loads(runs[0].stdout)
    assert printed == json.loads(runs[1].stdout)  # it reads the series; it does not advance it
    assert printed["episode"] == 2 and printed["title"]
    assert len(printed["shots"]) == 5 and all(shot["narration"] for shot in printed["shots"])
    assert any("Mara" in shot["characters"] for shot in printed["shots"])
    assert printed["cast"][0] == {"name": "Mara", "look": MARA["look"], "aliases": ["the captain"], "voice": None}

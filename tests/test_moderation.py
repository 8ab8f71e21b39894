"""Moderation: words, patterns, the OpenAI moderation endpoint (a real HTTP server), and the
producer never rendering a blocked prompt (real procedural video, synth audio and ffmpeg)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from webtv.config import HouseSection, ModerationSection, OpenAIDirectorSection
from webtv.director.base import Sequence, Shot
from webtv.director.moderation import Moderator
from webtv.director.openai import OpenAIDirector
from webtv.library import Library
from webtv.producer import ClipPipeline, ProceduralVideo, Stages, SynthAudio
from webtv.producer.producer import Producer
from webtv.producer.sequences import SequenceSource

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "WEBTV_TEST_MODERATION_KEY"
SECRET = "sk-mod-51d2e-never-shown"
TINY = HouseSection(width=160, height=90, fps=12, gop_seconds=1.0, video_kbps=150, audio_kbps=32)


def director_section(server, **overrides) -> OpenAIDirectorSection:
    fields = dict(backend="openai", base_url=server.url, model="fake-model", api_key_env=KEY_ENV,
                  timeout_s=2.0, retries=0, shots_per_sequence=3)
    return OpenAIDirectorSection(**{**fields, **overrides})


@pytest.fixture
def key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def sequence(*prompts: str, theme: str = "a harbour", music: str = "calm piano") -> Sequence:
    shots = tuple(Shot(prompt=p, seed=100 + i, theme=theme, tags=("sea",), sequence_id="s1", index=i)
                  for i, p in enumerate(prompts))
    return Sequence(id="s1", theme=theme, music_prompt=music, seed=1, tags=("sea",), shots=shots)


# ----------------------------------------------------------------------------- local rules


async def test_words_match_whole_words_in_any_case():
    moderator = Moderator(ModerationSection(words=["gore", "war crime", " "]))
    assert await moderator.check("a scene full of GORE.") == "word:gore"
    assert await moderator.check("Gore-soaked") == "word:gore"
    assert await moderator.check("a WAR   crime scene") == "word:war crime"
    for clean in ("Gorey's garden", "a gorecki symphony", "ingore this", "a warcrime", ""):
        assert await moderator.check(clean) is None, clean
    assert moderator.state.checked == 8 and moderator.state.blocked == 3


async def test_patterns_are_case_insensitive_python_regexes():
    moderator = Moderator(ModerationSection(words=["gore"], patterns=[r"blood\w*", r"^\s*nsfw\b"]))
    assert await moderator.check("a Bloodbath at sea") == r"pattern:blood\w*"
    assert await moderator.check("  NSFW art") == r"pattern:^\s*nsfw\b"
    assert await moderator.check("gore and blood") == "word:gore", "words are checked first"
    assert await moderator.check("safe art, nsfw later") is None
    assert Moderator(ModerationSection()).active is False and moderator.active


async def test_filter_sequence_drops_blocked_shots_and_renumbers_the_rest():
    moderator = Moderator(ModerationSection(words=["gore"], patterns=[r"\bknife\b"]))
    seq = sequence("a boat drifts left", "a close-up of gore", "a gull glides right", "a KNIFE on a table")
    kept, blocked = await moderator.filter_sequence(seq)
    assert blocked == [("a close-up of gore", "word:gore"), ("a KNIFE on a table", r"pattern:\bknife\b")]
    assert [(s.prompt, s.index, s.seed) for s in kept.shots] == [("a boat drifts left", 0, 100), ("a gull glides right", 1, 102)]
    assert (kept.id, kept.music_prompt, kept.theme) == (seq.id, seq.music_prompt, seq.theme)

    clean = sequence("a boat drifts left")
    assert await moderator.filter_sequence(clean) == (clean, [])
    assert await moderator.filter_sequence(sequence("gore", "more gore")) == (
        None, [("gore", "word:gore"), ("more gore", "word:gore")])


async def test_a_blocked_theme_or_music_prompt_blocks_the_whole_sequence():
    moderator = Moderator(ModerationSection(words=["gore"]))
    assert await moderator.filter_sequence(sequence("a boat", theme="gore festival")) == (
        None, [("gore festival", "word:gore")])
    assert await moderator.filter_sequence(sequence("a boat", music="gore metal")) == (
        None, [("gore metal", "word:gore")])


# ----------------------------------------------------------------------------- the endpoint


async def test_the_openai_endpoint_blocks_what_it_flags(openai_server, key):
    openai_server.flagged = {"knife": "violence"}
    moderator = Moderator(ModerationSection(words=["gore"], openai=True), director_section(openai_server))
    try:
        assert await moderator.check("a man with a knife") == "openai:violence"
        assert await moderator.check("a calm lake") is None
        assert await moderator.check("gore") == "word:gore"
        seq = sequence("a boat", "a knife in the fog", "gore", "a gull")
        kept, blocked = await moderator.filter_sequence(seq)
    finally:
        await moderator.aclose()
    assert blocked == [("a knife in the fog", "openai:violence"), ("gore", "word:gore")]
    assert [s.prompt for s in kept.shots] == ["a boat", "a gull"]
    requests = openai_server.moderation_requests()
    assert len(requests) == 3, "local rules answer first; one request for a whole sequence"
    assert requests[-1].body["input"] == ["a harbour", "calm piano", "a boat", "a knife in the fog", "a gull"]
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in requests)


async def test_a_failing_endpoint_blocks_nothing_and_is_logged(openai_server, key, caplog):
    openai_server.moderation_mode = "error500"
    openai_server.echo_key = True
    openai_server.flagged = {"knife": "violence"}
    moderator = Moderator(ModerationSection(words=["gore"], openai=True), director_section(openai_server))
    try:
        assert await moderator.check("a man with a knife") is None
        assert await moderator.check("gore") == "word:gore", "local rules still work"
    finally:
        await moderator.aclose()
    assert moderator.state.endpoint_errors == 1 and "500" in moderator.state.last_error
    assert "endpoint failed, not blocking" in caplog.text
    assert SECRET not in caplog.text and SECRET not in moderator.state.last_error


async def test_an_unreachable_endpoint_blocks_nothing(key):
    section = OpenAIDirectorSection(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, timeout_s=0.5)
    moderator = Moderator(ModerationSection(openai=True), section)
    assert await moderator.check("anything at all") is None
    await moderator.aclose()
    assert moderator.state.endpoint_errors == 1


async def test_the_endpoint_is_not_asked_unless_configured(openai_server, key):
    moderator = Moderator(ModerationSection(words=["gore"]), director_section(openai_server))
    assert await moderator.check("a knife") is None
    assert openai_server.moderation_requests() == []


# ----------------------------------------------------------------------------- the producer


def made_prompts(library_root: Path) -> list[str]:
    db = sqlite3.connect(library_root / "index.sqlite")
    try:
        return [row[0] for row in db.execute("SELECT prompt FROM clips")]
    finally:
        db.close()


async def run_producer(producer: Producer, until, seconds: float) -> None:
    task = asyncio.create_task(producer.run())
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while not until() and asyncio.get_running_loop().time() < deadline:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def producer_for(director, moderator, library: Library, theme: str, ahead: int) -> Producer:
    return Producer(
        ClipPipeline(Stages(video=ProceduralVideo(TINY), audio=SynthAudio()), TINY, clip_seconds=1.0),
        SequenceSource(director, moderator, library, seed=0, shots_per_sequence=3), library,
        theme=lambda: theme, ahead=ahead,
    )


async def test_a_blocked_prompt_is_never_rendered(openai_server, key, tmp_path, caplog):
    theme = "a quiet harbour at dawn"
    openai_server.poison = {0: "holding a knife", 1: "covered in gore"}
    openai_server.flagged = {"knife": "violence"}
    openai_server.vary = True
    section = director_section(openai_server)
    director = OpenAIDirector(section, backoff_s=0.01)
    moderator = Moderator(ModerationSection(words=["gore"], openai=True), section)
    library = Library(tmp_path / "library")
    producer = producer_for(director, moderator, library, theme, ahead=2)
    try:
        await run_producer(producer, lambda: producer.state.clips_made >= 2, 60)
    finally:
        await director.aclose()
        await moderator.aclose()
        library.close()

    prompts = made_prompts(tmp_path / "library")
    assert len(prompts) >= 2 and producer.state.clips_made == len(prompts)
    assert all("knife" not in p and "gore" not in p for p in prompts), prompts
    assert producer.state.prompts_blocked >= 4 and producer.state.clips_failed == 0
    assert "prompt blocked: rule=openai:violence prompt=" in caplog.text
    assert "prompt blocked: rule=word:gore prompt=" in caplog.text
    assert len(openai_server.chat_requests()) >= 2


async def test_nothing_is_made_for_a_blocked_theme(openai_server, key, tmp_path, caplog):
    section = director_section(openai_server)
    director = OpenAIDirector(section, backoff_s=0.01)
    library = Library(tmp_path / "library")
    producer = producer_for(director, Moderator(ModerationSection(patterns=[r"\bgore\w*"])), library, "Gorefest at sea", 2)
    try:
        await run_producer(producer, lambda: False, 0.6)
    finally:
        await director.aclose()
        library.close()
    assert made_prompts(tmp_path / "library") == []
    assert openai_server.chat_requests() == [], "the director is not even asked"
    assert producer.state.prompts_blocked == 1 and producer.state.clips_made == 0
    assert caplog.text.count("theme blocked: rule=pattern:") == 1


async def test_a_fully_blocked_sequence_moves_on_to_a_new_seed(tmp_path):
    """The offline writer is deterministic: a blocked sequence must not be asked for again."""

    class Recording:
        def __init__(self):
            self.seeds: list[int] = []

        async def write_sequence(self, theme, shots, seed):
            self.seeds.append(seed)
            prompt = "a forbidden shot" if len(self.seeds) == 1 else f"a fine shot {seed}"
            return sequence(*[prompt] * shots, theme=theme)

    director = Recording()
    library = Library(tmp_path / "library")
    producer = producer_for(director, Moderator(ModerationSection(words=["forbidden"])), library, "a harbour", 1)
    try:
        await run_producer(producer, lambda: producer.state.clips_made >= 1, 30)
    finally:
        library.close()
    assert len(director.seeds) >= 2 and director.seeds[0] != director.seeds[1]
    assert all("forbidden" not in p for p in made_prompts(tmp_path / "library"))


# ----------------------------------------------------------------------------- the CLI


def test_cli_prompts_are_moderated(openai_server, tmp_path):
    openai_server.poison = {1: "covered in gore"}
    config = tmp_path / "channel.toml"
    config.write_text(
        f"""
[director]
backend = "openai"
base_url = "{openai_server.url}"
api_key_env = "{KEY_ENV}"
timeout_s = 2
retries = 0
shots_per_sequence = 3

[moderation]
words = ["gore"]
"""
    )
    env = {**os.environ, KEY_ENV: SECRET}
    args = [sys.executable, "-m", "webtv", "prompts", "a quiet harbour", "-n", "4", "--config", str(config)]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and not any("gore" in line for line in lines)
    assert "prompt blocked: rule=word:gore" in done.stderr
    blocked = subprocess.run(args[:4] + ["gore at sea"] + args[5:], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert blocked.returncode == 1 and blocked.stdout == "" and "word:gore" in blocked.stderr

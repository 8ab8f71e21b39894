"""The sequence source (director -> moderation -> de-duplication -> seeds) that the producer
and `webtv prompts` share: the seed formula, nothing handed out twice, moderation first,
and live reconfiguration. A real library (SQLite) and the offline director; no ffmpeg."""

from __future__ import annotations

import logging

import pytest

from tests.clips import add_to_library
from webtv.config import ModerationSection, OfflineDirectorSection
from webtv.director import Sequence, Shot
from webtv.director.moderation import Moderator
from webtv.director.offline import OfflineDirector
from webtv.library import Library
from webtv.producer.sequences import SequenceSource

pytestmark = pytest.mark.fast

THEME = "a harbour at dawn"


@pytest.fixture
def library(tmp_path):
    library = Library(tmp_path / "library")
    yield library
    library.close()


@pytest.fixture
def clip_file(tmp_path):
    path = tmp_path / "made.mp4"
    path.write_bytes(b"not a real clip: the index does not look inside")
    return path


class Recording:
    """A director that writes ``prompts`` (the same each time unless they hold ``{seed}``)."""

    def __init__(self, *prompts: str):
        self.prompts = prompts or ("a fine shot {seed}",)
        self.seeds: list[int] = []
        self.closed = False
        self.state = OfflineDirector().state

    async def write_sequence(self, theme: str, shots: int, seed: int) -> Sequence:
        self.seeds.append(seed)
        made = tuple(Shot(prompt=self.prompts[i % len(self.prompts)].format(seed=seed), seed=seed + i, theme=theme,
                          sequence_id=f"s{seed}", index=i) for i in range(shots))
        return Sequence(id=f"s{seed}", theme=theme, music_prompt="calm piano", seed=seed, shots=made)

    async def aclose(self) -> None:
        self.closed = True


async def test_seeds_follow_the_library_so_a_restart_goes_on_to_new_prompts(library, clip_file):
    for n in range(5):
        add_to_library(library, clip_file, f"made before {n}", THEME)
    director = Recording()
    source = SequenceSource(director, None, library, seed=7, shots_per_sequence=2)
    await source.next(THEME)
    assert director.seeds == [7 * 1_000_003 + 5]
    add_to_library(library, clip_file, "made now", THEME)
    await source.next(THEME)
    assert director.seeds[-1] == 7 * 1_000_003 + 6
    restarted = Recording()
    await SequenceSource(restarted, None, library, seed=7, shots_per_sequence=2).next(THEME)
    assert restarted.seeds == [7 * 1_000_003 + 6], "a restart asks for the seed after the last clip made"


async def test_without_a_library_seeds_count_the_shots_handed_out():
    """`webtv prompts`: what the daemon writes on an empty library, where every shot renders."""
    director = Recording()
    source = SequenceSource(director, None, None, seed=2, shots_per_sequence=3)
    for _ in range(3):
        await source.next(THEME)
    assert director.seeds == [2 * 1_000_003 + k * 3 for k in range(3)]


async def test_nothing_is_handed_out_twice_and_a_skipped_sequence_moves_the_seed_on(library, clip_file, caplog):
    director = Recording("shot one", "shot two", "shot three")
    source = SequenceSource(director, None, library, seed=0, shots_per_sequence=3)
    add_to_library(library, clip_file, "shot two", THEME)
    with caplog.at_level(logging.INFO, logger="webtv.producer"):
        sequence = await source.next(THEME)
    assert [(s.prompt, s.index) for s in sequence.shots] == [("shot one", 0), ("shot three", 1)]
    assert "shot already in the library, not rendered again: prompt='shot two'" in caplog.text
    add_to_library(library, clip_file, "shot one", THEME)
    add_to_library(library, clip_file, "shot three", THEME)
    assert await source.next(THEME) is None, "every shot is in the library already"
    await source.next(THEME)
    assert director.seeds == [1, 3, 4], "the skipped sequence's seed is not asked for again"


async def test_moderation_drops_blocked_shots_and_counts_them(library, caplog):
    director = Recording("a calm boat {seed}", "a boat covered in gore {seed}")
    source = SequenceSource(director, Moderator(ModerationSection(words=["gore"])), library, seed=0,
                            shots_per_sequence=4)
    sequence = await source.next(THEME)
    assert [s.prompt for s in sequence.shots] == ["a calm boat 0", "a calm boat 0"]
    assert [s.index for s in sequence.shots] == [0, 1], "renumbered: each keeps its slice of the music"
    assert source.prompts_blocked == 2
    assert caplog.text.count("prompt blocked: rule=word:gore prompt='a boat covered in gore 0'") == 2


async def test_a_fully_blocked_sequence_is_skipped_with_a_new_seed(library):
    director = Recording("a forbidden shot")
    source = SequenceSource(director, Moderator(ModerationSection(words=["forbidden"])), library, seed=0,
                            shots_per_sequence=2)
    assert await source.next(THEME) is None
    assert await source.next(THEME) is None
    assert director.seeds == [0, 1]
    assert source.prompts_blocked == 4


async def test_a_blocked_theme_is_asked_once_and_counted_once(caplog):
    moderator = Moderator(ModerationSection(patterns=[r"\bgore\w*"]))
    source = SequenceSource(Recording(), moderator, None, seed=0, shots_per_sequence=2)
    assert await source.theme_rule("Gorefest at sea") == r"pattern:\bgore\w*"
    assert await source.theme_rule("Gorefest at sea") == r"pattern:\bgore\w*"
    assert await source.theme_rule(THEME) is None
    assert source.prompts_blocked == 1 and moderator.state.checked == 2
    assert caplog.text.count("theme blocked: rule=pattern:") == 1


async def test_reconfigure_swaps_what_changed_and_closes_what_it_retires(library):
    director_section, moderation = OfflineDirectorSection(), ModerationSection()
    source = SequenceSource.from_config(director_section, moderation, library)
    director, moderator = source.director, source.moderator
    await source.reconfigure(director_section, moderation)
    assert source.director is director and source.moderator is moderator, "nothing changed, nothing is made anew"

    await source.reconfigure(director_section, ModerationSection(words=["storm"]))
    assert source.director is director, "the director stays when only moderation changed"
    assert source.moderator is not moderator and source.moderator.check_local("a storm") == "word:storm"

    more = director_section.model_copy(update={"shots_per_sequence": 2, "seed": 9})
    await source.reconfigure(more, ModerationSection(words=["storm"]))
    assert source.director is not director
    sequence = await source.next(THEME)
    assert len(sequence.shots) == 2 and sequence.seed == 9 * 1_000_003


async def test_reconfigure_closes_the_retired_director_and_moderator():
    class Closing(Moderator):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    director, moderator = Recording(), Closing(ModerationSection())
    source = SequenceSource(director, moderator, None, seed=0, shots_per_sequence=2)
    await source.reconfigure(OfflineDirectorSection(), ModerationSection())  # its sections are unknown: both made anew
    assert director.closed and moderator.closed
    assert isinstance(source.director, OfflineDirector) and source.director.state.backend == "offline"
    await source.aclose()


async def test_a_director_that_failed_to_be_made_is_made_again_at_the_next_reconfigure(tmp_path):
    from webtv.config import OpenAIDirectorSection

    source = SequenceSource.from_config(OfflineDirectorSection(), ModerationSection(), None)
    prompt = tmp_path / "prompt.txt"
    openai = OpenAIDirectorSection(base_url="http://127.0.0.1:9/v1", system_prompt=prompt)  # not there yet
    with pytest.raises(OSError):
        await source.reconfigure(openai, ModerationSection())
    assert isinstance(source.director, OfflineDirector)
    prompt.write_text("Write shots.")
    await source.reconfigure(openai, ModerationSection())  # the same sections again: not taken as applied
    assert source.director.state.backend == "openai"
    await source.aclose()

"""theme -> the next sequence worth rendering: director -> moderation -> de-duplication -> seeds.

Shared by the producer and ``webtv prompts``, so the command shows what the daemon would
write. Invariants:

- Seeds follow the library's size (every clip ever made) plus the sequences skipped so far:
  a restart goes on to new prompts, and a sequence that was skipped (moderated away, or all
  of it already made) is not asked for again. Without a library (``webtv prompts``) the
  shots handed out so far stand in for the clips made, as on an empty library where every
  shot renders.
- Moderation comes before anything is rendered: nothing is handed out for a blocked theme,
  a blocked music prompt drops its sequence, blocked shots are dropped; each is logged with
  the rule and counted in ``prompts_blocked``.
- No shot already in the library is handed out again; the rest are renumbered 0..n-1 so
  each still gets its slice of the sequence's music.
- Story mode (``[story] enabled``, read at each sequence: an edit applies at the next
  episode): the director writes the theme's next episode from its series (the operator's cast
  first, then the characters directors added, with the summary so far). The episode is
  recorded in the library (number, summary, new characters) when it is handed out, so a
  restart goes on with the next number. Without a library the series lives in memory.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from webtv.director import Character, Director, EpisodeBrief, Sequence, Series, make_director
from webtv.director.cast import names_of
from webtv.director.moderation import Moderator
from webtv.director.story import word_budget

if TYPE_CHECKING:
    from webtv.config import CastMember, Config, DirectorSection, ModerationSection, StorySection
    from webtv.library import Library

log = logging.getLogger("webtv.producer")

SEED_STRIDE = 1_000_003  # [director] seeds a stride apart: their sequences meet only after a million clips
DEFAULT_WORDS_PER_MINUTE = 160.0


def words_per_minute(config: "Config") -> float:
    """How fast the narrator speaks: ``[voice] words_per_minute``."""
    return float(config.voice.words_per_minute)


def characters(cast: "list[CastMember]") -> tuple[Character, ...]:
    """``[[story.cast]]`` as the director's characters."""
    return tuple(Character(c.name, c.look, tuple(c.aliases), c.voice) for c in cast)


def with_operator_cast(stored: Series, operator: tuple[Character, ...]) -> Series:
    """``stored`` with the operator's cast first; a stored character whose name or alias an
    operator's character has gives way to it."""
    taken = {n.casefold() for c in operator for n in names_of(c)}
    kept = tuple(c for c in stored.cast if not any(n.casefold() in taken for n in names_of(c)))
    return replace(stored, cast=operator + kept)


class SequenceSource:
    def __init__(
        self,
        director: Director,
        moderator: Moderator | None,
        library: "Library | None",
        seed: int,
        shots_per_sequence: int,
        story: "StorySection | None" = None,
        words_per_minute: float = DEFAULT_WORDS_PER_MINUTE,
    ):
        self.director = director
        self.moderator = moderator
        self.library = library
        self.seed = seed
        self.shots_per_sequence = shots_per_sequence
        self.story = story
        self.words_per_minute = words_per_minute
        self.memory: dict[str, Series] = {}  # the series without a library (webtv prompts, webtv story)
        self.prompts_blocked = 0  # themes and prompts moderation blocked
        self._skipped = 0  # sequences not handed out: the next seed moves on
        self._handed_out = 0  # shots handed out (stands in for the library's size without one)
        self._theme_verdict: tuple[Moderator, str, str | None] | None = None  # (moderator, theme, rule)
        self._sections: tuple[DirectorSection, ModerationSection] | None = None  # what the parts were made from

    @classmethod
    def from_config(cls, director: "DirectorSection", moderation: "ModerationSection",
                    library: "Library | None", story: "StorySection | None" = None,
                    words_per_minute: float = DEFAULT_WORDS_PER_MINUTE) -> "SequenceSource":
        """The director and moderator the sections name."""
        source = cls(make_director(director), Moderator(moderation, director), library, director.seed,
                     director.shots_per_sequence, story, words_per_minute)
        source._sections = (director, moderation)
        return source

    async def reconfigure(self, director: "DirectorSection", moderation: "ModerationSection",
                          story: "StorySection | None" = None, words_per_minute: float | None = None) -> None:
        """Apply edited ``[director]``, ``[moderation]`` (and ``[story]``, from the next
        sequence on) sections live: what changed is made
        anew and the retired director or moderator is closed. The moderator is made anew when
        either section changed (its endpoint is the director's server). A source not made by
        ``from_config`` does not know its sections, so its first reconfigure makes both."""
        old = self._sections
        new_director = old is None or director != old[0]
        new_moderator = new_director or moderation != old[1]
        self.seed, self.shots_per_sequence = director.seed, director.shots_per_sequence
        if story is not None:
            self.story = story
        if words_per_minute is not None:
            self.words_per_minute = words_per_minute
        if new_moderator:
            retired_moderator, self.moderator = self.moderator, Moderator(moderation, director)
            if retired_moderator is not None:
                await retired_moderator.aclose()
        if new_director:
            retired_director, self.director = self.director, make_director(director)  # may raise: kept as it was
            await retired_director.aclose()
        self._sections = (director, moderation)  # only once both were made: a failed edit is tried again

    async def aclose(self) -> None:
        await self.director.aclose()
        if self.moderator is not None:
            await self.moderator.aclose()

    def next_seed(self) -> int:
        """The seed the director writes the next sequence with."""
        made = self.library.total_made() if self.library is not None else self._handed_out
        return self.seed * SEED_STRIDE + made + self._skipped

    async def theme_rule(self, theme: str) -> str | None:
        """The moderation rule that blocks ``theme``, or None; asked once per theme and moderator."""
        moderator = self.moderator
        if moderator is None:
            return None
        cached = self._theme_verdict
        if cached is not None and cached[0] is moderator and cached[1] == theme:
            return cached[2]
        rule = await moderator.check(theme)
        self._theme_verdict = (moderator, theme, rule)
        if rule is not None:
            self.prompts_blocked += 1
            log.warning("theme blocked: rule=%s theme=%r: nothing is made for it", rule, theme)
        return rule

    def series(self, theme: str) -> Series:
        """The series the next episode of ``theme`` is written from: the operator's cast first."""
        stored = self.library.series(theme) if self.library is not None else self.memory.get(theme, Series(theme))
        return with_operator_cast(stored, characters(self.story.cast) if self.story is not None else ())

    def brief(self, theme: str) -> EpisodeBrief:
        story = self.story
        assert story is not None
        words = word_budget(story.max_shot_seconds, story.breath_s, self.words_per_minute)
        return EpisodeBrief(self.series(theme), words, story.summary_chars)

    async def next(self, theme: str) -> Sequence | None:
        """The next sequence of ``theme`` to render (in story mode its next episode, recorded),
        or None when this one was skipped (the seed has moved on: ask again)."""
        shots, seed = self.shots_per_sequence, self.next_seed()
        brief = self.brief(theme) if self.story is not None and self.story.enabled else None
        if brief is None:
            sequence = await self.director.write_sequence(theme, shots, seed)
        else:
            sequence = await self.director.write_episode(theme, shots, seed, brief)
        sequence = await self._moderate(sequence)
        if sequence is not None:
            sequence = self._new_shots(sequence)
        if sequence is None:
            self._skipped += 1
            return None
        if brief is not None and sequence.episode is not None:
            self._record(sequence, brief.series)
        self._handed_out += len(sequence.shots)
        return sequence

    def _record(self, sequence: Sequence, series: Series) -> None:
        """Remember the episode handed out and the characters it introduced."""
        known = {n.casefold() for c in series.cast for n in names_of(c)}
        added = tuple(c for c in sequence.cast if c.name.casefold() not in known)
        episode = sequence.episode
        assert episode is not None
        log.info("episode handed out: theme=%r number=%d title=%r new characters=%s", sequence.theme,
                 episode.number, episode.title, [c.name for c in added])
        if self.library is not None:
            self.library.record_episode(sequence, added)
            return
        stored = self.memory.get(sequence.theme, Series(sequence.theme))
        self.memory[sequence.theme] = Series(sequence.theme, stored.cast + added, episode.number, episode.summary)

    async def _moderate(self, sequence: Sequence) -> Sequence | None:
        """The part of ``sequence`` moderation lets through, or None; blocked prompts are logged."""
        if self.moderator is None:
            return sequence
        kept, blocked = await self.moderator.filter_sequence(sequence)
        for prompt, rule in blocked:
            self.prompts_blocked += 1
            log.warning("prompt blocked: rule=%s prompt=%r", rule, prompt)
        return kept

    def _new_shots(self, sequence: Sequence) -> Sequence | None:
        """The shots not in the library yet (renumbered), or None: no shot is rendered twice."""
        if self.library is None:
            return sequence
        new = [shot for shot in sequence.shots if not self.library.has_prompt(shot.prompt, shot.theme)]
        for shot in sequence.shots:
            if shot not in new:
                log.info("shot already in the library, not rendered again: prompt=%r", shot.prompt)
        if not new:
            return None
        return replace(sequence, shots=tuple(replace(shot, index=i) for i, shot in enumerate(new)))

"""What a director hands the producer: sequences of shots that belong together, and what
every director reports of itself (``state``) and how it is let go (``aclose``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Character:
    """One of a series' cast. ``look`` is added, word for word, to every prompt the character is
    in, so a video model draws them the same from shot to shot and episode to episode."""

    name: str
    look: str
    aliases: tuple[str, ...] = ()
    voice: str | None = None  # the voice backend's own name for a voice (espeak voice, speaker id)


@dataclass(frozen=True)
class Episode:
    """Story mode: the episode a sequence is. ``summary`` is the story so far, this episode
    included (the series memory the next episode is written from)."""

    number: int  # 1, 2, ... within the theme's series
    title: str
    summary: str = ""


@dataclass(frozen=True)
class Series:
    """Story mode: what a theme's story is so far, which the next episode is written from.
    ``cast`` holds the operator's cast first, then the characters directors added (each keeps
    the look it was introduced with); ``episodes`` is how many were handed out."""

    theme: str
    cast: tuple[Character, ...] = ()
    episodes: int = 0
    summary: str = ""


@dataclass(frozen=True)
class EpisodeBrief:
    """What a director is told when asked for an episode: the word budget is the most words a
    narration line may have to fit a shot of ``[story] max_shot_seconds``."""

    series: Series
    words: int  # the narration budget per shot
    summary_chars: int  # the bound of the updated summary


@dataclass(frozen=True)
class Shot:
    prompt: str  # as rendered: in story mode the cast's looks are already in it
    seed: int
    theme: str
    tags: tuple[str, ...] = ()
    sequence_id: str = ""
    index: int = 0
    narration: str = ""  # story mode: the line the narrator speaks over this shot
    characters: tuple[str, ...] = ()  # story mode: names of the cast members in it


@dataclass(frozen=True)
class Sequence:
    """Shots that share characters, setting and one music track that runs across their cuts."""

    id: str
    theme: str
    music_prompt: str
    seed: int
    tags: tuple[str, ...] = ()
    shots: tuple[Shot, ...] = field(default_factory=tuple)
    episode: Episode | None = None  # story mode only
    cast: tuple[Character, ...] = ()  # story mode: everyone who may appear, with their looks


@dataclass
class DirectorState:
    """What ``/api/status`` shows of the director. Times are Unix seconds; no secrets.

    Every director fills ``backend``, ``sequences`` and ``last_ok_at``; the fields about a
    server (``model``, ``base_url``, ``response_format``, fallbacks and errors) stay at their
    defaults for a director that has none."""

    backend: str
    model: str = ""
    base_url: str = ""
    response_format: str = ""  # the one the server accepted last (json_schema, json_object, text)
    fallback_active: bool = False  # the last sequence was written by the offline writer
    fallbacks: int = 0  # sequences the offline writer wrote instead of the server
    sequences: int = 0  # sequences the director itself wrote
    last_error: str | None = None  # the last problem with the server, one line
    last_error_at: float | None = None
    last_ok_at: float | None = None  # when the director last wrote a sequence
    retry_at: float | None = None  # while fallen back: when the server is asked again


class Director(Protocol):
    state: DirectorState

    async def write_sequence(self, theme: str, shots: int, seed: int) -> Sequence: ...

    async def write_episode(self, theme: str, shots: int, seed: int, brief: EpisodeBrief) -> Sequence:
        """The next episode of ``brief.series``: a sequence with ``episode`` and ``cast`` set,
        shots with narration and characters, the cast's looks in the prompts."""
        ...

    async def aclose(self) -> None:
        """Let go of connections; the director is not used again."""
        ...

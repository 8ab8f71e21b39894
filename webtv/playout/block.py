"""A block: a run of clips written as one ffconcat playlist, aired by one decoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .clipfile import Stamp

Source = Literal["fresh", "loop", "filler"]


@dataclass(frozen=True)
class Entry:
    path: Path
    duration: float
    source: Source
    clip_id: int | None = None
    prompt: str = ""
    theme: str = ""
    stamp: "Stamp | None" = None  # the file as the programmer checked it (None: unchecked, the filler)
    narration: str = ""  # story mode: the clip's narration line, its cast, its episode
    characters: tuple[str, ...] = ()
    episode: int | None = None
    episode_title: str | None = None
    scores: tuple[float, ...] = ()  # best-of-K: every take's score (the clip is the best one)


@dataclass(frozen=True)
class Block:
    number: int
    playlist: Path
    entries: tuple[Entry, ...]

    @property
    def duration(self) -> float:
        return sum(e.duration for e in self.entries)

    def entry_at(self, offset: float) -> Entry:
        """The entry on air ``offset`` seconds into the block."""
        return self.locate(offset)[0]

    def locate(self, offset: float) -> tuple[Entry, float]:
        """The entry on air ``offset`` seconds into the block, and when it began (seconds in)."""
        start = 0.0
        for entry in self.entries:
            if offset < start + entry.duration:
                return entry, start
            start += entry.duration
        last = self.entries[-1]
        return last, start - last.duration

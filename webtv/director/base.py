"""What a director hands the producer: sequences of shots that belong together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Shot:
    prompt: str
    seed: int
    theme: str
    tags: tuple[str, ...] = ()
    sequence_id: str = ""
    index: int = 0


@dataclass(frozen=True)
class Sequence:
    """Shots that share characters, setting and one music track that runs across their cuts."""

    id: str
    theme: str
    music_prompt: str
    seed: int
    tags: tuple[str, ...] = ()
    shots: tuple[Shot, ...] = field(default_factory=tuple)


class Director(Protocol):
    async def write_sequence(self, theme: str, shots: int, seed: int) -> Sequence: ...

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


# STAND-IN for recipe: DirectorState moved here from openai.py, and the protocol's state/aclose.
@dataclass
class DirectorState:
    """What ``/api/status`` shows of a director. Times are Unix seconds; no secrets."""

    backend: str
    model: str = ""
    base_url: str = ""
    response_format: str = ""  # the one the server accepted last (json_schema, json_object, text)
    fallback_active: bool = False  # the last sequence was written by the offline writer
    fallbacks: int = 0  # sequences the offline writer wrote instead of the server
    sequences: int = 0  # sequences the server wrote
    last_error: str | None = None  # the last problem with the server, one line
    last_error_at: float | None = None
    last_ok_at: float | None = None  # when the server last wrote a sequence
    retry_at: float | None = None  # while fallen back: when the server is asked again


class Director(Protocol):
    state: DirectorState

    async def write_sequence(self, theme: str, shots: int, seed: int) -> Sequence: ...

    async def aclose(self) -> None: ...

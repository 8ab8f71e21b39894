"""The render interface: backends that turn a shot into frames and a sequence into music.

Backends are blocking (numpy, torch, subprocesses); the producer calls them off the event
loop. Real model backends (Zeroscope, FILM, MusicGen, remote workers) implement the same
two protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from webtv.director import Sequence, Shot

Progress = Callable[[str, float], None]
"""progress(stage, fraction done in [0, 1])."""


@dataclass
class Frames:
    """RGB frames, uint8, shape (count, height, width, 3), meant to play at ``fps``."""

    array: np.ndarray
    fps: float

    @property
    def seconds(self) -> float:
        return len(self.array) / self.fps


class VideoBackend(Protocol):
    def render(self, shot: Shot, seconds: float, progress: Progress | None = None) -> Frames: ...


class AudioBackend(Protocol):
    def compose(self, sequence: Sequence, seconds: float, sample_rate: int, channels: int) -> np.ndarray:
        """float32 samples in [-1, 1], shape (round(seconds * sample_rate), channels)."""
        ...

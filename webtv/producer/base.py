"""The render interface: the stages that turn a shot into frames and a sequence into music.

    shot --video--> frames --upscale--> frames --interpolate--> frames at house fps
    sequence --audio--> one track for all its shots
    narration line --voice--> speech (story mode)

Stages are blocking (numpy, torch, subprocesses); the producer runs them off the event loop.
Each takes ``light=True`` on the one retry after a failure (CUDA out of memory, say): the
stage then trades quality for memory (fewer frames, offload, smaller batches) where it can.
Model stages load their weights on first use and keep them for the next call.
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


def light_frame_count(frames: int) -> int:
    """Frames rendered on a light retry: half, but at least 8 (at least 2 below 8 frames)."""
    floor = 8 if frames >= 8 else 2
    return min(frames, max(frames // 2, floor))


class VideoBackend(Protocol):
    def render(self, shot: Shot, seconds: float, progress: Progress | None = None, *, light: bool = False) -> Frames:
        """Frames for ``seconds`` of airtime: ``Frames.seconds`` is the clip's length; the
        frame rate may be low (the interpolation stage brings it to the house rate)."""
        ...


class Upscaler(Protocol):
    def upscale(self, frames: Frames, shot: Shot, progress: Progress | None = None, *, light: bool = False) -> Frames:
        """The same frames (count and fps) at a larger size."""
        ...


class Interpolator(Protocol):
    def interpolate(self, frames: Frames, seconds: float, fps: int, progress: Progress | None = None,
                    *, light: bool = False) -> Frames:
        """Exactly round(seconds * fps) frames at ``fps``, spanning the input's motion."""
        ...


class AudioBackend(Protocol):
    def compose(self, sequence: Sequence, seconds: float, sample_rate: int, channels: int,
                *, light: bool = False) -> np.ndarray:
        """float32 samples in [-1, 1], shape (round(seconds * sample_rate), channels)."""
        ...


class VoiceBackend(Protocol):
    def speak(self, text: str, voice: str | None, words_per_minute: int, sample_rate: int,
              *, light: bool = False) -> np.ndarray:
        """float32 mono samples of ``text`` spoken at ``words_per_minute`` in ``voice`` (the
        backend's name for one; None: the configured one), at ``sample_rate``."""
        ...

"""The render chain: shot -> video -> upscale -> interpolate -> frames at the house rate,
and sequence -> music, each stage retried once with lighter settings before it gives up.

Which backend runs each stage is configuration: ``webtv.producer.registry`` builds them.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

import numpy as np

from webtv.director import Sequence, Shot
from webtv.producer.base import Frames, Progress
from webtv.producer.registry import Stages, make_stages  # noqa: F401 - where the render chain's callers found them

log = logging.getLogger("webtv.producer")

T = TypeVar("T")


class StageError(RuntimeError):
    """A stage failed twice: at its configured settings, then at the lighter ones."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage} failed twice, the retry with lighter settings too: {error}")
        self.stage = stage


def retried(stage: str, call: Callable[..., T], *args, **kwargs) -> T:
    """``call(*args, **kwargs)``; after a failure (CUDA out of memory, a crashed worker...),
    once more with ``light=True``. Raises StageError when both fail."""
    from webtv.producer.devices import free_memory

    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure earns one lighter retry
        log.warning("%s failed, retrying once with lighter settings: %s", stage, exc)
        first = exc
    free_memory()
    try:
        return call(*args, **kwargs, light=True)
    except Exception as exc:  # noqa: BLE001
        free_memory()
        raise StageError(stage, exc) from first


def render_frames(
    stages: Stages,
    shot: Shot,
    seconds: float,
    fps: int,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> Frames:
    """shot -> video -> upscale -> interpolate: frames for ``seconds`` of airtime. Blocking."""
    timings = {} if timings is None else timings
    started = time.monotonic()
    frames = retried("video", stages.video.render, shot, seconds, progress)
    timings["video"] = time.monotonic() - started
    if stages.upscale is not None:
        started = time.monotonic()
        frames = retried("upscale", stages.upscale.upscale, frames, shot, progress)
        timings["upscale"] = time.monotonic() - started
    if stages.interpolate is not None:
        started = time.monotonic()
        frames = retried("interpolate", stages.interpolate.interpolate, frames, seconds, fps, progress)
        timings["interpolate"] = time.monotonic() - started
    return frames


def sequence_track(stages: Stages, sequence: Sequence, seconds_per_shot: float, sample_rate: int,
                   channels: int) -> np.ndarray:
    """One music track for the whole sequence, cut across its clips later. Blocking."""
    total = seconds_per_shot * len(sequence.shots)
    return retried("music", stages.audio.compose, sequence, total, sample_rate, channels)

"""The render chain: shot -> video -> upscale -> interpolate -> frames at the house rate,
and sequence -> music, each stage retried once with lighter settings before it gives up.

Which backend runs each stage is configuration; model backends are imported only when a
config names them, so the procedural channel never loads torch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from webtv.director import Sequence, Shot
from webtv.producer.base import AudioBackend, Frames, Interpolator, Progress, Upscaler, VideoBackend

if TYPE_CHECKING:
    from webtv.config import Config

log = logging.getLogger("webtv.producer")

T = TypeVar("T")


class StageError(RuntimeError):
    """A stage failed twice: at its configured settings, then at the lighter ones."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage} failed twice, the retry with lighter settings too: {error}")
        self.stage = stage


@dataclass
class Stages:
    video: VideoBackend
    audio: AudioBackend
    upscale: Upscaler | None = None
    interpolate: Interpolator | None = None  # None: frames are already at the house rate
    workers: object | None = None  # the remote WorkerPool when a stage runs remotely


def make_stages(config: "Config", workers=None) -> Stages:  # STAND-IN for config: the caller's pool
    """The backends ``config`` names for each stage."""
    if workers is None and config.needs_workers:
        from webtv.producer.remote import WorkerPool

        workers = WorkerPool(config.workers)
    return Stages(
        video=_video(config, workers),
        audio=_audio(config, workers),
        upscale=_upscale(config, workers),
        interpolate=_interpolate(config, workers),
        workers=workers,
    )


def _video(config: "Config", workers) -> VideoBackend:
    backend = config.video.backend
    if backend == "procedural":
        from webtv.producer.procedural import ProceduralVideo

        return ProceduralVideo(config.house, delay_s=config.video.render_delay_s)
    if backend == "zeroscope":
        from webtv.producer.zeroscope import ZeroscopeVideo

        return ZeroscopeVideo(config.video)
    if backend == "remote":
        from webtv.producer.remote import RemoteVideo

        return RemoteVideo(workers, config.video)
    raise ValueError(f"unknown video backend {backend!r}")


def _upscale(config: "Config", workers) -> Upscaler | None:
    backend = config.upscale.backend
    if backend == "none":
        return None
    if backend == "zeroscope":
        from webtv.producer.zeroscope import ZeroscopeUpscaler

        return ZeroscopeUpscaler(config.upscale)
    if backend == "remote":
        from webtv.producer.remote import RemoteUpscaler

        return RemoteUpscaler(workers, config.upscale)
    raise ValueError(f"unknown upscale backend {backend!r}")


def _interpolate(config: "Config", workers) -> Interpolator | None:
    backend = config.interpolation.backend
    if config.video.backend == "procedural" and backend != "remote":
        return None  # procedural frames are drawn at the house rate
    if backend == "remote":
        from webtv.producer.remote import RemoteInterpolator

        return RemoteInterpolator(workers, config.interpolation)
    from webtv.producer.interpolate import make_interpolator

    return make_interpolator(config.interpolation)


def _audio(config: "Config", workers) -> AudioBackend:
    backend = config.audio.backend
    if backend == "synth":
        from webtv.producer.synth import SynthAudio

        return SynthAudio()
    if backend == "musicgen":
        from webtv.producer.musicgen import MusicGenAudio

        return MusicGenAudio(config.audio)
    if backend == "remote":
        from webtv.producer.remote import RemoteAudio

        return RemoteAudio(workers, config.audio)
    raise ValueError(f"unknown audio backend {backend!r}")


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

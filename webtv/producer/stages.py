"""The render stages a channel is configured with: which backend runs video, upscale,
interpolation and music. The recipe that runs them is ``webtv.producer.pipeline``.

Which backend runs each stage is configuration; model backends are imported only when a
config names them, so the procedural channel never loads torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from webtv.producer.base import AudioBackend, Interpolator, Upscaler, VideoBackend

if TYPE_CHECKING:
    from webtv.config import Config

log = logging.getLogger("webtv.producer")


@dataclass
class Stages:
    video: VideoBackend
    audio: AudioBackend
    upscale: Upscaler | None = None
    interpolate: Interpolator | None = None  # None: frames are already at the house rate
    workers: object | None = None  # the remote WorkerPool when a stage runs remotely


def make_stages(config: "Config") -> Stages:
    """The backends ``config`` names for each stage."""
    workers = None
    if "remote" in (config.video.backend, config.upscale.backend, config.interpolation.backend, config.audio.backend):
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

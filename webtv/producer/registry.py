"""Backend name -> factory, per render stage: what ``make_stages`` builds a config's stages from.

A factory is ``factory(section, resources) -> backend``: ``section`` is the stage's config
section (the class of ``webtv.config`` that its ``backend`` names) and ``resources`` what
the channel holds for every stage (the house format, the remote WorkerPool). ``lazy`` makes
the usual one: the class is imported when a config first names it, so the procedural
channel never imports torch. Adding a backend is one module, one config class and one line
here (README, "Adding a backend").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from webtv.config import Config, HouseSection
from webtv.producer.base import AudioBackend, Interpolator, Upscaler, VideoBackend, VoiceBackend

if TYPE_CHECKING:
    from webtv.producer.remote.pool import WorkerPool


@dataclass(frozen=True)
class Resources:
    """What a backend may need beside its own section."""

    house: HouseSection
    workers: "WorkerPool | None" = None  # the channel's pool, when a stage is remote


Factory = Callable[[Any, Resources], Any]


def lazy(target: str, *needs: str) -> Factory:
    """A factory for the class (or function) at ``"module:name"``, imported when first
    built and called as ``name(section=section, need=resources.need, ...)`` for each of
    ``needs`` ("house", "workers")."""
    module, _, name = target.partition(":")

    def build(section: Any, resources: Resources) -> Any:
        made = getattr(importlib.import_module(module), name)
        return made(section=section, **{need: getattr(resources, need) for need in needs})

    build.__qualname__ = f"lazy({target!r})"
    build.needs = needs  # what SharedStages keys an instance by beside the section (the house format)
    return build


def skipped(section: Any, resources: Resources) -> None:
    """The factory of a backend that leaves its stage out (``none``)."""
    return None


VIDEO: Mapping[str, Factory] = MappingProxyType({
    "procedural": lazy("webtv.producer.procedural:ProceduralVideo", "house"),
    "zeroscope": lazy("webtv.producer.zeroscope:ZeroscopeVideo"),
    "remote": lazy("webtv.producer.remote:RemoteVideo", "workers"),
    "ltx": lazy("webtv.producer.ltx:LtxVideo"),
})

UPSCALE: Mapping[str, Factory] = MappingProxyType({
    "none": skipped,
    "zeroscope": lazy("webtv.producer.zeroscope:ZeroscopeUpscaler"),
    "remote": lazy("webtv.producer.remote:RemoteUpscaler", "workers"),
})

INTERPOLATION: Mapping[str, Factory] = MappingProxyType({
    "film": lazy("webtv.producer.interpolate:film_interpolator"),
    "minterpolate": lazy("webtv.producer.interpolate:MinterpolateInterpolator"),
    "none": lazy("webtv.producer.interpolate:NoInterpolation"),
    "remote": lazy("webtv.producer.remote:RemoteInterpolator", "workers"),
})

AUDIO: Mapping[str, Factory] = MappingProxyType({
    "synth": lazy("webtv.producer.synth:SynthAudio"),
    "musicgen": lazy("webtv.producer.musicgen:MusicGenAudio"),
    "remote": lazy("webtv.producer.remote:RemoteAudio", "workers"),
})

VOICE: Mapping[str, Factory] = MappingProxyType({
    "espeak": lazy("webtv.producer.voice:EspeakVoice"),
    "vits": lazy("webtv.producer.voice:VitsVoice"),
    "remote": lazy("webtv.producer.remote:RemoteVoice", "workers"),
    "none": skipped,
})

REGISTRY: Mapping[str, Mapping[str, Factory]] = MappingProxyType({
    "video": VIDEO, "upscale": UPSCALE, "interpolation": INTERPOLATION, "audio": AUDIO, "voice": VOICE,
})
"""Config section -> its backends."""


@dataclass
class Stages:
    video: VideoBackend
    audio: AudioBackend
    upscale: Upscaler | None = None
    interpolate: Interpolator | None = None  # None: frames are already at the house rate
    voice: VoiceBackend | None = None  # story mode's narrator; None: no narration (showreel)


def build(stage: str, section: Any, resources: Resources) -> Any:
    """The backend ``section`` names for ``stage`` (a config section name, e.g. "video")."""
    factories = REGISTRY[stage]
    if section.backend not in factories:
        raise ValueError(f"no {stage} backend {section.backend!r} is registered "
                         f"(webtv.producer.registry knows {', '.join(factories)})")
    return factories[section.backend](section, resources)


Builder = Callable[[str, Any, Resources], Any]
"""builder(stage, section, resources) -> the backend: ``build``, or SharedStages' (shared instances)."""


def make_stages(config: Config, workers: "WorkerPool | None" = None, builder: Builder = build) -> Stages:
    """The backends ``config`` names for each stage, each made by ``builder``. ``workers`` is the
    channel's pool, needed when ``config.needs_workers``. Procedural frames are drawn at the
    house rate: they skip a local interpolation stage."""
    if config.needs_workers and workers is None:
        raise ValueError(f"{', '.join(config.remote_stages)} run on [workers]: pass WorkerPool(config.workers)")
    resources = Resources(config.house, workers)
    interpolate = None
    if not config.video.frames_at_house_rate or config.interpolation.backend == "remote":
        interpolate = builder("interpolation", config.interpolation, resources)
    return Stages(
        video=builder("video", config.video, resources),
        audio=builder("audio", config.audio, resources),
        upscale=builder("upscale", config.upscale, resources),
        interpolate=interpolate,
        voice=builder("voice", config.voice, resources),
    )

"""shot -> clip: the render backends and the house-format encode."""

from webtv.producer.base import AudioBackend, Frames, Progress, VideoBackend
from webtv.producer.house import caption_layout, encode_clip, find_font, make_card, validate_clip
from webtv.producer.procedural import ProceduralVideo
from webtv.producer.synth import SynthAudio

__all__ = [
    "AudioBackend",
    "Frames",
    "ProceduralVideo",
    "Progress",
    "SynthAudio",
    "VideoBackend",
    "caption_layout",
    "encode_clip",
    "find_font",
    "make_audio_backend",
    "make_card",
    "make_video_backend",
    "validate_clip",
]


def make_video_backend(config) -> VideoBackend:
    """The video backend named by ``[video] backend``."""
    if config.video.backend == "procedural":
        return ProceduralVideo(config.house)
    raise ValueError(f"unknown video backend {config.video.backend!r}")


def make_audio_backend(config) -> AudioBackend:
    """The audio backend named by ``[audio] backend``."""
    if config.audio.backend == "synth":
        return SynthAudio()
    raise ValueError(f"unknown audio backend {config.audio.backend!r}")

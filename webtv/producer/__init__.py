"""shot -> clip: the render stages and the house-format encode."""

from webtv.producer.base import AudioBackend, Frames, Interpolator, Progress, Upscaler, VideoBackend
from webtv.producer.house import caption_layout, encode_clip, find_font, make_card, validate_clip
from webtv.producer.pipeline import ClipPipeline, ClipResult, StageError, Track
from webtv.producer.procedural import ProceduralVideo
from webtv.producer.registry import Stages, make_stages
from webtv.producer.synth import SynthAudio

__all__ = [
    "AudioBackend",
    "ClipPipeline",
    "ClipResult",
    "Frames",
    "Interpolator",
    "ProceduralVideo",
    "Progress",
    "StageError",
    "Stages",
    "SynthAudio",
    "Track",
    "Upscaler",
    "VideoBackend",
    "caption_layout",
    "encode_clip",
    "find_font",
    "make_card",
    "make_stages",
    "validate_clip",
]

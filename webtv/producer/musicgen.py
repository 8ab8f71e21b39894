"""The MusicGen audio backend: transformers' MusicgenForConditionalGeneration, one track per sequence.

The model writes Encodec codes at the codec's frame rate (``config.audio_encoder.frame_rate``,
50 tokens per second for facebook/musicgen-small) and decodes them at the codec's sampling rate
(32 kHz for musicgen-small). A track of ``seconds`` takes ceil(seconds * frame_rate) frames;
the decoder's codebook delay pattern costs (codebooks - 1) more generate steps than frames.

MusicGen was trained on 30 s excerpts, so one generate call makes at most 30 s (fewer when
the decoder's ``max_position_embeddings`` is smaller). A longer track is made like
audiocraft's ``generate_continuation``: each next window is prompted with the last 40 % of
the window (12 s of 30) of what is already written, and the re-decoded prompt is crossfaded
into the original over a quarter second, so the music carries on instead of restarting.

The result is cut or padded to the exact sample count at the model's rate, resampled to the
house rate by ffmpeg (``webtv.media.audio.resample``, as a worker's track is), mapped to the
house channels, faded in and out over a few milliseconds / a quarter second and
peak-normalised to 0.9.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from webtv.config import MusicGenAudioSection
from webtv.director.base import Sequence
from webtv.media.audio import resample

MAX_WINDOW_SECONDS = 30.0
"""What one generate call may write: MusicGen's training excerpt length."""
CONTEXT_FRACTION = 0.4
"""Of a window, how much of the previous audio prompts the next one (audiocraft: 12 s of 30)."""
JOIN_SECONDS = 0.25
"""Crossfade from the written audio into the continuation's re-decoded copy of its prompt."""
TOP_K = 250
"""audiocraft's sampling default for MusicGen."""
PEAK = 0.9
MAX_GAIN = 10.0
FADE_IN_SECONDS = 0.01
FADE_OUT_SECONDS = 0.25
PAD_FADE_SECONDS = 0.02


@dataclass(frozen=True)
class Window:
    """One generate call: prompted with the last ``prompt`` frames written, adding ``new`` frames."""

    prompt: int
    new: int


def plan_windows(total: int, window: int, context: int) -> list[Window]:
    """The generate calls that write ``total`` frames at most ``window`` frames per call, each
    after the first prompted with ``context`` frames of the audio before it."""
    if total <= 0:
        return []
    window = max(1, window)
    context = min(max(0, context), window - 1)
    step = window - context
    windows = [Window(0, min(total, window))]
    done = windows[0].new
    while done < total:
        new = min(step, total - done)
        windows.append(Window(min(context, done), new))
        done += new
    return windows


class MusicGenAudio:
    """AudioBackend running MusicGen through transformers (hub id or local folder in ``[audio] model``).

    The model and processor load on first use (or :meth:`load`) and stay on the device; one
    compose runs at a time. fp16 on CUDA, fp32 on the CPU. Seeded per sequence: the same
    sequence gives the same track on the same device.
    """

    def __init__(self, section: MusicGenAudioSection) -> None:
        self.section = section
        self._lock = threading.RLock()
        self._model = None
        self._processor = None
        self._device = None
        self._dtype = None

    # -- the model -----------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and processor now (idempotent)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        from webtv.producer.devices import model_source, pick_device, pick_dtype

        name = self.section.model
        source = model_source(name, "MusicGen", self.section.model_marker)
        device = pick_device(self.section.device)
        dtype = pick_dtype(device)
        try:
            from transformers import AutoProcessor, MusicgenForConditionalGeneration

            processor = AutoProcessor.from_pretrained(source)
            model = MusicgenForConditionalGeneration.from_pretrained(source, dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - the hub and loaders raise many kinds
            raise RuntimeError(f"cannot load MusicGen model {name!r}: {exc}") from exc
        self._model = model.to(device).eval()
        self._processor = processor
        self._device, self._dtype = device, dtype

    @property
    def model(self):
        """The loaded MusicgenForConditionalGeneration (loads it)."""
        self.load()
        return self._model

    @property
    def sampling_rate(self) -> int:
        """The codec's sample rate: what generate returns (32000 for musicgen-small)."""
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Samples per frame of codes."""
        codec = self.model.config.audio_encoder
        hop = getattr(codec, "hop_length", None)
        return int(hop) if hop else int(math.prod(codec.upsampling_ratios))

    @property
    def frame_rate(self) -> float:
        """Tokens (frames of codes) per second, from the codec's config (50 for musicgen-small)."""
        codec = self.model.config.audio_encoder
        rate = getattr(codec, "frame_rate", None)
        return float(rate) if rate else codec.sampling_rate / self.hop_length

    @property
    def model_channels(self) -> int:
        return int(self.model.config.decoder.audio_channels)

    @property
    def delay(self) -> int:
        """Generate steps beyond the frames wanted: the codebook delay pattern (codebooks - 1)."""
        decoder = self.model.config.decoder
        per_channel = decoder.num_codebooks // decoder.audio_channels
        return per_channel - 1

    @property
    def window_frames(self) -> int:
        """Frames one generate call writes at most, prompt included."""
        decoder = self.model.config.decoder
        by_positions = decoder.max_position_embeddings - (self.delay + 1)
        by_training = math.floor(MAX_WINDOW_SECONDS * self.frame_rate)
        return max(2 * (self.delay + 1), min(by_positions, by_training))

    def frames_for(self, seconds: float) -> int:
        """Frames of codes that cover ``seconds`` of audio."""
        return max(1, math.ceil(seconds * self.frame_rate - 1e-9))

    # -- the protocol ----------------------------------------------------------------------------

    def compose(self, sequence: Sequence, seconds: float, sample_rate: int, channels: int,
                *, light: bool = False) -> np.ndarray:
        """float32 samples in [-1, 1], shape (round(seconds * sample_rate), channels).

        ``light`` drops classifier-free guidance (half the batch, half the memory)."""
        n = max(1, round(seconds * sample_rate))
        with self._lock:
            self._load()
            audio = self._generate(sequence, seconds, light=light)
        rate = self.sampling_rate
        audio = fit_length(audio, max(1, math.ceil(seconds * rate)), rate)
        audio = resample(audio, rate, sample_rate)
        audio = fit_length(audio, n, sample_rate)
        audio = fade(audio, sample_rate)
        audio = to_channels(audio, channels)
        return normalise(audio)

    def _generate(self, sequence: Sequence, seconds: float, *, light: bool) -> np.ndarray:
        """(samples, model channels) float32 at the model's rate, at least ``seconds`` long."""
        import torch

        model, device = self._model, self._device
        prompt = (sequence.music_prompt or "").strip() or (sequence.theme or "").strip() or "instrumental music"
        inputs = self._processor(text=[prompt], padding=True, return_tensors="pt").to(device)
        options = dict(do_sample=True, temperature=float(self.section.temperature), top_k=TOP_K)
        if not light and self.section.guidance > 1:
            options["guidance_scale"] = float(self.section.guidance)

        hop, rate = self.hop_length, self.sampling_rate
        window = self.window_frames
        plan = plan_windows(self.frames_for(seconds), window, round(CONTEXT_FRACTION * window))
        join = max(1, round(JOIN_SECONDS * rate))
        cuda = []
        if device.type == "cuda":
            cuda = [device.index if device.index is not None else torch.cuda.current_device()]
        written = np.zeros((0, self.model_channels), dtype=np.float32)
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(sequence.seed % 2**64)
            for step in plan:
                # at least a full delay pattern of new steps, else generate skips the pattern
                tokens = max(step.new, self.delay + 1) + self.delay
                extra = {}
                if step.prompt:
                    tail = written[len(written) - step.prompt * hop:]
                    extra["input_values"] = torch.from_numpy(np.ascontiguousarray(tail.T))[None].to(device, self._dtype)
                out = model.generate(**inputs, **extra, **options, max_new_tokens=tokens)
                out = out[0].float().cpu().numpy().T.astype(np.float32)  # (samples, channels)
                out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
                if not step.prompt:
                    written = out
                    continue
                cut = step.prompt * hop
                xf = min(join, cut, len(written))
                ramp = np.linspace(0.0, 1.0, xf, dtype=np.float32)[:, None]
                blended = written[len(written) - xf:] * (1 - ramp) + out[cut - xf:cut] * ramp
                written = np.concatenate([written[: len(written) - xf], blended, out[cut:]])
        return written


# -- signal helpers ------------------------------------------------------------------------------


def fit_length(audio: np.ndarray, n: int, rate: int) -> np.ndarray:
    """Exactly ``n`` samples: cut the end, or fade the last few ms out and pad with silence."""
    if len(audio) >= n:
        return audio[:n]
    audio = np.array(audio, dtype=np.float32)
    k = min(len(audio), max(1, round(PAD_FADE_SECONDS * rate)))
    if k:
        audio[len(audio) - k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32).reshape((k,) + (1,) * (audio.ndim - 1))
    pad = np.zeros((n - len(audio),) + audio.shape[1:], dtype=np.float32)
    return np.concatenate([audio, pad])


def fade(audio: np.ndarray, rate: int) -> np.ndarray:
    """A click-free start and end: the track is cut across a sequence's clips and ends with it."""
    audio = np.array(audio, dtype=np.float32)
    n = len(audio)
    shape = (-1,) + (1,) * (audio.ndim - 1)
    k = min(n, round(FADE_IN_SECONDS * rate))
    if k:
        audio[:k] *= np.linspace(0.0, 1.0, k, dtype=np.float32).reshape(shape)
    k = min(n // 4, round(FADE_OUT_SECONDS * rate))
    if k:
        audio[n - k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32).reshape(shape)
    return audio


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(samples, channels): mono is copied to every channel; stereo to mono is the mean; stereo to
    more channels puts the mean in the extra ones."""
    if audio.ndim == 1:
        audio = audio[:, None]
    have = audio.shape[1]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    mean = audio.mean(axis=1, keepdims=True)
    if channels == 1:
        return mean
    if channels < have:
        return audio[:, :channels]
    return np.concatenate([audio, np.repeat(mean, channels - have, axis=1)], axis=1)


def normalise(audio: np.ndarray) -> np.ndarray:
    """float32 with its peak at ``PEAK`` (gain at most ``MAX_GAIN``): loud enough, never clipping."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * min(PEAK / peak, MAX_GAIN)
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)

"""The narrator: a line of text -> speech samples (story mode's voice stage).

    line --speak--> float32 mono samples at the asked sample rate

Backends: ``EspeakVoice`` (Debian's espeak-ng, the embedded default), ``VitsVoice``
(transformers' VitsModel, MMS-TTS checkpoints) and ``RemoteVoice`` (a worker's ``/voice``,
in ``webtv.producer.remote``). Each speaks at ``words_per_minute`` (espeak's ``-s``; VITS's
``speaking_rate`` relative to 160) with the voice named (an espeak voice, a VITS speaker id),
else its section's own. The speech is resampled to the asked rate by ffmpeg
(``webtv.media.audio.resample``, webtv's one resampler). Blocking; the producer runs it off
the event loop.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import wave
from pathlib import Path

import numpy as np

from webtv.config import EspeakVoiceSection, VitsVoiceSection
from webtv.media.audio import resample
from webtv.media.commands import atempo_command, espeak_command
from webtv.media.tools import MediaError

VITS_BASE_WPM = 160
"""The words a minute a VITS model speaks at ``speaking_rate`` 1 (about MMS-TTS's pace)."""

VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-]{0,63}$")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV file as float32 mono samples and its sample rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise MediaError(f"{path}: {8 * wav.getsampwidth()}-bit WAV, expected 16-bit PCM")
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, channels).mean(axis=1), rate


def speed_up(samples: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``samples`` (mono float32) played ``factor`` times as fast, pitch kept (ffmpeg's atempo)."""
    if abs(factor - 1.0) < 1e-6 or len(samples) == 0:
        return np.asarray(samples, dtype=np.float32).copy()
    data = np.ascontiguousarray(samples, dtype="<f4").tobytes()
    done = subprocess.run(atempo_command(sample_rate, factor), input=data, capture_output=True, timeout=120)
    if done.returncode != 0:
        tail = " / ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise MediaError(f"ffmpeg could not speed the voice up {factor:.3f}x: {tail or 'no error output'}")
    return np.frombuffer(done.stdout, dtype="<f4").astype(np.float32)


class EspeakVoice:
    """VoiceBackend running ``espeak-ng`` (text on its stdin, a WAV file in a private folder)."""

    def __init__(self, section: EspeakVoiceSection):
        self.section = section

    def speak(self, text: str, voice: str | None, words_per_minute: int, sample_rate: int,
              *, light: bool = False) -> np.ndarray:
        name = voice or self.section.voice
        if not VOICE_NAME.match(name):
            raise ValueError(f"{name!r} is not an espeak voice name")
        with tempfile.TemporaryDirectory(prefix="webtv-voice-") as tmp:
            out = Path(tmp) / "line.wav"
            try:
                done = subprocess.run(espeak_command(name, words_per_minute, out), input=text.encode("utf-8"),
                                      capture_output=True, timeout=120)
            except FileNotFoundError:
                raise MediaError("espeak-ng is not installed (Debian: apt install espeak-ng; `make setup` does)") \
                    from None
            if done.returncode != 0 or not out.is_file():
                tail = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
                raise MediaError(f"espeak-ng could not speak with voice {name!r}: {tail}")
            samples, rate = read_wav(out)
        return resample(samples, rate, sample_rate)


class VitsVoice:
    """VoiceBackend running a VITS text-to-speech model through transformers (``VitsModel`` +
    ``AutoTokenizer``; ``[voice] model`` a hub id such as facebook/mms-tts-eng or a local
    folder). Loaded on first use and kept, like the other model stages; fp16 on CUDA, fp32 on
    the CPU. VITS draws noise: each line is seeded by its text, so a line sounds the same
    every time it is spoken. A speaker id (the character's voice, else ``speaker``) is used
    by multi-speaker models only."""

    def __init__(self, section: VitsVoiceSection):
        self.section = section
        self._lock = threading.RLock()
        self._model = None
        self._tokenizer = None
        self._device = None

    def load(self) -> None:
        """Load the model and tokenizer now (idempotent)."""
        with self._lock:
            if self._model is not None:
                return
            from webtv.producer.devices import model_source, pick_device, pick_dtype

            source = model_source(self.section.model, "VITS", self.section.model_marker)
            device = pick_device(self.section.device)
            try:
                from transformers import AutoTokenizer, VitsModel

                tokenizer = AutoTokenizer.from_pretrained(source)
                model = VitsModel.from_pretrained(source, dtype=pick_dtype(device))
            except Exception as exc:  # noqa: BLE001 - the hub and loaders raise many kinds
                raise RuntimeError(f"cannot load VITS model {self.section.model!r}: {exc}") from exc
            self._model, self._tokenizer, self._device = model.to(device).eval(), tokenizer, device

    def speak(self, text: str, voice: str | None, words_per_minute: int, sample_rate: int,
              *, light: bool = False) -> np.ndarray:
        import zlib

        import torch

        self.load()
        model = self._model
        speaker = int(voice) if voice and voice.isdigit() else self.section.speaker
        with self._lock:
            inputs = self._tokenizer(text, return_tensors="pt").to(self._device)
            if inputs["input_ids"].shape[-1] == 0:
                raise ValueError(f"the VITS tokenizer keeps nothing of {text!r}")
            extra = {"speaker_id": speaker} if speaker is not None and model.config.num_speakers > 1 else {}
            model.speaking_rate = words_per_minute / VITS_BASE_WPM
            with torch.random.fork_rng(devices=[self._device] if self._device.type == "cuda" else []), \
                    torch.inference_mode():
                torch.manual_seed(zlib.crc32(text.encode("utf-8")))
                waveform = model(**inputs, **extra).waveform[0]
        samples = waveform.float().cpu().numpy()
        return resample(samples, int(model.config.sampling_rate), sample_rate)

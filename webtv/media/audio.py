"""Audio samples through ffmpeg's resampler: webtv's one resampler, the same that decodes a
worker's music file at the house rate (``decode_audio_command``)."""

from __future__ import annotations

import subprocess

import numpy as np

from .commands import resample_audio_command
from .tools import MediaError


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """``audio`` (samples along axis 0, any channels after) from ``src`` Hz to ``dst`` Hz as
    float32: band-limited, no delay, exactly ceil(len * dst / src) samples (ffmpeg's count, off
    by at most a sample at the end, is cut or padded with silence)."""
    audio = np.asarray(audio, dtype=np.float32)
    if src == dst or len(audio) == 0:
        return audio.copy()
    flat = audio.reshape(len(audio), -1)
    channels = flat.shape[1]
    done = subprocess.run(resample_audio_command(src, dst, channels), input=np.ascontiguousarray(flat, "<f4").tobytes(),
                          capture_output=True, timeout=300)
    if done.returncode != 0:
        tail = " / ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise MediaError(f"ffmpeg could not resample {src} Hz to {dst} Hz: {tail or 'no error output'}")
    out = np.frombuffer(done.stdout, dtype="<f4").astype(np.float32).reshape(-1, channels)
    n = -(-len(audio) * dst // src)
    if len(out) < n:
        out = np.concatenate([out, np.zeros((n - len(out), channels), np.float32)])
    return np.ascontiguousarray(out[:n]).reshape((n,) + audio.shape[1:])

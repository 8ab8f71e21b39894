"""Looking at and listening to a clip the way a viewer would, with real tools: a frame read
by OCR (Debian's ``tesseract`` CLI), a line found in the audio by cross-correlation against
the same line spoken by ``espeak-ng`` alone, and the music's level under the voice and around
it. For story mode's tests (a rendered clip, or a stretch of the aired stream saved to a file).

These call the tools themselves (not webtv's code), so a test checks webtv against them.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
"""The rate audio is compared at: speech lives below 8 kHz, and the correlation is cheaper."""


def frame_text(clip: Path, seconds: float, *, bottom: float = 0.45) -> str:
    """What tesseract reads on the frame at ``seconds``: its bottom ``bottom`` part (where
    subtitles and captions sit), enlarged 3x and turned into dark text on white (bright text
    with a dark outline stays, the picture goes)."""
    with tempfile.TemporaryDirectory(prefix="listen-") as tmp:
        png = Path(tmp) / "frame.png"
        crop = f"crop=iw:ih*{bottom}:0:ih*{1 - bottom}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{seconds:.3f}", "-i", str(clip), "-frames:v", "1",
                        "-vf", f"{crop},scale=iw*3:ih*3:flags=bicubic,format=gray,lutyuv=y='if(gt(val,190),0,255)'",
                        str(png)], check=True, timeout=60)
        done = subprocess.run(["tesseract", str(png), "-", "--psm", "6"], capture_output=True, text=True, timeout=60)
        return done.stdout


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, punctuation dropped."""
    return re.findall(r"[a-z0-9']+", text.lower())


def words_seen(line: str, seen: str) -> float:
    """The share of ``line``'s words that appear in ``seen`` (OCR output)."""
    wanted, found = words(line), set(words(seen))
    return sum(w in found for w in wanted) / max(1, len(wanted))


def clip_audio(clip: Path, rate: int = RATE) -> np.ndarray:
    """The clip's first audio stream, mono float32 at ``rate``."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
                           "-f", "f32le", "pipe:1"], capture_output=True, check=True, timeout=120)
    return np.frombuffer(done.stdout, dtype="<f4").astype(np.float32)


def espeak_line(text: str, *, voice: str = "en", words_per_minute: int = 160, rate: int = RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng alone, mono float32 at ``rate``."""
    with tempfile.TemporaryDirectory(prefix="listen-") as tmp:
        wav = Path(tmp) / "line.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
                       check=True, timeout=60)
        done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-ac", "1", "-ar", str(rate), "-f", "f32le",
                               "pipe:1"], capture_output=True, check=True, timeout=60)
    return np.frombuffer(done.stdout, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class Found:
    """Where a reference sound lies in a longer one."""

    start: float  # seconds into the long sound
    end: float
    score: float  # normalised correlation at that lag: 1 is the same waveform, ~0 unrelated


def find(reference: np.ndarray, audio: np.ndarray, rate: int = RATE) -> Found:
    """The lag where ``reference`` best matches ``audio`` (FFT cross-correlation), scored by the
    normalised correlation of the two at that lag."""
    n = len(audio) + len(reference)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(audio, size) * np.conj(np.fft.rfft(reference, size)), size)[: len(audio)]
    lag = int(np.argmax(np.abs(corr[: max(1, len(audio) - len(reference) + 1)])))
    part = audio[lag:lag + len(reference)]
    ref = reference[: len(part)]
    score = float(np.dot(part, ref) / (np.linalg.norm(part) * np.linalg.norm(ref) + 1e-12))
    return Found(lag / rate, (lag + len(reference)) / rate, score)


def level_db(samples: np.ndarray) -> float:
    """RMS level in dB (full scale 1.0)."""
    return 20 * np.log10(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) + 1e-9)


@dataclass(frozen=True)
class Ducking:
    under_db: float  # the music's level while the voice speaks
    around_db: float  # its level before and after the voice (ramps left out)

    @property
    def depth_db(self) -> float:
        return self.around_db - self.under_db


TAPS = 8


def ducking(audio: np.ndarray, reference: np.ndarray, found: Found, rate: int = RATE, *,
            margin_s: float = 0.15) -> Ducking:
    """The music's level under the voice and around it: the voice (``reference`` at ``found``,
    scaled by least squares) is taken out of ``audio``, what is left is the music; ``margin_s``
    on either side of the voice is left out (the ramps)."""
    at = round(found.start * rate)
    music = audio.astype(np.float64).copy()
    part = music[at:at + len(reference)]
    ref = np.pad(reference[: len(part)].astype(np.float64), TAPS)
    # a short least-squares filter absorbs what the resamplers and the codec did to the voice
    shifted = np.stack([ref[k:k + len(part)] for k in range(2 * TAPS + 1)], axis=1)
    gains, *_ = np.linalg.lstsq(shifted, part, rcond=None)
    music[at:at + len(part)] -= shifted @ gains
    m = round(margin_s * rate)
    under = music[at + m: at + len(part) - m]
    around = np.concatenate([music[: max(0, at - m)], music[at + len(part) + m:]])
    return Ducking(level_db(under), level_db(around))


@dataclass(frozen=True)
class Loudness:
    """ffmpeg ``ebur128``'s summary of a stretch of sound."""

    integrated: float  # LUFS
    true_peak: float  # dBTP


def loudness(path: Path, start: float | None = None, seconds: float | None = None) -> Loudness:
    """EBU R128 integrated loudness and true peak of ``path``'s first audio stream (or of
    ``seconds`` of it from ``start``), as ffmpeg's ``ebur128`` meter reads them."""
    cut = (["-ss", f"{start:.3f}"] if start is not None else []) + (["-t", f"{seconds:.3f}"] if seconds else [])
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", *cut, "-i", str(path), "-map", "0:a:0",
                           "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    summary = done.stderr[done.stderr.rfind("Summary:"):]
    found = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary), re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if done.returncode != 0 or not all(found):
        raise AssertionError(f"no ebur128 summary for {path}: {done.stderr[-500:]}")
    return Loudness(float(found[0].group(1)), float(found[1].group(1)))

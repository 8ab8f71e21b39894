"""Two-pass EBU R128 loudness: measure with ffmpeg's ``loudnorm``, then set with one gain.

Pass one measures the integrated loudness (LUFS), true peak (dBTP), loudness range and gating
threshold of samples held in memory. Pass two raises or lowers the whole by the one gain that
reaches the target, so music keeps its dynamics (what ``loudnorm``'s own pass two does in its
``linear`` mode). Where that gain would lift the true peak over its ceiling, the gain is
followed by ffmpeg's ``alimiter`` at four times the sample rate (a true-peak limiter), and
the result measured again and raised once more by what the limiter took (at most twice).

Why not loudnorm's pass two throughout: when a plain gain does not fit under the peak ceiling
it switches to its dynamic mode, which on a few seconds of speech or a sparse mix missed the
target by 4-10 LU and overshot its own ceiling (measured: -25.9 LUFS for -16, +0.96 dBTP for
-1.5). Why ffmpeg and not pyloudnorm: pyloudnorm measures loudness but not the true peak, and
ffmpeg's meters are the ones the stream is checked with (``ebur128``).
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass

import numpy as np

from .commands import loudness_measure_command, true_peak_limit_command
from .tools import MediaError

SILENT_LUFS = -60.0
"""Quieter than this is silence: measured, never amplified (the silence check judges it)."""
LIMITED_SHORTFALL_LU = 0.5
"""A limited result this far under its target is raised again (once)."""


@dataclass(frozen=True)
class Loudness:
    """What pass one measured."""

    integrated: float  # LUFS; -inf for silence
    true_peak: float  # dBTP
    lra: float  # LU
    threshold: float  # LUFS

    @property
    def silent(self) -> bool:
        return not self.integrated > SILENT_LUFS


def _as_2d(samples: np.ndarray) -> np.ndarray:
    a = np.asarray(samples, dtype=np.float32)
    return a[:, None] if a.ndim == 1 else a


def _pipe(args: list[str], flat: np.ndarray, what: str) -> subprocess.CompletedProcess:
    done = subprocess.run(args, input=np.ascontiguousarray(flat, "<f4").tobytes(), capture_output=True, timeout=300)
    if done.returncode != 0:
        tail = " / ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise MediaError(f"ffmpeg could not {what}: {tail or 'no error output'}")
    return done


def measure(samples: np.ndarray, sample_rate: int) -> Loudness:
    """Pass one on ``samples`` (samples x channels, or mono 1-D)."""
    flat = _as_2d(samples)
    if len(flat) == 0:
        return Loudness(-math.inf, -math.inf, 0.0, -70.0)
    text = _pipe(loudness_measure_command(sample_rate, flat.shape[1]), flat, "measure loudness").stderr.decode(
        errors="replace")
    try:
        report = json.loads(text[text.rfind("{"):text.rfind("}") + 1])
        return Loudness(float(report["input_i"]), float(report["input_tp"]), float(report["input_lra"]),
                        float(report["input_thresh"]))
    except (ValueError, KeyError) as exc:
        raise MediaError(f"no loudness report from loudnorm ({exc})") from None


def normalize(samples: np.ndarray, sample_rate: int, target_lufs: float, true_peak_db: float,
              measured: Loudness | None = None) -> np.ndarray:
    """``samples`` at ``target_lufs`` integrated, true peak at most ``true_peak_db``: pass two
    (pass one too unless ``measured`` is given). The same shape and length as ``samples``;
    silence (below SILENT_LUFS) comes back unchanged."""
    flat = _as_2d(samples)
    measured = measured or measure(flat, sample_rate)
    if measured.silent:
        return np.asarray(samples, dtype=np.float32).copy()
    gain = target_lufs - measured.integrated
    if measured.true_peak + gain <= true_peak_db:
        out = flat * np.float32(10 ** (gain / 20))
    else:
        out = _limited(flat, sample_rate, gain, true_peak_db)
        short = target_lufs - measure(out, sample_rate).integrated
        if short > LIMITED_SHORTFALL_LU:
            out = _limited(flat, sample_rate, gain + short, true_peak_db)
    return np.ascontiguousarray(out, dtype=np.float32).reshape(np.shape(samples))


def _limited(flat: np.ndarray, sample_rate: int, gain_db: float, ceiling_db: float) -> np.ndarray:
    done = _pipe(true_peak_limit_command(sample_rate, flat.shape[1], gain_db, ceiling_db), flat, "limit true peaks")
    out = np.frombuffer(done.stdout, dtype="<f4").reshape(-1, flat.shape[1])
    if len(out) < len(flat):  # the resampler's count may be a sample short at the end
        out = np.concatenate([out, np.zeros((len(flat) - len(out), flat.shape[1]), np.float32)])
    return out[:len(flat)]


def keep_within(samples: np.ndarray, sample_rate: int, target_lufs: float, true_peak_db: float,
                tolerance_lu: float) -> tuple[np.ndarray, Loudness]:
    """``samples`` measured and, when their loudness is more than ``tolerance_lu`` from the
    target or their true peak over ``true_peak_db``, moved to the nearest loudness within the
    tolerance (a clip of a normalised track keeps its place in the music's dynamics). Returns
    the samples and what was measured before; silence is left as it is."""
    measured = measure(samples, sample_rate)
    goal = min(max(measured.integrated, target_lufs - tolerance_lu), target_lufs + tolerance_lu)
    if measured.silent or (goal == measured.integrated and measured.true_peak <= true_peak_db):
        return np.asarray(samples, dtype=np.float32), measured
    return normalize(samples, sample_rate, goal, true_peak_db, measured), measured

"""The interpolation stage: a video backend's frames -> exactly round(seconds * fps) frames at
the house rate.

Backends: ``film`` (the FILM network, ``interpolation`` package; needs a weights file),
``minterpolate`` (ffmpeg's motion-compensated interpolation filter, no model) and ``none``
(nearest-frame retiming). ``interpolate_file`` is the same for a video file on disk
(``webtv interpolate``).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from webtv.config import (FilmSection, HouseSection, InterpolationSection, MinterpolateSection,
                          NoInterpolationSection)
from webtv.media import MediaError, ProbeResult, probe
from webtv.media.commands import (
    decode_frames_command, interpolated_encode_command, minterpolate_command,
)
from webtv.producer.base import Frames, Interpolator, Progress

log = logging.getLogger("webtv.producer")

FILM_FACTORS = (1, 2, 4, 8)
LIGHT_TILE = 512


def target_count(seconds: float, fps: float) -> int:
    return max(1, round(seconds * fps))


def pick_evenly(count: int, target: int) -> np.ndarray:
    """``target`` indices into ``count`` frames, evenly spread: the first is 0, the last
    ``count - 1`` (repeats when ``target > count``)."""
    if count < 1:
        raise ValueError("no frames to retime")
    if target == 1:
        return np.zeros(1, dtype=np.int64)
    return np.rint(np.linspace(0, count - 1, target)).astype(np.int64)


def retime(array: np.ndarray, target: int) -> np.ndarray:
    """Exactly ``target`` frames picked evenly from ``array`` (nearest frame)."""
    return array[pick_evenly(len(array), target)]


def film_factor(count: int, target: int) -> int:
    """The smallest of 1, 2, 4, 8 giving (count - 1) * factor + 1 >= target frames (8 at most)."""
    for factor in FILM_FACTORS:
        if (count - 1) * factor + 1 >= target:
            return factor
    return FILM_FACTORS[-1]


class NoInterpolation:
    """Retime only: each output frame is the nearest input frame."""

    def __init__(self, section: NoInterpolationSection = NoInterpolationSection()):
        self.section = section

    def interpolate(self, frames: Frames, seconds: float, fps: int, progress: Progress | None = None,
                    *, light: bool = False) -> Frames:
        out = retime(frames.array, target_count(seconds, fps))
        if progress:
            progress("interpolate", 1.0)
        return Frames(out, float(fps))


class FilmInterpolator:
    """FILM: recursive midpoints (2x, 4x or 8x, the least that reaches the target count), then
    an even pick of exactly the target count. The model loads on first use and stays loaded."""

    def __init__(self, section: FilmSection):
        self.section = section
        self._model = None
        self._lock = threading.Lock()

    def use_model(self, model) -> None:
        """Run ``model`` (a FilmNet already on its device) instead of loading ``section.model``."""
        with self._lock:
            self._model = model

    def model(self):
        with self._lock:
            if self._model is None:
                if self.section.model is None:
                    raise ValueError("the film interpolator needs interpolation.model "
                                     "(a FILM TorchScript .pt or .safetensors file)")
                from interpolation import load_film
                from webtv.producer.devices import pick_device, pick_dtype

                device = pick_device(self.section.device)
                self._model = load_film(self.section.model, device, pick_dtype(device))
                log.info("FILM loaded from %s on %s", self.section.model, device)
            return self._model

    def interpolate(self, frames: Frames, seconds: float, fps: int, progress: Progress | None = None,
                    *, light: bool = False) -> Frames:
        from interpolation import interpolate

        target = target_count(seconds, fps)
        array = frames.array
        factor = film_factor(len(array), target)
        if factor > 1:
            tile = self.section.tile
            if light:
                tile = min(tile or LIGHT_TILE, LIGHT_TILE)
            array = interpolate(self.model(), array, factor, batch_size=1 if light else self.section.batch,
                                tile=tile, progress=progress)
        elif progress:
            progress("interpolate", 1.0)
        return Frames(retime(array, target), float(fps))


class MinterpolateInterpolator:
    """ffmpeg's ``minterpolate`` (motion-compensated; ``light`` blends instead): exactly
    round(seconds * fps) frames at ``fps``, the first and last being the input's first and last."""

    def __init__(self, section: MinterpolateSection = MinterpolateSection(), timeout_s: float = 900.0):
        self.section = section
        self.timeout_s = timeout_s

    def interpolate(self, frames: Frames, seconds: float, fps: float, progress: Progress | None = None,
                    *, light: bool = False) -> Frames:
        array = np.ascontiguousarray(frames.array, dtype=np.uint8)
        target = target_count(seconds, fps)
        if len(array) < 2:
            return Frames(retime(array, target), float(fps))
        count, height, width, _ = array.shape
        if progress:
            progress("interpolate", 0.0)
        # in at the rate that puts the last input frame on the last output frame, as FILM's
        # even pick does (len(frames) / seconds would hold the last frame for its duration)
        rate = Fraction(count - 1) * Fraction(fps).limit_denominator(100_000) / max(target - 1, 1)
        cmd = minterpolate_command((width, height), rate, fps, target, light)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the filter looks ahead and drops what it holds at the end of input: feed the last
        # frame a few extra times; -frames:v stops at the target anyway
        tail = np.repeat(array[-1:], 3, axis=0)
        try:
            out, err = proc.communicate(array.tobytes() + tail.tobytes(), timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise MediaError(f"ffmpeg minterpolate took over {self.timeout_s:.0f} s") from None
        size = height * width * 3
        made = len(out) // size
        if proc.returncode != 0 or made == 0:
            reason = err.decode(errors="replace").strip().splitlines()
            raise MediaError(f"ffmpeg minterpolate failed: {reason[-1] if reason else f'exit {proc.returncode}'}")
        result = np.frombuffer(out, dtype=np.uint8, count=made * size).reshape(made, height, width, 3)
        if made < target:  # the filter may stop a frame short at the end: hold the last one
            result = np.concatenate([result, np.repeat(result[-1:], target - made, axis=0)])
        if progress:
            progress("interpolate", 1.0)
        return Frames(result[:target].copy(), float(fps))


def film_interpolator(section: FilmSection) -> Interpolator:
    """FILM with ``section.model``'s weights; without weights, ffmpeg's minterpolate (logged;
    ``webtv check`` says so too)."""
    if section.model is None:
        log.warning("interpolation backend film has no model file set (interpolation.model); "
                    "using ffmpeg minterpolate instead")
        return MinterpolateInterpolator()
    return FilmInterpolator(section)


def make_interpolator(section: InterpolationSection) -> Interpolator:
    """The local interpolator ``section`` names; ``film`` without a model falls back to minterpolate."""
    if isinstance(section, FilmSection):
        return film_interpolator(section)
    if isinstance(section, MinterpolateSection):
        return MinterpolateInterpolator(section)
    if isinstance(section, NoInterpolationSection):
        return NoInterpolation(section)
    raise ValueError(f"interpolation backend {section.backend!r} is not made here "
                     "(remote interpolation lives in webtv.producer.remote)")


def _decode(src: Path, width: int, height: int) -> np.ndarray:
    done = subprocess.run(decode_frames_command(src), capture_output=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{src}: cannot decode ({reason[-1] if reason else 'ffmpeg failed'})")
    size = width * height * 3
    count = len(done.stdout) // size
    if count == 0:
        raise MediaError(f"{src}: no video frames")
    return np.frombuffer(done.stdout, dtype=np.uint8, count=count * size).reshape(count, height, width, 3)


def interpolate_file(src: Path, dst: Path, factor: int, film_model: Path | None = None,
                     house: HouseSection | None = None, progress: Progress | None = None) -> ProbeResult:
    """``src`` at ``factor`` times its frame rate into ``dst`` (H.264 with ``house``'s preset
    and profile, default HouseSection(); the audio carried over as AAC): FILM when
    ``film_model`` is given, else minterpolate. The duration stays: FILM's (T-1)*factor+1 frames get the last frame held
    for factor-1 more. Returns the probe of ``dst``."""
    if factor not in (2, 4, 8):
        raise ValueError(f"factor must be 2, 4 or 8, not {factor}")
    src, dst = Path(src), Path(dst)
    house = house or HouseSection()
    info = probe(src)
    video = info.video
    if video is None or not video.width or not video.height or not video.fps:
        raise MediaError(f"{src}: no video stream with a size and frame rate")
    frames = _decode(src, video.width, video.height)
    rate = Fraction(video.fps).limit_denominator(1001)
    out_rate = rate * factor
    if film_model is not None:
        from interpolation import interpolate, load_film
        from webtv.producer.devices import pick_device, pick_dtype

        device = pick_device("auto")
        model = load_film(film_model, device, pick_dtype(device))
        result = interpolate(model, frames, factor, progress=progress)
        result = np.concatenate([result, np.repeat(result[-1:], factor - 1, axis=0)])
    else:
        seconds = float(Fraction(len(frames)) / rate)
        result = MinterpolateInterpolator().interpolate(
            Frames(frames, float(rate)), seconds, out_rate, progress).array
    height, width = result.shape[1:3]
    cmd = interpolated_encode_command((width, height), out_rate, src, house, dst)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(np.ascontiguousarray(result).tobytes())
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{dst}: encode failed ({reason[-1] if reason else f'exit {proc.returncode}'})")
    return probe(dst)

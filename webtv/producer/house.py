"""The one-time encode into the channel's house format, its check, and the filler card.

Every clip is encoded once, at production time, to the same size, fps, H.264 profile,
closed GOP of ``house.gop_frames`` frames, CBR-ish bitrate and AAC layout, with the audio
exactly as long as the video and the caption burned in, so playout can air it with
``-c copy``. The command lines live in ``webtv.media.commands``; raw RGB frames go in on
stdin, the audio as a raw float file. ffmpeg runs inside a private temporary folder and is handed only plain relative
names there (caption text, subtitle script, font link, audio), so no prompt or path ever needs filter
escaping; the output path is a plain argument and may hold spaces and quotes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
from collections import deque
from pathlib import Path

import numpy as np

from webtv.config import HouseSection, SubtitlesSection
from webtv.media import MediaError, ProbeResult, ffprobe_exe, probe
from webtv.media.commands import Overlay, encode_command, overlay_textfile, packets_command, read_through_command
from webtv.media.loudness import normalize
from webtv.producer.base import Frames
from webtv.producer.subtitles import Subtitle, ass_script

AAC_FRAME = 1024  # samples per AAC-LC frame
SUBTITLES_FILE = "subs.ass"

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)


def find_font(house: HouseSection) -> Path:
    """``house.font`` if set, else DejaVuSans from the usual places; MediaError if none."""
    if house.font is not None:
        font = Path(house.font)
        if not font.is_file():
            raise MediaError(f"caption font not found: {font} (house.font)")
        return font
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    fc_match = shutil.which("fc-match")
    if fc_match:
        try:
            done = subprocess.run([fc_match, "-f", "%{file}", "DejaVu Sans"], capture_output=True, timeout=10, text=True)
            found = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
            if found and found.is_file() and found.suffix.lower() in (".ttf", ".otf"):
                return found
        except (OSError, subprocess.TimeoutExpired):
            pass
    raise MediaError(
        "no font for captions: DejaVuSans.ttf not found (install fonts-dejavu-core) "
        "and [house] font is not set in channel.toml"
    )


def caption_layout(caption: str, house: HouseSection) -> tuple[str, int]:
    """The caption wrapped to fit the picture width in the bottom third: (text, font size)."""
    size = max(12, round(house.height / 24))
    line_height = size * 1.3
    max_lines = max(1, min(4, int((house.height / 3 - size) // line_height)))
    per_line = max(12, int(house.width * 0.9 / (size * 0.56)))
    return _wrap(caption, per_line, max_lines), size


def _wrap(text: str, per_line: int, max_lines: int) -> str:
    """Printable text on at most ``max_lines`` lines of ``per_line`` characters, "…" if cut."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    lines = textwrap.wrap(flat, per_line, break_long_words=True, break_on_hyphens=False)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        lines[-1] = (last[: per_line - 1].rstrip() if len(last) >= per_line else last.rstrip()) + "\u2026"
    return "\n".join(lines)


def encode_clip(frames: Frames, audio: np.ndarray, caption: str, house: HouseSection, out: Path,
                subtitle: Subtitle | None = None, style: SubtitlesSection | None = None) -> None:
    """Encode frames + audio once into the house format at ``out`` (MP4), caption burned in,
    or, for a narrated shot, its ``subtitle`` in ``style`` (``webtv.producer.subtitles``)
    instead of the caption.

    The clip lasts len(frames)/frames.fps: round(that * house.fps) frames at house.fps
    (nearest-frame resampling when the rates differ); the audio (float, house sample rate)
    is padded with silence or trimmed to exactly the video's length.
    """
    array = np.asarray(frames.array)
    if array.ndim != 4 or array.shape[3] != 3 or len(array) == 0:
        raise MediaError(f"frames must be a non-empty (count, height, width, 3) array, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    count = max(1, round(len(array) / frames.fps * house.fps))
    if count == len(array) and abs(frames.fps - house.fps) < 1e-9:
        order = range(count)
    else:  # frame i of the output shows the source frame on screen at time i / house.fps
        times = np.arange(count) / house.fps
        order = np.minimum(len(array) - 1, np.floor(times * frames.fps + 1e-6).astype(int)).tolist()
    script = None
    if subtitle is not None and subtitle.text.strip():
        script = ass_script(subtitle, house, style or SubtitlesSection(), count / house.fps)
        caption = ""
    text, size = caption_layout(caption, house)
    texts = [Overlay(text, size, f"h-text_h-{max(8, size)}")] if text else []
    samples = _fit_audio(audio, round(count * house.sample_rate / house.fps), house.channels)
    _encode(array, order, samples, texts, house, Path(out), script)


def make_card(text: str, seconds: float, house: HouseSection, out: Path, *, title: str | None = None) -> None:
    """The filler / no-content card in the house format: a slowly moving dark gradient, a
    title large in the middle, the text below it, and soft quiet audio that fades in and out
    so the card can repeat back to back, at the house loudness (``[house] loudness_lufs``) like
    the clips around it.

    Without ``title`` the first line of ``text`` is the title (e.g. "channel name\nmore is
    on its way"), the rest the text below it.
    """
    if title is None:
        title, _, text = text.partition("\n")
    count = max(1, round(seconds * house.fps))
    width = max(32, house.width // 4 // 2 * 2)
    height = max(18, house.height // 4 // 2 * 2)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    base = np.array([18, 22, 48], dtype=np.float32)
    accent = np.array([70, 30, 90], dtype=np.float32)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        phase = 2 * math.pi * i / count  # one full cycle per card: it loops seamlessly
        glow = 0.5 + 0.5 * np.sin(2 * math.pi * (xs * 0.8 + ys * 0.4) + phase)
        mix = (0.25 + 0.55 * ys) * glow
        frames[i] = np.clip(base * (1.2 - 0.6 * ys[..., None]) + accent * mix[..., None], 0, 255).astype(np.uint8)
    big = max(16, round(house.height / 9))
    heading = _wrap(title, max(8, int(house.width * 0.9 / (big * 0.56))), 2)
    texts = [Overlay(heading, big, f"h/2-text_h-{big // 4}", box=False)] if heading else []
    body, small = caption_layout(text, house)
    if body:
        texts.append(Overlay(body, small, f"h/2+{big // 2}", box=False, color="0xD0D0E0"))
    n = round(count * house.sample_rate / house.fps)
    t = np.arange(n, dtype=np.float32) / house.sample_rate
    env = np.clip(np.minimum(t, n / house.sample_rate - t) / 0.5, 0.0, 1.0)
    tone = sum(np.sin(2 * np.pi * f * t) * g for f, g in ((110.0, 1.0), (164.81, 0.6), (220.0, 0.4), (277.18, 0.25)))
    pad = (0.03 * tone * env * (0.8 + 0.2 * np.sin(2 * np.pi * 0.25 * t))).astype(np.float32)
    samples = normalize(_fit_audio(pad[:, None], n, house.channels), house.sample_rate, house.loudness_lufs,
                        house.true_peak_db)
    _encode(frames, range(count), samples, texts, house, Path(out))


def _fit_audio(audio: np.ndarray | None, n: int, channels: int) -> np.ndarray:
    """Float32 (n, channels) in [-1, 1]: padded with silence or trimmed to ``n`` samples."""
    if audio is None:
        return np.zeros((n, channels), dtype=np.float32)
    a = np.asarray(audio)
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise MediaError(f"audio must be (samples, channels), got shape {a.shape}")
    if a.shape[1] != channels:
        mono = a.mean(axis=1, keepdims=True)
        a = np.repeat(mono, channels, axis=1)
    if len(a) >= n:
        a = a[:n]
    else:
        a = np.concatenate([a, np.zeros((n - len(a), channels), dtype=np.float32)])
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.ascontiguousarray(np.clip(a, -1.0, 1.0), dtype=np.float32)


def _encode(array: np.ndarray, order, samples: np.ndarray, texts: list[Overlay], house: HouseSection, out: Path,
            script: str | None = None) -> None:
    height, width = array.shape[1:3]
    font = find_font(house) if texts or script else None
    out = Path(out).absolute()
    with tempfile.TemporaryDirectory(prefix="webtv-encode-") as tmp:
        work = Path(tmp)
        samples.astype("<f4").tofile(work / "audio.f32")
        if font is not None:
            try:
                os.symlink(font.absolute(), work / "font.ttf")
            except OSError:
                shutil.copyfile(font, work / "font.ttf")

        for k, item in enumerate(texts):
            (work / overlay_textfile(k)).write_text(item.text, encoding="utf-8")
        if script is not None:
            (work / SUBTITLES_FILE).write_text(script, encoding="utf-8")
        args = encode_command((width, height), house, texts, out,
                              subtitles=SUBTITLES_FILE if script is not None else None)
        _run(args, (array[i] for i in order), cwd=work, what=str(out))


def _run(args: list[str], frames, cwd: Path, what: str) -> None:
    """Run ffmpeg with ``frames`` written to its stdin; MediaError with stderr's tail on failure."""
    try:
        proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        raise MediaError(f"cannot start ffmpeg: {exc}") from None
    tail: deque[str] = deque(maxlen=20)

    def drain() -> None:
        for line in proc.stderr:
            tail.append(line.decode(errors="replace").rstrip())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    broken = False
    try:
        for frame in frames:
            proc.stdin.write(np.ascontiguousarray(frame).data)
    except (BrokenPipeError, ConnectionResetError):
        broken = True
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        try:
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            broken = True
    code = proc.wait()
    reader.join(timeout=10)
    if code != 0 or broken:
        lines = "\n".join(list(tail)[-8:]) or "no error output"
        raise MediaError(f"ffmpeg failed encoding {what} (exit {code}):\n{lines}")


# --------------------------------------------------------------------------- validation


def validate_clip(path: Path, house: HouseSection, seconds: float | None = None) -> ProbeResult:
    """Check that ``path`` is a complete clip in the house format; MediaError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    info = probe(path)
    v, a = info.video, info.audio
    problems: list[str] = []
    frame = 1.0 / house.fps
    if v is None:
        raise MediaError(f"{path}: no video stream")
    if a is None:
        raise MediaError(f"{path}: no audio stream")
    if v.codec != "h264":
        problems.append(f"video codec is {v.codec}, house format is h264")
    if (v.width, v.height) != (house.width, house.height):
        problems.append(f"video size is {v.width}x{v.height}, house format is {house.width}x{house.height}")
    if abs(v.fps - house.fps) > 0.01:
        problems.append(f"video frame rate is {v.fps:g} fps, house format is {house.fps} fps")
    if v.pix_fmt and v.pix_fmt != "yuv420p":
        problems.append(f"pixel format is {v.pix_fmt}, house format is yuv420p")
    if v.profile and not _profile_fits(v.profile, house.h264_profile):
        problems.append(f"H.264 profile is {v.profile}, house format is {house.h264_profile}")
    if a.codec != "aac":
        problems.append(f"audio codec is {a.codec}, house format is aac")
    if a.sample_rate != house.sample_rate:
        problems.append(f"audio sample rate is {a.sample_rate} Hz, house format is {house.sample_rate} Hz")
    if a.channels != house.channels:
        problems.append(f"audio has {a.channels} channels, house format has {house.channels}")
    if problems:
        raise MediaError(f"{path}: " + "; ".join(problems))

    vdur = v.duration if v.duration is not None else info.duration
    adur = a.duration if a.duration is not None else info.duration
    aac = AAC_FRAME / house.sample_rate
    checks = [("container", info.duration, frame), ("audio", adur, frame + aac)]
    for name, value, tolerance in checks:
        if abs(value - vdur) > tolerance + 1e-6:
            problems.append(f"{name} lasts {value:.3f} s but the video lasts {vdur:.3f} s")
    if seconds is not None:
        for name, value, tolerance in [("video", vdur, frame)] + checks:
            if abs(value - seconds) > tolerance + 1e-6:
                problems.append(f"{name} lasts {value:.3f} s, expected {seconds:.3f} s")
    if problems:
        raise MediaError(f"{path}: " + "; ".join(problems))

    packets = _packets(path)
    if packets is not None:
        expected = round(vdur * house.fps)
        video = [p for p in packets if p["codec_type"] == "video"]
        audio = [p for p in packets if p["codec_type"] == "audio"]
        size = path.stat().st_size
        end = max((int(p.get("pos") or 0) + int(p.get("size") or 0) for p in packets), default=0)
        if end > size or len(video) < expected or len(audio) < math.floor(adur * house.sample_rate / AAC_FRAME):
            raise MediaError(
                f"{path}: truncated or damaged: {len(video)} of {expected} video frames and "
                f"{len(audio)} audio frames readable, {size} bytes on disk"
            )
        keys = [i for i, p in enumerate(video) if "K" in p.get("flags", "")]
        wanted = list(range(0, len(video), house.gop_frames))
        if keys != wanted:
            raise MediaError(
                f"{path}: keyframes at frames {keys[:8]}{'...' if len(keys) > 8 else ''}, "
                f"house format wants one every {house.gop_frames} frames"
            )
    return info


def _packets(path: Path) -> list[dict] | None:
    """Every packet's stream type, position, size and flags, read without decoding (None without ffprobe)."""
    if ffprobe_exe() is None:
        done = subprocess.run(read_through_command(path), capture_output=True, timeout=60)
        if done.returncode != 0 or done.stderr.strip():
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise MediaError(f"{path}: truncated or damaged ({reason[-1] if reason else 'ffmpeg failed'})")
        return None
    try:
        done = subprocess.run(packets_command(path), capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{path}: ffprobe timed out reading packets") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path}: truncated or damaged ({reason[-1] if reason else 'ffprobe failed'})")
    try:
        return json.loads(done.stdout or b"{}").get("packets", [])
    except json.JSONDecodeError:
        raise MediaError(f"{path}: unreadable packet list") from None


_PROFILE_RANK = {"constrained baseline": 0, "baseline": 0, "main": 1, "high": 2}


def _profile_fits(found: str, house_profile: str) -> bool:
    """A stream fits when a decoder for the house profile plays it (x264 may pick a lower one,
    e.g. Constrained Baseline with preset ultrafast)."""
    rank = _PROFILE_RANK.get(found.lower())
    return rank is not None and rank <= _PROFILE_RANK[house_profile]

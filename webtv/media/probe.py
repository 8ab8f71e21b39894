"""Asking what a media file holds (ffprobe, or ffmpeg's stream summary without it)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .commands import probe_command, probe_with_ffmpeg_command
from .tools import MediaError, ffprobe_exe


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    duration: float | None
    width: int = 0
    height: int = 0
    fps: float = 0.0
    profile: str = ""
    pix_fmt: str = ""
    sample_rate: int = 0
    channels: int = 0


@dataclass(frozen=True)
class ProbeResult:
    duration: float
    video: StreamInfo | None
    audio: StreamInfo | None


def probe(path: Path | str, timeout: float = 30) -> ProbeResult:
    """Container duration and the first video and audio stream of ``path``."""
    if ffprobe_exe() is None:
        return _probe_with_ffmpeg(Path(path), timeout)
    cmd = probe_command(path)
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{path}: ffprobe timed out") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path}: unreadable ({reason[-1] if reason else 'ffprobe failed'})")
    info = json.loads(done.stdout or b"{}")
    video = audio = None
    for stream in info.get("streams", []):
        kind = stream.get("codec_type")
        duration = float(stream["duration"]) if "duration" in stream else None
        if kind == "video" and video is None:
            rate = stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "0/1"
            video = StreamInfo(
                codec=stream.get("codec_name", ""),
                duration=duration,
                width=int(stream.get("width", 0)),
                height=int(stream.get("height", 0)),
                fps=float(Fraction(rate)) if rate != "0/0" else 0.0,
                profile=str(stream.get("profile", "")),
                pix_fmt=stream.get("pix_fmt", ""),
            )
        elif kind == "audio" and audio is None:
            audio = StreamInfo(
                codec=stream.get("codec_name", ""),
                duration=duration,
                sample_rate=int(stream.get("sample_rate", 0)),
                channels=int(stream.get("channels", 0)),
                profile=str(stream.get("profile", "")),
            )
    duration = float(info.get("format", {}).get("duration", 0.0) or 0.0)
    return ProbeResult(duration=duration, video=video, audio=audio)


def _probe_with_ffmpeg(path: Path, timeout: float) -> ProbeResult:
    """Fallback for ffmpeg builds without ffprobe: read ``ffmpeg -i``'s stream summary."""
    try:
        done = subprocess.run(probe_with_ffmpeg_command(path), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{path}: ffmpeg timed out reading it") from None
    text = done.stderr.decode(errors="replace")
    dur = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", text)
    if not dur:
        raise MediaError(f"{path}: unreadable ({text.strip().splitlines()[-1] if text.strip() else 'no output'})")
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))
    video = audio = None
    v = re.search(r"Video: (\w+)(?: \((\w[\w ]*)\))?.*?, (\w+)\(?.*?, (\d+)x(\d+).*?, ([\d.]+) fps", text)
    if v:
        video = StreamInfo(
            codec=v.group(1), duration=None, profile=v.group(2) or "", pix_fmt=v.group(3),
            width=int(v.group(4)), height=int(v.group(5)), fps=float(v.group(6)),
        )
    a = re.search(r"Audio: (\w+)(?: \((\w+)\))?.*?, (\d+) Hz, (mono|stereo|[\d.]+)", text)
    if a:
        layout = a.group(4)
        channels = {"mono": 1, "stereo": 2}.get(layout, 0)
        audio = StreamInfo(
            codec=a.group(1), duration=None, profile=a.group(2) or "",
            sample_rate=int(a.group(3)), channels=channels,
        )
    return ProbeResult(duration=duration, video=video, audio=audio)

"""Frames and sound on the wire between the channel and its workers: frames as FFV1 in
Matroska (lossless RGB, the exact frame rate in the stream), music as 32-bit float WAV, both
written and read with ffmpeg, which also decodes whatever an adapted Space returns (MP4,
WebM, GIF, MP3, ...); shots and sequences as JSON."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np

from webtv.director import Character, Episode, Sequence, Shot
from webtv.media import MediaError, probe
from webtv.media.commands import (
    decode_audio_command, decode_frames_command, ffv1_write_command, wav_write_command,
)
from webtv.producer.base import Frames

def write_frames(frames: Frames, path: Path) -> Path:
    """Frames into a lossless FFV1/Matroska file at their exact frame rate."""
    array = np.ascontiguousarray(np.asarray(frames.array))
    if array.ndim != 4 or array.shape[3] != 3 or len(array) == 0:
        raise MediaError(f"frames must be a non-empty (count, height, width, 3) array, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    count, height, width = array.shape[:3]
    done = subprocess.run(ffv1_write_command((width, height), frames.fps, path), input=array.tobytes(),
                          capture_output=True, timeout=300)
    if done.returncode != 0:
        raise MediaError(f"ffmpeg could not write {count} frames: {_tail(done.stderr)}")
    return Path(path)


def read_frames(path: Path, fps: float | None = None) -> Frames:
    """Every frame of any video file ffmpeg reads, RGB uint8, at the file's frame rate
    (or ``fps``)."""
    info = probe(path)
    video = info.video
    if video is None or not video.width or not video.height:
        raise MediaError(f"{Path(path).name}: no video stream")
    done = subprocess.run(decode_frames_command(path, passthrough=True), capture_output=True, timeout=300)
    frame_bytes = video.width * video.height * 3
    if done.returncode != 0 or not done.stdout or len(done.stdout) % frame_bytes:
        raise MediaError(f"{Path(path).name}: cannot decode its frames: {_tail(done.stderr)}")
    array = np.frombuffer(done.stdout, dtype=np.uint8).reshape(-1, video.height, video.width, 3)
    rate = fps or video.fps
    if not rate or rate <= 0:
        raise MediaError(f"{Path(path).name}: no frame rate")
    return Frames(array, float(rate))


def write_audio(samples: np.ndarray, sample_rate: int, path: Path) -> Path:
    """Float samples (n, channels) into a 32-bit float WAV file."""
    a = np.asarray(samples, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    channels = a.shape[1]
    done = subprocess.run(wav_write_command(sample_rate, channels, path), input=np.ascontiguousarray(a).tobytes(),
                          capture_output=True, timeout=300)
    if done.returncode != 0:
        raise MediaError(f"ffmpeg could not write audio: {_tail(done.stderr)}")
    return Path(path)


def read_audio(path: Path, sample_rate: int, channels: int, seconds: float | None = None) -> np.ndarray:
    """Any audio file ffmpeg reads as float32 (n, channels) at ``sample_rate``; with
    ``seconds``, padded with silence or trimmed to exactly round(seconds * sample_rate)."""
    done = subprocess.run(decode_audio_command(path, sample_rate, channels), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise MediaError(f"{Path(path).name}: cannot decode its audio: {_tail(done.stderr)}")
    a = np.frombuffer(done.stdout, dtype="<f4").astype(np.float32).reshape(-1, channels)
    if seconds is not None:
        n = round(seconds * sample_rate)
        a = a[:n] if len(a) >= n else np.concatenate([a, np.zeros((n - len(a), channels), np.float32)])
    return np.ascontiguousarray(np.clip(np.nan_to_num(a), -1.0, 1.0))


def _tail(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return " / ".join(lines[-3:]) or "no error output"


def shot_json(shot: Shot) -> str:
    return json.dumps(dataclasses.asdict(shot))


def _shot(data: dict) -> Shot:
    fields = {k: v for k, v in data.items() if k in Shot.__dataclass_fields__}
    return Shot(**{**fields, "tags": tuple(fields.get("tags") or ()),
                   "characters": tuple(fields.get("characters") or ())})


def shot_from_json(text: str | None, prompt: str = "", seed: int = 0) -> Shot:
    if text:
        return _shot(json.loads(text))
    return Shot(prompt=prompt, seed=int(seed), theme="")


def sequence_json(sequence: Sequence) -> str:
    return json.dumps(dataclasses.asdict(sequence))


def sequence_from_json(text: str | None, music_prompt: str = "", seed: int = 0) -> Sequence:
    if text:
        data = json.loads(text)
        shots = tuple(_shot(s) for s in data.get("shots") or ())
        fields = {k: v for k, v in data.items() if k in Sequence.__dataclass_fields__ and k != "shots"}
        fields["tags"] = tuple(fields.get("tags") or ())
        fields["cast"] = tuple(Character(**{**c, "aliases": tuple(c.get("aliases") or ())})
                               for c in fields.get("cast") or ())
        if fields.get("episode") is not None:
            fields["episode"] = Episode(**fields["episode"])
        return Sequence(**fields, shots=shots)
    return Sequence(id="remote", theme=music_prompt, music_prompt=music_prompt, seed=int(seed))

"""The remote stages: each implements its stage protocol by sending a job to the pool,
to a webtv worker's endpoint or, through an adapter, to another Gradio app."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from webtv.director import Sequence, Shot
from webtv.producer.base import Frames, Progress, light_frame_count
from webtv.producer.remote.pool import WorkerPool
from webtv.producer.remote.wire import read_audio, read_frames, sequence_json, shot_json, write_frames
from webtv.prompt_weights import clean

if TYPE_CHECKING:
    from webtv.config import (AdapterSection, HouseSection, RemoteAudioSection, RemoteInterpolationSection,
                              RemoteUpscaleSection, RemoteVideoSection, RemoteVoiceSection, WorkerCredentials)

T = TypeVar("T")


def adapter_args(adapter: "AdapterSection", values: dict[str, Any]) -> list:
    """The adapter's argument list with "$name" placeholders replaced from ``values``."""
    out = []
    for arg in adapter.args:
        if isinstance(arg, str) and arg.startswith("$"):
            out.append(values[arg[1:]])
        else:
            out.append(arg)
    return out


class _Remote:
    stage = "remote"

    def __init__(self, workers: WorkerPool):
        if workers is None:
            raise ValueError("a remote stage needs the [workers] pool")
        self.pool = workers

    def _frames(self, fps: float | None = None, seconds: float | None = None) -> Callable[[Any, WorkerPool], Frames]:
        """A decoder for a reply holding a video file; with ``seconds``, the frames are
        retimed to span exactly that long (an adapted Space picks its own frame rate)."""

        def decode(reply: Any, pool: WorkerPool) -> Frames:
            path = pool.fetch(reply, "video file")
            try:
                frames = read_frames(path, fps)
            finally:
                path.unlink(missing_ok=True)
            if seconds is not None:
                frames = Frames(frames.array, len(frames.array) / seconds)
            return frames

        return decode

    def _with_frames(self, frames: Frames, call: Callable[[Any], T]) -> T:
        """``call(file)`` with ``frames`` written to a file to upload, removed afterwards."""
        from gradio_client import handle_file

        path = self.pool.scratch() / f"{uuid.uuid4().hex}.mkv"
        try:
            write_frames(frames, path)
            return call(handle_file(str(path)))
        finally:
            path.unlink(missing_ok=True)

    def _progress(self, progress: Progress | None, fraction: float) -> None:
        if progress is not None:
            progress(self.stage, fraction)


class RemoteVideo(_Remote):
    """VideoBackend on the workers: ``/video`` of a webtv worker, or the adapter's endpoint."""

    stage = "video"
    spreads_over_workers = True  # a shot's takes are drawn side by side, the pool spreads them

    def __init__(self, workers: WorkerPool, section: "RemoteVideoSection"):
        super().__init__(workers)
        self.section = section

    def render(self, shot: Shot, seconds: float, progress: Progress | None = None, *, light: bool = False) -> Frames:
        self._progress(progress, 0.0)
        adapter = self.section.adapter
        if adapter is not None:
            s = self.section
            # another Gradio app takes plain text: the weight syntax removed
            values = {"prompt": clean(shot.prompt), "negative_prompt": clean(s.negative_prompt), "seed": shot.seed,
                      "frames": light_frame_count(s.frames) if light else s.frames, "steps": s.steps,
                      "guidance": s.guidance, "seconds": seconds, "width": s.width, "height": s.height}
            frames = self.pool.submit(adapter.endpoint, *adapter_args(adapter, values),
                                      decode=self._frames(seconds=seconds))
        else:
            frames = self.pool.submit("/video", shot.prompt, shot.seed, seconds, light, shot_json(shot),
                                      decode=self._frames())
        self._progress(progress, 1.0)
        return frames


class RemoteUpscaler(_Remote):
    """Upscaler on the workers (``/upscale``): the frames go up, larger ones come back."""

    stage = "upscale"

    def __init__(self, workers: WorkerPool, section: "RemoteUpscaleSection"):
        super().__init__(workers)
        self.section = section

    def upscale(self, frames: Frames, shot: Shot, progress: Progress | None = None, *, light: bool = False) -> Frames:
        self._progress(progress, 0.0)
        out = self._with_frames(frames, lambda file: self.pool.submit(
            "/upscale", file, shot.prompt, shot.seed, light, shot_json(shot), decode=self._frames(fps=frames.fps)))
        self._progress(progress, 1.0)
        return out


class RemoteInterpolator(_Remote):
    """Interpolator on the workers (``/interpolate``)."""

    stage = "interpolate"

    def __init__(self, workers: WorkerPool, section: "RemoteInterpolationSection"):
        super().__init__(workers)
        self.section = section

    def interpolate(self, frames: Frames, seconds: float, fps: int, progress: Progress | None = None,
                    *, light: bool = False) -> Frames:
        self._progress(progress, 0.0)
        out = self._with_frames(frames, lambda file: self.pool.submit(
            "/interpolate", file, seconds, fps, light, decode=self._frames(fps=fps)))
        self._progress(progress, 1.0)
        return out


class RemoteAudio(_Remote):
    """AudioBackend on the workers: ``/music`` of a webtv worker, or the adapter's endpoint
    (whatever audio file it returns is decoded, resampled and fitted to the length)."""

    stage = "music"

    def __init__(self, workers: WorkerPool, section: "RemoteAudioSection"):
        super().__init__(workers)
        self.section = section

    def compose(self, sequence: Sequence, seconds: float, sample_rate: int, channels: int,
                *, light: bool = False) -> np.ndarray:
        def decode(reply: Any, pool: WorkerPool) -> np.ndarray:
            path = pool.fetch(reply, "audio file")
            try:
                return read_audio(path, sample_rate, channels, seconds)
            finally:
                path.unlink(missing_ok=True)

        adapter = self.section.adapter
        if adapter is not None:
            values = {"prompt": sequence.music_prompt, "negative_prompt": "", "seed": sequence.seed,
                      "frames": 0, "steps": 0, "guidance": self.section.guidance, "seconds": seconds,
                      "width": 0, "height": 0}
            return self.pool.submit(adapter.endpoint, *adapter_args(adapter, values), decode=decode)
        return self.pool.submit("/music", sequence.music_prompt, sequence.seed, seconds, sample_rate, channels,
                                light, sequence_json(sequence), decode=decode)


class RemoteVoice(_Remote):
    """VoiceBackend on the workers: ``/voice`` of a webtv worker (its own [voice] backend
    speaks; the speech comes back as a float WAV at the asked rate)."""

    stage = "voice"

    def __init__(self, workers: WorkerPool, section: "RemoteVoiceSection"):
        super().__init__(workers)
        self.section = section

    def speak(self, text: str, voice: str | None, words_per_minute: int, sample_rate: int,
              *, light: bool = False) -> np.ndarray:
        def decode(reply: Any, pool: WorkerPool) -> np.ndarray:
            path = pool.fetch(reply, "speech file")
            try:
                return read_audio(path, sample_rate, 1)[:, 0]
            finally:
                path.unlink(missing_ok=True)

        return self.pool.submit("/voice", text, voice or "", words_per_minute, sample_rate, light, decode=decode)


class RemoteScorer(_Remote):
    """Scorer on the workers (``/score``, ``[quality] score_on = "workers"``): a take's frames
    go up, the worker's own CLIP rates them against the prompt."""

    stage = "score"

    def score(self, frames: Frames, prompt: str) -> float:
        return self._with_frames(frames, lambda file: self.pool.submit(
            "/score", file, prompt, decode=lambda reply, pool: float(reply["score"])))


# --------------------------------------------------------------------------- one whole clip


def render_remote_clip(url: str, prompt: str, seed: int, out: Path, timeout: float = 600.0, *,
                       seconds: float | None = None, house: "HouseSection | None" = None,
                       theme: str = "", credentials: "WorkerCredentials | None" = None,
                       narration: str = "") -> Path:
    """Ask the worker at ``url`` for one whole house-format clip (``/clip``) and write it to
    ``out`` (atomically). ``house`` and ``seconds`` ask for this channel's format and length
    (default: the worker's own); the clip is validated against ``house`` when given.
    ``narration``: a line the worker's narrator speaks (the clip then lasts as the line does).
    ``credentials``: how to authenticate to the worker ([[workers.credentials]])."""
    from webtv.config import WorkersSection

    out = Path(out)
    section = WorkersSection(urls=[url], timeout_s=timeout, retries=0,
                             credentials=[credentials.model_copy(update={"url": url})] if credentials else [])
    pool = WorkerPool(section, start=False)
    house_json = ""
    if house is not None:
        data = house.model_dump(mode="json")
        data.pop("font", None)
        house_json = json.dumps(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial{out.suffix or '.mp4'}")

    def decode(reply: Any, pool: WorkerPool) -> Path:
        path = pool.fetch(reply, "clip")
        shutil.move(str(path), tmp)
        return tmp

    try:
        pool.submit("/clip", prompt, seed, float(seconds or 0.0), house_json, theme, narration, decode=decode)
        if house is not None:
            from webtv.producer.house import validate_clip

            validate_clip(tmp, house, None if narration else seconds)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        pool.close()
    return out

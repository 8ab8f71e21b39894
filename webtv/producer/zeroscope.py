"""Zeroscope: text -> video (576w weights), then video -> larger video (XL weights).

Both stages run a diffusers pipeline's components: ``TextToVideoSDPipeline`` draws
``[video] frames`` frames at ``[video] width x height`` from the shot's prompt;
``VideoToVideoSDPipeline`` re-draws them at ``[upscale] width x height`` with the same prompt
(``strength`` of the XL model's card: how much it may change, i.e. the last
int(steps x strength) steps of the schedule). ``model`` is a hub id or a local folder written
by ``save_pretrained``. The denoise loops are ``webtv/producer/denoise.py``'s (the pipelines'
own, plus guidance for only the first ``guidance_fraction`` of the steps). The speed levers of
each section: ``steps``; ``scheduler`` (``"dpm++"``: the checkpoint's scheduler swapped for
DPMSolverMultistep with DPM-Solver++, what the model cards use, good at 20-25 steps;
``"model"``: the checkpoint's own, DDIM for Zeroscope); ``guidance_fraction``; ``frames``
(fewer drawn frames, stretched to the house rate by FILM); ``strength``. Each section also
applies its memory switches:

- ``cpu_offload``: ``enable_model_cpu_offload`` (CUDA only, needs the ``accelerate``
  package); each model visits the GPU only while it runs.
- ``vae_slicing``: the VAE encodes and decodes one frame at a time.
- ``forward_chunking``: the UNet's feed-forward layers run one frame at a time.

The pipeline loads on the first call (a lock keeps two threads from loading it twice, and
serialises renders: a pipeline's scheduler is not thread-safe) and stays loaded.
``light=True`` (the retry after an out-of-memory failure) turns every switch on for that
call and, for the video stage, renders half the frames (at least 8, or at least 2 when
fewer are configured). CPU offload, once a light call turned it on, stays on: a stage that
ran out of memory once would likely do so again, and moving the weights back costs time.

Noise comes from a CPU generator seeded with ``shot.seed``, so a seed gives the same
frames on CPU and GPU, offloaded or not.

diffusers 0.42 keeps both pipelines under ``pipelines/deprecated`` (importable from the
top level, with a warning on load); the loops in ``denoise.py`` return what their
``.frames`` is for ``output_type="np"``: floats in [0, 1] of shape (batch, frames, height,
width, 3). The pipelines' own ``enable_vae_slicing`` is gone; the VAE's ``enable_slicing``
is used instead.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

import numpy as np

from webtv.config import ZeroscopeUpscaleSection, ZeroscopeVideoSection
from webtv.director.base import Shot
from webtv.producer.base import Frames, Progress, light_frame_count
from webtv.producer.denoise import OnStep, partial_steps, text_to_video, video_to_video
from webtv.producer.devices import model_source, pick_device, pick_dtype

log = logging.getLogger("webtv.producer")


def load_pipeline(class_name: str, model: str, what: str, dtype, marker: str) -> Any:
    """``diffusers.<class_name>.from_pretrained(model)``, on the CPU, at ``dtype``.

    Raises RuntimeError("cannot load <what> model '<model>': ...") when the folder is missing
    or is no pipeline folder, or when the hub cannot give the model.
    """
    import diffusers

    source = model_source(model, what, marker)
    pipeline_class = getattr(diffusers, class_name)
    try:
        return pipeline_class.from_pretrained(source, dtype=dtype)
    except Exception as exc:
        raise RuntimeError(f"cannot load {what} model {model!r}: {exc}") from exc


def _uint8_frames(frames) -> np.ndarray:
    """A pipeline's ``.frames`` (np, batch first, floats in [0, 1]) as uint8 (T, H, W, 3)."""
    video = np.asarray(frames)
    if video.ndim == 5:
        video = video[0]
    if video.ndim != 4 or video.shape[-1] != 3:
        raise RuntimeError(f"unexpected frames from the pipeline: shape {video.shape}")
    if video.dtype == np.uint8:
        return np.ascontiguousarray(video)
    return np.rint(np.clip(video, 0.0, 1.0) * 255.0).astype(np.uint8)


class _ZeroscopeStage:
    """What both stages share: lazy load, device and dtype, memory switches, progress."""

    pipeline_class = ""
    what = ""  # the progress stage name, and the word in errors

    def __init__(self, section: ZeroscopeVideoSection | ZeroscopeUpscaleSection):
        self.section = section
        self._lock = threading.Lock()
        self._pipe = None
        self._device = None
        self._offloaded = False
        self.loads = 0  # how many times the weights were loaded (tests, status)

    @property
    def pipeline(self):
        """The loaded pipeline, or None before the first call."""
        return self._pipe

    def use_pipeline(self, pipe) -> None:
        """Use ``pipe``, already built, on its device and at its dtype, instead of loading
        ``model`` (benchmarks with random weights at the real sizes, tests). The scheduler
        swap and ``cpu_offload`` apply as for a loaded one."""
        with self._lock:
            self._offloaded = False
            self._device = pipe.device
            self._prepare(pipe)
            self._pipe = pipe

    def _load(self):
        if self._pipe is not None:
            return self._pipe
        device = pick_device(self.section.device)
        log.info("loading %s model %r on %s", self.what, self.section.model, device)
        pipe = load_pipeline(self.pipeline_class, self.section.model, self.what, pick_dtype(device),
                             self.section.model_marker)
        self._offloaded = False
        self._device = device
        if not (self.section.cpu_offload and device.type == "cuda"):
            pipe.to(device)
        self._prepare(pipe)
        self._pipe = pipe
        self.loads += 1
        return pipe

    def _prepare(self, pipe) -> None:
        from diffusers import DPMSolverMultistepScheduler

        if self.section.scheduler == "dpm++":
            if not (isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
                    and pipe.scheduler.config.algorithm_type == "dpmsolver++"):
                pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config,
                                                                         algorithm_type="dpmsolver++")
        pipe.set_progress_bar_config(disable=True)
        if self.section.cpu_offload:
            if self._device.type == "cuda":
                self._offload(pipe, required=True)
            else:
                log.info("%s: cpu_offload only applies on CUDA; running on %s", self.what, self._device)

    def _offload(self, pipe, *, required: bool) -> None:
        if self._offloaded or self._device.type != "cuda":
            return
        if importlib.util.find_spec("accelerate") is None:
            message = f"{self.what}: cpu offload needs the accelerate package (pip install accelerate)"
            if required:
                raise RuntimeError(message)
            log.warning("%s; the light retry runs without it", message)
            return
        pipe.enable_model_cpu_offload(device=self._device)
        self._offloaded = True

    def _switches(self, pipe, light: bool) -> None:
        if light:
            self._offload(pipe, required=False)
        if self.section.vae_slicing or light:
            pipe.vae.enable_slicing()
        else:
            pipe.vae.disable_slicing()
        if self.section.forward_chunking or light:
            pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)
        else:
            pipe.unet.disable_forward_chunking()

    def _progress(self, steps: int, progress: Progress | None) -> OnStep | None:
        """progress goes (what, k / (steps + 1)) per denoising step; the caller reports 1.0
        once the frames are decoded."""
        if not progress:
            return None
        return lambda step: progress(self.what, min(step + 1, steps) / (steps + 1))

    def _frames(self, frames, progress: Progress | None) -> np.ndarray:
        array = _uint8_frames(frames)
        if progress:
            progress(self.what, 1.0)
        return array

    def _generator(self, seed: int):
        import torch

        return torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


class ZeroscopeVideo(_ZeroscopeStage):
    """shot -> frames with TextToVideoSDPipeline (``[video]``: model, width, height, frames,
    steps, guidance, negative_prompt, device and the memory switches)."""

    pipeline_class = "TextToVideoSDPipeline"
    what = "video"

    def __init__(self, section: ZeroscopeVideoSection):
        super().__init__(section)

    def render(self, shot: Shot, seconds: float, progress: Progress | None = None, *, light: bool = False) -> Frames:
        section = self.section
        count = light_frame_count(section.frames) if light else section.frames
        if progress:
            progress(self.what, 0.0)
        with self._lock:
            pipe = self._load()
            self._switches(pipe, light)
            array = self._frames(text_to_video(
                pipe,
                prompt=shot.prompt,
                negative_prompt=section.negative_prompt or None,
                num_frames=count,
                height=section.height,
                width=section.width,
                steps=section.steps,
                guidance=section.guidance,
                guidance_fraction=section.guidance_fraction,
                generator=self._generator(shot.seed),
                on_step=self._progress(section.steps, progress),
            ), progress)
        if array.shape[:3] != (count, section.height, section.width):
            raise RuntimeError(f"video: expected {count} frames of {section.width}x{section.height}, got {array.shape}")
        return Frames(array, fps=count / seconds)


class ZeroscopeUpscaler(_ZeroscopeStage):
    """frames -> the same frames at ``[upscale] width x height`` with VideoToVideoSDPipeline
    and the XL weights: the frames are resized (Lanczos), then re-drawn from the shot's
    prompt at ``strength``."""

    pipeline_class = "VideoToVideoSDPipeline"
    what = "upscale"

    def __init__(self, section: ZeroscopeUpscaleSection):
        super().__init__(section)

    def upscale(self, frames: Frames, shot: Shot, progress: Progress | None = None, *, light: bool = False) -> Frames:
        from PIL import Image

        section = self.section
        size = (section.width, section.height)
        video = [Image.fromarray(frame) for frame in frames.array]
        if video and video[0].size != size:
            video = [image.resize(size, Image.Resampling.LANCZOS) for image in video]
        steps, run_steps = partial_steps(section.steps, section.strength)
        if progress:
            progress(self.what, 0.0)
        with self._lock:
            pipe = self._load()
            self._switches(pipe, light)
            array = self._frames(video_to_video(
                pipe,
                prompt=shot.prompt,
                video=video,
                strength=section.strength,
                negative_prompt=section.negative_prompt or None,
                steps=steps,
                guidance=section.guidance,
                guidance_fraction=section.guidance_fraction,
                generator=self._generator(shot.seed),
                on_step=self._progress(run_steps, progress),
            ), progress)
        if array.shape[:3] != (len(frames.array), section.height, section.width):
            raise RuntimeError(f"upscale: expected {len(frames.array)} frames of {section.width}x{section.height}, "
                               f"got {array.shape}")
        return Frames(array, fps=frames.fps)

"""Zeroscope: text -> video (576w weights), then video -> larger video (XL weights).

Both stages run a diffusers pipeline: ``TextToVideoSDPipeline`` draws ``[video] frames``
frames at ``[video] width x height`` from the shot's prompt; ``VideoToVideoSDPipeline``
re-draws them at ``[upscale] width x height`` with the same prompt (``strength`` of the
XL model's card: how much it may change). ``model`` is a hub id or a local folder written
by ``save_pretrained``. Loading, device, CPU offload, progress and seeded noise are
``webtv.producer.diffusion.DiffusionStage``'s. Each stage swaps the checkpoint's scheduler
for DPMSolverMultistep (what the model cards use) and applies the memory switches of its
config section:

- ``cpu_offload``: each model visits the GPU only while it runs (DiffusionStage).
- ``vae_slicing``: the VAE encodes and decodes one frame at a time.
- ``forward_chunking``: the UNet's feed-forward layers run one frame at a time.

``light=True`` (the retry after an out-of-memory failure) turns every switch on for that
call and, for the video stage, renders half the frames (at least 8, or at least 2 when
fewer are configured).

diffusers 0.42 keeps both pipelines under ``pipelines/deprecated`` (importable from the
top level, with a warning on load); their ``__call__`` takes the old
``callback(step, timestep, latents)`` / ``callback_steps``, not ``callback_on_step_end``,
and ``.frames`` is a float array in [0, 1] of shape (batch, frames, height, width, 3) for
``output_type="np"``. The pipelines' own ``enable_vae_slicing`` is gone; the VAE's
``enable_slicing`` is used instead.
"""

from __future__ import annotations

import logging

import numpy as np

from webtv.config import ZeroscopeUpscaleSection, ZeroscopeVideoSection
from webtv.director.base import Shot
from webtv.producer.base import Frames, Progress, light_frame_count
from webtv.producer.diffusion import DiffusionStage

log = logging.getLogger("webtv.producer")


class _ZeroscopeStage(DiffusionStage):
    """What both Zeroscope stages share beyond DiffusionStage: DPM-Solver++ and the switches."""

    def __init__(self, section: ZeroscopeVideoSection | ZeroscopeUpscaleSection):
        super().__init__(section)

    def _prepare_scheduler(self, pipe) -> None:
        from diffusers import DPMSolverMultistepScheduler

        if not isinstance(pipe.scheduler, DPMSolverMultistepScheduler):
            pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

    def _memory_switches(self, pipe, light: bool) -> None:
        if self.section.vae_slicing or light:
            pipe.vae.enable_slicing()
        else:
            pipe.vae.disable_slicing()
        if self.section.forward_chunking or light:
            pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)
        else:
            pipe.unet.disable_forward_chunking()


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
        array = self._draw(shot, count, section.steps, light, progress, num_frames=count, height=section.height,
                           width=section.width, num_inference_steps=section.steps)
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
        # The pipeline runs int(steps * strength) of its steps; keep at least one.
        steps = max(section.steps, int(np.ceil(1.0 / section.strength)))
        run_steps = max(1, min(int(steps * section.strength), steps))
        array = self._draw(shot, len(frames.array), run_steps, light, progress, video=video,
                           strength=section.strength, num_inference_steps=steps)
        return Frames(array, fps=frames.fps)

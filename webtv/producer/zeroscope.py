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

- ``cpu_offload``: each model visits the GPU only while it runs (DiffusionStage).
- ``vae_slicing``: the VAE encodes and decodes one frame at a time.
- ``forward_chunking``: the UNet's feed-forward layers run one frame at a time.

and ``freeu`` (off unless the section has a ``freeu`` table): diffusers' ``enable_freeu`` with
its ``s1, s2, b1, b2``, set when the pipeline is loaded. A prompt may carry weights,
``(red fox:1.3)``: ``denoise.py`` encodes it with compel (``webtv/producer/weighting.py``).

Loading, device, CPU offload (also turned on for good by the light retry), progress and
seeded noise are ``webtv.producer.diffusion.DiffusionStage``'s. ``light=True`` (the retry
after an out-of-memory failure) turns every switch on for that call and, for the video
stage, renders half the frames (at least 8, or at least 2 when fewer are configured).

diffusers 0.42 keeps both pipelines under ``pipelines/deprecated`` (importable from the
top level, with a warning on load); the loops in ``denoise.py`` return what their
``.frames`` is for ``output_type="np"``: floats in [0, 1] of shape (batch, frames, height,
width, 3). The pipelines' own ``enable_vae_slicing`` is gone; the VAE's ``enable_slicing``
is used instead.
"""

from __future__ import annotations

import logging

from webtv.config import ZeroscopeUpscaleSection, ZeroscopeVideoSection
from webtv.director.base import Shot
from webtv.producer.base import Frames, Progress, light_frame_count
from webtv.producer.denoise import OnStep, partial_steps, text_to_video, video_to_video
from webtv.producer.diffusion import DiffusionStage

log = logging.getLogger("webtv.producer")


class _ZeroscopeStage(DiffusionStage):
    """What both Zeroscope stages share beyond DiffusionStage: the scheduler and the switches."""

    def __init__(self, section: ZeroscopeVideoSection | ZeroscopeUpscaleSection):
        super().__init__(section)

    def _prepare_scheduler(self, pipe) -> None:
        from diffusers import DPMSolverMultistepScheduler

        if self.section.scheduler == "dpm++":
            if not (isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
                    and pipe.scheduler.config.algorithm_type == "dpmsolver++"):
                pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config,
                                                                         algorithm_type="dpmsolver++")

    def _prepare(self, pipe) -> None:
        freeu = self.section.freeu
        if freeu is None:
            pipe.disable_freeu()
        else:
            pipe.enable_freeu(s1=freeu.s1, s2=freeu.s2, b1=freeu.b1, b2=freeu.b2)
        super()._prepare(pipe)

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
    """shot -> frames with TextToVideoSDPipeline's components (``[video]``: model, width,
    height, frames, steps, scheduler, guidance, guidance_fraction, negative_prompt, device and
    the memory switches)."""

    pipeline_class = "TextToVideoSDPipeline"
    what = "video"

    def __init__(self, section: ZeroscopeVideoSection):
        super().__init__(section)

    def render(self, shot: Shot, seconds: float, progress: Progress | None = None, *, light: bool = False) -> Frames:
        count = light_frame_count(self.section.frames) if light else self.section.frames
        array = self._draw(shot, count, self.section.steps, light, progress, num_frames=count)
        return Frames(array, fps=count / seconds)

    def _denoise(self, pipe, shot: Shot, on_step: OnStep | None, *, num_frames: int):
        section = self.section
        return text_to_video(
            pipe, prompt=shot.prompt, negative_prompt=section.negative_prompt or None, num_frames=num_frames,
            height=section.height, width=section.width, steps=section.steps, guidance=section.guidance,
            guidance_fraction=section.guidance_fraction, generator=self._generator(shot.seed), on_step=on_step)


class ZeroscopeUpscaler(_ZeroscopeStage):
    """frames -> the same frames at ``[upscale] width x height`` with VideoToVideoSDPipeline's
    components and the XL weights: the frames are resized (Lanczos), then re-drawn from the
    shot's prompt at ``strength``."""

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
        array = self._draw(shot, len(frames.array), run_steps, light, progress, video=video, schedule_steps=steps)
        return Frames(array, fps=frames.fps)

    def _denoise(self, pipe, shot: Shot, on_step: OnStep | None, *, video: list, schedule_steps: int):
        section = self.section
        return video_to_video(
            pipe, prompt=shot.prompt, video=video, strength=section.strength,
            negative_prompt=section.negative_prompt or None, steps=schedule_steps, guidance=section.guidance,
            guidance_fraction=section.guidance_fraction, generator=self._generator(shot.seed), on_step=on_step)

"""The Zeroscope denoise loops, written over a diffusers pipeline's own components.

diffusers 0.42 keeps ``TextToVideoSDPipeline`` and ``VideoToVideoSDPipeline`` under
``pipelines/deprecated``: their ``__call__`` guides every step or none, and its old
``callback(step, timestep, latents)`` cannot change the UNet's batch. The loops here are
those ``__call__``s (same prompt encoding, latents, scheduler calls, decoding and offload
hooks, through the pipeline's own methods; a weighted prompt is encoded with compel,
``webtv/producer/weighting.py``) with one lever added: classifier-free guidance
for the first ``guided`` steps only. A guided step runs the UNet on a batch of 2 (negative
and positive prompt); the steps after it run it on the positive prompt alone, half the
work. With ``guided == steps`` the result is the pipeline's own.

The plan functions (``guided_steps``, ``partial_steps``, ``unet_batches``) are what the loops
run and what the FLOP budget (``bench/flops.py``) counts, so the two cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from webtv.producer.weighting import encode_prompts

OnStep = Callable[[int], None]
"""on_step(index of the denoising step just done, from 0)."""


def guided_steps(steps: int, guidance: float, fraction: float) -> int:
    """How many of ``steps`` denoising steps run with classifier-free guidance: the first
    ceil(steps x fraction); none when ``guidance`` <= 1 (diffusers' rule: 1 is no guidance)."""
    if guidance <= 1.0 or fraction <= 0.0:
        return 0
    return min(steps, math.ceil(steps * fraction - 1e-9))


def partial_steps(steps: int, strength: float) -> tuple[int, int]:
    """A video-to-video pass at ``strength``: (steps to schedule, steps it runs). The pipeline
    runs int(scheduled x strength) of its schedule's last steps; the schedule is lengthened
    when ``steps`` is too short for that to be at least one."""
    scheduled = max(steps, math.ceil(1.0 / strength))
    return scheduled, max(1, min(int(scheduled * strength), scheduled))


def unet_batches(steps: int, guidance: float, fraction: float) -> list[int]:
    """The UNet's batch at each step of a loop over ``steps`` steps: 2 while guided, then 1."""
    guided = guided_steps(steps, guidance, fraction)
    return [2] * guided + [1] * (steps - guided)


def text_to_video(pipe, *, prompt: str, negative_prompt: str | None, num_frames: int, height: int, width: int,
                  steps: int, guidance: float, guidance_fraction: float, generator,
                  on_step: OnStep | None = None) -> np.ndarray:
    """``TextToVideoSDPipeline.__call__`` with guidance for the first fraction of the steps;
    float frames in [0, 1], shape (1, frames, height, width, 3)."""
    import torch

    with torch.no_grad():
        device = pipe._execution_device
        guided = guided_steps(steps, guidance, guidance_fraction)
        positive, negative = encode_prompts(pipe, prompt, negative_prompt, device, guided > 0)
        pipe.scheduler.set_timesteps(steps, device=device)
        latents = pipe.prepare_latents(1, pipe.unet.config.in_channels, num_frames, height, width, positive.dtype,
                                       device, generator)
        latents = _denoise(pipe, latents, pipe.scheduler.timesteps, positive, negative, guidance, guided,
                           pipe.prepare_extra_step_kwargs(generator, 0.0), on_step)
        return _decode(pipe, latents)


def video_to_video(pipe, *, prompt: str, video: list, negative_prompt: str | None, strength: float, steps: int,
                   guidance: float, guidance_fraction: float, generator, on_step: OnStep | None = None) -> np.ndarray:
    """``VideoToVideoSDPipeline.__call__`` (``video`` a list of PIL images) with guidance for
    the first fraction of the steps it runs; ``steps`` is the schedule's length, of which it
    runs the last int(steps x strength). Float frames in [0, 1], (1, frames, h, w, 3)."""
    import torch

    with torch.no_grad():
        device = pipe._execution_device
        pipe.scheduler.set_timesteps(steps, device=device)
        timesteps, run = pipe.get_timesteps(steps, strength, device)
        guided = guided_steps(run, guidance, guidance_fraction)
        positive, negative = encode_prompts(pipe, prompt, negative_prompt, device, guided > 0)
        frames = pipe.video_processor.preprocess_video(video)
        latents = pipe.prepare_latents(frames, timesteps[:1], 1, positive.dtype, device, generator)
        latents = _denoise(pipe, latents, timesteps, positive, negative, guidance, guided,
                           pipe.prepare_extra_step_kwargs(generator, 0.0), on_step)
        return _decode(pipe, latents)


def _denoise(pipe, latents, timesteps, positive, negative, guidance: float, guided: int,
             extra: dict[str, Any], on_step: OnStep | None):
    import torch

    both = torch.cat([negative, positive]) if guided else None
    for index, t in enumerate(timesteps):
        cfg = index < guided
        model_input = pipe.scheduler.scale_model_input(torch.cat([latents] * 2) if cfg else latents, t)
        noise = pipe.unet(model_input, t, encoder_hidden_states=both if cfg else positive, return_dict=False)[0]
        if cfg:
            uncond, text = noise.chunk(2)
            noise = uncond + guidance * (text - uncond)
        # the scheduler steps frames as a batch of images, as the pipelines do
        b, c, f, h, w = latents.shape
        latents = pipe.scheduler.step(_images(noise), t, _images(latents), **extra).prev_sample
        latents = latents.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
        if on_step:
            on_step(index)
    return latents


def _images(latents):
    b, c, f, h, w = latents.shape
    return latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def _decode(pipe, latents) -> np.ndarray:
    video = pipe.decode_latents(latents)
    frames = pipe.video_processor.postprocess_video(video=video, output_type="np")
    pipe.maybe_free_model_hooks()
    return frames

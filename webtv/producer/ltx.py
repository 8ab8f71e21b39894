"""LTX-Video: text -> video with diffusers' ``LTXConditionPipeline`` (no conditioning frames).

``LTXConditionPipeline`` rather than ``LTXPipeline``: it is the pipeline the distilled
checkpoints (``Lightricks/LTX-Video-0.9.7-distilled``, ``Lightricks/LTX-Video-0.9.8-13B-distilled``)
are published for, and the one that takes their custom ``timesteps`` (``LTXPipeline``
always passes its own sigmas beside them, which the scheduler refuses). It runs
``Lightricks/LTX-Video-0.9.7-dev`` and ``-0.9.5`` on text alone as well. The 0.9.0 and 0.9.1
checkpoints (``Lightricks/LTX-Video``, ``-0.9.1``) are LTXPipeline's: their scheduler shifts
its schedule with the resolution (``use_dynamic_shifting``), which LTXConditionPipeline does
not drive, so they are refused at load, naming why.

The model draws ``[video] frames`` frames at ``width x height``, told that they play at
``frame_rate``; with ``frame_rate`` = house.fps and ``frames`` = clip_seconds x fps + 1,
``[interpolation] backend = "none"`` airs them one for one. The sizes are the model's: the
VAE turns 32x32 pixels and 8 frames (after the first) into one latent, so width and height
are multiples of 32 and frames 8k+1; ``webtv.config.LtxVideoSection`` refuses others at load,
and a loaded model whose VAE packs otherwise is refused here, naming what it packs.

Loading, device, CPU offload, progress and seeded noise are DiffusionStage's (bf16 on CUDA,
what the checkpoints are published at). Memory: ``vae_tiling`` decodes the latents in
overlapping tiles. ``light=True`` (the retry after a failure) turns tiling and CPU offload on
and draws about half the frames (still 8k+1, at least 9).
"""

from __future__ import annotations

from webtv.config import LTX_FRAME_GROUP, LTX_SIZE_MULTIPLE, LtxVideoSection
from webtv.director.base import Shot
from webtv.producer.base import Frames, Progress
from webtv.producer.diffusion import DiffusionStage


def light_ltx_frames(frames: int) -> int:
    """Frames drawn on a light retry: about half, still 8k+1, at least 9 (never more than asked)."""
    half = (frames - 1) // 2 // LTX_FRAME_GROUP * LTX_FRAME_GROUP + 1
    return min(frames, max(half, LTX_FRAME_GROUP + 1))


class LtxVideo(DiffusionStage):
    """shot -> frames with LTXConditionPipeline (``[video]``: model, width, height, frames,
    frame_rate, steps, timesteps, guidance, negative_prompt, decode_timestep,
    decode_noise_scale, device, cpu_offload, vae_tiling)."""

    pipeline_class = "LTXConditionPipeline"
    what = "video"
    cuda_dtype = "bfloat16"

    def __init__(self, section: LtxVideoSection):
        super().__init__(section)

    def _prepare(self, pipe) -> None:
        packs = (pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio)
        if packs != (LTX_SIZE_MULTIPLE, LTX_FRAME_GROUP):
            raise RuntimeError(
                f"video model {self.section.model!r}: its VAE packs {packs[0]}x{packs[0]} pixels and {packs[1]} "
                f"frames into a latent; the ltx backend checks sizes for LTX-Video's {LTX_SIZE_MULTIPLE}x"
                f"{LTX_SIZE_MULTIPLE} and {LTX_FRAME_GROUP}")
        if pipe.scheduler.config.get("use_dynamic_shifting"):
            raise RuntimeError(
                f"video model {self.section.model!r}: its scheduler shifts with the resolution, as LTX-Video 0.9.0 "
                f"and 0.9.1 (made for LTXPipeline) do; the ltx backend runs LTXConditionPipeline's checkpoints, "
                f"0.9.5 and later")
        super()._prepare(pipe)

    def _memory_switches(self, pipe, light: bool) -> None:
        if self.section.vae_tiling or light:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()

    def render(self, shot: Shot, seconds: float, progress: Progress | None = None, *, light: bool = False) -> Frames:
        section = self.section
        count = light_ltx_frames(section.frames) if light else section.frames
        array = self._draw(shot, count, section.steps, light, progress, width=section.width, height=section.height,
                           num_frames=count, frame_rate=section.frame_rate, num_inference_steps=section.steps,
                           timesteps=list(section.timesteps) or None, decode_timestep=section.decode_timestep,
                           decode_noise_scale=section.decode_noise_scale)
        return Frames(array, fps=count / seconds)

"""Each Zeroscope speed lever does what it says, seen from inside the UNet (tiny random
pipelines on the CPU): how many times it runs, on what batch, at which timesteps, over how
many frames."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")

from tests.test_zeroscope import SHOT, upscale_section, video_section  # noqa: E402
from tests.tiny_film import tiny_film  # noqa: E402
from tests.tiny_zeroscope import tiny_text_to_video, tiny_video_to_video  # noqa: E402
from webtv.config import FilmSection, HouseSection  # noqa: E402
from webtv.producer import ClipPipeline, Stages  # noqa: E402
from webtv.producer.base import Frames  # noqa: E402
from webtv.producer.denoise import guided_steps, partial_steps, unet_batches  # noqa: E402
from webtv.producer.interpolate import FilmInterpolator  # noqa: E402
from webtv.producer.zeroscope import ZeroscopeUpscaler, ZeroscopeVideo  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zeroscope-levers")
    return {"t2v": tiny_text_to_video(folder / "t2v"), "xl": tiny_video_to_video(folder / "xl")}


class UNetCalls:
    """What the UNet of a stage was called with: one (batch, frames, timestep) per call."""

    def __init__(self, stage) -> None:
        stage._load()
        self.calls: list[tuple[int, int, int]] = []
        self.pipe = stage.pipeline
        self.pipe.unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module, args, kwargs):
        sample, timestep = args[0], args[1]
        self.calls.append((sample.shape[0], sample.shape[2], int(timestep)))

    @property
    def batches(self) -> list[int]:
        return [batch for batch, _, _ in self.calls]


@pytest.mark.parametrize("steps, fraction, batches", [
    (4, 1.0, [2, 2, 2, 2]),
    (4, 0.5, [2, 2, 1, 1]),
    (5, 0.3, [2, 2, 1, 1, 1]),   # ceil(1.5) guided steps
    (4, 0.0, [1, 1, 1, 1]),
])
def test_video_guidance_only_for_the_first_fraction_of_steps(models, steps, fraction, batches):
    video = ZeroscopeVideo(video_section(models["t2v"], steps=steps, guidance_fraction=fraction))
    unet = UNetCalls(video)
    frames = video.render(SHOT, seconds=2.0)
    assert unet.batches == batches == unet_batches(steps, 7.5, fraction)
    assert frames.array.shape == (4, 32, 40, 3)


def test_upscale_guidance_fraction_counts_the_steps_it_runs(models):
    # strength 0.6 of 10 scheduled steps runs 6; half of those are guided
    upscaler = ZeroscopeUpscaler(upscale_section(models["xl"], steps=10, strength=0.6, guidance_fraction=0.5))
    unet = UNetCalls(upscaler)
    small = Frames(np.random.default_rng(0).integers(0, 256, (4, 32, 40, 3), dtype=np.uint8), fps=2.0)
    upscaler.upscale(small, SHOT)
    assert unet.batches == [2, 2, 2, 1, 1, 1]


def test_full_guidance_is_the_pipelines_own_call(models):
    """The recipe's loop with every step guided gives the deprecated pipeline's frames exactly."""
    video = ZeroscopeVideo(video_section(models["t2v"], steps=3))
    ours = video.render(SHOT, seconds=2.0).array
    section = video.section
    theirs = video.pipeline(
        prompt=SHOT.prompt, negative_prompt=section.negative_prompt, num_frames=section.frames,
        height=section.height, width=section.width, num_inference_steps=section.steps,
        guidance_scale=section.guidance, generator=video._generator(SHOT.seed), output_type="np",
    ).frames[0]
    np.testing.assert_array_equal(ours, np.rint(np.clip(theirs, 0, 1) * 255).astype(np.uint8))
    # and dropping guidance for the later steps does change the picture
    truncated = ZeroscopeVideo(video_section(models["t2v"], steps=3, guidance_fraction=0.34))
    assert not np.array_equal(truncated.render(SHOT, seconds=2.0).array, ours)


def test_dpm_solver_runs_one_unet_call_per_step_over_the_whole_schedule(models):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    video = ZeroscopeVideo(video_section(models["t2v"], steps=5, guidance=1.0))
    unet = UNetCalls(video)
    video.render(SHOT, seconds=2.0)
    assert isinstance(video.pipeline.scheduler, DPMSolverMultistepScheduler)
    assert video.pipeline.scheduler.config.algorithm_type == "dpmsolver++"
    timesteps = [t for _, _, t in unet.calls]
    assert len(timesteps) == 5 and timesteps == sorted(timesteps, reverse=True)
    assert timesteps[0] >= 799 and timesteps[-1] <= 200  # 5 steps span the 1000-step schedule

    own = ZeroscopeVideo(video_section(models["t2v"], steps=5, guidance=1.0, scheduler="model"))
    own._load()
    assert type(own.pipeline.scheduler) is DDIMScheduler  # what the checkpoint ships


@pytest.mark.parametrize("steps, strength", [(8, 0.25), (3, 0.2)])
def test_xl_pass_runs_the_last_strength_share_of_its_steps(models, steps, strength):
    upscaler = ZeroscopeUpscaler(upscale_section(models["xl"], steps=steps, strength=strength, guidance=1.0))
    unet = UNetCalls(upscaler)
    small = Frames(np.random.default_rng(0).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8), fps=2.0)
    out = upscaler.upscale(small, SHOT)
    scheduled, run = partial_steps(steps, strength)
    assert len(unet.calls) == run == max(1, int(scheduled * strength))
    # it starts part-way down the noise schedule: the lower the strength, the lower the first timestep
    assert unet.calls[0][2] < 1000 * strength + 1000 / scheduled
    assert out.array.shape == (2, 48, 64, 3)


def test_fewer_drawn_frames_are_stretched_to_the_house_rate_by_film(models):
    video = ZeroscopeVideo(video_section(models["t2v"], frames=3, steps=1))
    unet = UNetCalls(video)
    film = FilmInterpolator(FilmSection(device="cpu"))
    film.use_model(tiny_film())
    house = HouseSection(fps=8)  # its size is the encoder's business, not used here
    pipeline = ClipPipeline(Stages(video=video, audio=None, interpolate=film), house, 2.0)
    frames = pipeline.frames(SHOT)
    assert {drawn for _, drawn, _ in unet.calls} == {3}  # the UNet drew 3 frames
    assert frames.array.shape == (16, 32, 40, 3) and frames.fps == 8  # 2 s at 8 fps
    assert len(np.unique(frames.array.reshape(16, -1), axis=0)) > 3  # FILM made new frames


def test_guided_steps_rules():
    assert guided_steps(20, 9.0, 0.5) == 10
    assert guided_steps(20, 1.0, 1.0) == 0  # guidance 1 is no guidance
    assert guided_steps(3, 9.0, 0.01) == 1
    assert partial_steps(40, 0.6) == (40, 24)
    assert partial_steps(2, 0.25) == (4, 1)

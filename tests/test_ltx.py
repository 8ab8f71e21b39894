"""The LTX-Video stage on a tiny random pipeline written with save_pretrained (CPU, no hub)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tests.tiny_ltx import tiny_components, tiny_ltx  # noqa: E402
from webtv.config import LtxVideoSection  # noqa: E402
from webtv.director.base import Shot  # noqa: E402
from webtv.producer.ltx import LtxVideo, light_ltx_frames  # noqa: E402

SHOT = Shot(prompt="a lighthouse in a storm, waves breaking, slow push in", seed=7, theme="sea")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_ltx(tmp_path_factory.mktemp("ltx") / "LTX-Video-0.9.8-13B-distilled")


def section(model, **overrides) -> LtxVideoSection:
    settings = dict(model=str(model), width=64, height=32, frames=17, frame_rate=24, steps=2, timesteps=[], guidance=3.0,
                    negative_prompt="blurry", device="cpu")
    settings.update(overrides)
    return LtxVideoSection(**settings)


@pytest.fixture(scope="module")
def video(model):
    return LtxVideo(section(model))


@pytest.fixture(scope="module")
def clip(video):
    return video.render(SHOT, seconds=17 / 24)


def test_render_gives_the_configured_frames_at_the_models_rate(clip):
    assert clip.array.dtype == np.uint8
    assert clip.array.shape == (17, 32, 64, 3)
    assert clip.fps == pytest.approx(24.0)  # 17 frames over 17/24 s: the rate the model was told
    assert clip.array.std() > 1.0 and len(np.unique(clip.array)) > 16  # not a constant picture


def test_same_seed_same_frames_other_seed_other_frames(video, clip):
    np.testing.assert_array_equal(video.render(SHOT, seconds=1.0).array, clip.array)
    other = video.render(Shot(prompt=SHOT.prompt, seed=8, theme=SHOT.theme), seconds=1.0)
    assert np.abs(other.array.astype(int) - clip.array.astype(int)).mean() > 1.0
    assert video.loads == 1
    assert type(video.pipeline).__name__ == "LTXConditionPipeline"


def test_progress_runs_to_one(video):
    seen = []
    video.render(SHOT, seconds=1.0, progress=lambda stage, fraction: seen.append((stage, fraction)))
    assert {stage for stage, _ in seen} == {"video"}
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert len(set(fractions)) == 2 + 2  # start, one per step (2 steps), done


def test_distilled_schedule_and_decode_settings_reach_the_pipeline(model, monkeypatch):
    import diffusers

    seen = {}
    original = diffusers.LTXConditionPipeline.__call__

    def spy(pipe, **kwargs):
        seen.update(kwargs)
        out = original(pipe, **kwargs)
        seen["timesteps_run"] = pipe.scheduler.timesteps.tolist()
        return out

    monkeypatch.setattr(diffusers.LTXConditionPipeline, "__call__", spy)
    schedule = [1000, 993, 987, 981, 975, 909, 725, 0.03]
    backend = LtxVideo(section(model, frames=9, steps=8, timesteps=schedule, guidance=1.0, decode_timestep=0.05,
                               decode_noise_scale=0.025))
    frames = backend.render(SHOT, seconds=1.0)
    assert frames.array.shape == (9, 32, 64, 3)
    assert seen["timesteps"] == schedule and seen["timesteps_run"] == pytest.approx(schedule)
    assert (seen["guidance_scale"], seen["decode_timestep"], seen["decode_noise_scale"]) == (1.0, 0.05, 0.025)
    assert seen["frame_rate"] == 24 and seen["num_frames"] == 9


def test_light_draws_about_half_the_frames_with_tiling_and_back(model):
    backend = LtxVideo(section(model, frames=25, cpu_offload=True))
    full = backend.render(SHOT, seconds=1.0)
    assert full.array.shape[0] == 25 and backend.pipeline.vae.use_tiling is False
    light = backend.render(SHOT, seconds=1.0, light=True)
    assert light.array.shape == (9, 32, 64, 3) and light.seconds == pytest.approx(1.0)
    assert backend.pipeline.vae.use_tiling is True
    backend.render(SHOT, seconds=1.0)
    assert backend.pipeline.vae.use_tiling is False


@pytest.mark.parametrize("frames, light", [(9, 9), (17, 9), (25, 9), (33, 17), (73, 33), (161, 81), (257, 129)])
def test_light_frame_count_keeps_8k_plus_1(frames, light):
    assert light_ltx_frames(frames) == light
    assert (light - 1) % 8 == 0


def test_a_vae_that_packs_otherwise_is_refused_naming_it():
    import diffusers

    pipe = diffusers.LTXConditionPipeline(**tiny_components())
    pipe.vae_spatial_compression_ratio = 16
    with pytest.raises(RuntimeError, match=r"packs 16x16 pixels and 8 frames.*32x32 and 8"):
        LtxVideo(section("/nowhere/not-loaded")).use_pipeline(pipe)


def test_a_checkpoint_made_for_ltxpipeline_is_refused_naming_why():
    import diffusers

    components = tiny_components()
    components["scheduler"] = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
        components["scheduler"].config, use_dynamic_shifting=True)  # as LTX-Video 0.9.0 and 0.9.1 ship it
    with pytest.raises(RuntimeError, match=r"shifts with the resolution.*0\.9\.5 and later"):
        LtxVideo(section("/nowhere/not-loaded")).use_pipeline(diffusers.LTXConditionPipeline(**components))


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="video model.*no-such-ltx.*no such folder"):
        LtxVideo(section(tmp_path / "no-such-ltx")).render(SHOT, seconds=1.0)

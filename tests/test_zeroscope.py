"""The Zeroscope stages on tiny random pipelines written with save_pretrained (CPU, no hub)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tests.tiny_zeroscope import tiny_text_to_video, tiny_video_to_video  # noqa: E402
from webtv.config import ZeroscopeUpscaleSection, ZeroscopeVideoSection  # noqa: E402
from webtv.director.base import Shot  # noqa: E402
from webtv.producer.base import Frames  # noqa: E402
from webtv.producer.base import light_frame_count  # noqa: E402
from webtv.producer.zeroscope import ZeroscopeUpscaler, ZeroscopeVideo  # noqa: E402

SHOT = Shot(prompt="a red fox running through fresh snow, slow pan left", seed=7, theme="winter")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zeroscope")
    return {"t2v": tiny_text_to_video(folder / "t2v"), "xl": tiny_video_to_video(folder / "xl")}


def video_section(model, **overrides) -> ZeroscopeVideoSection:
    settings = dict(backend="zeroscope", model=str(model), width=40, height=32, frames=4, steps=2, guidance=7.5,
                    negative_prompt="blurry", device="cpu")
    settings.update(overrides)
    return ZeroscopeVideoSection(**settings)


def upscale_section(model, **overrides) -> ZeroscopeUpscaleSection:
    settings = dict(backend="zeroscope", model=str(model), width=64, height=48, strength=0.6, steps=4, guidance=7.5,
                    device="cpu")
    settings.update(overrides)
    return ZeroscopeUpscaleSection(**settings)


@pytest.fixture(scope="module")
def video(models):
    """One warm backend shared by the tests that only render."""
    return ZeroscopeVideo(video_section(models["t2v"]))


@pytest.fixture(scope="module")
def clip(video):
    return video.render(SHOT, seconds=2.0)


def test_render_gives_the_configured_frames(clip):
    assert isinstance(clip, Frames)
    assert clip.array.dtype == np.uint8
    assert clip.array.shape == (4, 32, 40, 3)
    assert clip.fps == pytest.approx(2.0)  # 4 frames over 2 s of airtime
    assert clip.seconds == pytest.approx(2.0)
    assert clip.array.std() > 1.0  # not a constant picture
    assert len(np.unique(clip.array)) > 16


def test_same_seed_same_frames_other_seed_other_frames(video, clip):
    again = video.render(SHOT, seconds=2.0)
    np.testing.assert_array_equal(again.array, clip.array)
    other = video.render(Shot(prompt=SHOT.prompt, seed=8, theme=SHOT.theme), seconds=2.0)
    assert other.array.shape == clip.array.shape
    assert np.abs(other.array.astype(int) - clip.array.astype(int)).mean() > 1.0


def test_weights_load_once_and_stay(video, clip):
    pipe = video.pipeline
    video.render(SHOT, seconds=1.0)
    assert video.pipeline is pipe
    assert video.loads == 1
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"


def test_two_threads_load_once(models, monkeypatch):
    import diffusers

    calls = []
    original = diffusers.TextToVideoSDPipeline.from_pretrained

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(diffusers.TextToVideoSDPipeline, "from_pretrained", counting)
    backend = ZeroscopeVideo(video_section(models["t2v"], frames=2, steps=1))
    results, errors = [], []

    def render(seed):
        try:
            results.append(backend.render(Shot(prompt="waves", seed=seed, theme="sea"), seconds=1.0))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=render, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert [r.array.shape for r in results] == [(2, 32, 40, 3)] * 2
    assert len(calls) == 1
    assert backend.loads == 1


def test_light_renders_fewer_frames_with_every_switch_on(models):
    backend = ZeroscopeVideo(video_section(models["t2v"], vae_slicing=False, forward_chunking=False, cpu_offload=True))
    full = backend.render(SHOT, seconds=2.0)
    pipe = backend.pipeline
    assert pipe.vae.use_slicing is False
    assert not _chunked(pipe.unet)
    light = backend.render(SHOT, seconds=2.0, light=True)
    assert light.array.shape == (2, 32, 40, 3)
    assert len(light.array) < len(full.array)
    assert light.seconds == pytest.approx(2.0)  # same airtime at a lower rate
    assert pipe.vae.use_slicing is True
    assert _chunked(pipe.unet)
    backend.render(SHOT, seconds=2.0)  # back to the configured switches
    assert pipe.vae.use_slicing is False
    assert not _chunked(pipe.unet)


def _chunked(unet) -> bool:
    return any(getattr(module, "_chunk_size", None) == 1 for module in unet.modules())


@pytest.mark.parametrize("frames, light", [(24, 12), (40, 20), (12, 8), (8, 8), (7, 3), (4, 2), (3, 2), (2, 2)])
def test_light_frame_count(frames, light):
    assert light_frame_count(frames) == light


def test_progress_runs_to_one(video):
    seen = []
    video.render(SHOT, seconds=2.0, progress=lambda stage, fraction: seen.append((stage, fraction)))
    assert {stage for stage, _ in seen} == {"video"}
    fractions = [fraction for _, fraction in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert len(set(fractions)) == 2 + 2  # start, one per step (2 steps), done
    assert all(0.0 <= fraction <= 1.0 for fraction in fractions)


def test_upscale_gives_the_configured_size(models, clip):
    upscaler = ZeroscopeUpscaler(upscale_section(models["xl"]))
    seen = []
    big = upscaler.upscale(clip, SHOT, progress=lambda stage, fraction: seen.append((stage, fraction)))
    assert big.array.dtype == np.uint8
    assert big.array.shape == (4, 48, 64, 3)
    assert big.fps == clip.fps
    assert big.array.std() > 1.0
    fractions = [fraction for stage, fraction in seen if stage == "upscale"]
    assert len(fractions) == len(seen)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert len(set(fractions)) == 2 + 2  # int(4 steps * 0.6) = 2 steps run
    again = upscaler.upscale(clip, SHOT, light=True)
    assert again.array.shape == big.array.shape and again.fps == clip.fps
    assert upscaler.loads == 1


def test_upscale_with_too_few_steps_for_its_strength_still_runs(models):
    frames = Frames(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), fps=1.0)
    upscaler = ZeroscopeUpscaler(upscale_section(models["xl"], steps=1, strength=0.3, width=32, height=24))
    big = upscaler.upscale(frames, SHOT)
    assert big.array.shape == (2, 24, 32, 3) and big.fps == 1.0


def test_missing_model_folder_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    backend = ZeroscopeVideo(video_section(missing))
    with pytest.raises(RuntimeError, match="no-such-model") as caught:
        backend.render(SHOT, seconds=1.0)
    assert "video model" in str(caught.value)
    upscaler = ZeroscopeUpscaler(upscale_section(missing))
    with pytest.raises(RuntimeError, match="upscale model.*no-such-model"):
        upscaler.upscale(Frames(np.zeros((2, 8, 8, 3), np.uint8), 1.0), SHOT)


def test_folder_without_a_pipeline_is_named(tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="empty-model.*model_index.json"):
        ZeroscopeVideo(video_section(empty)).render(SHOT, seconds=1.0)


@pytest.mark.parametrize("model, local", [
    ("cerspense/zeroscope_v2_576w", False),
    ("cerspense/zeroscope_v2_XL", False),
    ("/models/zeroscope_v2_XL", True),
    ("./zeroscope", True),
    ("~/models/xl", True),
    ("models/zeroscope/xl", True),
])
def test_hub_ids_pass_and_folders_are_checked(model, local):
    from webtv.producer.devices import model_source

    if local:  # none of these folders exists: named at once, not looked up on the hub
        with pytest.raises(RuntimeError, match="no such folder"):
            model_source(model, "video", "model_index.json")
    else:
        assert model_source(model, "video", "model_index.json") == model


def test_a_pipeline_built_in_code_can_be_handed_in():
    import diffusers

    from tests.tiny_zeroscope import tiny_components

    backend = ZeroscopeVideo(video_section("/nowhere/not-loaded"))
    backend.use_pipeline(diffusers.TextToVideoSDPipeline(**tiny_components()))
    clip = backend.render(SHOT, seconds=4.0)
    assert clip.array.shape == (4, 32, 40, 3) and clip.fps == 1.0
    assert backend.loads == 0
    assert type(backend.pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"

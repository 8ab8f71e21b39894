"""Weighted prompts reach the Zeroscope UNet as compel's embeddings, and FreeU changes what
the UNet draws (tiny random pipelines on the CPU, seen from inside the UNet)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")

from tests.test_zeroscope import upscale_section, video_section  # noqa: E402
from tests.tiny_zeroscope import tiny_text_to_video, tiny_video_to_video  # noqa: E402
from webtv.config import FreeUSection  # noqa: E402
from webtv.director.base import Shot  # noqa: E402
from webtv.producer.base import Frames  # noqa: E402
from webtv.producer.zeroscope import ZeroscopeUpscaler, ZeroscopeVideo  # noqa: E402
from webtv.prompt_weights import PromptWeightError  # noqa: E402

PROMPT = "a (red fox:{w}) running through fresh snow"
FREEU = FreeUSection(s1=0.9, s2=0.2, b1=1.5, b2=1.6)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zeroscope-weights")
    return {"t2v": tiny_text_to_video(folder / "t2v"), "xl": tiny_video_to_video(folder / "xl")}


@pytest.fixture(scope="module")
def video(models):
    return ZeroscopeVideo(video_section(models["t2v"], steps=1))


def drawn(stage, shot: Shot, draw) -> tuple[np.ndarray, np.ndarray]:
    """(frames, the positive prompt embeddings the UNet was given on its first call)."""
    stage._load()
    seen = []
    hook = stage.pipeline.unet.register_forward_pre_hook(
        lambda _m, _args, kwargs: seen.append(kwargs["encoder_hidden_states"][-1].clone()), with_kwargs=True)
    try:
        frames = draw(shot)
    finally:
        hook.remove()
    return frames.array, seen[0].numpy()


def moved(weighted: np.ndarray, plain: np.ndarray) -> list[int]:
    """The token positions whose embedding differs between the two."""
    return list(np.flatnonzero(np.abs(weighted - plain).max(axis=-1) > 1e-6))


def fox_tokens(stage) -> list[int]:
    """The positions of "red fox" in PROMPT's tokens: after <start> and "a"."""
    tokenizer = stage.pipeline.tokenizer
    first = 1 + len(tokenizer.tokenize("a"))
    return list(range(first, first + len(tokenizer.tokenize("red fox"))))


def test_weighted_tokens_contribution_scales_with_the_weight(video):
    render = lambda shot: video.render(shot, seconds=2.0)  # noqa: E731
    plain_frames, plain = drawn(video, Shot(prompt=PROMPT.format(w=1), seed=3, theme="winter"), render)
    up_frames, up = drawn(video, Shot(prompt=PROMPT.format(w=1.3), seed=3, theme="winter"), render)
    upper_frames, upper = drawn(video, Shot(prompt=PROMPT.format(w=1.6), seed=3, theme="winter"), render)
    assert moved(up, plain) == fox_tokens(video)  # only the tokens of "red fox"
    # ... and as far again at 1.6 as at 1.3: empty + w x (embedding - empty)
    np.testing.assert_allclose(upper - plain, 2 * (up - plain), atol=1e-5)
    # the weighted prompt renders, and draws something else than the plain one
    assert up_frames.shape == plain_frames.shape == (4, 32, 40, 3)
    assert not np.array_equal(up_frames, plain_frames) and not np.array_equal(upper_frames, up_frames)


def test_the_upscale_pass_gets_the_weighted_embeddings_too(models):
    upscaler = ZeroscopeUpscaler(upscale_section(models["xl"], steps=2, strength=0.5))
    small = Frames(np.random.default_rng(0).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8), fps=1.0)
    upscale = lambda shot: upscaler.upscale(small, shot)  # noqa: E731
    _, plain = drawn(upscaler, Shot(prompt=PROMPT.format(w=1), seed=3, theme="winter"), upscale)
    _, up = drawn(upscaler, Shot(prompt=PROMPT.format(w=1.5), seed=3, theme="winter"), upscale)
    assert moved(up, plain) == fox_tokens(upscaler)


def test_a_malformed_weight_is_an_error_naming_the_prompt(video):
    with pytest.raises(PromptWeightError, match=r"prompt 'a \(red fox:lots\) running'.*'lots'.*not a number"):
        video.render(Shot(prompt="a (red fox:lots) running", seed=1, theme="winter"), seconds=2.0)


def test_freeu_changes_what_the_unet_draws(models, video):
    shot = Shot(prompt="a red fox running through fresh snow", seed=5, theme="winter")
    off = video.render(shot, seconds=2.0).array
    on = ZeroscopeVideo(video_section(models["t2v"], steps=1, freeu=FREEU))
    assert not np.array_equal(on.render(shot, seconds=2.0).array, off)
    assert on.pipeline.unet.up_blocks[0].b1 == 1.5 and on.pipeline.unet.up_blocks[1].s2 == 0.2
    assert getattr(video.pipeline.unet.up_blocks[0], "b1", None) is None  # off by default
    small = Frames(np.random.default_rng(1).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8), fps=1.0)
    plain = ZeroscopeUpscaler(upscale_section(models["xl"], steps=2, strength=0.5)).upscale(small, shot).array
    freeu = ZeroscopeUpscaler(upscale_section(models["xl"], steps=2, strength=0.5, freeu=FREEU))
    assert not np.array_equal(freeu.upscale(small, shot).array, plain)

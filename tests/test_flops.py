"""The FLOP budget (bench/flops.py): the counter against FLOPs known in closed form, the
budget's arithmetic, and the commented presets of channel.toml."""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("torch")

from bench.flops import (  # noqa: E402
    LTX_2B_DISTILLED, SUSTAINED, Budget, Line, MetaModels, count_flops, ltx, preset_tables, with_preset,
)
from tests.daemon import REPO  # noqa: E402
from webtv.config import Config, LtxVideoSection  # noqa: E402

pytestmark = pytest.mark.fast


def test_counter_matches_closed_form_flops_on_meta_tensors():
    """A convolution, two linear layers and a batched matrix product, on meta tensors (no
    memory): 2 x multiply-adds each, summed."""
    import torch
    from torch import nn

    n, cin, cout, k, h, w = 3, 8, 16, 3, 20, 24
    d_in, d_hidden, d_out = 16 * 20 * 24, 64, 10

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, padding=1)
            self.fc1, self.fc2 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_out)

        def forward(self, x, a, b):
            y = self.conv(x).flatten(1)
            return self.fc2(torch.relu(self.fc1(y))), torch.bmm(a, b)

    with torch.device("meta"):
        model = Small()
        x = torch.empty(n, cin, h, w)
        a, b = torch.empty(5, 7, 11), torch.empty(5, 11, 13)
    conv = 2 * n * cout * h * w * cin * k * k
    linear = 2 * n * (d_in * d_hidden + d_hidden * d_out)
    bmm = 2 * 5 * 7 * 11 * 13
    assert count_flops(lambda: model(x, a, b)) == conv + linear + bmm


def test_budget_rates_state_the_assumption():
    budget = Budget(3.0, [Line("video", "step", 10, int(SUSTAINED * 0.3)), Line("music", "decoder", 1, 0)])
    assert budget.total == pytest.approx(SUSTAINED * 3.0)  # 3 s of work at the sustained rate
    line = budget.rate(budget.total)
    assert "1.00x real time (one H100 at 40% of 790 TFLOP/s bf16)" in line
    assert f"{SUSTAINED * 3 / 1e15:.4f} PFLOP/clip" in line and f"{SUSTAINED / 1e15:.4f} PFLOP/airtime-s" in line
    assert budget.stages() == {"video": pytest.approx(SUSTAINED * 3.0), "music": 0}


@pytest.mark.parametrize("name", ["card", "fast"])
def test_commented_presets_are_valid_configs(name):
    text = (REPO / "channel.toml").read_text(encoding="utf-8")
    config = with_preset(Config(), name, text)
    assert (config.video.backend, config.upscale.backend, config.interpolation.backend, config.audio.backend) == (
        "zeroscope", "zeroscope", "film", "musicgen")
    assert set(preset_tables(name, text)) == {"video", "upscale", "interpolation", "audio"}


def test_fast_preset_cuts_what_the_readme_says():
    text = (REPO / "channel.toml").read_text(encoding="utf-8")
    card = with_preset(Config(), "card", text)
    fast = with_preset(Config(), "fast", text)
    assert (card.video.frames, card.video.steps, card.video.guidance_fraction) == (24, 40, 1.0)
    assert (fast.video.frames, fast.video.steps, fast.video.guidance_fraction) == (12, 20, 0.5)
    assert (fast.upscale.strength, fast.upscale.steps, fast.upscale.guidance_fraction) == (0.3, 20, 0.0)
    with pytest.raises(ValueError, match="no commented preset 'nope'"):
        preset_tables("nope", text)


@pytest.mark.parametrize("name, model", [("ltx-distilled", "Lightricks/LTX-Video-0.9.8-13B-distilled"),
                                         ("ltx-distilled-2b", LTX_2B_DISTILLED)])
def test_ltx_presets_are_the_ltx_sections_defaults_with_card_film_and_musicgen(name, model):
    config = with_preset(Config(), name, (REPO / "channel.toml").read_text(encoding="utf-8"))
    assert isinstance(config.video, LtxVideoSection)
    assert config.video == LtxVideoSection(model=model)  # 1024x576, 73 frames, 8 distilled steps, guidance 1
    assert (config.upscale.backend, config.interpolation.backend, config.audio.backend) == ("none", "film", "musicgen")


@pytest.mark.parametrize("model, size", [
    ("Lightricks/LTX-Video-0.9.8-13B-distilled", "13B"), ("Lightricks/LTX-Video-0.9.7-distilled", "13B"),
    ("Lightricks/LTX-Video-0.9.7-dev", "13B"), (LTX_2B_DISTILLED, "2B"), ("Lightricks/LTX-Video-0.9.5", "2B"),
])
def test_the_transformer_counted_is_the_one_the_checkpoint_has(model, size):
    """diffusers' conversion script: the 13B config for the 0.9.7+ 13B checkpoints, the 2B one
    (the class defaults) otherwise; the budget says which it counted."""
    from diffusers import LTXVideoTransformer3DModel

    from bench.models_bench import ltx_transformer_config

    config, said = ltx_transformer_config(model)
    assert said.startswith(f"{size} transformer") and model in said
    if size == "2B":  # the class defaults
        defaults = {name: parameter.default for name, parameter in
                    inspect.signature(LTXVideoTransformer3DModel.__init__).parameters.items() if name != "self"}
        assert config == defaults
    expected = {"num_attention_heads": 32, "attention_head_dim": 128 if size == "13B" else 64,
                "cross_attention_dim": 4096 if size == "13B" else 2048, "num_layers": 48 if size == "13B" else 28,
                "caption_channels": 4096, "activation_fn": "gelu-approximate", "qk_norm": "rms_norm_across_heads",
                "norm_elementwise_affine": False, "norm_eps": 1e-6, "attention_bias": True, "attention_out_bias": True}
    assert {key: config[key] for key in expected} == expected
    budget = Budget(3.0)
    ltx(budget, MetaModels(), LtxVideoSection(model=model, width=64, height=32, frames=9, steps=2, timesteps=[]))
    assert f"LTX: {said}" in budget.notes
    layers = "48x4096" if size == "13B" else "28x2048"
    assert any(f"LTX transformer ({layers}) step" in line.what for line in budget.lines)


def test_a_local_ltx_folder_is_counted_with_its_own_configs(tmp_path):
    from tests.tiny_ltx import tiny_ltx

    folder = tiny_ltx(tmp_path / "LTX-Video-0.9.8-13B-distilled")  # its name says 13B; its config wins
    budget = Budget(1.0)
    ltx(budget, MetaModels(), LtxVideoSection(model=str(folder), width=64, height=32, frames=9, steps=2, timesteps=[]))
    assert any(note.startswith("LTX: 1-layer, 16-wide transformer from ") for note in budget.notes), budget.notes
    assert any("LTX transformer (1x16) step, batch 1, 4 tokens (9x64x32)" in line.what for line in budget.lines)
    assert any(line.what.startswith("T5 encoder, 16 wide") for line in budget.lines)

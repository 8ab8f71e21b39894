"""The FLOP budget (bench/flops.py): the counter against FLOPs known in closed form, the
budget's arithmetic, and the commented presets of channel.toml."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from bench.flops import SUSTAINED, Budget, Line, count_flops, preset_tables, with_preset  # noqa: E402
from tests.daemon import REPO  # noqa: E402
from webtv.config import Config  # noqa: E402

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
    config, video = with_preset(Config(), name, text)
    assert (video.backend, config.upscale.backend, config.interpolation.backend, config.audio.backend) == (
        "zeroscope", "zeroscope", "film", "musicgen")
    assert set(preset_tables(name, text)) == {"video", "upscale", "interpolation", "audio"}


def test_fast_preset_cuts_what_the_readme_says():
    text = (REPO / "channel.toml").read_text(encoding="utf-8")
    card, _ = with_preset(Config(), "card", text)
    fast, _ = with_preset(Config(), "fast", text)
    assert (card.video.frames, card.video.steps, card.video.guidance_fraction) == (24, 40, 1.0)
    assert (fast.video.frames, fast.video.steps, fast.video.guidance_fraction) == (12, 20, 0.5)
    assert (fast.upscale.strength, fast.upscale.steps, fast.upscale.guidance_fraction) == (0.3, 20, 0.0)
    with pytest.raises(ValueError, match="no commented preset 'nope'"):
        preset_tables("nope", text)

"""Tiny random FILM models for tests: the film_net structure at a few channels and levels.

Random weights say nothing about quality; the output layer is biased to mid-grey and scaled
so outputs spread over [0, 1] instead of clamping to black, which keeps comparisons between
two runs or two loaders meaningful."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from interpolation import FilmConfig, FilmNet

TINY = FilmConfig(
    pyramid_levels=4,
    fusion_pyramid_levels=3,
    specialized_levels=2,
    sub_levels=3,
    filters=4,
    flow_convs=(1, 1, 1),
    flow_filters=(4, 4, 8),
)


def tiny_film(seed: int = 0, config: FilmConfig = TINY) -> FilmNet:
    """A FilmNet with ``config`` and seeded random weights, in eval mode on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    model = FilmNet(config)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) / param[0].numel() ** 0.5)
        model.fuse.output_conv.weight.mul_(4.0)
        model.fuse.output_conv.bias.fill_(0.5)
    return model.eval()


def save_scripted(model: FilmNet, path: Path, dtype: torch.dtype = torch.float32) -> Path:
    """``model`` as a TorchScript file, the way the port's film_net_fp32.pt / _fp16.pt are made."""
    scripted = torch.jit.script(FilmNet(model.config).to(dtype).eval())
    scripted.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    scripted.save(str(path))
    return path


class _BareConv(nn.Conv2d):
    """The port v1.0.0's conv without an activation: a plain Conv2d (its tensors are
    ``<name>.weight``, not ``<name>.0.weight``), same maths as today's ``_Conv(act=False)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size[0] % 2 == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self._conv_forward(x, self.weight, self.bias)


def _bare(conv: nn.Module) -> _BareConv:
    inner = conv[0]
    return _BareConv(inner.in_channels, inner.out_channels, inner.kernel_size, padding=inner.padding)


def v1_layout(model: FilmNet) -> FilmNet:
    """``model`` laid out as the port's release v1.0.0 exported it: the fusion blocks' 2x2
    convs and the flow heads' last convs are bare Conv2d modules, so their tensors have one
    ``.0`` less. Runs like ``model``."""
    old = FilmNet(model.config)
    for block in old.fuse.convs:
        block[0] = _bare(block[0])
    for head in [old.predict_flow._predictor, *old.predict_flow._predictors]:
        head._convs[-1] = _bare(head._convs[-1])
    # the same modules in the same order, so the tensors pair up by position
    old.load_state_dict(dict(zip(old.state_dict(), model.state_dict().values())), strict=True)
    return old.eval()


def save_scripted_v1(model: FilmNet, path: Path) -> Path:
    """``model`` as a TorchScript file in the port's v1.0.0 layout (see ``v1_layout``)."""
    torch.jit.script(v1_layout(model)).save(str(path))
    return path


def random_frames(count: int, height: int, width: int, seed: int = 0):
    """uint8 (count, height, width, 3) noise, smoothed a little so flows have something to find."""
    import numpy as np

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(coarse.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width])

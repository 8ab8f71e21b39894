"""Tiny random FILM models for tests: the film_net structure at a few channels and levels.

Random weights say nothing about quality; the output layer is biased to mid-grey and scaled
so outputs spread over [0, 1] instead of clamping to black, which keeps comparisons between
two runs or two loaders meaningful."""

from __future__ import annotations

from pathlib import Path

import torch

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


def random_frames(count: int, height: int, width: int, seed: int = 0):
    """uint8 (count, height, width, 3) noise, smoothed a little so flows have something to find."""
    import numpy as np

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(coarse.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width])

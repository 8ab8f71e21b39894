"""FILM (Frame Interpolation for Large Motion, Reda et al., ECCV 2022) in PyTorch: the
film_net "Style" network.

Three stages, all on image pyramids kept finest level first:

1. features: a cascaded pyramid. One small conv tree (``sub_levels`` deep, shared weights)
   runs from every level of the image pyramid; the features at level i concatenate the
   tree outputs that land there, so below ``sub_levels - 1`` every level has the same
   channels and the same meaning.
2. flow: coarse-to-fine residual flow, both ways (0->1 and 1->0). One estimator is shared by
   all levels from ``specialized_levels`` down to the coarsest; the finer levels each have
   their own.
3. fusion: the images and features of both inputs are backward-warped to time t, and a
   U-Net style decoder over the ``fusion_pyramid_levels`` finest levels turns them, with
   the flows, into the in-between frame.

Module and parameter names follow the public PyTorch port's TorchScript files
(film_net_fp32.pt / film_net_fp16.pt), so their ``state_dict`` loads here with
``strict=True``: ``extract.extract_sublevels.convs.*``, ``predict_flow._predictor``,
``predict_flow._predictors.*`` (coarse to fine), ``fuse.convs.*`` (coarse to fine) and
``fuse.output_conv``. The network is TorchScript-able, as the port's is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import List

import torch
from torch import nn
from torch.nn import functional as F

COLORS = 3
FLOW = 2


@dataclass(frozen=True)
class FilmConfig:
    """film_net's shape. The defaults are the released "Style" (and "L1"/"VGG") model's."""

    pyramid_levels: int = 7
    fusion_pyramid_levels: int = 5
    specialized_levels: int = 3
    sub_levels: int = 4
    filters: int = 64
    flow_convs: tuple[int, ...] = field(default=(3, 3, 3, 3))
    flow_filters: tuple[int, ...] = field(default=(32, 64, 128, 256))

    def __post_init__(self) -> None:
        object.__setattr__(self, "flow_convs", tuple(int(n) for n in self.flow_convs))
        object.__setattr__(self, "flow_filters", tuple(int(n) for n in self.flow_filters))
        problems = []
        if self.filters < 1:
            problems.append("filters must be >= 1")
        if not 1 <= self.sub_levels <= self.pyramid_levels:
            problems.append("sub_levels must be in 1..pyramid_levels")
        if not 2 <= self.fusion_pyramid_levels <= self.pyramid_levels:
            problems.append("fusion_pyramid_levels must be in 2..pyramid_levels")
        if not self.sub_levels - 1 <= self.specialized_levels < self.pyramid_levels:
            problems.append("specialized_levels must be in sub_levels-1..pyramid_levels-1 "
                            "(the shared flow estimator needs equal channels on its levels)")
        heads = self.specialized_levels + 1
        if len(self.flow_convs) != heads or len(self.flow_filters) != heads:
            problems.append(f"flow_convs and flow_filters need specialized_levels + 1 = {heads} entries")
        if any(n < 1 for n in self.flow_convs) or any(n < 2 for n in self.flow_filters):
            problems.append("flow_convs must be >= 1 and flow_filters >= 2")
        if problems:
            raise ValueError(f"bad FilmConfig {self}: " + "; ".join(problems))

    @property
    def multiple(self) -> int:
        """Frame height and width must be multiples of this (the coarsest level is 1/multiple)."""
        return 1 << (self.pyramid_levels - 1)

    def feature_channels(self, level: int) -> int:
        """Channels of the cascaded feature pyramid at ``level`` (0 = finest)."""
        return sum(self.filters << j for j in range(min(level, self.sub_levels - 1) + 1))

    def aligned_channels(self, level: int) -> int:
        """Fusion input at ``level``: both warped images and features, both flows."""
        return 2 * (COLORS + self.feature_channels(level)) + 2 * FLOW

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FilmConfig":
        return cls(**json.loads(text))


class _Conv(nn.Sequential):
    """A conv at index 0 (so its weights are ``<name>.0.weight``), TF-style "same" padding
    (an even kernel gets its extra row and column at the bottom right), then LeakyReLU(0.2)
    unless ``act`` is off."""

    def __init__(self, cin: int, cout: int, size: int, act: bool = True):
        super().__init__(nn.Conv2d(cin, cout, size, padding=size // 2 if size % 2 else 0))
        self.even = size % 2 == 0
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.even:
            x = F.pad(x, (0, 1, 0, 1))
        x = self[0](x)
        if self.act:
            x = F.leaky_relu(x, 0.2)
        return x


def image_pyramid(image: torch.Tensor, levels: int) -> List[torch.Tensor]:
    """``image`` and ``levels - 1`` successive 2x2 average-pooled halvings, finest first."""
    out: List[torch.Tensor] = [image]
    for _ in range(levels - 1):
        image = F.avg_pool2d(image, 2, 2)
        out.append(image)
    return out


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: output[y, x] = bilinear sample of ``image`` at (x + flow[0], y + flow[1]),
    borders clamped. ``flow`` is (N, 2, H, W) in pixels, x offset first."""
    n, _, h, w = flow.shape
    dtype, device = flow.dtype, flow.device
    # pixel centres in grid_sample's [-1, 1] coordinates (align_corners=False)
    xs = (torch.arange(w, dtype=dtype, device=device) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=dtype, device=device) * 2 + 1) / h - 1
    gx = xs.view(1, 1, w) + flow[:, 0] * (2.0 / w)
    gy = ys.view(1, h, 1) + flow[:, 1] * (2.0 / h)
    grid = torch.stack([gx, gy], dim=3)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


class _SubTree(nn.Module):
    """The conv tree run from each pyramid level: ``depth`` stages of two 3x3 convs,
    ``filters << i`` wide at stage i, average-pooled between stages."""

    def __init__(self, cin: int, filters: int, depth: int):
        super().__init__()
        stages = []
        for i in range(depth):
            width = filters << i
            stages.append(nn.Sequential(_Conv(cin, width, 3), _Conv(width, width, 3)))
            cin = width
        self.convs = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor, depth: int) -> List[torch.Tensor]:
        outputs: List[torch.Tensor] = []
        x = image
        for i, stage in enumerate(self.convs):
            if i < depth:
                if i > 0:
                    x = F.avg_pool2d(x, 2, 2)
                x = stage(x)
                outputs.append(x)
        return outputs


class _Cascade(nn.Module):
    """Image pyramid -> cascaded feature pyramid (see the module docstring)."""

    def __init__(self, cin: int, filters: int, sub_levels: int):
        super().__init__()
        self.extract_sublevels = _SubTree(cin, filters, sub_levels)
        self.sub_levels = sub_levels

    def forward(self, images: List[torch.Tensor]) -> List[torch.Tensor]:
        levels = len(images)
        trees: List[List[torch.Tensor]] = []
        for k in range(levels):
            trees.append(self.extract_sublevels(images[k], min(levels - k, self.sub_levels)))
        features: List[torch.Tensor] = []
        for i in range(levels):
            parts: List[torch.Tensor] = []
            for j in range(min(i + 1, self.sub_levels)):
                parts.append(trees[i - j][j])  # stage j of the tree started j levels finer
            features.append(torch.cat(parts, dim=1))
        return features


class _FlowHead(nn.Module):
    """Residual flow at one level from (features of A, warped features of B): ``convs`` 3x3
    convs, a 1x1 conv to half width, a linear 1x1 conv to 2 channels."""

    def __init__(self, cin: int, convs: int, width: int):
        super().__init__()
        layers = []
        for _ in range(convs):
            layers.append(_Conv(cin, width, 3))
            cin = width
        layers.append(_Conv(cin, width // 2, 1))
        layers.append(_Conv(width // 2, FLOW, 1, act=False))
        self._convs = nn.ModuleList(layers)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat([a, b], dim=1)
        for layer in self._convs:
            x = layer(x)
        return x


def _upsample_flow(flow: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A coarser level's flow at ``like``'s size, its vectors doubled to match."""
    return F.interpolate(2 * flow, size=(like.shape[2], like.shape[3]), mode="bilinear", align_corners=False)


class _FlowPyramid(nn.Module):
    """Feature pyramids of A and B -> flow pyramid A->B (finest first, absolute flows)."""

    def __init__(self, config: FilmConfig):
        super().__init__()
        heads = [
            _FlowHead(2 * config.feature_channels(level), config.flow_convs[level], config.flow_filters[level])
            for level in range(config.specialized_levels + 1)
        ]
        self.specialized = config.specialized_levels
        self._predictor = heads[-1]  # shared by every level >= specialized_levels
        self._predictors = nn.ModuleList(heads[:-1][::-1])  # specialized heads, coarse to fine

    def forward(self, a: List[torch.Tensor], b: List[torch.Tensor]) -> List[torch.Tensor]:
        levels = len(a)
        flow = self._predictor(a[levels - 1], b[levels - 1])
        flows: List[torch.Tensor] = [flow]
        # each finer level: upsample the flow, warp B by it, add the residual seen between A
        # and warped B
        for i in range(levels - 2, self.specialized - 1, -1):
            flow = _upsample_flow(flow, a[i])
            flow = self._predictor(a[i], warp(b[i], flow)) + flow
            flows.append(flow)
        for k, head in enumerate(self._predictors):
            i = self.specialized - 1 - k
            flow = _upsample_flow(flow, a[i])
            flow = head(a[i], warp(b[i], flow)) + flow
            flows.append(flow)
        flows.reverse()
        return flows


class _Fusion(nn.Module):
    """Aligned pyramid -> RGB. From the coarsest fusion level up: nearest 2x upsample, a 2x2
    conv, concatenation with the level's aligned inputs, two 3x3 convs; a final 1x1 to RGB."""

    def __init__(self, config: FilmConfig):
        super().__init__()
        levels = config.fusion_pyramid_levels - 1
        below = config.aligned_channels(levels)
        blocks = []
        for i in range(levels - 1, -1, -1):
            width = config.filters << min(i, config.specialized_levels)
            blocks.append(nn.ModuleList([
                _Conv(below, width, 2, act=False),
                _Conv(config.aligned_channels(i) + width, width, 3),
                _Conv(width, width, 3),
            ]))
            below = width
        self.convs = nn.ModuleList(blocks)  # coarse to fine
        self.output_conv = nn.Conv2d(config.filters, COLORS, kernel_size=1)

    def forward(self, aligned: List[torch.Tensor]) -> torch.Tensor:
        x = aligned[-1]
        top = len(self.convs) - 1
        for k, block in enumerate(self.convs):
            skip = aligned[top - k]
            x = F.interpolate(x, size=(skip.shape[2], skip.shape[3]), mode="nearest")
            x = block[0](x)
            x = torch.cat([skip, x], dim=1)
            x = block[1](x)
            x = block[2](x)
        return self.output_conv(x)


class FilmNet(nn.Module):
    """film_net. ``forward(x0, x1, batch_dt)``: x0, x1 RGB in [0, 1], (N, 3, H, W) with H and W
    multiples of ``config.multiple`` (64 for the real model); ``batch_dt`` the time of the
    wanted frame between them, a tensor of N (or 1) values shaped (N,), (N, 1) or (N, 1, 1, 1).
    Returns the frame at that time, (N, 3, H, W), clamped to [0, 1]. Released weights were
    trained at t = 0.5; more frames come from recursion (``interpolation.interpolate``)."""

    def __init__(self, config: FilmConfig | None = None):
        super().__init__()
        config = config or FilmConfig()
        self.config = config
        self.pyramid_levels = config.pyramid_levels
        self.fusion_pyramid_levels = config.fusion_pyramid_levels
        self.extract = _Cascade(COLORS, config.filters, config.sub_levels)
        self.predict_flow = _FlowPyramid(config)
        self.fuse = _Fusion(config)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, batch_dt: torch.Tensor) -> torch.Tensor:
        images0 = image_pyramid(x0, self.pyramid_levels)
        images1 = image_pyramid(x1, self.pyramid_levels)
        feats0 = self.extract(images0)
        feats1 = self.extract(images1)
        flow01 = self.predict_flow(feats0, feats1)
        flow10 = self.predict_flow(feats1, feats0)
        t = batch_dt.reshape(-1, 1, 1, 1).to(x0.dtype)
        aligned: List[torch.Tensor] = []
        for i in range(self.fusion_pyramid_levels):
            # frame t reads frame 0 along the 1->0 flow scaled by t, frame 1 along 0->1 by 1-t
            back = flow10[i] * t
            ahead = flow01[i] * (1 - t)
            from0 = warp(torch.cat([images0[i], feats0[i]], dim=1), back)
            from1 = warp(torch.cat([images1[i], feats1[i]], dim=1), ahead)
            aligned.append(torch.cat([from0, from1, back, ahead], dim=1))
        return self.fuse(aligned).clamp(0, 1)

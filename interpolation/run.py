"""Running FILM over a clip: padding to the network's multiple, recursive midpoints, batching
several frame pairs per forward pass, and tiling frames too large to run whole."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Padding = tuple[int, int, int, int]  # top, bottom, left, right


def pad_to_multiple(frames, multiple: int, mode: str = "replicate"):
    """``frames`` grown to height and width multiples of ``multiple`` by repeating edge pixels
    (``mode`` "replicate" or "reflect"), split evenly between the two sides. Takes a tensor
    (..., H, W) or a numpy array (T, H, W, C). Returns (padded, padding) for ``unpad``."""
    is_numpy = isinstance(frames, np.ndarray)
    h, w = frames.shape[1:3] if is_numpy else frames.shape[-2:]
    dh, dw = -h % multiple, -w % multiple
    padding: Padding = (dh // 2, dh - dh // 2, dw // 2, dw - dw // 2)
    if dh == 0 and dw == 0:
        return frames, padding
    top, bottom, left, right = padding
    if is_numpy:
        widths = ((0, 0), (top, bottom), (left, right)) + ((0, 0),) * (frames.ndim - 3)
        return np.pad(frames, widths, mode="edge" if mode == "replicate" else mode), padding
    shape = frames.shape
    flat = frames.reshape(-1, 1, h, w) if frames.dim() != 4 else frames
    flat = flat if flat.is_floating_point() else flat.float()
    padded = F.pad(flat, (left, right, top, bottom), mode=mode).to(frames.dtype)
    return padded.reshape(*shape[:-2], h + dh, w + dw), padding


def unpad(frames, padding: Padding):
    """Undo ``pad_to_multiple``: crop ``padding`` off again."""
    top, bottom, left, right = padding
    if isinstance(frames, np.ndarray):
        h, w = frames.shape[1:3]
        return frames[:, top:h - bottom, left:w - right]
    h, w = frames.shape[-2:]
    return frames[..., top:h - bottom, left:w - right]


def model_multiple(model: nn.Module) -> int:
    """What frame sizes must divide by for ``model``: 2 ** (pyramid_levels - 1), 64 if unknown."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "multiple"):
        return int(config.multiple)
    levels = getattr(model, "pyramid_levels", None)
    return 1 << (int(levels) - 1) if isinstance(levels, int) else 64


def _model_place(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """Blend weights along one tile side: rising over ``overlap`` pixels at each end."""
    i = torch.arange(length, dtype=torch.float32)
    return torch.minimum((i + 1) / (overlap + 1), (length - i) / (overlap + 1)).clamp(max=1.0)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


class _Runner:
    """Midpoints of batches of frame pairs: pads to the model's multiple, tiles if asked."""

    def __init__(self, model: nn.Module, tile: int | None):
        self.model = model
        self.device, self.dtype = _model_place(model)
        self.multiple = model_multiple(model)
        self.tile = tile

    def midpoints(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 CPU pairs -> their midpoints, same form."""
        h, w = left.shape[-2:]
        if self.tile is None or (h <= self.tile and w <= self.tile):
            return self._forward(left, right)
        tile, overlap = self.tile, max(self.tile // 4, 1)
        out = torch.zeros_like(left)
        weight = torch.zeros(1, 1, h, w)
        for y in _starts(h, tile, overlap):
            for x in _starts(w, tile, overlap):
                th, tw = min(tile, h), min(tile, w)
                part = self._forward(left[..., y:y + th, x:x + tw], right[..., y:y + th, x:x + tw])
                mask = _ramp(th, overlap)[:, None] * _ramp(tw, overlap)[None, :]
                out[..., y:y + th, x:x + tw] += part * mask
                weight[..., y:y + th, x:x + tw] += mask
        return out / weight

    def _forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        x0, padding = pad_to_multiple(left.to(self.device, self.dtype), self.multiple)
        x1, _ = pad_to_multiple(right.to(self.device, self.dtype), self.multiple)
        dt = torch.full((x0.shape[0], 1), 0.5, device=self.device, dtype=self.dtype)
        mid = self.model(x0, x1, dt)
        return unpad(mid, padding).float().clamp(0, 1).cpu()


def interpolate(
    model: nn.Module,
    frames,
    factor: int,
    batch_size: int = 4,
    tile: int | None = None,
    progress: Callable[[str, float], None] | None = None,
):
    """``factor - 1`` new frames between each pair of ``frames``: (T - 1) * factor + 1 frames.

    ``frames`` is uint8 (T, H, W, 3) numpy (returns the same kind) or a float tensor
    (T, 3, H, W) in [0, 1] (returns a float tensor). ``factor`` is a power of two; each
    halving runs the model at t = 0.5 on ``batch_size`` pairs per forward pass. With ``tile``
    (pixels), frames larger than that are run as overlapping tiles blended back together.
    Deterministic for a given model, device and batch size. ``progress("interpolate", f)``."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"factor must be a power of two (2, 4, 8...), not {factor}")
    as_numpy = isinstance(frames, np.ndarray)
    if as_numpy:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"want uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        frames_c = np.ascontiguousarray(frames)
        if not frames_c.flags.writeable:  # torch wants writable memory (e.g. np.frombuffer's)
            frames_c = frames_c.copy()
        source = torch.from_numpy(frames_c).permute(0, 3, 1, 2)
    else:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"want frames (T, 3, H, W), got {tuple(frames.shape)}")
        source = frames.detach().cpu()
    count = source.shape[0]
    if count == 0:
        raise ValueError("no frames to interpolate")
    total = (count - 1) * (factor - 1)
    done = 0

    def to_float(chunk: torch.Tensor) -> torch.Tensor:
        return chunk.float() / 255 if as_numpy else chunk.float()

    out = torch.empty(((count - 1) * factor + 1, *source.shape[1:]), dtype=source.dtype)
    runner = _Runner(model, tile)
    batch_size = max(1, int(batch_size))
    with torch.inference_mode():
        out[0] = source[0]
        for first in range(0, count - 1, batch_size):
            # a run of up to batch_size source pairs, halved log2(factor) times
            seq = to_float(source[first:min(first + batch_size, count - 1) + 1])
            steps = factor.bit_length() - 1
            for _ in range(steps):
                mids = []
                for start in range(0, seq.shape[0] - 1, batch_size):
                    stop = min(start + batch_size, seq.shape[0] - 1)
                    mids.append(runner.midpoints(seq[start:stop], seq[start + 1:stop + 1]))
                    done += stop - start
                    if progress is not None and total:
                        progress("interpolate", done / total)
                grown = torch.empty((2 * seq.shape[0] - 1, *seq.shape[1:]), dtype=seq.dtype)
                grown[0::2] = seq
                grown[1::2] = torch.cat(mids)
                seq = grown
            if as_numpy:
                seq = (seq * 255).round_().clamp_(0, 255).to(torch.uint8)
            out[first * factor + 1:first * factor + seq.shape[0]] = seq[1:]
    if progress is not None and not total:
        progress("interpolate", 1.0)
    if as_numpy:
        return out.permute(0, 2, 3, 1).contiguous().numpy()
    return out

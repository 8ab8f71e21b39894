"""Where model stages run: device and dtype from config, and what a failed render leaves behind.

torch is imported here only when asked for, so the procedural channel never loads it.
"""

from __future__ import annotations

import gc


def pick_device(name: str):
    """``"auto"``: the first CUDA device when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


def pick_dtype(device):
    """fp16 on CUDA (what the Zeroscope and MusicGen checkpoints are used at), fp32 on CPU."""
    import torch

    return torch.float16 if device.type == "cuda" else torch.float32


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free_memory() -> None:
    """Give back what a failed or finished render held, before the next try."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

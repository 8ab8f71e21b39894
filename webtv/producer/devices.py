"""Where model stages run and what they load: device and dtype from config, the model folder
or hub id, and what a failed render leaves behind.

torch is imported here only when asked for, so the procedural channel never loads it.
"""

from __future__ import annotations

import gc
from pathlib import Path

from webtv.config import is_local_model, local_model_problem


def model_source(model: str, what: str, marker: str) -> str:
    """What to hand ``from_pretrained``: a hub id ("owner/name") as it is, or a local folder,
    checked first so that a wrong path fails at once with an error that names it rather than
    as a hub lookup. ``marker`` is the file a save_pretrained folder of this kind holds.
    (``webtv check`` applies the same rule, ``webtv.config.local_model_problem``, at load.)"""
    problem = local_model_problem(model, marker)
    if problem:
        raise RuntimeError(f"cannot load {what} model {model!r}: {problem}")
    return str(Path(model).expanduser()) if is_local_model(model) else model


def pick_device(name: str):
    """``"auto"``: the first CUDA device when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


def pick_dtype(device, cuda: str = "float16"):
    """``cuda`` (a torch dtype's name) on CUDA, fp32 on CPU: fp16 is what the Zeroscope and
    MusicGen checkpoints are used at, bf16 what LTX-Video's are."""
    import torch

    return getattr(torch, cuda) if device.type == "cuda" else torch.float32


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

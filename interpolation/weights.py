"""FILM weights on disk: the PyTorch port's TorchScript releases (film_net_fp32.pt,
film_net_fp16.pt), plain state-dict pickles of the same names, and our safetensors files
(config in the metadata)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from interpolation.film import FilmConfig, FilmNet

CONFIG_KEY = "film_config"
_FIRST_CONV = "extract.extract_sublevels.convs.0.0.0.weight"


class FilmLoadError(ValueError):
    """A FILM weights file that cannot be used; the message names the file and why."""


def save_film(model: FilmNet, path: Path | str) -> Path:
    """``model``'s weights as safetensors at ``path``, its FilmConfig in the metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", CONFIG_KEY: model.config.to_json()})
    return path


def load_film(path: Path | str, device="cpu", dtype: torch.dtype | None = None,
              config: FilmConfig | None = None) -> FilmNet:
    """A FilmNet in eval mode on ``device`` (fp32 unless ``dtype`` says otherwise).

    ``.pt``/``.pth``: a TorchScript module (the port's release files) or a pickled state dict.
    ``.safetensors``: written by ``save_film``. The config is ``config`` if given, else the one
    stored with the weights, else read off the tensor shapes (``pyramid_levels`` from the
    TorchScript module's attribute, else 7). Raises FileNotFoundError or FilmLoadError, both
    naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FILM model {path} does not exist")
    suffix = path.suffix.lower()
    stored: FilmConfig | None = None
    pyramid_levels: int | None = None
    if suffix == ".safetensors":
        state, stored = _read_safetensors(path)
    elif suffix in (".pt", ".pth", ".bin", ".ckpt"):
        state, pyramid_levels = _read_torch(path)
    else:
        raise FilmLoadError(f"{path}: unknown FILM model format {suffix!r} (want .pt, .pth or .safetensors)")
    if _FIRST_CONV not in state:
        raise FilmLoadError(f"{path} is not a FILM model: it has no {_FIRST_CONV} "
                            f"(its first keys: {', '.join(list(state)[:4]) or 'none'})")
    if config is None:
        config = stored or infer_config(state, pyramid_levels, source=path)
    model = FilmNet(config)
    missing = sorted(set(model.state_dict()) - set(state))
    unexpected = sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise FilmLoadError(f"{path}: weights do not fit film_net {config}: "
                            f"missing {_few(missing)}; unexpected {_few(unexpected)}")
    wanted = model.state_dict()
    shapes = [f"{name} is {tuple(state[name].shape)}, not {tuple(wanted[name].shape)}"
              for name in wanted if state[name].shape != wanted[name].shape]
    if shapes:
        raise FilmLoadError(f"{path}: weights do not fit film_net {config}: {_few(shapes)}")
    model.load_state_dict(state, strict=True)
    return model.to(device=torch.device(device), dtype=dtype or torch.float32).eval()


def _few(names: list[str]) -> str:
    if not names:
        return "none"
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], FilmConfig | None]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise FilmLoadError(f"{path}: not a readable safetensors file ({exc})") from None
    if CONFIG_KEY not in meta:
        return state, None
    try:
        return state, FilmConfig.from_json(meta[CONFIG_KEY])
    except (ValueError, TypeError) as exc:
        raise FilmLoadError(f"{path}: bad {CONFIG_KEY} in its metadata ({exc})") from None


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], int | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates TorchScript
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as script_error:  # noqa: BLE001 - not TorchScript: maybe a state dict
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise FilmLoadError(f"{path}: neither a TorchScript module nor a state dict ({script_error})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise FilmLoadError(f"{path} is not a FILM model: it holds no tensor state dict") from None
        return dict(state), None
    levels = getattr(module, "pyramid_levels", None)
    return dict(module.state_dict()), int(levels) if isinstance(levels, int) else None


def _count(state: dict[str, torch.Tensor], template: str) -> int:
    """How many consecutive indices i from 0 have the key ``template.format(i)``."""
    n = 0
    while template.format(n) in state:
        n += 1
    return n


def infer_config(state: dict[str, torch.Tensor], pyramid_levels: int | None = None,
                 source: Path | str = "state dict") -> FilmConfig:
    """The FilmConfig whose FilmNet has these weights. ``pyramid_levels`` leaves no trace in
    the weights (levels beyond the specialized ones share them); default 7."""
    try:
        filters = state[_FIRST_CONV].shape[0]
        sub_levels = _count(state, "extract.extract_sublevels.convs.{}.0.0.weight")
        specialized = _count(state, "predict_flow._predictors.{}._convs.0.0.weight")
        heads = [f"predict_flow._predictors.{specialized - 1 - i}" for i in range(specialized)]
        heads.append("predict_flow._predictor")
        flow_convs, flow_filters = [], []
        for head in heads:
            layers = _count(state, head + "._convs.{}.0.weight")
            flow_convs.append(layers - 2)
            flow_filters.append(state[f"{head}._convs.0.0.weight"].shape[0])
        fusion_levels = _count(state, "fuse.convs.{}.0.0.weight") + 1
        return FilmConfig(
            pyramid_levels=pyramid_levels or max(7, specialized + 1, fusion_levels, sub_levels),
            fusion_pyramid_levels=fusion_levels,
            specialized_levels=specialized,
            sub_levels=sub_levels,
            filters=filters,
            flow_convs=tuple(flow_convs),
            flow_filters=tuple(flow_filters),
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise FilmLoadError(f"{source}: cannot tell the film_net shape from its weights ({exc})") from None

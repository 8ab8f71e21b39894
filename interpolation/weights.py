"""FILM weights on disk: the PyTorch port's TorchScript releases (film_net_fp32.pt,
film_net_fp16.pt), plain state-dict pickles of the same names, and our safetensors files
(config in the metadata). Files from the port's first release (v1.0.0) load too: their
tensor names are mapped to today's."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path

import torch

from interpolation.film import FilmConfig, FilmNet

CONFIG_KEY = "film_config"
_FIRST_CONV = "extract.extract_sublevels.convs.0.0.0.weight"
# The port's v1.0.0 kept the convs without an activation (each fusion block's 2x2 conv, each
# flow head's last 1x1) as bare Conv2d modules: their tensors lack the ".0" of the Sequential
# around today's convs (fuse.convs.K.0.weight for fuse.convs.K.0.0.weight). Today's names
# never match: they have that ".0" before weight/bias.
_V1_NAME = re.compile(r"(fuse\.convs\.\d+\.0|predict_flow\._predictors?(?:\.\d+)?\._convs\.\d+)\.(weight|bias)")


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
    state, file_names = _current_names(state)
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
    shapes = [f"{file_names.get(name, name)} is {tuple(state[name].shape)}, not {tuple(wanted[name].shape)}"
              for name in wanted if state[name].shape != wanted[name].shape]
    if shapes:
        raise FilmLoadError(f"{path}: weights do not fit film_net {config}: {_few(shapes)}")
    model.load_state_dict(state, strict=True)
    return model.to(device=torch.device(device), dtype=dtype or torch.float32).eval()


def _current_names(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``state`` under today's tensor names (v1.0.0 names mapped), and the file's name of
    each renamed tensor so that messages name what the file holds."""
    renamed: dict[str, torch.Tensor] = {}
    file_names: dict[str, str] = {}
    for name, tensor in state.items():
        if _V1_NAME.fullmatch(name):
            current = _V1_NAME.sub(r"\1.0.\2", name)
            file_names[current] = name
            name = current
        renamed[name] = tensor
    return renamed, file_names


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


def _size(state: dict[str, torch.Tensor], *sources: tuple[str, int]) -> int:
    """The size most of ``sources`` (tensor name, dimension) agree on, the first on a tie. Each
    size is read from several tensors so that one bad tensor is named by the shape check
    instead of being read into the config and its neighbours blamed."""
    sizes = [state[name].shape[dim] for name, dim in sources if name in state and state[name].dim() > dim]
    if not sizes:
        raise KeyError(sources[0][0])
    return Counter(sizes).most_common(1)[0][0]


def infer_config(state: dict[str, torch.Tensor], pyramid_levels: int | None = None,
                 source: Path | str = "state dict") -> FilmConfig:
    """The FilmConfig whose FilmNet has these weights (today's tensor names). ``pyramid_levels``
    leaves no trace in the weights (levels beyond the specialized ones share them); default 7."""
    try:
        filters = _size(state, (_FIRST_CONV, 0), ("extract.extract_sublevels.convs.0.0.0.bias", 0),
                        ("extract.extract_sublevels.convs.0.1.0.weight", 1), ("fuse.output_conv.weight", 1))
        sub_levels = _count(state, "extract.extract_sublevels.convs.{}.0.0.weight")
        specialized = _count(state, "predict_flow._predictors.{}._convs.0.0.weight")
        heads = [f"predict_flow._predictors.{specialized - 1 - i}" for i in range(specialized)]
        heads.append("predict_flow._predictor")
        flow_convs, flow_filters = [], []
        for head in heads:
            layers = _count(state, head + "._convs.{}.0.weight")
            flow_convs.append(layers - 2)
            flow_filters.append(_size(state, (f"{head}._convs.0.0.weight", 0), (f"{head}._convs.0.0.bias", 0),
                                      (f"{head}._convs.1.0.weight", 1)))
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

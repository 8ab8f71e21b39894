"""FILM frame interpolation (google-research/frame-interpolation's film_net) in PyTorch.

    model = load_film("film_net_fp32.pt")          # the PyTorch port's TorchScript release
    frames = interpolate(model, frames, factor=4)  # uint8 (T, H, W, 3) -> ((T-1)*4+1, H, W, 3)
"""

from interpolation.film import FilmConfig, FilmNet, image_pyramid, warp
from interpolation.run import interpolate, model_multiple, pad_to_multiple, unpad
from interpolation.weights import FilmLoadError, infer_config, load_film, save_film

__all__ = [
    "FilmConfig",
    "FilmLoadError",
    "FilmNet",
    "image_pyramid",
    "infer_config",
    "interpolate",
    "load_film",
    "model_multiple",
    "pad_to_multiple",
    "save_film",
    "unpad",
    "warp",
]

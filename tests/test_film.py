"""FILM frame interpolation (interpolation/) and the producer's interpolation stage
(webtv/producer/interpolate.py). Tiny random models on the CPU; no weights are downloaded."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from interpolation import (
    FilmConfig,
    warp,
    FilmLoadError,
    FilmNet,
    infer_config,
    interpolate,
    load_film,
    pad_to_multiple,
    save_film,
    unpad,
)
from tests.tiny_film import TINY, random_frames, save_scripted, save_scripted_v1, tiny_film, v1_layout
from webtv.config import FilmSection, HouseSection, MinterpolateSection, NoInterpolationSection, RemoteInterpolationSection
from webtv.media import ffmpeg_exe, probe
from webtv.producer.base import Frames
from webtv.producer.interpolate import (
    FilmInterpolator,
    MinterpolateInterpolator,
    NoInterpolation,
    film_factor,
    interpolate_file,
    make_interpolator,
    pick_evenly,
)


@pytest.fixture(scope="module")
def model():
    return tiny_film(seed=1)


@pytest.fixture(scope="module")
def film_pt(tmp_path_factory, model):
    return save_scripted(model, tmp_path_factory.mktemp("film") / "film_net_fp32.pt")


def pair(height=32, width=48, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, height, width, generator=g), torch.rand(batch, 3, height, width, generator=g)


# --- the network -------------------------------------------------------------------------


def test_real_config_has_the_ports_parameter_names_and_shapes():
    with torch.device("meta"):
        state = FilmNet(FilmConfig()).state_dict()
    # input channels the port lists for its fusion convs and builds for its flow estimators
    fusion_in = sorted({state[f"fuse.convs.{k}.{j}.0.weight"].shape[1] for k in range(4) for j in range(2)})
    assert fusion_in == sorted([128, 202, 256, 522, 512, 1162, 1930, 2442])
    flow_in = [state[f"predict_flow._predictors.{k}._convs.0.0.weight"].shape[1] for k in (2, 1, 0)]
    assert flow_in + [state["predict_flow._predictor._convs.0.0.weight"].shape[1]] == [128, 384, 896, 1920]
    assert state["predict_flow._predictor._convs.4.0.weight"].shape == (2, 128, 1, 1)
    assert state["fuse.convs.0.0.0.weight"].shape == (512, 1930, 2, 2)
    assert state["fuse.output_conv.weight"].shape == (3, 64, 1, 1)
    assert state["extract.extract_sublevels.convs.3.1.0.weight"].shape == (512, 512, 3, 3)
    assert len(state) == 82
    assert infer_config(state) == FilmConfig()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="flow_convs"):
        FilmConfig(flow_convs=(3, 3, 3))
    with pytest.raises(ValueError, match="specialized_levels"):
        FilmConfig(specialized_levels=1, flow_convs=(3, 3), flow_filters=(32, 64))


def test_forward_gives_frames_in_range(model):
    x0, x1 = pair()
    with torch.inference_mode():
        out = model(x0, x1, torch.full((2, 1), 0.5))
        swapped = model(x1, x0, torch.full((2, 1), 0.5))
        single = model(x0[:1], x1[:1], torch.tensor(0.5))
    assert out.shape == (2, 3, 32, 48)
    assert out.min() >= 0 and out.max() <= 1
    assert out.std() > 0.05  # the tiny model is not stuck at a clamp
    assert not torch.allclose(out, swapped)
    torch.testing.assert_close(single, out[:1], atol=1e-5, rtol=0)


def test_warp_reads_at_the_position_plus_the_flow():
    image = torch.arange(2 * 6 * 8, dtype=torch.float32).reshape(1, 2, 6, 8)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # x + 2, y - 1, clamped at the borders
    ys = torch.arange(6).sub(1).clamp(0, 5)
    xs = torch.arange(8).add(2).clamp(0, 7)
    torch.testing.assert_close(warp(image, flow), image[:, :, ys][:, :, :, xs])
    half = warp(image, flow * 0.25)  # x + 0.5, y - 0.25: bilinear between neighbours
    torch.testing.assert_close(half[0, 0, 3, 3], 0.75 * (image[0, 0, 3, 3] + image[0, 0, 3, 4]) / 2
                               + 0.25 * (image[0, 0, 2, 3] + image[0, 0, 2, 4]) / 2)


# --- padding and interpolation -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["replicate", "reflect"])
def test_padding_round_trip_is_exact(mode):
    frames = torch.rand(3, 3, 37, 50)
    padded, padding = pad_to_multiple(frames, 16, mode=mode)
    assert padded.shape == (3, 3, 48, 64)
    assert torch.equal(unpad(padded, padding), frames)
    top, _, left, _ = padding
    if mode == "replicate":
        assert torch.equal(padded[:, :, 0, left:left + 50], frames[:, :, 0])
    array = (np.random.default_rng(0).random((2, 37, 50, 3)) * 255).astype(np.uint8)
    padded_np, padding_np = pad_to_multiple(array, 64, mode=mode)
    assert padded_np.shape == (2, 64, 64, 3)
    assert np.array_equal(unpad(padded_np, padding_np), array)
    same, nothing = pad_to_multiple(frames[..., :32, :48], 16)
    assert nothing == (0, 0, 0, 0) and same.shape[-2:] == (32, 48)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_interpolate_counts_and_keeps_the_inputs(model, factor):
    frames = random_frames(3, 36, 44, seed=factor)  # not multiples of 8: padded inside
    out = interpolate(model, frames, factor, batch_size=3)
    assert out.shape == ((3 - 1) * factor + 1, 36, 44, 3) and out.dtype == np.uint8
    assert np.array_equal(out[::factor], frames)
    new = np.delete(out, np.arange(0, len(out), factor), axis=0)
    assert all(not np.array_equal(f, g) for f in new for g in frames)
    assert len({f.tobytes() for f in new}) == len(new)


def test_interpolate_takes_float_tensors(model):
    frames = torch.rand(2, 3, 24, 32)
    out = interpolate(model, frames, 4)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 3, 24, 32)
    assert torch.equal(out[0], frames[0]) and torch.equal(out[4], frames[1])
    with torch.inference_mode():
        mid = model(frames[:1], frames[1:], torch.full((1, 1), 0.5))
    torch.testing.assert_close(out[2], mid[0], atol=1e-5, rtol=0)


def test_interpolate_is_deterministic_and_batch_independent(model):
    frames = random_frames(4, 32, 40, seed=3)
    first = interpolate(model, frames, 4, batch_size=2)
    again = interpolate(model, frames, 4, batch_size=2)
    one_by_one = interpolate(model, frames, 4, batch_size=1)
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - one_by_one.astype(int)).max() <= 1


def test_interpolate_refuses_bad_factors(model):
    with pytest.raises(ValueError, match="power of two"):
        interpolate(model, random_frames(2, 16, 16), 3)


def test_progress_reaches_one(model):
    seen = []
    interpolate(model, random_frames(3, 16, 24), 4, batch_size=2, progress=lambda s, f: seen.append((s, f)))
    assert {s for s, _ in seen} == {"interpolate"}
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0) and len(fractions) > 1


class _Blend(nn.Module):
    """A purely local stand-in for FILM: its midpoint is the mean, so tiles must stitch exactly."""

    pyramid_levels = 3

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x0, x1, batch_dt):
        self.sizes.append(tuple(x0.shape[-2:]))
        t = batch_dt.reshape(-1, 1, 1, 1)
        return x0 * (1 - t) + x1 * t


def test_tiles_blend_back_seamlessly():
    frames = random_frames(2, 70, 150, seed=5)
    blend = _Blend()
    tiled = interpolate(blend, frames, 2, tile=48)
    expected = np.rint((frames[0].astype(np.float64) + frames[1]) / 2)
    assert np.abs(tiled[1] - expected).max() <= 1
    assert len(blend.sizes) > 4 and all(h % 4 == 0 and w % 4 == 0 and h <= 52 and w <= 52 for h, w in blend.sizes)


def test_tiled_film_runs(model):
    frames = random_frames(2, 40, 72, seed=6)
    out = interpolate(model, frames, 2, tile=32)
    assert out.shape == (3, 40, 72, 3)
    assert np.array_equal(out[[0, 2]], frames)


# --- weights files -----------------------------------------------------------------------


def test_torchscript_file_loads_with_identical_outputs(tmp_path):
    config = FilmConfig(pyramid_levels=5, fusion_pyramid_levels=4, specialized_levels=2, sub_levels=2,
                        filters=3, flow_convs=(1, 2, 1), flow_filters=(4, 6, 8))
    original = tiny_film(seed=2, config=config)
    path = save_scripted(original, tmp_path / "film_net_fp32.pt")
    loaded = load_film(path)
    assert loaded.config == config  # shapes, and pyramid_levels from the module's attribute
    assert not loaded.training
    x0, x1 = pair(32, 32)
    dt = torch.full((2, 1), 0.5)
    with torch.inference_mode():
        assert torch.equal(loaded(x0, x1, dt), original(x0, x1, dt))
        assert torch.equal(loaded(x0, x1, dt), torch.jit.load(str(path))(x0, x1, dt))


def test_fp16_torchscript_loads_as_fp32(tmp_path, model):
    path = save_scripted(model, tmp_path / "film_net_fp16.pt", dtype=torch.float16)
    loaded = load_film(path)
    assert next(loaded.parameters()).dtype == torch.float32
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name].half().float()), name
    x0, x1 = pair()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x0, x1, torch.full((2, 1), 0.5)), model(x0, x1, torch.full((2, 1), 0.5)),
                                   atol=0.05, rtol=0)


def test_plain_state_dict_loads(tmp_path, model):
    path = tmp_path / "film.pth"
    torch.save(model.state_dict(), path)
    assert load_film(path).config.pyramid_levels == 7  # not in the weights: the real default
    loaded = load_film(path, config=TINY)
    x0, x1 = pair()
    with torch.inference_mode():
        assert torch.equal(loaded(x0, x1, torch.full((2, 1), 0.5)), model(x0, x1, torch.full((2, 1), 0.5)))


def test_safetensors_round_trip(tmp_path, model):
    path = save_film(model, tmp_path / "film.safetensors")
    loaded = load_film(path, dtype=torch.float64)
    assert loaded.config == TINY
    assert next(loaded.parameters()).dtype == torch.float64
    frames = random_frames(3, 24, 32, seed=7)
    assert np.array_equal(interpolate(loaded.float(), frames, 2), interpolate(model, frames, 2))


def test_v1_layout_renames_the_issues_16_tensors():
    with torch.device("meta"):
        model = FilmNet(FilmConfig())
        old = set(v1_layout(model).state_dict()) - set(model.state_dict())
    heads = ["predict_flow._predictor"] + [f"predict_flow._predictors.{k}" for k in range(3)]
    assert old == ({f"fuse.convs.{k}.0.{p}" for k in range(4) for p in ("weight", "bias")}
                   | {f"{head}._convs.4.{p}" for head in heads for p in ("weight", "bias")})


def test_v1_torchscript_file_loads_with_identical_outputs(tmp_path, model):
    path = save_scripted_v1(model, tmp_path / "film_net_fp32.pt")
    loaded = load_film(path)
    assert loaded.config == TINY
    x0, x1 = pair()
    dt = torch.full((2, 1), 0.5)
    with torch.inference_mode():
        assert torch.equal(loaded(x0, x1, dt), torch.jit.load(str(path))(x0, x1, dt))
        assert torch.equal(loaded(x0, x1, dt), model(x0, x1, dt))


@pytest.mark.parametrize("layout, name, cut", [
    # sizes the config is read from: one bad tensor must not be blamed on its neighbours
    ("now", "extract.extract_sublevels.convs.0.0.0.weight", lambda t: t[:-1]),
    ("now", "predict_flow._predictors.1._convs.0.0.weight", lambda t: t[:1]),
    ("now", "predict_flow._predictor._convs.0.0.weight", lambda t: t[:-1]),
    ("now", "fuse.convs.1.1.0.weight", lambda t: t[:, :-1]),
    # a renamed tensor is named as the file names it
    ("v1", "fuse.convs.1.0.weight", lambda t: t[:, :-1]),
    ("v1", "predict_flow._predictor._convs.2.weight", lambda t: t[:1]),
])
def test_a_shape_mismatch_names_the_tensor(tmp_path, model, layout, name, cut):
    state = dict((v1_layout(model) if layout == "v1" else model).state_dict())
    wanted = tuple(state[name].shape)
    state[name] = cut(state[name]).clone()
    path = tmp_path / "film.pth"
    torch.save(state, path)
    with pytest.raises(FilmLoadError) as caught:
        load_film(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: weights do not fit film_net")
    assert f"{name} is {tuple(state[name].shape)}, not {wanted}" in message
    assert message.count(" is (") == 1  # that tensor only


def test_load_errors_name_the_file(tmp_path, model):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_film(missing)

    linear = tmp_path / "linear.pt"
    torch.jit.script(nn.Linear(2, 2)).save(str(linear))
    with pytest.raises(FilmLoadError, match=r"linear\.pt is not a FILM model"):
        load_film(linear)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(FilmLoadError, match="junk.pt"):
        load_film(junk)

    partial = tmp_path / "partial.pth"
    state = dict(model.state_dict())
    del state["fuse.output_conv.bias"]
    torch.save(state, partial)
    with pytest.raises(FilmLoadError, match=r"partial\.pth.*missing fuse\.output_conv\.bias"):
        load_film(partial, config=TINY)

    whole = tmp_path / "whole.pth"
    torch.save(model.state_dict(), whole)
    wrong = FilmConfig(**{**TINY.__dict__, "filters": 6})
    shape = r"extract\.extract_sublevels\.convs\.0\.0\.0\.weight is \(4, 3, 3, 3\), not \(6, 3, 3, 3\)"
    with pytest.raises(FilmLoadError, match=r"whole\.pth: weights do not fit.*" + shape):
        load_film(whole, config=wrong)

    onnx = tmp_path / "film.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(FilmLoadError, match="unknown FILM model format"):
        load_film(onnx)


# --- the producer stage ------------------------------------------------------------------


def test_retime_helpers():
    assert [film_factor(5, t) for t in (3, 5, 6, 9, 10, 17, 18, 100)] == [1, 1, 2, 2, 4, 4, 8, 8]
    picks = pick_evenly(17, 12)
    assert len(picks) == 12 and picks[0] == 0 and picks[-1] == 16 and np.all(np.diff(picks) > 0)
    assert list(pick_evenly(3, 5)) == [0, 0, 1, 2, 2]
    assert list(pick_evenly(4, 1)) == [0]


def test_film_interpolator_makes_exactly_the_target(film_pt):
    section = FilmSection(model=film_pt, device="cpu", batch=2)
    stage = make_interpolator(section)
    assert isinstance(stage, FilmInterpolator)
    frames = Frames(random_frames(5, 24, 40, seed=8), fps=5.0)
    out = stage.interpolate(frames, 1.0, 12)  # 12 of the 17 frames a 4x pass makes
    assert out.fps == 12 and out.array.shape == (12, 24, 40, 3)
    assert np.array_equal(out.array[0], frames.array[0]) and np.array_equal(out.array[-1], frames.array[-1])
    inputs = {f.tobytes() for f in frames.array}
    assert sum(f.tobytes() not in inputs for f in out.array) >= 6  # made by FILM, not repeated
    model = stage._model
    light = stage.interpolate(frames, 1.3, 10, light=True)
    assert light.array.shape[0] == 13 and stage._model is model  # loaded once, kept
    fewer = stage.interpolate(frames, 0.3, 10)
    assert fewer.array.shape[0] == 3 and all(f.tobytes() in inputs for f in fewer.array)


def test_film_interpolator_takes_a_model_in_hand(model):
    stage = FilmInterpolator(FilmSection())
    with pytest.raises(ValueError, match="interpolation.model"):
        stage.interpolate(Frames(random_frames(2, 16, 16), fps=2.0), 1.0, 6)
    stage.use_model(model)
    out = stage.interpolate(Frames(random_frames(2, 16, 16), fps=2.0), 1.0, 6)
    assert out.array.shape == (6, 16, 16, 3)


def moving_square(x: int, height: int = 96, width: int = 160) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    frame[40:56, x:x + 16] = (255, 200, 100)
    return frame


def centre_x(frame: np.ndarray) -> float:
    weight = frame[..., 0].astype(np.float64)
    return float((weight.sum(axis=0) * np.arange(frame.shape[1])).sum() / weight.sum())


@pytest.mark.parametrize("light", [False, True])
def test_minterpolate_moves_between_the_inputs(light):
    frames = Frames(np.stack([moving_square(16), moving_square(48), moving_square(80)]), fps=2.0)
    out = MinterpolateInterpolator().interpolate(frames, 1.3, 10, light=light)
    assert out.fps == 10 and out.array.shape == (13, 96, 160, 3)
    xs = [centre_x(f) for f in out.array]
    assert xs[0] == pytest.approx(23.5, abs=0.6) and xs[-1] == pytest.approx(87.5, abs=0.6)
    assert all(b > a for a, b in zip(xs, xs[1:]))  # moves every frame, never holds
    between = [x for x in xs if 25 < x < 54]
    assert len(between) >= 3


def test_no_interpolation_retimes_by_nearest_frame():
    frames = Frames(random_frames(4, 8, 8), fps=4.0)
    out = NoInterpolation().interpolate(frames, 1.0, 10)
    assert out.fps == 10 and len(out.array) == 10
    assert [next(i for i, f in enumerate(frames.array) if np.array_equal(f, g)) for g in out.array] == \
        [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]


def test_make_interpolator_falls_back_without_a_model(caplog):
    with caplog.at_level(logging.WARNING, logger="webtv.producer"):
        stage = make_interpolator(FilmSection())
    assert isinstance(stage, MinterpolateInterpolator)
    assert any("minterpolate" in r.getMessage() and r.name == "webtv.producer" for r in caplog.records)
    assert isinstance(make_interpolator(MinterpolateSection()), MinterpolateInterpolator)
    assert isinstance(make_interpolator(NoInterpolationSection()), NoInterpolation)
    with pytest.raises(ValueError, match="remote"):
        make_interpolator(RemoteInterpolationSection())


# --- webtv interpolate IN OUT --------------------------------------------------------------


@pytest.fixture(scope="module")
def source_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "in clip.mp4"
    subprocess.run([
        ffmpeg_exe(), "-v", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=72x40:rate=6:duration=1",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path),
    ], check=True, timeout=60)
    return path


def frame_count(path) -> int:
    video = probe(path).video
    return round(video.duration * video.fps)


@pytest.mark.parametrize("factor,use_film", [(2, True), (4, False)])
def test_interpolate_file(tmp_path, source_clip, film_pt, factor, use_film):
    out = tmp_path / "out.mp4"
    house = HouseSection(x264_preset="ultrafast") if use_film else None  # None: the default house
    result = interpolate_file(source_clip, out, factor, film_pt if use_film else None, house)
    assert result.video is not None and result.video.fps == pytest.approx(6 * factor)
    assert (result.video.width, result.video.height) == (72, 40)
    assert frame_count(out) == frame_count(source_clip) * factor == 6 * factor
    assert result.audio is not None and result.audio.codec == "aac"


def test_interpolate_command(tmp_path, source_clip, film_pt):
    out = tmp_path / "out.mp4"
    done = subprocess.run([sys.executable, "-m", "webtv", "interpolate", str(source_clip), str(out),
                           "--factor", "2", "--film-model", str(film_pt)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert frame_count(out) == 12
    missing = tmp_path / "missing.mp4"
    done = subprocess.run([sys.executable, "-m", "webtv", "interpolate", str(missing), str(tmp_path / "x.mp4")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and str(missing) in done.stderr

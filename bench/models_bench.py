"""Time each model stage of one clip and report peak memory:
576x320x24 Zeroscope -> XL 1024x576 -> FILM to the house rate -> MusicGen for the clip length.

    python -m bench.models_bench --random-weights            # the real sizes, random weights
    python -m bench.models_bench --config channel.toml       # the models the config names
    python -m bench.models_bench --flops [--config FILE] [--preset card|fast|ltx-distilled|ltx-distilled-2b]
                                                             # FLOP budget on meta tensors (bench/flops.py)
    python -m bench.models_bench --random-weights --preset ltx-distilled   # LTX-Video, 13B distilled

With --random-weights every model is built in code at its published architecture (Zeroscope
576w/XL: the ModelScope UNet3D, SD's VAE, OpenCLIP ViT-H text tower; FILM Style; MusicGen
small: T5-base, 24-layer decoder, 32 kHz EnCodec; LTX-Video: the transformer of the
checkpoint the section names, 13B or 2B, the 0.9.5+ VAE, T5-XXL), so the shapes and FLOPs
are the real ones, and handed to the same stage classes the daemon runs (LTX-Video:
``LtxVideo(section).use_pipeline(LTXConditionPipeline(...))``). Nothing is downloaded.

Speed switches to compare on a GPU: --dtype, --steps/--upscale-steps, --guidance (1 turns
classifier-free guidance off, halving the UNet batch), --channels-last, --compile, --attention.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webtv.config import Config, is_local_model, load_config, with_changes  # noqa: E402
from webtv.director import Sequence, Shot  # noqa: E402
from webtv.producer import ClipPipeline, Stages  # noqa: E402
from webtv.producer.base import Frames  # noqa: E402

PROMPT = "a lighthouse on a cliff in a storm, waves crashing, cinematic, slow dolly in"


# ----------------------------------------------------------------------------- random models at the real sizes


def zeroscope_components() -> dict:
    """The zeroscope_v2 576w / XL architecture (both share it), random weights. The tokenizer
    is the tests' byte-level CLIP tokenizer: 77 tokens out like the real one (ids differ,
    shapes do not)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.tiny_zeroscope import clip_tokenizer

    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        cross_attention_dim=1024, attention_head_dim=64, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), sample_size=256,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
        num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
    ))
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False)
    tokenizer = clip_tokenizer()
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def musicgen_small_config():
    """facebook/musicgen-small's architecture: T5-base, a 24-layer decoder, 32 kHz EnCodec."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    audio = EncodecConfig(
        sampling_rate=32000, audio_channels=1, target_bandwidths=[2.2], upsampling_ratios=[8, 5, 4, 4],
        hidden_size=128, num_filters=64, num_residual_layers=1, num_lstm_layers=2, codebook_size=2048,
        codebook_dim=128, norm_type="weight_norm", use_causal_conv=False, compress=2, normalize=False,
        chunk_length_s=None, overlap=None, pad_mode="reflect",
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096,
        num_codebooks=4, max_position_embeddings=2048, audio_channels=1,
    )
    return MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())


def musicgen_small(folder: Path) -> Path:
    """facebook/musicgen-small's architecture, random weights, with the tests' processor."""
    import torch
    from transformers import MusicgenForConditionalGeneration

    from tests.tiny_musicgen import tiny_processor

    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(musicgen_small_config())
    model.generation_config.decoder_start_token_id = 2048
    model.generation_config.pad_token_id = 2048
    model.save_pretrained(folder)
    tiny_processor(32000).save_pretrained(folder)  # real processor code; short prompts, same shapes
    return folder


# The LTX-Video VAE of the 0.9.5 and later checkpoints (0.9.7 and 0.9.8, distilled ones
# included), as diffusers' conversion script (scripts/convert_ltx_to_diffusers.py,
# get_vae_config) writes it.
LTX_VAE_095 = dict(
    in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(128, 256, 512, 1024, 2048),
    down_block_types=("LTXVideo095DownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2), decoder_layers_per_block=(5, 5, 5, 5),
    spatio_temporal_scaling=(True,) * 4, decoder_spatio_temporal_scaling=(True,) * 3,
    decoder_inject_noise=(False,) * 4, downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True,) * 3, upsample_factor=(2,) * 3, timestep_conditioning=True, patch_size=4,
    patch_size_t=1, resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
    spatial_compression_ratio=32, temporal_compression_ratio=8,
)

# The LTX-Video transformers, as the conversion script's get_transformer_config gives them:
# the 13B one of the 0.9.7 and later 13B checkpoints, and the 2B one of every other (the
# class defaults of diffusers' LTXVideoTransformer3DModel, written out).
LTX_TRANSFORMER_2B = dict(
    in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32, attention_head_dim=64,
    cross_attention_dim=2048, num_layers=28, activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads",
    norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096, attention_bias=True, attention_out_bias=True,
)
LTX_TRANSFORMER_13B = {**LTX_TRANSFORMER_2B, "attention_head_dim": 128, "cross_attention_dim": 4096, "num_layers": 48}

LTX_2B_DISTILLED = "Lightricks/LTX-Video-0.9.8-2B-distilled"
"""The 2B distilled checkpoint the bench offers beside the section's default (the 13B one);
an id in the diffusers layout that was not checked against the hub (no hub here)."""


def ltx_transformer_config(model: str) -> tuple[dict, str]:
    """The transformer config of the LTX-Video checkpoint ``model`` names, and what was chosen
    and why: a local model folder's own ``transformer/config.json`` wins; otherwise the id
    decides as diffusers' conversion script does: 13B for the 0.9.7 and later 13B checkpoints
    (an id naming 13B, or 0.9.7+ not naming 2B), 2B for every other."""
    import re

    config = ltx_folder_config(model, "transformer")
    if config is not None:
        return config, f"{_ltx_size(config)} transformer from {Path(model).expanduser() / 'transformer'}/config.json"
    name = model.lower()
    version = re.search(r"0\.9\.(\d+)", name)
    if "13b" in name or ("2b" not in name and version is not None and int(version.group(1)) >= 7):
        return dict(LTX_TRANSFORMER_13B), f"13B transformer (diffusers' conversion config of the 0.9.7+ 13B " \
                                          f"checkpoints, for {model!r})"
    return dict(LTX_TRANSFORMER_2B), f"2B transformer (diffusers' conversion config of the 2B checkpoints, " \
                                     f"for {model!r})"


def _ltx_size(config: dict) -> str:
    """"13B", "2B" or the layer and head sizes, for a transformer config."""
    for size, known in (("13B", LTX_TRANSFORMER_13B), ("2B", LTX_TRANSFORMER_2B)):
        if all(config.get(key, LTX_TRANSFORMER_2B[key]) == value for key, value in known.items()):
            return size
    heads = config.get("num_attention_heads", 32) * config.get("attention_head_dim", 64)
    return f"{config.get('num_layers', 28)}-layer, {heads}-wide"


def ltx_folder_config(model: str, part: str) -> dict | None:
    """A local LTX-Video model folder's ``<part>/config.json`` (vae, text_encoder), or None."""
    import json

    path = Path(model).expanduser() / part / "config.json"
    if not is_local_model(model) or not path.is_file():
        return None
    return {key: value for key, value in json.loads(path.read_text(encoding="utf-8")).items()
            if not key.startswith("_")}


def t5_xxl_config():
    """google/t5-v1_1-xxl's encoder, LTX-Video's text encoder."""
    from transformers import T5Config

    return T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                    feed_forward_proj="gated-gelu", is_encoder_decoder=False)


def ltx_components(section, tiny: bool, device="cpu", dtype=None) -> dict:
    """The five components of the LTX-Video checkpoint ``section.model`` names, random weights:
    its transformer (``ltx_transformer_config``), the 0.9.5+ VAE and T5-XXL encoder (a local
    folder's own configs win), the 0.9.7+ flow-matching scheduler without dynamic shifting,
    and the tests' character T5 tokenizer (128 tokens out like the real one: ids differ,
    shapes do not). ``tiny``: the tests' tiny LTX model instead (tests/tiny_ltx.py). The
    weights are made on ``device`` at ``dtype`` (13B + T5-XXL in fp32 on the CPU would be
    70 GB and minutes of initialisation)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from tests.tiny_ltx import MAX_TOKENS, tiny_components
    from tests.tiny_musicgen import char_t5_tokenizer

    if tiny:
        return tiny_components()
    torch.manual_seed(0)
    config, _ = ltx_transformer_config(section.model)
    text = ltx_folder_config(section.model, "text_encoder")
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype or default)
    try:
        with torch.device(device):
            parts = dict(
                transformer=LTXVideoTransformer3DModel(**config),
                vae=AutoencoderKLLTXVideo(**(ltx_folder_config(section.model, "vae") or LTX_VAE_095)),
                text_encoder=T5EncoderModel(T5Config(**text) if text else t5_xxl_config()),
            )
    finally:
        torch.set_default_dtype(default)
    return dict(parts, tokenizer=char_t5_tokenizer(model_max_length=MAX_TOKENS),
                scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False))


# ----------------------------------------------------------------------------- measuring


class Meter:
    """Seconds and peak memory per step of the clip pipeline: CUDA's allocator peak on a
    GPU, the process's peak RSS otherwise (a high-water mark: it only grows from step to
    step). Skipped steps (a stand-in ran instead) are not reported."""

    def __init__(self, device, skip: list[str]) -> None:
        self.device = device
        self.skip = set(skip)
        self.rows: list[dict] = []

    @contextlib.contextmanager
    def step(self, name: str):
        if name in self.skip:
            yield
            return
        import torch

        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        yield
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.rows.append({"stage": name, "seconds": round(seconds, 3), "peak_gb": round(peak / 1e9, 2)})
        print(f"  {name:<12} {seconds:8.2f} s   peak {'GPU' if cuda else 'RSS'} {peak / 1e9:6.2f} GB", flush=True)


class StandInVideo:
    """--skip video: noise frames of the size the next step gets."""

    def __init__(self, frames: Frames) -> None:
        self.frames = frames

    def render(self, shot, seconds, progress=None, *, light=False) -> Frames:
        return self.frames


def tune(pipe, args) -> None:
    """Apply the speed switches under test to a loaded diffusers pipeline."""
    import torch

    if args.channels_last:  # the 2-D convolutions only: UNet3D's temporal convolutions are 5-D
        for module in (*pipe.unet.modules(), *pipe.vae.modules()):
            if isinstance(module, torch.nn.Conv2d):
                module.to(memory_format=torch.channels_last)
    if args.attention == "math":
        from diffusers.models.attention_processor import AttnProcessor

        pipe.unet.set_attn_processor(AttnProcessor())
    if args.compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs", fullgraph=False)


def main(argv: list[str] | None = None) -> int:
    from bench.flops import BENCH_PRESETS, ltx_presets

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random-weights", action="store_true", help="build the models in code at their real sizes")
    parser.add_argument("--config", type=Path, help="without --random-weights: the models this channel file names")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="default: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--seconds", type=float, default=3.0, help="airtime of the clip")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="576x320")
    parser.add_argument("--upscale-size", default="1024x576")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--upscale-steps", type=int, default=40)
    parser.add_argument("--strength", type=float, default=0.6)
    parser.add_argument("--guidance", type=float, default=9.0)
    parser.add_argument("--fps", type=int, default=24, help="house frame rate FILM brings the clip to")
    parser.add_argument("--film-batch", type=int, default=4)
    parser.add_argument("--film-tile", type=int, default=None)
    parser.add_argument("--skip", action="append", default=[], choices=("video", "upscale", "interpolate", "music"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNets (first call compiles: run twice)")
    parser.add_argument("--attention", choices=("sdpa", "math"), default="sdpa")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the chain; the last is reported")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--tiny", action="store_true", help="with --random-weights: the tests' tiny models "
                        "(checks the bench itself; use with --size 32x24 --upscale-size 64x40)")
    parser.add_argument("--flops", action="store_true", help="count the FLOPs of the configured chain at the real "
                        "sizes on meta tensors (no weights, no GPU) and print the budget per airtime second")
    parser.add_argument("--preset", choices=BENCH_PRESETS,
                        help="with --flops: a commented preset of the repository's channel.toml on top of --config; "
                        "ltx-distilled (-2b): [video] backend = \"ltx\" at its defaults (the 13B / 2B distilled "
                        "checkpoint); without --flops: the preset's sampling settings at the sizes of the flags "
                        "(LTX: its own sizes, the tests' small ones with --tiny)")
    args = parser.parse_args(argv)
    if args.flops:
        from bench import flops

        return flops.main(args.config, args.preset, Path(__file__).resolve().parents[1] / "channel.toml")
    if not args.random_weights and args.config is None:
        parser.error("give --random-weights, or --config with the models to time")
    fractions = {}
    if args.preset in ("card", "fast"):  # the preset's sampling settings, at the sizes of the flags
        from bench.flops import preset_tables

        tables = preset_tables(args.preset, (Path(__file__).resolve().parents[1] / "channel.toml").read_text())
        video_t, upscale_t = tables["video"], tables["upscale"]
        args.frames, args.steps, args.guidance = video_t["frames"], video_t["steps"], video_t["guidance"]
        args.upscale_steps, args.strength = upscale_t["steps"], upscale_t["strength"]
        fractions = {"video": video_t.get("guidance_fraction", 1.0), "upscale": upscale_t.get("guidance_fraction", 1.0)}
    ltx = args.preset in ltx_presets()
    if ltx:  # LTX-Video draws at the house rate and size: no upscale; "none" retimes 73 frames to 72
        args.skip = sorted(set(args.skip) | {"upscale"})

    import torch

    from webtv.producer.devices import pick_device
    from webtv.producer.interpolate import FilmInterpolator, NoInterpolation
    from webtv.producer.ltx import LtxVideo
    from webtv.producer.musicgen import MusicGenAudio
    from webtv.producer.zeroscope import ZeroscopeUpscaler, ZeroscopeVideo

    device = pick_device(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, None: None}[args.dtype]
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    width, height = map(int, args.size.lower().split("x"))
    up_width, up_height = map(int, args.upscale_size.lower().split("x"))
    config = load_config(args.config) if args.config else Config()
    config = with_changes(config, {
        "video": {"backend": "zeroscope", "width": width, "height": height, "frames": args.frames,
                  "steps": args.steps, "guidance": args.guidance, "device": str(device),
                  "guidance_fraction": fractions.get("video", 1.0)},
        "upscale": {"backend": "zeroscope", "width": up_width, "height": up_height, "steps": args.upscale_steps,
                    "strength": args.strength, "guidance": args.guidance, "device": str(device),
                    "guidance_fraction": fractions.get("upscale", 1.0)},
        "interpolation": {"backend": "film", "batch": args.film_batch, "tile": args.film_tile, "device": str(device)},
        "audio": {"backend": "musicgen", "device": str(device)},
    }, "bench flags")
    if ltx:
        config = with_changes(config, {"video": ltx_bench_table(args, str(device)),
                                       "interpolation": {"backend": "none"}}, "bench flags")
    video_section, upscale_section, film_section, audio_section = (
        config.video, config.upscale, config.interpolation, config.audio)

    work = Path(tempfile.mkdtemp(prefix="webtv-bench-"))
    print(f"device {device}, {dtype}, {'random weights' if args.random_weights else 'configured models'}", flush=True)
    if args.random_weights and "music" not in args.skip:
        from tests.tiny_musicgen import tiny_musicgen

        build_music = tiny_musicgen if args.tiny else musicgen_small
        audio_section = audio_section.model_copy(update={"model": str(build_music(work / "musicgen"))})
    video = LtxVideo(video_section) if ltx else ZeroscopeVideo(video_section)
    upscaler = ZeroscopeUpscaler(upscale_section)
    film = NoInterpolation(film_section) if ltx else FilmInterpolator(film_section)
    music = MusicGenAudio(audio_section)
    if args.random_weights and ltx:
        from diffusers import LTXConditionPipeline

        started = time.perf_counter()
        if not args.tiny:
            print(ltx_transformer_config(video_section.model)[1], flush=True)
        pipe = LTXConditionPipeline(**ltx_components(video_section, args.tiny, device, dtype)).to(device, dtype)
        params = sum(p.numel() for p in pipe.transformer.parameters())
        print(f"LTX transformer {params / 1e9:.2f} B parameters", flush=True)
        video.use_pipeline(pipe)
        print(f"LTX models built in {time.perf_counter() - started:.1f} s", flush=True)
    elif args.random_weights:
        load_random(video, upscaler, film, device, dtype, args)
    if "music" not in args.skip:
        music.load()  # loading is not part of a render: the daemon keeps models warm
    shot = Shot(prompt=PROMPT, seed=1, theme="bench")
    sequence = Sequence(id="bench", theme="bench", music_prompt="slow ambient strings, cinematic", seed=1, shots=(shot,))
    if "video" in args.skip and not ltx:
        size = (height, width) if "upscale" not in args.skip else (up_height, up_width)
        noise = np.random.default_rng(0).integers(0, 256, (args.frames, *size, 3), dtype=np.uint8)
        video = StandInVideo(Frames(noise, args.frames / args.seconds))
    stages = Stages(video=video, audio=music, upscale=None if "upscale" in args.skip else upscaler,
                    interpolate=None if "interpolate" in args.skip else film)

    meter = Meter(device, args.skip)
    # The daemon's own recipe, timed step by step; a failed step raises instead of being
    # retried lighter, so a row never times the lighter settings.
    pipeline = ClipPipeline(stages, config.house.model_copy(update={"fps": args.fps}), args.seconds,
                            lighter_retry=False, around_step=meter.step)
    for run in range(args.repeat):
        print(f"run {run + 1}/{args.repeat}", flush=True)
        meter.rows.clear()
        chain_started = time.perf_counter()
        frames = pipeline.frames(shot)
        if "music" not in args.skip:
            pipeline.compose(sequence)
        wall = time.perf_counter() - chain_started
    airtime = args.seconds / wall
    peak = max(row["peak_gb"] for row in meter.rows) if meter.rows else 0.0
    print(f"chain {wall:.2f} s for {args.seconds:g} s of airtime: {airtime:.3f}x real time; peak {peak:.2f} GB")
    if meter.rows:
        print(f"frames out: {frames.array.shape} at {frames.fps:g} fps")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json), "config": str(args.config)},
                                         "device": str(device), "dtype": str(dtype), "rows": meter.rows,
                                         "chain_s": wall, "airtime_per_wall_s": airtime}, indent=2, default=str))
    return 0


def ltx_bench_table(args, device: str) -> dict:
    """``[video]`` of the LTX preset ``args.preset`` (LtxVideoSection's defaults, its checkpoint)
    for ``args.seconds`` at ``args.fps``: 8k+1 frames covering the clip, told they play at that
    rate (73 at 24 fps for 3 s, the defaults). With --tiny: 64x32 and 2 steps of the
    pipeline's own schedule, sizes the tests' tiny model takes."""
    from bench.flops import ltx_video_table
    from webtv.config import LTX_FRAME_GROUP

    table = ltx_video_table(args.preset, args.seconds)
    drawn = round(args.seconds * args.fps)
    frames = -(-drawn // LTX_FRAME_GROUP) * LTX_FRAME_GROUP + 1
    table |= {"frames": frames, "frame_rate": args.fps, "device": device}
    if args.tiny:
        table |= {"width": 64, "height": 32, "steps": 2, "timesteps": []}
    return table


def load_random(video, upscaler, film, device, dtype, args) -> None:
    """Build the video, upscale and FILM models at their real sizes (the tests' tiny ones with
    --tiny) with random weights and give each to its stage (MusicGen is written to a folder
    and loaded the usual way)."""
    import torch
    from diffusers import TextToVideoSDPipeline, VideoToVideoSDPipeline

    from interpolation import FilmConfig, FilmNet

    from tests.tiny_film import TINY as TINY_FILM
    from tests.tiny_zeroscope import tiny_components

    build_parts = tiny_components if args.tiny else zeroscope_components
    film_config = TINY_FILM if args.tiny else FilmConfig()
    started = time.perf_counter()
    parts = build_parts()
    params = sum(p.numel() for p in parts["unet"].parameters())
    print(f"UNet3D {params / 1e9:.2f} B parameters", flush=True)
    if "video" not in args.skip:
        pipe = TextToVideoSDPipeline(**parts).to(device, dtype)
        tune(pipe, args)
        video.use_pipeline(pipe)
    if "upscale" not in args.skip:
        if "video" not in args.skip:  # the XL weights have the same architecture: build a second copy
            parts = build_parts()
        pipe = VideoToVideoSDPipeline(**parts).to(device, dtype)
        tune(pipe, args)
        upscaler.use_pipeline(pipe)
    if "interpolate" not in args.skip:
        torch.manual_seed(0)
        film.use_model(FilmNet(film_config).to(device, dtype).eval())
    print(f"models built in {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

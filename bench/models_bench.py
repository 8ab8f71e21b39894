"""Time each model stage of one clip and report peak memory:
576x320x24 Zeroscope -> XL 1024x576 -> FILM to the house rate -> MusicGen for the clip length.

    python -m bench.models_bench --random-weights            # the real sizes, random weights
    python -m bench.models_bench --config channel.toml       # the models the config names
    python -m bench.models_bench --flops [--config FILE] [--preset card|fast|ltx-distilled]
                                                             # FLOP budget on meta tensors (bench/flops.py)

With --random-weights every model is built in code at its published architecture (Zeroscope
576w/XL: the ModelScope UNet3D, SD's VAE, OpenCLIP ViT-H text tower; FILM Style; MusicGen
small: T5-base, 24-layer decoder, 32 kHz EnCodec), so the shapes and FLOPs are the real
ones, and handed to the same stage classes the daemon runs. Nothing is downloaded.

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

from webtv.config import Config, load_config, with_changes  # noqa: E402
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


# The LTX-Video VAE of the 0.9.5 and later checkpoints (the distilled ones included), as
# diffusers' conversion script writes it; the transformer's class defaults are the 2B one's.
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


def t5_xxl_config():
    """google/t5-v1_1-xxl's encoder, LTX-Video's text encoder."""
    from transformers import T5Config

    return T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                    feed_forward_proj="gated-gelu", is_encoder_decoder=False)


def ltx_components(tiny: bool) -> dict:
    """LTX-Video 2B (0.9.5+ VAE, T5-XXL encoder) with random weights, or a tiny one for the CPU
    check of the bench (the diffusers tests' sizes). No tokenizer: the stand-in stage feeds the
    encoder random ids of the prompt length."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    if tiny:
        transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, num_attention_heads=4,
                                                 attention_head_dim=8, cross_attention_dim=32, num_layers=1,
                                                 caption_channels=32)
        vae = AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
            upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
            patch_size_t=1, encoder_causal=True, decoder_causal=False)
        text = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                       is_encoder_decoder=False))
    else:
        transformer = LTXVideoTransformer3DModel()  # the class defaults are the 2B checkpoints' config
        vae = AutoencoderKLLTXVideo(**LTX_VAE_095)
        text = T5EncoderModel(t5_xxl_config())
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)
    return dict(transformer=transformer, vae=vae, text_encoder=text, scheduler=scheduler)


class LtxStandIn:
    """STAND-IN for ltx: the "ltx" part's backend times LTXPipeline here until the branches
    meet. T5 runs on random ids (128, the pipeline's prompt length), then LTXPipeline draws
    ``frames`` frames at the model's native rate with the distilled settings."""

    def __init__(self, parts: dict, device, dtype, settings) -> None:
        from diffusers import LTXPipeline

        self.text = parts["text_encoder"].to(device, dtype)
        self.pipe = LTXPipeline(transformer=parts["transformer"], vae=parts["vae"], scheduler=parts["scheduler"],
                                text_encoder=None, tokenizer=None).to(device, dtype)
        self.pipe.set_progress_bar_config(disable=True)
        self.device, self.settings = device, settings

    def render(self, shot, seconds, progress=None, *, light=False) -> Frames:
        import torch

        s = self.settings
        with torch.no_grad():
            ids = torch.randint(0, self.text.config.vocab_size, (1, 128), device=self.device)
            embeds = self.text(input_ids=ids).last_hidden_state
            mask = torch.ones(1, 128, device=self.device)
            out = self.pipe(prompt_embeds=embeds, prompt_attention_mask=mask, width=s.width, height=s.height,
                            num_frames=s.frames, num_inference_steps=s.steps, guidance_scale=s.guidance,
                            decode_timestep=0.05, decode_noise_scale=0.025, output_type="np",
                            generator=torch.Generator("cpu").manual_seed(shot.seed))
        video = np.rint(np.clip(np.asarray(out.frames)[0], 0, 1) * 255).astype(np.uint8)
        return Frames(video, fps=len(video) / seconds)


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
    parser.add_argument("--preset", choices=("card", "fast", "ltx-distilled"),
                        help="with --flops: a commented preset of the repository's channel.toml on top of --config")
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
    ltx = args.preset == "ltx-distilled"
    if ltx:  # STAND-IN for ltx: native-rate frames, no upscale, no interpolation
        from bench.flops import LTX_DISTILLED

        args.skip = sorted(set(args.skip) | {"upscale", "interpolate"})

    import torch

    from webtv.producer.devices import pick_device
    from webtv.producer.interpolate import FilmInterpolator
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
    video_section, upscale_section, film_section, audio_section = (
        config.video, config.upscale, config.interpolation, config.audio)

    work = Path(tempfile.mkdtemp(prefix="webtv-bench-"))
    print(f"device {device}, {dtype}, {'random weights' if args.random_weights else 'configured models'}", flush=True)
    if args.random_weights and "music" not in args.skip:
        from tests.tiny_musicgen import tiny_musicgen

        build_music = tiny_musicgen if args.tiny else musicgen_small
        audio_section = audio_section.model_copy(update={"model": str(build_music(work / "musicgen"))})
    video, upscaler = ZeroscopeVideo(video_section), ZeroscopeUpscaler(upscale_section)
    film, music = FilmInterpolator(film_section), MusicGenAudio(audio_section)
    if args.random_weights and ltx:
        settings = LTX_DISTILLED
        if args.tiny:  # tiny sizes within the model's rules (multiples of 32, 8k + 1 frames)
            settings = type(LTX_DISTILLED)(**{**vars(LTX_DISTILLED), "width": 64, "height": 32, "frames": 9,
                                              "steps": 2})
        started = time.perf_counter()
        video = LtxStandIn(ltx_components(args.tiny), device, dtype, settings)
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

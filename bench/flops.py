"""The FLOP budget of a clip: what the configured chain costs per airtime second, before any
GPU is rented.

Every model is built at its published architecture on the ``meta`` device (shapes, no
weights, no memory) and run once per distinct input shape under
``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products and
convolutions (attention included); elementwise work (norms, activations, the scheduler) is
left out, a few percent at these sizes. How many times each forward runs comes from the
recipe's own plan functions (``webtv.producer.denoise``, ``film_factor``, MusicGen's token
rate), so a lever in the config moves the count the way it moves the render.

Invariants: FLOPs are linear in the batch (a guided step costs exactly two unguided ones);
MusicGen's decoder is counted as one forward over all its tokens (its key/value cache makes
the projections cost the same; attention is counted over the full square, a slight
overcount); the rate line assumes one H100 at 40% of 790 TFLOP/s bf16 dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

H100_BF16_FLOPS = 790e12
UTILISATION = 0.40
ASSUMPTION = "one H100 at 40% of 790 TFLOP/s bf16"
SUSTAINED = H100_BF16_FLOPS * UTILISATION

CLIP_TOKENS = 77  # the CLIP tokenizer pads every prompt to this
MUSIC_PROMPT_TOKENS = 16  # a short music prompt through T5; its share is negligible
LTX_PROMPT_TOKENS = 128  # LTXPipeline's max_sequence_length

# STAND-IN for ltx: until the "ltx" backend's config section lands, the LTX distilled settings
# are given here (the section's field names); a config with [video] backend = "ltx" is read
# through the same names once it exists.
LTX_DISTILLED = SimpleNamespace(
    backend="ltx", model="Lightricks/LTX-Video-0.9.6-distilled (2B)", width=1024, height=576, frames=73, steps=8,
    guidance=1.0,
)


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs that ``run()`` performs, as FlopCounterMode counts them (no gradients)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return int(counter.get_total_flops())


@dataclass
class Line:
    """One model forward, run ``calls`` times in a clip."""

    stage: str
    what: str
    calls: float
    each: int

    @property
    def flops(self) -> float:
        return self.calls * self.each


@dataclass
class Budget:
    clip_seconds: float
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.flops for line in self.lines)

    def stages(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in self.lines:
            totals[line.stage] = totals.get(line.stage, 0.0) + line.flops
        return totals

    def rate(self, flops: float) -> str:
        """PFLOP per clip, per airtime second, and the airtime per wall second on the assumption."""
        per_second = flops / self.clip_seconds
        airtime = math.inf if flops == 0 else self.clip_seconds / (flops / SUSTAINED)
        return (f"{flops / 1e15:9.4f} PFLOP/clip {per_second / 1e15:8.4f} PFLOP/airtime-s "
                f"{airtime:8.2f}x real time ({ASSUMPTION})")

    def report(self) -> str:
        rows = [f"{line.stage:<12} {line.what:<52} {line.calls:>6g} x {line.each / 1e12:10.3f} TFLOP"
                for line in self.lines]
        rows.append("")
        rows += [f"{stage:<12} {self.rate(flops)}" for stage, flops in self.stages().items()]
        rows.append(f"{'total':<12} {self.rate(self.total)}")
        rows += [f"note: {note}" for note in self.notes]
        return "\n".join(rows)


class MetaModels:
    """Each architecture built once on the meta device, and each forward counted once per shape."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}
        self._counted: dict[tuple, int] = {}

    def model(self, name: str, build: Callable[[], Any]):
        if name not in self._built:
            import torch

            with torch.device("meta"):
                self._built[name] = build()
        return self._built[name]

    def real(self, name: str, build: Callable[[], Any]):
        """A small model built for real on the CPU, for code that reads tensor values."""
        if name not in self._built:
            self._built[name] = build()
        return self._built[name]

    def flops(self, key: tuple, run: Callable[[], Any]) -> int:
        if key not in self._counted:
            self._counted[key] = count_flops(run)
        return self._counted[key]


# ----------------------------------------------------------------------------- the stages


def zeroscope(budget: Budget, models: MetaModels, stage: str, section, frames: int, *, upscale: bool) -> None:
    """Text encoder, UNet steps (guided ones at batch 2) and VAE of one Zeroscope pass."""
    import torch

    from webtv.producer.denoise import partial_steps, unet_batches

    from bench.models_bench import zeroscope_components

    parts = models.model("zeroscope", zeroscope_components)
    unet, vae, text = parts["unet"], parts["vae"], parts["text_encoder"]
    height, width = section.height // 8, section.width // 8
    run = partial_steps(section.steps, section.strength)[1] if upscale else section.steps
    batches = unet_batches(run, section.guidance, section.guidance_fraction)
    guided = batches.count(2)

    def unet_forward(batch: int) -> int:
        sample = torch.empty(batch, 4, frames, height, width, device="meta")
        context = torch.empty(batch, CLIP_TOKENS, 1024, device="meta")
        return models.flops(("unet", batch, frames, height, width),
                            lambda: unet(sample, torch.tensor(500, device="meta"), encoder_hidden_states=context))

    ids = torch.zeros(1, CLIP_TOKENS, dtype=torch.long, device="meta")
    budget.lines.append(Line(stage, "CLIP text tower (prompt, + negative when guided)", 2 if guided else 1,
                             models.flops(("clip",), lambda: text(ids))))
    if upscale:
        image = torch.empty(1, 3, section.height, section.width, device="meta")
        budget.lines.append(Line(stage, f"VAE encode, {section.width}x{section.height} a frame", frames,
                                 models.flops(("vae-encode", section.height, section.width), lambda: vae.encode(image))))
    if guided:
        budget.lines.append(Line(stage, f"UNet3D, CFG step (batch 2), {frames}x{section.width}x{section.height}",
                                 guided, unet_forward(2)))
    if len(batches) > guided:
        budget.lines.append(Line(stage, f"UNet3D, unguided step, {frames}x{section.width}x{section.height}",
                                 len(batches) - guided, unet_forward(1)))
    latent = torch.empty(1, 4, height, width, device="meta")
    budget.lines.append(Line(stage, f"VAE decode, {section.width}x{section.height} a frame", frames,
                             models.flops(("vae-decode", height, width), lambda: vae.decode(latent))))


def film(budget: Budget, models: MetaModels, drawn: int, target: int, width: int, height: int) -> None:
    """FILM Style: one forward per new frame of the recursive factor, at the padded size."""
    import torch

    from interpolation import FilmConfig, FilmNet
    from webtv.producer.interpolate import film_factor

    factor = film_factor(drawn, target)
    if factor == 1:
        budget.notes.append(f"FILM not needed: {drawn} frames already cover {target}")
        return
    net = models.model("film", lambda: FilmNet(FilmConfig()).eval())
    multiple = net.config.multiple
    padded_h, padded_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    x0 = torch.empty(1, 3, padded_h, padded_w, device="meta")
    dt = torch.full((1, 1), 0.5, device="meta")
    each = models.flops(("film", padded_h, padded_w), lambda: net(x0, x0, dt))
    budget.lines.append(Line("interpolate", f"FILM Style midpoint, {padded_w}x{padded_h}, x{factor} from {drawn}",
                             (drawn - 1) * (factor - 1), each))


def musicgen(budget: Budget, models: MetaModels, section, seconds: float) -> None:
    """MusicGen small for ``seconds`` of music: T5 + decoder over all its tokens (batch 2 with
    guidance), then the EnCodec decoder."""
    import torch

    from bench.models_bench import musicgen_small_config

    def build():
        from transformers import MusicgenForConditionalGeneration

        return MusicgenForConditionalGeneration(musicgen_small_config()).eval()

    model = models.model("musicgen", build)
    codebooks = model.decoder.config.num_codebooks
    tokens = math.ceil(seconds * model.config.audio_encoder.frame_rate - 1e-9) + codebooks - 1  # + the delay pattern
    batch = 2 if section.guidance > 1 else 1
    text = torch.zeros(batch, MUSIC_PROMPT_TOKENS, dtype=torch.long, device="meta")
    codes = torch.zeros(batch * codebooks, tokens, dtype=torch.long, device="meta")
    budget.lines.append(Line("music", f"MusicGen small: T5 + decoder, {tokens} tokens, batch {batch}", 1,
                             models.flops(("musicgen", batch, tokens),
                                          lambda: model(input_ids=text, decoder_input_ids=codes))))
    # EnCodec computes its padding from tensors (.item()), which meta tensors cannot give: its
    # decoder (a few million parameters) runs for real on the CPU instead.
    codec = models.real("encodec", lambda: _encodec(model.config.audio_encoder))
    audio_codes = torch.zeros(1, 1, codebooks, tokens, dtype=torch.long)
    budget.lines.append(Line("music", f"EnCodec decode, {tokens} frames (counted on the CPU)", 1,
                             models.flops(("encodec", tokens), lambda: codec.decode(audio_codes, [None]))))


def _encodec(config):
    from transformers import EncodecModel

    return EncodecModel(config).eval()


def ltx(budget: Budget, models: MetaModels, section) -> None:
    """LTX-Video: T5-XXL, transformer steps (batch 2 when guided), the 0.9.5+ VAE decoder."""
    import torch

    from bench.models_bench import LTX_VAE_095, t5_xxl_config

    def build_transformer():
        from diffusers import LTXVideoTransformer3DModel

        return LTXVideoTransformer3DModel()  # the class defaults are the 2B checkpoints' config

    def build_vae():
        from diffusers import AutoencoderKLLTXVideo

        return AutoencoderKLLTXVideo(**LTX_VAE_095)

    def build_t5():
        from transformers import T5EncoderModel

        return T5EncoderModel(t5_xxl_config())

    transformer = models.model("ltx-transformer", build_transformer)
    vae = models.model("ltx-vae", build_vae)
    t5 = models.model("t5-xxl", build_t5)
    latent_t, latent_h, latent_w = (section.frames - 1) // 8 + 1, section.height // 32, section.width // 32
    batch = 2 if section.guidance > 1 else 1
    ids = torch.zeros(1, LTX_PROMPT_TOKENS, dtype=torch.long, device="meta")
    budget.lines.append(Line("video", "T5-XXL encoder (prompt, + negative when guided)", batch,
                             models.flops(("t5-xxl",), lambda: t5(input_ids=ids))))
    tokens = latent_t * latent_h * latent_w
    hidden = torch.empty(batch, tokens, 128, device="meta")
    context = torch.empty(batch, LTX_PROMPT_TOKENS, 4096, device="meta")
    mask = torch.ones(batch, LTX_PROMPT_TOKENS, device="meta")
    timestep = torch.full((batch,), 500.0, device="meta")
    step = models.flops(("ltx", batch, tokens), lambda: transformer(
        hidden_states=hidden, encoder_hidden_states=context, timestep=timestep, encoder_attention_mask=mask,
        num_frames=latent_t, height=latent_h, width=latent_w))
    budget.lines.append(Line("video", f"LTX transformer step (batch {batch}), {tokens} tokens "
                             f"({section.frames}x{section.width}x{section.height})", section.steps, step))
    latents = torch.empty(1, 128, latent_t, latent_h, latent_w, device="meta")
    temb = torch.full((1,), 0.05, device="meta")
    budget.lines.append(Line("video", f"LTX VAE decode, {section.frames}x{section.width}x{section.height}", 1,
                             models.flops(("ltx-vae", latent_t, latent_h, latent_w),
                                          lambda: vae.decode(latents, temb))))


def chain(config, video=None, models: MetaModels | None = None) -> Budget:
    """The budget of one clip of ``config`` (``video`` replaces ``config.video``: the LTX stand-in)."""
    models = models or MetaModels()
    video = video or config.video
    seconds = config.video.clip_seconds
    budget = Budget(seconds)
    target = round(seconds * config.house.fps)
    width, height = getattr(video, "width", config.house.width), getattr(video, "height", config.house.height)
    drawn = getattr(video, "frames", target)
    if video.backend == "zeroscope":
        zeroscope(budget, models, "video", video, drawn, upscale=False)
    elif video.backend == "ltx":
        ltx(budget, models, video)
        drawn = target  # STAND-IN for ltx: native rate, the local interpolation stage is skipped
        budget.notes.append(f"LTX draws {video.frames} frames at its native rate: no interpolation (FILM skipped)")
    else:
        budget.notes.append(f"video backend {video.backend!r}: no model FLOPs counted")
    if config.upscale.backend == "zeroscope":
        zeroscope(budget, models, "upscale", config.upscale, drawn, upscale=True)
        width, height = config.upscale.width, config.upscale.height
    if config.interpolation.backend == "film" and drawn != target:
        film(budget, models, drawn, target, width, height)
    elif drawn != target:
        budget.notes.append(f"interpolation {config.interpolation.backend!r}: no model FLOPs counted")
    if config.audio.backend == "musicgen":
        musicgen(budget, models, config.audio, seconds)
    else:
        budget.notes.append(f"audio backend {config.audio.backend!r}: no model FLOPs counted")
    return budget


def cfg_step(models: MetaModels | None = None, frames: int = 24, width: int = 576, height: int = 320) -> int:
    """One classifier-free-guidance step of the Zeroscope UNet (batch 2) over ``frames`` frames."""
    budget = Budget(1.0)
    section = SimpleNamespace(width=width, height=height, steps=1, guidance=9.0, guidance_fraction=1.0)
    zeroscope(budget, models or MetaModels(), "video", section, frames, upscale=False)
    return next(line.each for line in budget.lines if line.what.startswith("UNet3D, CFG"))


# ----------------------------------------------------------------------------- presets and the command


PRESETS = ("card", "fast")
BENCH_PRESETS = (*PRESETS, "ltx-distilled")


def preset_tables(name: str, text: str) -> dict:
    """The tables of the commented preset ``name`` in a channel file's text: from the first
    table after ``# preset "name"`` (the lines before it describe the preset) to
    ``# end of preset "name"``, uncommented and read as TOML."""
    import tomllib

    lines = text.splitlines()
    start, end = f'# preset "{name}"', f'# end of preset "{name}"'
    try:
        first = next(i for i, line in enumerate(lines) if line.startswith(start))
        last = lines.index(end, first)
        first = next(i for i in range(first, last) if lines[i].startswith("# ["))
    except (StopIteration, ValueError):
        raise ValueError(f"no commented preset {name!r} (between '{start}...' and '{end}')") from None
    body = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines[first:last]]
    return tomllib.loads("\n".join(body))


def with_preset(config, name: str, channel_text: str):
    """``config`` with a preset's tables set; "ltx-distilled" is "card"'s FILM and MusicGen
    with the LTX stand-in for video and no upscale. Returns (config, the video section)."""
    from webtv.config import with_changes

    if name == "ltx-distilled":
        tables = preset_tables("card", channel_text)
        config = with_changes(config, {"upscale": {"backend": "none"}, "interpolation": tables["interpolation"],
                                       "audio": tables["audio"]}, "preset ltx-distilled")
        return config, LTX_DISTILLED  # STAND-IN for ltx
    config = with_changes(config, preset_tables(name, channel_text), f"preset {name}")
    return config, config.video


def main(config_path, preset: str | None, channel_file) -> int:
    """``python -m bench.models_bench --flops [--config FILE] [--preset NAME]``."""
    import time

    from webtv.config import Config, load_config

    started = time.perf_counter()
    config = load_config(config_path) if config_path else Config()
    video = config.video
    title = str(config_path or "built-in defaults")
    if preset:
        config, video = with_preset(config, preset, channel_file.read_text(encoding="utf-8"))
        title += f' + preset "{preset}"'
    models = MetaModels()
    budget = chain(config, video, models)
    print(f"FLOPs of one {config.video.clip_seconds:g} s clip: {title}; counted on meta tensors "
          f"(torch.utils.flop_counter: matmuls, convolutions, attention)")
    print(budget.report())
    step = cfg_step(models)
    print(f"one CFG step of the Zeroscope UNet (batch 2), 24 frames at 576x320: {step / 1e12:.2f} TFLOP")
    print(f"counted in {time.perf_counter() - started:.1f} s")
    return 0

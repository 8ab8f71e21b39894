"""Tiny random Zeroscope pipelines written to disk, for tests that cannot download weights.

The real models (``cerspense/zeroscope_v2_576w`` and ``cerspense/zeroscope_v2_XL``) are a
diffusers folder each: ``model_index.json`` plus ``unet`` (UNet3DConditionModel), ``vae``
(AutoencoderKL), ``text_encoder`` (CLIPTextModel), ``tokenizer`` (CLIPTokenizer) and
``scheduler``. The builders here write the same structure with the same classes, only tiny
and with random weights, so ``from_pretrained(folder)`` loads them like the real thing:

    from tests.tiny_zeroscope import tiny_text_to_video, tiny_video_to_video

    model = tiny_text_to_video(tmp_path / "t2v")      # -> Path of a TextToVideoSDPipeline folder
    xl = tiny_video_to_video(tmp_path / "xl")         # -> Path of a VideoToVideoSDPipeline folder
    config = ZeroscopeVideoSection(model=str(model), width=32, height=32, frames=4, steps=2)

Both builders are deterministic (same weights every time, ``seed`` picks another set), write
into ``folder`` (created if missing) and return it. A folder already holding a
``model_index.json`` is reused as it is, so a session-scoped fixture can share one:

    @pytest.fixture(scope="session")
    def tiny_t2v(tmp_path_factory):
        return tiny_text_to_video(tmp_path_factory.mktemp("zeroscope") / "t2v")

Sizes: any width/height that is a multiple of 8 works (the UNet is fully convolutional);
one render of 4 frames at 32x32 with 2 steps takes a fraction of a second on a CPU. The
latents are a quarter of the frame size a side (the real VAE: an eighth). The tests run torch
on one thread (``OMP_NUM_THREADS=1``, set in tests/conftest.py): the models are too small to
gain from threads, and OpenMP threads spinning beside other busy processes can make a few
seconds of work take a minute. ``tiny_components(seed)`` gives the components unsaved, for
``pipeline_class(**components)`` and ``ZeroscopeVideo.use_pipeline``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

# Text encoder width; the UNet's cross attention reads the same width.
HIDDEN = 16
MAX_TOKENS = 77
_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
# A few merges so that common prompt words become fewer tokens (any text tokenizes without them).
_MERGES = ("t h", "a n", "i n", "o n", "e r", "a l", "o r", "th e</w>", "an d</w>", "in g</w>")


def clip_tokenizer():
    """A CLIP BPE tokenizer over the 256 byte symbols (alone and word-final) and a few merges."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = list(_SPECIALS) + alphabet + [symbol + "</w>" for symbol in alphabet]
    tokens += ["".join(merge.split()) for merge in _MERGES]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    with tempfile.TemporaryDirectory(prefix="tiny-clip-tokenizer-") as scratch:
        (Path(scratch) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(scratch) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(scratch, model_max_length=MAX_TOKENS)
    return tokenizer


def tiny_components(seed: int = 0) -> dict:
    """The five components of a Zeroscope pipeline, tiny and random (``seed`` fixes the weights)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=HIDDEN,
            intermediate_size=2 * HIDDEN,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=HIDDEN,
        )
    )
    # What the Zeroscope checkpoints ship (the backend swaps in DPMSolverMultistep from this config).
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def _write(pipeline_class_name: str, folder: Path | str, seed: int) -> Path:
    import diffusers

    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = getattr(diffusers, pipeline_class_name)(**tiny_components(seed))
    pipeline.save_pretrained(folder)
    return folder


def tiny_text_to_video(folder: Path | str, seed: int = 0) -> Path:
    """Write a tiny TextToVideoSDPipeline (the 576w model's structure) into ``folder``; return it."""
    return _write("TextToVideoSDPipeline", folder, seed)


def tiny_video_to_video(folder: Path | str, seed: int = 1) -> Path:
    """Write a tiny VideoToVideoSDPipeline (the XL model's structure) into ``folder``; return it."""
    return _write("VideoToVideoSDPipeline", folder, seed)

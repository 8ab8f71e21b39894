"""A tiny random LTX-Video pipeline written to disk, for tests that cannot download weights.

The published diffusers checkpoints (``Lightricks/LTX-Video-0.9.7-distilled``,
``Lightricks/LTX-Video-0.9.8-13B-distilled``, ...) are a folder each: ``model_index.json``
plus ``transformer`` (LTXVideoTransformer3DModel), ``vae`` (AutoencoderKLLTXVideo),
``text_encoder`` (T5EncoderModel), ``tokenizer`` (a T5 tokenizer, 128 tokens) and
``scheduler`` (FlowMatchEulerDiscreteScheduler). ``tiny_ltx`` writes the same structure with
the same classes, tiny and random, keeping the conventions the backend relies on:

- the VAE packs 32x32 pixels (4x4 patches, then three 2x scalings) and 8 frames (three 2x
  scalings in time, after the first frame) into one latent of 128 channels, and its decoder
  is timestep-aware (0.9.1 and later), so ``decode_timestep``/``decode_noise_scale`` apply;
- the transformer reads 128 latent channels in 1x1x1 patches and cross-attends to the T5
  encoder's width;
- the scheduler is the flow-matching Euler scheduler without dynamic shifting.

    from tests.tiny_ltx import tiny_ltx

    model = tiny_ltx(tmp_path / "ltx")              # -> Path of an LTXConditionPipeline folder
    config = LtxVideoSection(model=str(model), width=64, height=32, frames=9, steps=2)

The builder is deterministic (``seed`` picks another set of weights), writes into
``folder`` (created if missing) and returns it; a folder already holding a
``model_index.json`` is reused. ``tiny_components(seed)`` gives the components unsaved, for
``LTXConditionPipeline(**components)`` and ``LtxVideo.use_pipeline``. One render of 9
frames at 64x32 with 2 steps takes well under a second on one CPU thread.
"""

from __future__ import annotations

from pathlib import Path

from tests.tiny_musicgen import TEXT_VOCAB_SIZE, char_t5_tokenizer

HIDDEN = 16  # the T5 encoder's width = the transformer's caption channels
LATENT_CHANNELS = 128
MAX_TOKENS = 128


def tiny_components(seed: int = 0) -> dict:
    """The five components of an LTX-Video pipeline, tiny and random (``seed`` fixes the weights)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=1,
        caption_channels=HIDDEN,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=True,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    torch.manual_seed(seed + 2)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=TEXT_VOCAB_SIZE, d_model=HIDDEN, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0,
    ))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder,
            "tokenizer": char_t5_tokenizer(model_max_length=MAX_TOKENS), "scheduler": scheduler}


def tiny_ltx(folder: Path | str, seed: int = 0) -> Path:
    """Write a tiny LTXConditionPipeline (the published checkpoints' structure) into ``folder``; return it."""
    from diffusers import LTXConditionPipeline

    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    LTXConditionPipeline(**tiny_components(seed)).save_pretrained(folder)
    return folder

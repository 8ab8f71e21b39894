"""A tiny random MusicGen, written to a folder the way a hub checkpoint is laid out.

    from tests.tiny_musicgen import tiny_musicgen
    folder = tiny_musicgen(tmp_path / "musicgen")          # config.json, model.safetensors,
    MusicGenAudioSection(model=str(folder))     # tokenizer.json, processor_config.json ...

The model is transformers' own ``MusicgenForConditionalGeneration`` (T5 text encoder, Encodec
audio codec, MusicGen decoder) at toy sizes with random weights, so it runs in milliseconds per
token on a CPU and makes noise rather than music; the processor is a real ``MusicgenProcessor``
(``EncodecFeatureExtractor`` + a ``T5Tokenizer`` over a character vocabulary built in code, no
download). ``AutoProcessor.from_pretrained(folder)`` and
``MusicgenForConditionalGeneration.from_pretrained(folder)`` load them back.

Defaults: 8 kHz audio, hop 320 samples -> 25 tokens per second, 4 codebooks of 64 entries,
``max_position_embeddings`` 100 (so one generate window is 96 frames, 3.84 s, and longer
tracks take several windows). Same arguments, same weights (seeded).
"""

from __future__ import annotations

import math
import string
from pathlib import Path

# T5 pieces: <pad>=0, </s>=1, <unk>=2, the word-start marker, then single characters, so the
# Unigram model can spell any prompt in lower/upper case letters, digits and punctuation.
_SPECIALS = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,;:!?'\"-()/&"
TEXT_VOCAB_SIZE = 128
CODEBOOK_SIZE = 64


def build_tiny_musicgen(
    *,
    sampling_rate: int = 8000,
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 2),
    num_codebooks: int = 4,
    max_position_embeddings: int = 100,
    audio_channels: int = 1,
    seed: int = 0,
):
    """(model, processor) in memory; see the module docstring for what the arguments shape.

    ``num_codebooks`` is per audio channel: a stereo model (``audio_channels=2``) has twice as
    many decoder codebooks, interleaved left/right, like facebook/musicgen-stereo-*.
    """
    import torch
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config
    from transformers.models.encodec.modeling_encodec import EncodecEuclideanCodebook

    hop = math.prod(upsampling_ratios)
    frame_rate = math.ceil(sampling_rate / hop)
    bits = math.ceil(math.log2(CODEBOOK_SIZE))
    # Encodec keeps int(1000 * bandwidth // (frame_rate * bits)) quantizers: ask for half a
    # codebook more than needed so float rounding cannot drop one.
    bandwidth = (num_codebooks + 0.5) * frame_rate * bits / 1000
    text = T5Config(
        vocab_size=TEXT_VOCAB_SIZE, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=8, dropout_rate=0.0,
    )
    codec = EncodecConfig(
        sampling_rate=sampling_rate, audio_channels=1, hidden_size=16, num_filters=4,
        num_residual_layers=1, num_lstm_layers=1, upsampling_ratios=list(upsampling_ratios),
        codebook_size=CODEBOOK_SIZE, target_bandwidths=[bandwidth],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        num_codebooks=num_codebooks * audio_channels, audio_channels=audio_channels,
        max_position_embeddings=max_position_embeddings, pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE, dropout=0.0,
    )
    config = MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
        # Encodec initialises its codebooks to zeros, which would make every code decode to
        # the same sound (and every seed give the same track): give them random entries.
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, EncodecEuclideanCodebook):
                    module.embed.copy_(torch.randn_like(module.embed))
                    module.embed_avg.copy_(module.embed)
    model.generation_config.decoder_start_token_id = CODEBOOK_SIZE

    return model, tiny_processor(sampling_rate)


def tiny_processor(sampling_rate: int):
    """A real MusicgenProcessor: Encodec's feature extractor and a T5 tokenizer that spells
    prompts character by character (ids below TEXT_VOCAB_SIZE), built without a download."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    tokenizer = char_t5_tokenizer(model_max_length=256)
    features = EncodecFeatureExtractor(feature_size=1, sampling_rate=sampling_rate, padding_value=0.0)
    return MusicgenProcessor(feature_extractor=features, tokenizer=tokenizer)


def char_t5_tokenizer(model_max_length: int):
    """A real T5 tokenizer (Unigram) that spells prompts character by character, with ids
    below TEXT_VOCAB_SIZE: what T5 encoders of tiny models read (MusicGen's, LTX-Video's)."""
    from transformers import T5Tokenizer

    vocab = _SPECIALS + [(c, -3.0) for c in _CHARS]
    assert len(vocab) <= TEXT_VOCAB_SIZE
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def tiny_musicgen(folder: str | Path, **kwargs) -> Path:
    """Write a tiny random MusicGen (model + processor) into ``folder`` and return its path.

    Keyword arguments are those of :func:`build_tiny_musicgen`. Use the returned path as
    ``[audio] model``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, processor = build_tiny_musicgen(**kwargs)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

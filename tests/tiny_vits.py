"""A tiny random VITS text-to-speech model, saved the way an MMS-TTS checkpoint is laid out.

    from tests.tiny_vits import tiny_vits
    folder = tiny_vits(tmp_path / "vits")        # config.json, model.safetensors, vocab.json,
    VitsVoiceSection(model=str(folder))          # tokenizer_config.json

transformers' own ``VitsModel`` at toy sizes with random weights (it speaks noise, quickly,
on a CPU) and a real ``VitsTokenizer``, both written with ``save_pretrained``; the published
facebook/mms-tts-* conventions are kept: a character vocabulary of 38 entries whose pad token
(id 0) is the blank put between characters (``add_blank``), lower-casing (``normalize``), no
phonemizer, no uroman, 16 kHz audio. ``AutoTokenizer.from_pretrained(folder)`` and
``VitsModel.from_pretrained(folder)`` load them back. Same arguments, same weights (seeded).
"""

from __future__ import annotations

import json
from pathlib import Path

# facebook/mms-tts-eng's characters; its pad token "k" has id 0
VOCAB_CHARS = "k'q–dhepsyn3cw-1jlif ugo0ba6r94m2_zvt5x78"
SAMPLING_RATE = 16000


def tiny_vits(folder: Path, *, speakers: int = 1, seed: int = 0) -> Path:
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(dict.fromkeys(VOCAB_CHARS))[:38]
    vocab = {c: i for i, c in enumerate(chars)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = VitsTokenizer(str(folder / "vocab.json"), pad_token="k", unk_token="<unk>", language="eng",
                              add_blank=True, normalize=True, phonemize=False, is_uroman=False)
    config = VitsConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        flow_size=16, spectrogram_bins=33, upsample_initial_channel=16, upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        duration_predictor_filter_channels=16, prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1, depth_separable_num_layers=1,
        num_speakers=speakers, speaker_embedding_size=8 if speakers > 1 else 0, sampling_rate=SAMPLING_RATE,
    )
    torch.manual_seed(seed)
    VitsModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

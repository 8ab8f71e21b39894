"""A tiny random CLIP, saved the way openai/clip-vit-base-patch32 is laid out.

    from tests.tiny_clip import tiny_clip
    folder = tiny_clip(tmp_path / "clip")      # config.json, model.safetensors, tokenizer.json,
    QualitySection(scorer="clip", model=str(folder))   # tokenizer_config.json, processor_config.json

transformers' own ``CLIPModel`` at toy widths with random weights, a real ``CLIPTokenizer``
and ``CLIPImageProcessor``, all written with ``save_pretrained``. The published checkpoint's
conventions are kept: 224 px images cut into 32 px patches, resized on the shortest edge and
centre-cropped, normalised with OpenAI's mean and std; a byte-level BPE tokenizer (each byte's
character and its ``</w>`` end-of-word form, then the merges, then ``<|startoftext|>`` and
``<|endoftext|>``, which is also the pad and unknown token), lower-cased, 77 positions.
``CLIPModel.from_pretrained(folder)`` and ``CLIPProcessor.from_pretrained(folder)`` load them
back. Same arguments, same weights (seeded).
"""

from __future__ import annotations

from pathlib import Path

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
MERGES = ["t h", "th e</w>", "a n", "o n", "e r", "i n"]  # a few, as the real list starts


def _byte_characters() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in CLIP's vocabulary order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    order = keep + [b for b in range(256) if b not in keep]
    return [chars[b] for b in order]


def tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = _byte_characters()
    tokens = base + [c + "</w>" for c in base] + [m.replace(" ", "") for m in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in MERGES], model_max_length=77)
    images = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                image_mean=OPENAI_MEAN, image_std=OPENAI_STD, do_convert_rgb=True)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "projection_dim": 16,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
                     "pad_token_id": vocab["<|endoftext|>"]},
        vision_config={"image_size": 224, "patch_size": 32, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 16},
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder

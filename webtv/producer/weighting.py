"""Weighted prompts (``webtv.prompt_weights``) turned into prompt embeddings with compel.

compel (PyPI ``compel``) runs the pipeline's own tokenizer and CLIP text encoder and scales
each weighted token's embedding away from the empty prompt's: a token of weight w gets
empty + w x (embedding - empty), so its contribution grows with w; a weight below 1 blends
towards the prompt without those words. The parts come from this project's parser, handed to
compel as its ``Fragment`` objects (compel's own parser reads another syntax).

A prompt without weights (none, or all 1) is encoded by the pipeline's ``encode_prompt`` from
its clean text as before, so an unweighted prompt draws exactly what it drew before.
"""

from __future__ import annotations

from webtv.prompt_weights import clean, is_weighted, parse


def encode_prompts(pipe, prompt: str, negative_prompt: str | None, device, guided: bool):
    """(positive, negative) prompt embeddings for ``pipe`` (a Stable-Diffusion-style pipeline
    with ``tokenizer``, ``text_encoder`` and ``encode_prompt``); negative is None when not
    ``guided``. PromptWeightError when either prompt's weight syntax is malformed."""
    plain, plain_negative = clean(prompt), clean(negative_prompt) if negative_prompt else None
    negative_weighted = bool(negative_prompt) and is_weighted(negative_prompt)
    if not is_weighted(prompt) and not negative_weighted:
        return pipe.encode_prompt(plain, device, 1, guided, plain_negative)
    compel = _compel(pipe, device)
    positive = _embed(compel, prompt)
    negative = _embed(compel, negative_prompt) if guided and negative_weighted else None
    return pipe.encode_prompt(plain, device, 1, guided, plain_negative, prompt_embeds=positive,
                              negative_prompt_embeds=negative)


def _compel(pipe, device):
    from compel import Compel

    return Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, device=device,
                  truncate_long_prompts=True)


def _embed(compel, prompt: str):
    from compel.prompt_parser import Conjunction, FlattenedPrompt

    parts = parse(prompt)
    flat = FlattenedPrompt([(part.text, part.weight) for part in parts] or [("", 1.0)])
    embeddings, _options = compel.build_conditioning_tensor_for_conjunction(Conjunction([flat]))
    return embeddings

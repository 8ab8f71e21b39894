"""Weighted prompts: ``(red fox:1.3)`` asks a diffusion model for more of "red fox".

The syntax is the one EpicDiffusion and most Stable Diffusion front ends write: a group in
parentheses whose text ends with ``:weight``. The weight is a plain decimal number from
``MIN_WEIGHT`` to ``MAX_WEIGHT`` (1 is no change, below 1 less, 0 leaves the words out).
Parentheses without a colon are plain text (``a fox (close-up)``); groups do not nest.

Where a prompt goes:

- The Zeroscope passes turn the parts into prompt embeddings with compel
  (``webtv/producer/weighting.py``).
- Backends that take plain text (procedural, remote adapters, the music models, LTX-Video)
  get ``clean(prompt)``: the words, the weight syntax removed. So does the caption on screen.
- The library stores the prompt as written, weights and all (what was asked).

A malformed weight (a group never closed, a stray ``)``, a weight that is no number or out of
range, nested groups, no words before the colon) is ``PromptWeightError``, whose message
names the prompt. compel has a parser of its own, but for another syntax (``(red fox)1.3``)
and it reads anything it cannot parse as plain text; this one is strict so that a typo is an
error, not a silently unweighted prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_WEIGHT = 0.0
MAX_WEIGHT = 2.0
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


class PromptWeightError(ValueError):
    """A prompt whose weight syntax is malformed; the message names the prompt and the fault."""


@dataclass(frozen=True)
class Part:
    """A run of a prompt's words and the weight they carry (1.0: unweighted)."""

    text: str
    weight: float = 1.0


def parse(prompt: str) -> tuple[Part, ...]:
    """``prompt`` as its runs of words with their weights, in order (empty runs left out);
    PromptWeightError when its weight syntax is malformed."""
    return _scan(prompt)[0]


def clean(prompt: str) -> str:
    """``prompt`` with the weight syntax removed, spaces and punctuation as written: ``a (red
    fox:1.3), running`` -> ``a red fox, running``. PromptWeightError when it is malformed."""
    return _scan(prompt)[1]


def _scan(prompt: str) -> tuple[tuple[Part, ...], str]:
    parts: list[Part] = []
    plain: list[str] = []
    words_only: list[str] = []
    position = 0
    while position < len(prompt):
        opening = prompt.find("(", position)
        closing = prompt.find(")", position)
        if closing >= 0 and (opening < 0 or closing < opening):
            _fail(prompt, f"the ')' at position {closing} closes no '('")
        if opening < 0:
            plain.append(prompt[position:])
            words_only.append(prompt[position:])
            break
        plain.append(prompt[position:opening])
        words_only.append(prompt[position:opening])
        if closing < 0:
            _fail(prompt, f"the '(' at position {opening} is never closed")
        inner = prompt[opening + 1:closing]
        if "(" in inner:
            _fail(prompt, f"groups do not nest: {prompt[opening:closing + 1]!r}")
        if ":" not in inner:
            plain.append(prompt[opening:closing + 1])  # plain text in parentheses
            words_only.append(prompt[opening:closing + 1])
        else:
            words, _, weight = inner.rpartition(":")
            _add(parts, "".join(plain))
            plain = []
            if not words.strip():
                _fail(prompt, f"no words before the weight in {prompt[opening:closing + 1]!r}")
            _add(parts, words, _weight(prompt, words, weight))
            words_only.append(f" {words.strip()} ")
        position = closing + 1
    _add(parts, "".join(plain))
    if "".join(words_only) == prompt:
        return tuple(parts), prompt  # no weight group: the prompt as written, untouched
    return tuple(parts), re.sub(r"\s+([,.;:!?])", r"\1", " ".join("".join(words_only).split()))


def is_weighted(prompt: str) -> bool:
    """Whether any part of ``prompt`` carries a weight other than 1 (PromptWeightError when
    malformed)."""
    return any(part.weight != 1.0 for part in parse(prompt))


def weight_problem(prompt: str) -> str | None:
    """Why ``prompt``'s weight syntax is malformed, or None when it is fine."""
    try:
        parse(prompt)
    except PromptWeightError as exc:
        return str(exc)
    return None


def weighted(text: str, weight: float) -> str:
    """``text`` written with ``weight``: ``weighted("red fox", 1.3)`` -> ``(red fox:1.3)``."""
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise ValueError(f"weight {weight} is outside {MIN_WEIGHT:g}..{MAX_WEIGHT:g}")
    return f"({text}:{round(weight, 2):g})" if weight != 1.0 else text


def _weight(prompt: str, words: str, text: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        _fail(prompt, f"the weight {text!r} of {words.strip()!r} is not a number (write (words:1.3))")
    value = float(text)
    if not MIN_WEIGHT <= value <= MAX_WEIGHT:
        _fail(prompt, f"the weight {text} of {words.strip()!r} is outside {MIN_WEIGHT:g}..{MAX_WEIGHT:g}")
    return value


def _add(parts: list[Part], text: str, weight: float = 1.0) -> None:
    text = " ".join(text.split())
    if text:
        parts.append(Part(text, weight))


def _fail(prompt: str, fault: str):
    raise PromptWeightError(f"prompt {prompt!r}: {fault}")

"""Weighted prompts: ``(red fox:1.3)`` asks a diffusion model for more of "red fox".

The syntax is the one EpicDiffusion and most Stable Diffusion front ends write: a group in
parentheses whose text ends with ``:weight``. The weight is a plain decimal number from
``MIN_WEIGHT`` to ``MAX_WEIGHT`` (1 is no change, below 1 less, 0 leaves the words out).
Other parentheses are plain text (``a fox (close-up)``, ``(note: at dawn)``): themes, looks
and LLM prose pass through untouched. Groups do not nest.

Where a prompt goes:

- The Zeroscope passes turn the parts into prompt embeddings with compel
  (``webtv/producer/weighting.py``).
- Backends that take plain text (procedural, remote adapters, the music models, LTX-Video)
  get ``clean(prompt)``: the words, the weight syntax removed. So does the caption on screen.
- The library stores the prompt as written, weights and all (what was asked).

A malformed weight (``(red fox:lots)``, ``(red fox:)``, a weight out of range, no words
before the colon, ``(red fox:1.3`` never closed, ``red fox:1.3)`` or a nested group) is ``PromptWeightError``, whose message
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
# (words:weight): no parentheses inside, the weight one word after the last colon
_GROUP = re.compile(r"\((?P<words>[^()]*):[ \t]*(?P<weight>[^\s()]*)[ \t]*\)")
_WEIGHT = r":[ \t]*[-+]?[\d.]+[ \t]*"
_UNOPENED = re.compile(r"[^\s()]*" + _WEIGHT + r"\)")  # ... red fox:1.3) with no '(' left for it
_UNCLOSED = re.compile(r"\([^()]*" + _WEIGHT + r"(?=[^)\d.]|$)")  # (red fox:1.3 with no ')'


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
    parts: list[Part] = []
    position = 0
    for group, weight in _groups(prompt):
        _add(parts, prompt[position:group.start()])
        _add(parts, group["words"], weight)
        position = group.end()
    _add(parts, prompt[position:])
    return tuple(parts)


def clean(prompt: str) -> str:
    """``prompt`` with the weight syntax removed, the rest as written: ``a (red fox:1.3),
    running`` -> ``a red fox, running``. PromptWeightError when it is malformed."""
    text, position = [], 0
    for group, _ in _groups(prompt):
        text += [prompt[position:group.start()], group["words"].strip()]
        position = group.end()
    return "".join(text + [prompt[position:]])


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


def _weight(prompt: str, match: re.Match) -> float:
    words, text = match["words"].strip(), match["weight"]
    if not words:
        _fail(prompt, f"no words before the weight in {match[0]!r}")
    if not _NUMBER.fullmatch(text):
        _fail(prompt, f"the weight {text!r} of {words!r} is not a number (write (words:1.3))")
    if not MIN_WEIGHT <= float(text) <= MAX_WEIGHT:
        _fail(prompt, f"the weight {text} of {words!r} is outside {MIN_WEIGHT:g}..{MAX_WEIGHT:g}")
    return float(text)


def _groups(prompt: str) -> list[tuple[re.Match, float]]:
    """Each weight group of ``prompt`` with its weight, in order; PromptWeightError if malformed."""
    groups = [(match, _weight(prompt, match)) for match in _GROUP.finditer(prompt)]
    rest = _GROUP.sub(" ", prompt)
    if stray := _UNOPENED.search(rest):
        _fail(prompt, f"{stray[0].strip()!r} closes no '(' (groups do not nest)")
    if stray := _UNCLOSED.search(rest):
        _fail(prompt, f"{stray[0].strip()!r} is never closed")
    return groups


def _add(parts: list[Part], text: str, weight: float = 1.0) -> None:
    text = " ".join(text.split())
    if text:
        parts.append(Part(text, weight))


def _fail(prompt: str, fault: str):
    raise PromptWeightError(f"prompt {prompt!r}: {fault}")

"""Best-of-K: each shot drawn ``[quality] takes`` times, every take scored, the best one airs.

    shot --video x K (take i: its own seed)--> K takes --score--> one score each
         --choose--> the best take goes on (upscale, interpolate, encode); under
                     ``min_score`` the shot is dropped (LowScore)

Take 0 is drawn with the shot's own seed, so ``takes = 1`` renders what it always did. The
``clip`` scorer is transformers' ``CLIPModel`` with its ``CLIPProcessor`` (``[quality] model``:
a hub id such as openai/clip-vit-base-patch32 or a local folder), loaded once at the first take
it rates: a take's score is the mean cosine similarity between the prompt's embedding and the
embeddings of ``frames`` frames sampled evenly across the take, in [-1, 1]. A scorer is
blocking (torch) and may be called from several render threads at once: one lock around the
model. ``score_on = "workers"`` sends each take to a worker's ``/score`` instead
(``webtv.producer.remote.RemoteScorer``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from webtv.producer.base import Frames

if TYPE_CHECKING:
    from webtv.config import QualitySection

SEED_STRIDE = 7919  # take i is drawn with seed + i x this: far from the next shots' seeds


class Scorer(Protocol):
    def score(self, frames: Frames, prompt: str) -> float:
        """How well ``frames`` show ``prompt``: higher is better."""
        ...


def take_seed(seed: int, take: int) -> int:
    """The seed take ``take`` of a shot seeded ``seed`` is drawn with (take 0: ``seed``)."""
    return (seed + take * SEED_STRIDE) % 2**31 if take else seed


def sample_frames(frames: Frames, count: int) -> np.ndarray:
    """``count`` frames (fewer when the take is shorter) spread evenly from first to last."""
    total = len(frames.array)
    picks = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))
    return np.asarray(frames.array)[picks]


@dataclass(frozen=True)
class Takes:
    """A shot's takes: the seed each was drawn with, its score, and which one went on."""

    seeds: tuple[int, ...]
    scores: tuple[float, ...]
    kept: int

    @property
    def seed(self) -> int:
        return self.seeds[self.kept]

    @property
    def score(self) -> float:
        return self.scores[self.kept]


class LowScore(RuntimeError):
    """Every take of a shot scored under ``min_score``: the shot is dropped, not aired."""

    reason = "low_score"  # as ``Rejected.reason``: what the producer counts the drop under

    def __init__(self, prompt: str, scores: tuple[float, ...], min_score: float):
        shown = ", ".join(f"{s:.4f}" for s in scores)
        super().__init__(f"every take scored under min_score {min_score:g} ({shown}): {prompt!r}")
        self.scores = scores


def choose(seeds: tuple[int, ...], scores: tuple[float, ...], min_score: float | None, prompt: str) -> Takes:
    """The best-scored take (the first of equals); LowScore when it is under ``min_score``."""
    best = int(np.argmax(scores))
    if min_score is not None and scores[best] < min_score:
        raise LowScore(prompt, scores, min_score)
    return Takes(seeds, scores, best)


class ClipScorer:
    """Scorer: mean prompt-frame similarity with transformers' CLIPModel (see the module)."""

    def __init__(self, section: "QualitySection"):
        self.section = section
        self._lock = threading.RLock()
        self._model = None
        self._processor = None
        self._device = None

    def load(self) -> None:
        """Load the model and processor now (idempotent)."""
        with self._lock:
            if self._model is not None:
                return
            from webtv.producer.devices import model_source, pick_device

            source = model_source(self.section.model, "CLIP", "config.json")
            device = pick_device(self.section.device)
            try:
                from transformers import CLIPModel, CLIPProcessor

                processor = CLIPProcessor.from_pretrained(source)
                model = CLIPModel.from_pretrained(source)
            except Exception as exc:  # noqa: BLE001 - the hub and loaders raise many kinds
                raise RuntimeError(f"cannot load CLIP model {self.section.model!r}: {exc}") from exc
            self._model, self._processor, self._device = model.to(device).eval(), processor, device

    def score(self, frames: Frames, prompt: str) -> float:
        import torch

        self.load()
        images = list(sample_frames(frames, self.section.frames))
        with self._lock, torch.inference_mode():
            inputs = self._processor(text=[prompt], images=images, return_tensors="pt", padding=True,
                                     truncation=True).to(self._device)
            out = self._model(**inputs)  # image_embeds, text_embeds: projected and L2-normalised
            similarity = out.image_embeds @ out.text_embeds.T
        return float(similarity.float().mean().cpu())


def make_scorer(section: "QualitySection", workers=None) -> Scorer | None:
    """The scorer ``[quality]`` names (None for ``scorer = "none"``); ``workers`` is the
    channel's WorkerPool, needed for ``score_on = "workers"``."""
    if section.scorer == "none":
        return None
    if section.score_on == "workers":
        from webtv.producer.remote import RemoteScorer

        return RemoteScorer(workers)
    return ClipScorer(section)

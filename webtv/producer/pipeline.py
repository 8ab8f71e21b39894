"""STAND-IN for recipe: the clip recipe's components, held once (the recipe's ClipPipeline
replaces this; until then the steps run in ``producer.make_clip``)."""

from __future__ import annotations

from dataclasses import dataclass

from webtv.config import HouseSection
from webtv.producer.stages import Stages


@dataclass
class ClipPipeline:
    stages: Stages
    house: HouseSection
    clip_seconds: float

"""theme -> shots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from webtv.director.base import Character, Director, DirectorState, Episode, EpisodeBrief, Sequence, Series, Shot

if TYPE_CHECKING:
    from webtv.config import DirectorSection

__all__ = ["Character", "Director", "DirectorState", "Episode", "EpisodeBrief", "Sequence", "Series", "Shot",
           "make_director"]


def make_director(section: "DirectorSection") -> Director:
    """The director ``[director] backend`` names."""
    if section.backend == "offline":
        from webtv.director.offline import OfflineDirector

        return OfflineDirector(section.subject_weight)
    if section.backend == "openai":
        from webtv.director.openai import OpenAIDirector

        return OpenAIDirector(section, cooldown_s=section.cooldown_s)
    raise ValueError(f"unknown director backend {section.backend!r}")

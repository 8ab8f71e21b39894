"""STAND-IN for recipe: the director -> moderation chain the producer draws sequences from,
owning the director and the moderator (the recipe's SequenceSource replaces this)."""

from __future__ import annotations

from webtv.config import Config, DirectorSection, ModerationSection
from webtv.director import Director, make_director
from webtv.director.moderation import Moderator
from webtv.library import Library


class SequenceSource:
    def __init__(self, director: Director, moderator: Moderator, library: Library | None, seed: int,
                 shots_per_sequence: int):
        self.director, self.moderator = director, moderator
        self.library = library
        self.seed = seed
        self.shots_per_sequence = shots_per_sequence

    async def reconfigure(self, director: DirectorSection, moderation: ModerationSection) -> None:
        """Swap in a director and a moderator for the edited sections; the retired ones are closed."""
        retired_moderator, self.moderator = self.moderator, Moderator(moderation, director)
        director_changed = retired_moderator.director != director
        await retired_moderator.aclose()
        if director_changed:
            retired, self.director = self.director, make_director(Config(director=director))
            self.seed, self.shots_per_sequence = director.seed, director.shots_per_sequence
            await retired.aclose()

    async def aclose(self) -> None:
        await self.moderator.aclose()
        await self.director.aclose()

"""theme -> shots."""

from webtv.director.base import Director, Sequence, Shot

__all__ = ["Director", "Sequence", "Shot", "make_director"]


def make_director(config) -> Director:
    """The director named by ``[director] backend``."""
    if config.director.backend == "offline":
        from webtv.director.offline import OfflineDirector

        return OfflineDirector()
    if config.director.backend == "openai":
        from webtv.director.openai import OpenAIDirector

        return OpenAIDirector(config.director, cooldown_s=config.director.cooldown_s)
    raise ValueError(f"unknown director backend {config.director.backend!r}")

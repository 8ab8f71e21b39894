"""theme -> shots."""

from webtv.director.base import Director, Sequence, Shot

__all__ = ["Director", "Sequence", "Shot", "make_director"]


def make_director(config) -> Director:
    """The director named by ``[director] backend``."""
    from webtv.director.offline import OfflineDirector

    if config.director.backend == "offline":
        return OfflineDirector()
    raise ValueError(f"unknown director backend {config.director.backend!r}")

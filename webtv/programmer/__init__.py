"""library -> playlist: what airs next."""

from webtv.programmer.playlist import write_ffconcat
from webtv.programmer.programmer import Programmer

__all__ = ["Programmer", "write_ffconcat"]

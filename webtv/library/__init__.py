"""clip -> library: validated clip files and their index."""

from webtv.library.index import Clip, Library, file_digest

__all__ = ["Clip", "Library", "file_digest"]

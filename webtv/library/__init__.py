"""clip -> library: validated clip files and their index."""

from webtv.library.index import Clip, Library, file_digest
from webtv.library.lock import LibraryLocked

__all__ = ["Clip", "Library", "LibraryLocked", "file_digest"]

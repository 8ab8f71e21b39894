"""ffconcat playlists, written so that no file name can break or escape them.

In ffconcat a quoted token is literal up to the next single quote, so a quote inside a path
is closed, escaped and reopened (``'\\''``). The concat demuxer reads its list line by line:
a path with a line break cannot be written at all, so such a file is reached through a
symlink with a plain name in ``.links/`` beside the playlists. Every playlist is written to a
temporary file and renamed, so a reader never sees half a list.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable

from webtv.files import write_atomic
from webtv.playout.clipfile import quote

HEADER = "ffconcat version 1.0\n"




def render_ffconcat(entries: Iterable[tuple[Path, float | None]], links_dir: Path) -> str:
    lines = [HEADER]
    for path, duration in entries:
        lines.append(f"file {quote(str(_listable(Path(path).absolute(), links_dir)))}\n")
        if duration is not None:
            lines.append(f"duration {duration:.6f}\n")
    return "".join(lines)


def write_ffconcat(target: Path, entries: Iterable[tuple[Path, float | None]]) -> Path:
    """Write ``target`` atomically; returns it."""
    target = Path(target)
    text = render_ffconcat(entries, target.parent / ".links")
    write_atomic(target, text)
    return target


def slug(text: str) -> str:
    """A file-name-safe form of a tag: lowercase letters, digits and dashes."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]
    if cleaned:
        return cleaned
    return "x" + hashlib.sha1(text.encode()).hexdigest()[:10]


def _listable(path: Path, links_dir: Path) -> Path:
    text = str(path)
    if "\n" not in text and "\r" not in text:
        return path
    links_dir.mkdir(parents=True, exist_ok=True)
    link = links_dir / (hashlib.sha1(text.encode()).hexdigest()[:20] + path.suffix.replace("\n", ""))
    if not (link.is_symlink() and os.readlink(link) == text):
        tmp = link.with_name(link.name + f".{os.getpid()}.tmp")
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(text, tmp)
        os.replace(tmp, link)
    if "\n" in str(link) or "\r" in str(link):
        raise ValueError(f"playlist folder {links_dir.parent!r} contains a line break; ffconcat cannot list it")
    return link

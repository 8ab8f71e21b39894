"""Writing the theme back into channel.toml, comments and layout kept (tomlkit)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Literal

import tomlkit
from tomlkit.exceptions import TOMLKitError

from webtv.files import write_atomic


class ThemeNotSaved(Exception):
    """The theme could not be written back; the file is as it was.

    ``kind``: ``file`` (missing, unreadable as UTF-8 or not valid TOML: the operator must fix
    it), ``disk_full`` (no space or quota left) or ``io`` (any other error of the system)."""

    def __init__(self, kind: Literal["file", "disk_full", "io"], message: str):
        super().__init__(message)
        self.kind = kind


def write_theme(path: Path, theme: str) -> None:
    """Set ``[channel] theme`` in the file at ``path`` (a symlink is followed now, to the file
    it names at this moment) and replace it atomically. ThemeNotSaved when it cannot be done."""
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
        channel = document.setdefault("channel", tomlkit.table())
        if not isinstance(channel, dict):
            raise ThemeNotSaved("file", f"{path}: channel is not a table")
        channel["theme"] = theme
        write_atomic(path, tomlkit.dumps(document))
    except FileNotFoundError:
        raise ThemeNotSaved("file", f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ThemeNotSaved("file", f"{path}: not UTF-8 text: {exc}") from None
    except TOMLKitError as exc:
        raise ThemeNotSaved("file", f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        kind = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "io"
        raise ThemeNotSaved(kind, f"{path}: {exc.strerror or exc}") from None

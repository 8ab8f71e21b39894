"""Writing the theme back into channel.toml, comments and layout kept (tomlkit)."""

from __future__ import annotations

from pathlib import Path

import tomlkit

from webtv.files import write_atomic


def write_theme(path: Path, theme: str) -> None:
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    if "channel" not in document:
        document["channel"] = tomlkit.table()
    document["channel"]["theme"] = theme
    write_atomic(path, tomlkit.dumps(document))

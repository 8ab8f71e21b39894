"""Watching channel.toml: a valid edit is handed on, an invalid one changes nothing.

Editors save by rewriting or by renaming a new file over the old, so the folder is watched
and events are filtered to the file's name. A symlinked file is watched twice over: the
link's folder (the link repointed) and its target's folder (the file edited); when the link
names another file after a change, the watch moves to that file's folder. A config that was
not read from a file has nothing to watch: ``run()`` then only waits for the stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Awaitable, Callable

from watchfiles import awatch

from webtv.config import Config, ConfigError, load_config

log = logging.getLogger("webtv.config")


class ConfigWatcher:
    def __init__(
        self,
        path: Path | None,
        on_config: Callable[[Config], Awaitable[None]],
        on_error: Callable[[str | None], None],
        debounce_ms: int = 200,
    ):
        self.path = Path(os.path.abspath(path)) if path is not None else None  # a link stays a link
        self.on_config = on_config
        self.on_error = on_error
        self.debounce_ms = debounce_ms
        self.reloads = 0
        self.errors = 0  # edits rejected as invalid

    async def run(self, stop: asyncio.Event) -> None:
        if self.path is None:
            await stop.wait()
            return
        while not stop.is_set():
            target = self.path.resolve()
            names = {self.path, target}
            folders = [folder for folder in {name.parent for name in names} if folder.is_dir()]
            async for changes in awatch(*folders, stop_event=stop, debounce=self.debounce_ms, recursive=False,
                                        watch_filter=lambda _change, name: Path(name) in names):
                await self.reload()
                if self.path.resolve() != target:
                    log.info("config file is a link to another file now: %s", self.path.resolve())
                    break

    async def reload(self) -> None:
        try:
            config = await asyncio.to_thread(load_config, self.path)
        except ConfigError as exc:
            log.error("config edit rejected, last good config stays: %s", str(exc).replace("\n", " | "))
            self.errors += 1
            self.on_error(str(exc))
            return
        self.reloads += 1
        self.on_error(None)
        await self.on_config(config)

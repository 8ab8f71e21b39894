"""Watching channel.toml: a valid edit is handed on, an invalid one changes nothing.

Editors save by rewriting or by renaming a new file over the old, so the folder is watched
and events are filtered to the file's name. ``request()`` (SIGHUP, systemd's ExecReload)
reads the file again through the same path as a watched edit; reloads never overlap. A
config that was not read from a file has nothing to watch or reload: ``run()`` then only
waits for the stop.
"""

from __future__ import annotations

import asyncio
import logging
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
        self.path = Path(path).resolve() if path is not None else None
        self.on_config = on_config
        self.on_error = on_error
        self.debounce_ms = debounce_ms
        self.reloads = 0
        self.errors = 0  # edits rejected as invalid
        self._requested = asyncio.Event()  # a reload asked for by request(), served by run()
        self._reloading = asyncio.Lock()

    def request(self, why: str) -> None:
        """Ask for a reload of the file (on the event loop; a signal handler may call it).
        Requests made before ``run()`` starts, or while one is served, are served once."""
        if self.path is None:
            log.warning("%s: no config file to reload (the channel runs on the built-in defaults)", why)
            return
        log.info("%s: reloading %s", why, self.path)
        self._requested.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self.path is None:
            await stop.wait()
            return
        requests = asyncio.create_task(self._serve_requests(), name="config-reload-requests")
        try:
            async for changes in awatch(self.path.parent, stop_event=stop, debounce=self.debounce_ms,
                                        recursive=False, watch_filter=lambda _change, name: Path(name) == self.path):
                await self.reload()
        finally:
            requests.cancel()
            await asyncio.gather(requests, return_exceptions=True)

    async def _serve_requests(self) -> None:
        while True:
            await self._requested.wait()
            self._requested.clear()
            await self.reload()

    async def reload(self) -> None:
        async with self._reloading:
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

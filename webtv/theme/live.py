"""Watching channel.toml: a valid edit is handed on, an invalid one changes nothing.

Editors save by rewriting or by renaming a new file over the old, so the folder is watched
and events are filtered to the file's name. A symlinked file is watched in both folders:
the link's (the link repointed) and its target's (the file edited); when the link names
another file after a change, the watch starts again on that file. ``request()`` (SIGHUP,
systemd's ExecReload) reads the file again through the same path as a watched edit; reloads
never overlap. A config that was not read from a file has nothing to watch or reload:
``run()`` then only waits for the stop. ``load`` reads the file (``load_config``; a channel
of a folder checks it against the others, ``webtv.folder.load_channel_file``).

The watch never ends before the stop: an edit that fails to apply is logged and shown as
``config_error`` like an invalid one, and when the watch itself fails or loses its folder
(deleted, or replaced by a new one) it starts again every ``retry_s`` until the folder is
back, then reads the file once for what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        retry_s: float = 1.0,
        load: Callable[[Path], Config] = load_config,
    ):
        self.path = Path(os.path.abspath(path)) if path is not None else None  # a link stays a link
        self.load = load  # called off the loop; a channel of a folder reads through webtv.folder
        self.on_config = on_config
        self.on_error = on_error
        self.debounce_ms = debounce_ms
        self.retry_s = retry_s
        self.reloads = 0
        self.errors = 0  # edits rejected as invalid or that failed to apply
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
            await self._watch_until(stop)
        finally:
            requests.cancel()
            await asyncio.gather(requests, return_exceptions=True)

    async def _watch_until(self, stop: asyncio.Event) -> None:
        """Watch the folder until ``stop``, starting the watch again whenever it ends: at once
        when its folder is back (polled every ``retry_s``), after a pause that doubles up to
        30 s when the watch itself failed."""
        missed = False  # the watch was down: read the file when it starts again
        pause = self.retry_s
        while not stop.is_set():
            folder = self.path.parent
            if folder.is_dir():
                if missed:
                    log.info("config-watch: watching %s again", folder)
                    await self.reload()
                try:
                    gone = await self._watch(stop)
                except Exception:  # noqa: BLE001 - the watch must outlive any failure
                    log.exception("config-watch: watching %s failed; starting again in %g s", folder, pause)
                    missed = True
                    await _sleep(stop, pause)
                    pause = min(pause * 2, 30.0)
                    continue
                pause = self.retry_s
                if gone:
                    log.warning("config-watch: %s; starting the watch again", gone)
                missed = True
            else:
                missed = True
            await _sleep(stop, self.retry_s)

    async def _watch(self, stop: asyncio.Event) -> str | None:
        """Reload on each change of the file; returns why the watch ended (None: the stop)."""
        folder = self.path.parent
        target = self.path.resolve()
        names = {self.path, target, folder}
        folders = {folder} | ({target.parent} if target.parent.is_dir() else set())
        async for changes in awatch(*folders, stop_event=stop, debounce=self.debounce_ms, recursive=False,
                                    watch_filter=lambda _change, name: Path(name) in names):
            await self.reload()
            if not folder.is_dir() or any(Path(name) == folder for _change, name in changes):
                # inotify drops the watch of a deleted folder: a new folder at that path is never heard
                return f"{folder} was deleted"
            if self.path.resolve() != target:
                return f"{self.path} is a link to another file now, {self.path.resolve()}"
        return None

    async def _serve_requests(self) -> None:
        while True:
            await self._requested.wait()
            self._requested.clear()
            await self.reload()

    async def reload(self) -> None:
        """Read the file and hand a valid config on. Never raises: what goes wrong is logged
        and shown through ``on_error``, and the last good config stays."""
        async with self._reloading:
            try:
                config = await asyncio.to_thread(self.load, self.path)
            except ConfigError as exc:
                log.error("config edit rejected, last good config stays: %s", str(exc).replace("\n", " | "))
                self._rejected(str(exc))
                return
            except Exception as exc:  # noqa: BLE001
                log.exception("config edit could not be read; last good config stays")
                self._rejected(f"{self.path}: the file could not be read: {exc!r}")
                return
            self.reloads += 1
            self.on_error(None)
            try:
                await self.on_config(config)
            except Exception as exc:  # noqa: BLE001
                log.exception("config edit could not be applied; what it did not reach stays as it was")
                self._rejected(f"{self.path}: the edit could not be applied: {exc!r}; what it did not reach"
                               " stays as it was")

    def _rejected(self, message: str) -> None:
        self.errors += 1
        self.on_error(message)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

"""The station: every channel of a folder (``webtv.folder``) airing in one daemon.

Each channel file is a slot with its own supervised task: the channel is built, aired until
its slot stops, then closed: its library unlocked, its shared stages released, and its
ffmpegs gone (playout's are stopped by the channel; a render in its worker thread stops at
its next step, ``pipeline.Abandoned``, and what it had started is found by the channel's
folders or RTMP URLs on its command line and ended). An exception out of one channel's build
or run is logged; that channel is built and started again after ``restart_pause_s``, reading
its file again (its last good config when the file is broken now). The other channels never
notice: they share nothing with it but the event loop, the HTTP server and the shared render
stages.

The folder is watched for channel files added and removed (edits of a file are its own
channel's ``ConfigWatcher``'s, which reads through ``load_channel_file`` so an edit that
clashes with another channel is rejected like an invalid one): a new file starts its channel
or is refused; a removed file stops its channel; a refused file is tried again whenever a
channel file changes or goes (the clash it had may be gone). A rename of ``[channel] name``
in a running channel's file restarts that channel under the new name (its URLs are by name).

``started`` is published with each channel built (HTTP serves it from then on, while it
starts airing), ``stopped`` with its name once it no longer airs. ``daemon.toml`` is read at
the start only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from watchfiles import awatch

from webtv.channel import Channel, build_channel
from webtv.config import Config, ConfigError
from webtv.folder import DaemonConfig, Folder, channel_files, is_channel_file, load_channel_file, load_folder
from webtv.library import LibraryLocked
from webtv.log import CHANNEL
from webtv.process import kill_children
from webtv.producer.remote import WorkerPool
from webtv.producer.shared import SharedStages
from webtv.status import ChannelView, Signal

log = logging.getLogger("webtv.station")


@dataclass
class _Slot:
    """One channel file while it airs: the config it (re)starts with, the channel when built."""

    path: Path
    config: Config
    channel: Channel | None = None
    task: asyncio.Task | None = None
    stopping: bool = False  # the file was removed or the daemon stops: no restart
    stop_run: asyncio.Event = field(default_factory=asyncio.Event)  # ends the current run
    crashes: int = 0


class Station:
    """Every channel of a folder; a ``webtv.status.StationView``."""

    single = False

    def __init__(self, folder: Path, daemon: DaemonConfig, restart_pause_s: float = 5.0, debounce_ms: int = 200):
        self.folder = Path(os.path.abspath(folder))
        self.daemon = daemon
        self.restart_pause_s = restart_pause_s
        self.debounce_ms = debounce_ms
        self.started: Signal[[ChannelView]] = Signal("station.started")
        self.stopped: Signal[[str]] = Signal("station.stopped")
        self.workers = WorkerPool(daemon.workers) if daemon.workers.urls else None
        self.shared = SharedStages(self.workers)
        # Replaced whole, never changed in place: config watchers read it from their threads.
        self._slots: dict[Path, _Slot] = {}
        self._refused: dict[Path, str] = {}
        self._rescan = asyncio.Lock()
        self._running = False
        self._reload_asked: str | None = None  # a SIGHUP before run(): served once it runs
        self._background: set[asyncio.Task] = set()

    # -- the StationView -------------------------------------------------------------------

    def channels(self) -> dict[str, ChannelView]:
        """The channels built and airing (or starting to), by name, in file-name order."""
        return {slot.channel.config.channel.name: slot.channel
                for _, slot in sorted(self._slots.items()) if slot.channel is not None}

    def names(self) -> list[str]:
        """Every channel file's channel, airing or being built, in file-name order."""
        return [(slot.channel.config if slot.channel is not None else slot.config).channel.name
                for _, slot in sorted(self._slots.items())]

    def refused(self) -> list[dict]:
        return [{"file": str(path), "error": error} for path, error in sorted(self._refused.items())]

    def stages(self) -> list[dict]:
        return self.shared.status()

    def health(self) -> str | None:
        """None while every channel is healthy, else ``"a: why; b: why"`` (a channel being
        built again after a crash is not)."""
        problems = []
        for _, slot in sorted(self._slots.items()):
            if slot.channel is None:
                problems.append(f"{slot.config.channel.name}: restarting after a crash" if slot.crashes
                                else f"{slot.config.channel.name}: starting")
            elif (why := slot.channel.health()) is not None:
                problems.append(f"{slot.channel.config.channel.name}: {why}")
        return "; ".join(problems) or None

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, folder: Folder | None = None) -> None:
        """Air every valid channel of ``folder`` (read now when not given) until ``stop``; then
        stop them all, together, and close the worker pool."""
        folder = folder or await asyncio.to_thread(load_folder, self.folder)
        for path, error in folder.refused.items():
            self._refuse(path, error)
        for path, config in folder.channels.items():
            self._start(path, config)
        self._running = True
        if self._reload_asked:
            self.reload(f"{self._reload_asked} (while starting)")
        watch = asyncio.create_task(self._watch(stop), name="station-watch")
        try:
            await stop.wait()
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await asyncio.gather(*(self._stop(path) for path in list(self._slots)), return_exceptions=True)
            if self.workers is not None:
                await asyncio.to_thread(self.workers.close)

    def reload(self, why: str) -> None:
        """Read every channel file again (SIGHUP): each running channel's through its watcher,
        and the folder for files added, removed or mended."""
        if not self._running:
            self._reload_asked = why
            return
        log.info("%s: reloading every channel file in %s", why, self.folder)
        for slot in self._slots.values():
            if slot.channel is not None:
                slot.channel.watcher.request(why)
        task = asyncio.ensure_future(self.rescan())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def rescan(self) -> None:
        """Start the channel files that are new (or refused and valid now), stop those removed."""
        async with self._rescan:
            try:
                present = set(await asyncio.to_thread(channel_files, self.folder))
            except OSError as exc:
                log.error("cannot read the channel folder %s: %s", self.folder, exc)
                return
            for path in sorted(set(self._slots) - present):
                log.info("channel file %s removed: stopping its channel", path.name)
                await self._stop(path)
            self._refused = {path: error for path, error in self._refused.items() if path in present}
            for path in sorted(present - set(self._slots)):
                try:
                    config = await asyncio.to_thread(load_channel_file, path, self.daemon, self._configs())
                except ConfigError as exc:
                    self._refuse(path, str(exc))
                    continue
                self._refused.pop(path, None)
                log.info("channel file %s: starting channel %r", path.name, config.channel.name)
                self._start(path, config)

    async def _watch(self, stop: asyncio.Event) -> None:
        """Rescan on every change of a channel file of the folder; the watch is started again
        when it fails."""
        while not stop.is_set():
            try:
                async for _ in awatch(self.folder, stop_event=stop, debounce=self.debounce_ms, recursive=False,
                                      watch_filter=lambda _change, name: is_channel_file(Path(name))):
                    await self.rescan()
            except Exception:  # noqa: BLE001 - the folder must stay watched
                log.exception("watching %s failed; starting again in 1 s", self.folder)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    def _configs(self, but: Path | None = None) -> dict[Path, Config]:
        """The config each other channel runs with (what a file is checked against)."""
        return {path: (slot.channel.config if slot.channel is not None else slot.config)
                for path, slot in self._slots.items() if path != but}

    def _load(self, path: Path) -> Config:
        """A channel's ConfigWatcher's reader (in a thread): the file, against the other channels."""
        return load_channel_file(path, self.daemon, self._configs(but=path))

    def _refuse(self, path: Path, error: str) -> None:
        if self._refused.get(path) != error:
            log.error("channel file %s refused, nothing airs for it: %s", path.name, error.replace("\n", " | "))
        self._refused = {**self._refused, path: error}

    def _start(self, path: Path, config: Config) -> None:
        slot = _Slot(path, config)
        self._slots = {**self._slots, path: slot}
        slot.task = asyncio.create_task(self._air(slot), name=f"channel-{config.channel.name}")

    async def _stop(self, path: Path) -> None:
        slot = self._slots.get(path)
        if slot is None:
            return
        slot.stopping = True
        slot.stop_run.set()
        if slot.task is not None:
            await asyncio.gather(slot.task, return_exceptions=True)
        self._slots = {p: s for p, s in self._slots.items() if p != path}

    async def _air(self, slot: _Slot) -> None:
        """The slot's supervisor: build and air the channel; after a crash, again."""
        while not slot.stopping:
            CHANNEL.set(slot.config.channel.name)  # its log lines say which channel (this task's context)
            slot.stop_run = asyncio.Event()
            channel: Channel | None = None
            try:
                channel = await build_channel(slot.config, shared=self.shared)
                channel.watcher.load = self._load
                channel.watcher.on_config = self._applier(slot, channel)
                slot.channel = channel
                self.started.publish(channel)
                await channel.run(slot.stop_run)
                if not slot.stopping:
                    log.info("channel %r restarts under its new name %r", channel.config.channel.name,
                             slot.config.channel.name)
                    continue
            except asyncio.CancelledError:
                raise
            except LibraryLocked as exc:  # another daemon airs it: try again, without a traceback each time
                slot.crashes += 1
                log.error("channel %r cannot start: %s; trying again in %g s", slot.config.channel.name, exc,
                          self.restart_pause_s)
            except Exception:  # noqa: BLE001 - one channel's failure must not reach the others
                slot.crashes += 1
                log.exception("channel %r failed; building it again in %g s", slot.config.channel.name,
                              self.restart_pause_s)
            finally:
                if channel is not None:
                    await self._close(slot, channel)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.stop_run.wait(), self.restart_pause_s)
            if not slot.stopping:
                slot.config = await self._reread(slot)

    async def _close(self, slot: _Slot, channel: Channel) -> None:
        name = channel.config.channel.name
        if slot.channel is channel:
            slot.config = slot.config if slot.config.channel.name != name else channel.config
            slot.channel = None
            self.stopped.publish(name)
        try:
            await channel.aclose()
        except Exception:  # noqa: BLE001
            log.exception("channel %r did not close cleanly", name)
        # Encoders and probes of renders still running in worker threads are not the playout's.
        await asyncio.to_thread(kill_children, 1.0, _named(channel.config))
        self.shared.release(name)

    async def _reread(self, slot: _Slot) -> Config:
        """The file as it is now, for a restart; the last good config when it is broken."""
        try:
            return await asyncio.to_thread(self._load, slot.path)
        except ConfigError as exc:
            log.error("channel %r restarts on its last good config: %s", slot.config.channel.name,
                      str(exc).replace("\n", " | "))
        except OSError as exc:
            log.error("channel %r restarts on its last good config: %s", slot.config.channel.name, exc)
        return slot.config

    def _applier(self, slot: _Slot, channel: Channel):
        """The channel's live edits, but a new name: the channel starts again under it."""

        async def apply(new: Config) -> None:
            if new.channel.name != channel.config.channel.name:
                slot.config = new
                slot.stop_run.set()
                return
            await channel.apply_config(new)

        return apply


def _named(config: Config) -> tuple[str, ...]:
    """What the command line of a channel's child process names: its folders and RTMP URLs
    (no two channels of a folder share one, ``webtv.folder``)."""
    folders = (config.paths.library, config.paths.playlists, config.paths.hls)
    return (*(str(folder) for folder in folders), *config.output.rtmp_urls)

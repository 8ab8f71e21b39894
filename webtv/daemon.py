"""``webtv run``: the channel with its HTTP server, Prometheus metrics and systemd notify around it.

Order: the channel is built (library, filler card, every component), then HTTP answers
(``/api/status`` works while playout starts), then the channel airs with the systemd watcher
beside it. SIGHUP reloads channel.toml as a watched edit would (one that comes while the
channel is being built is served once it airs). On SIGTERM/SIGINT: the channel stops airing
(STOPPING=1 goes out as the stop is seen), HTTP closes, then the channel lets go of its
library, and last any encoder still running in a worker thread is ended. A render still
running in its thread then is abandoned: the process leaves with ``os._exit`` (see
``_leave_renders``).

``run_folder()``: a folder of channel files (``webtv.folder``), every channel in one
``webtv.station.Station`` behind one HTTP server. SIGHUP reloads every channel file (and
the folder); SIGTERM/SIGINT stops every channel (together), then HTTP.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Awaitable, Callable

from webtv.channel import Channel, build_channel
from webtv.config import Config, HttpSection
from webtv.folder import Folder, load_folder
from webtv.http.server import start_http
from webtv.library import LibraryLocked
from webtv.metrics import StationMetrics
from webtv.notify import watch, watch_station
from webtv.process import kill_children
from webtv.producer.producer import renders_running
from webtv.station import Station
from webtv.status import OneChannel, StationView

log = logging.getLogger("webtv")

EXIT_LIBRARY_LOCKED = 2  # like an invalid channel file: starting again will not help (systemd does not)


def run(config: Config) -> int:
    """Air ``config``'s channel until SIGTERM or SIGINT; the process exit status."""
    faulthandler.enable()  # a hung daemon killed by the systemd watchdog (SIGABRT) logs every thread's stack

    async def air() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        hangups: list[str] = []  # SIGHUPs before the channel exists
        loop.add_signal_handler(signal.SIGHUP, hangups.append, "SIGHUP")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # one held since the start comes now
        try:
            channel = await build_channel(config)
            loop.add_signal_handler(signal.SIGHUP, channel.watcher.request, "SIGHUP")
            if hangups:
                channel.watcher.request("SIGHUP (while starting)")
            await serve(channel, stop)
        finally:
            # Encoders running in worker threads are not the playout's: end them too.
            await asyncio.to_thread(kill_children, 1.0)

    return _exit_status(air)


def _exit_status(air) -> int:
    try:
        asyncio.run(air())
    except LibraryLocked as exc:
        log.error("cannot run: %s", exc)
        return EXIT_LIBRARY_LOCKED
    except OSError as exc:
        log.error("cannot run: %s", exc)
        return 1
    _leave_renders()
    return 0


def _leave_renders() -> None:
    """Exit now (status 0) if a render is still running in its thread. A thread inside torch
    while the interpreter finalizes aborts the process (torch's C++ thread pools are destroyed
    under it: "terminate called without an active exception", SIGABRT, a failed unit under
    systemd); the shot it renders was never indexed, so nothing in the library is lost."""
    running = renders_running()
    if not running:
        return
    log.info("stopped with %d render(s) unfinished: their shots are dropped", running)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_folder(folder: Path, read: Folder | None = None) -> int:
    """Air every channel of ``folder`` (``read``: as loaded already) until SIGTERM or SIGINT."""
    faulthandler.enable()
    read = read or load_folder(folder)

    async def air() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        station = Station(folder, read.daemon)
        loop.add_signal_handler(signal.SIGHUP, station.reload, "SIGHUP")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        try:
            airing = asyncio.create_task(station.run(stop, read), name="station")
            starting = {c.channel.name for c in read.channels.values()}
            await _on_air(station, read.daemon.http, lambda: airing,
                          lambda: watch_station(station.channels, station.names, starting, stop))
        finally:
            await asyncio.to_thread(kill_children, 1.0)

    return _exit_status(air)


async def serve(channel: Channel, stop: asyncio.Event) -> None:
    """Run ``channel`` until ``stop`` with HTTP (and ``/metrics``) and the systemd watcher."""
    try:
        await _on_air(OneChannel(channel), channel.config.http, lambda: channel.run(stop),
                      lambda: watch(channel, stop))  # READY, WATCHDOG, STOPPING
    finally:
        await channel.aclose()


async def _on_air(station: StationView, http: HttpSection, airing: Callable[[], Awaitable[None]],
                  notify: Callable[[], Awaitable[None]]) -> None:
    """Await ``airing()`` with the HTTP server answering for ``station`` and the systemd
    watcher ``notify()`` beside it; once it ends, the watcher is cancelled, then HTTP closes."""
    server = await start_http(station, StationMetrics(station), http.host, http.port)
    try:
        watcher = asyncio.create_task(notify(), name="systemd-notify")
        try:
            await airing()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    finally:
        await server.cleanup()

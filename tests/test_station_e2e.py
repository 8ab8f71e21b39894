"""Several channels in one daemon (``webtv.station.Station``), in process, to a real nginx-rtmp
with real ffmpeg: each channel airs to its own URL; a channel whose run raises is built again
while the other's stream has no gap; a broken edit keeps its channel airing with
``config_error``; a file refused at the start airs once mended; a removed file stops its
channel with no ffmpeg left and its library unlocked.

One station for the module, its event loop in a thread; the tests read it through ``on_loop``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.daemon import REPO, processes_mentioning, write_config
from tests.rtmp_server import free_port
from tests.test_systemd import NotifySocket
from tests.readers import RtmpReader
from webtv.folder import load_daemon_config
from webtv.library import Library
from webtv.station import Station

pytestmark = pytest.mark.e2e

FPS = 24
CHANNEL = {"video": {"clip_seconds": 1.0}, "programme": {"block_seconds": 3.0, "filler_seconds": 1.0},
           "output": {"hls": False}, "producer": {"ahead": 1}}


def channel_file(folder: Path, name: str, stream: str, theme: str, **sections: Any) -> Path:
    return write_config(folder, None, [stream], f"{name}.toml",
                        **{**CHANNEL, "channel": {"name": name, "theme": theme}, **sections})


class Running:
    """The station and its loop (in a thread); the crash switch of ``inject_crashes``."""

    def __init__(self, folder: Path, rtmp: str):
        self.folder = folder
        self.rtmp = rtmp
        self.loop = asyncio.new_event_loop()
        self.station = Station(folder, load_daemon_config(folder),
                               restart_pause_s=0.3, debounce_ms=50)
        self.crash: dict[str, asyncio.Event] = {}
        self.builds: dict[str, int] = {}
        self.stopped: list[str] = []
        self.station.stopped.subscribe(self.stopped.append)
        self.station.started.subscribe(self._started)
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _started(self, channel) -> None:
        """Each channel's run can be made to raise from the test: ``crash[name].set()``."""
        name = channel.config.channel.name
        self.builds[name] = self.builds.get(name, 0) + 1
        crash = self.crash[name] = asyncio.Event()
        real = channel.run

        async def run(stop: asyncio.Event) -> None:
            airing = asyncio.create_task(real(stop))
            crashing = asyncio.create_task(crash.wait())
            await asyncio.wait({airing, crashing}, return_when=asyncio.FIRST_COMPLETED)
            crashing.cancel()
            if airing.done():
                return airing.result()
            airing.cancel()
            await asyncio.gather(airing, return_exceptions=True)
            raise RuntimeError("injected: the channel's run raised")

        channel.run = run

    def start(self) -> "Running":
        self.thread.start()

        async def begin() -> None:
            self._stop = asyncio.Event()
            self.task = asyncio.ensure_future(self.station.run(self._stop))

        self.on_loop(begin)
        return self

    def on_loop(self, call: Callable[[], Any]) -> Any:
        """``call()`` on the station's loop (awaited when it is a coroutine function); its result."""

        async def wrapped():
            result = call()
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=30)

    def status(self, name: str):
        return self.on_loop(lambda: (lambda c: c.status() if c is not None else None)(self.station.channels().get(name)))

    def wait(self, what: Callable[[], Any], timeout: float, message: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out: {message}; channels {self.on_loop(lambda: list(self.station.channels()))}, "
                             f"refused {self.on_loop(self.station.refused)}")

    def on_air(self, name: str, timeout: float = 30.0):
        return self.wait(lambda: (s := self.status(name)) is not None and s.playout.on_air and s, timeout,
                         f"{name} on air")

    def close(self) -> None:
        if self._stop is not None:
            self.on_loop(self._stop.set)
            self.on_loop(lambda: self.task)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def station(tmp_path_factory, rtmp_server):
    folder = tmp_path_factory.mktemp("channels")
    channel_file(folder, "a", f"{rtmp_server}/a", "owls at night")
    channel_file(folder, "b", f"{rtmp_server}/b", "cities by day")
    (folder / "c.toml").write_text('[channel]\nname = "c"\n[programme]\nblock_seconds = -1\n')  # refused
    running = Running(folder, rtmp_server).start()
    try:
        yield running
    finally:
        running.close()


def gaps(reader: RtmpReader) -> float:
    video = reader.video()
    return max(b.dts - a.dts for a, b in zip(video, video[1:]))


def test_two_channels_air_to_their_own_urls_and_a_file_invalid_at_the_start_is_refused(station):
    a, b = station.on_air("a"), station.on_air("b")
    assert (a.theme.theme, b.theme.theme) == ("owls at night", "cities by day")
    # a GOP and a second: ffprobe counts the interval from its first packet, and a reader joining
    # gets up to a GOP of sound before the first keyframe
    readers = [RtmpReader(f"{station.rtmp}/{name}", seconds=3.0).start() for name in ("a", "b")]
    for reader in readers:
        assert reader.wait(timeout=15) == 0 and len(reader.video()) >= FPS // 2, reader.stderr()
    refused = station.on_loop(station.station.refused)
    assert [r["file"] for r in refused] == [str(station.folder / "c.toml")]
    assert "programme.block_seconds" in refused[0]["error"]
    assert list(station.on_loop(station.station.channels)) == ["a", "b"]


def test_a_channel_whose_run_raises_is_built_again_while_the_other_streams_on(station):
    station.on_air("a"), station.on_air("b")
    reader = RtmpReader(f"{station.rtmp}/a", seconds=None).start()
    try:
        station.wait(lambda: len(reader.video()) > FPS, 15, "a read back")
        builds = station.builds["b"]
        station.on_loop(station.crash["b"].set)
        station.wait(lambda: station.builds["b"] > builds, 15, "b built again")
        station.on_air("b")
        station.wait(lambda: reader.video()[-1].dts - reader.video()[0].dts > 4, 15, "4 s of a")
        assert reader.proc.poll() is None, "a's reader lost its session"
    finally:
        reader.stop()
    largest = gaps(reader)
    assert largest <= 1 / FPS + 0.020, f"a's stream had a {largest * 1000:.0f} ms gap while b restarted"


def test_a_broken_edit_keeps_the_channel_airing_with_config_error_and_the_other_untouched(station):
    station.on_air("a"), station.on_air("b")
    path = station.folder / "b.toml"
    good = path.read_text()
    try:
        path.write_text(good.replace('name = "b"', 'name = "a"'))  # a clash with a.toml
        b = station.wait(lambda: (s := station.status("b")) and s.config.error and s, 10, "b's config_error")
        assert f"'a' is also the name of {station.folder / 'a.toml'}" in b.config.error
        path.write_text(good + "\n[programme\n")
        b = station.wait(lambda: (s := station.status("b")) and "invalid TOML" in (s.config.error or "") and s, 10,
                         "b's invalid TOML")
        assert b.playout.on_air and b.playout.last_byte_age_s < 2, "b stopped airing"
        assert station.status("a").config.error is None
        path.write_text(good.replace("cities by day", "cities by night"))
        station.wait(lambda: (s := station.status("b")) and s.theme.theme == "cities by night"
                     and s.config.error is None, 10, "b's mended edit on air")
        assert station.status("a").theme.theme == "owls at night"
    finally:
        path.write_text(good)


def test_a_refused_file_mended_airs_and_a_removed_file_stops_its_channel_with_no_ffmpeg_left(station):
    path = station.folder / "c.toml"
    channel_file(station.folder, "c", f"{station.rtmp}/c", "rivers")
    c = station.on_air("c")
    assert c.theme.theme == "rivers" and station.on_loop(station.station.refused) == []
    reader = RtmpReader(f"{station.rtmp}/c", seconds=2.5).start()  # past the first keyframe
    assert reader.wait(timeout=15) == 0 and reader.video(), reader.stderr()
    assert processes_mentioning(f"{station.rtmp}/c")  # its RTMP output
    path.unlink()
    station.wait(lambda: "c" not in station.on_loop(station.station.channels), 10, "c stopped")
    assert "c" in station.stopped
    left = processes_mentioning(f"{station.rtmp}/c") + processes_mentioning(str(station.folder / "c"))
    assert left == [], f"c's processes outlived its file: {left}"
    Library(station.folder / "c" / "library").close()  # unlocked: another daemon may take it
    assert station.status("a").playout.on_air and station.status("b").playout.on_air


def test_a_new_channel_name_restarts_that_channel_under_it(station):  # the module's last use of b
    station.on_air("b")
    path = station.folder / "b.toml"
    path.write_text(path.read_text().replace('name = "b"', 'name = "bee"'))
    bee = station.on_air("bee", timeout=20)
    assert bee.channel == "bee" and "b" in station.stopped
    assert list(station.on_loop(station.station.channels)) == ["a", "bee"]

def test_webtv_run_a_folder_notifies_systemd_reloads_on_sighup_and_stops_every_channel_on_sigterm(tmp_path,
                                                                                                 rtmp_server):
    for name, theme in (("d", "deserts"), ("e", "glaciers")):
        channel_file(tmp_path, name, f"{rtmp_server}/{name}", theme)
    (tmp_path / "daemon.toml").write_text(f"[http]\nport = {free_port()}\n")
    notify = NotifySocket()
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "webtv", "run", "--config", str(tmp_path)], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env={**os.environ, "NOTIFY_SOCKET": str(notify.path)})
    try:
        notify.wait("READY=1", 30, why=log.read_text())
        assert "STATUS=2 channel(s): d on air; e on air" in [m for _, m in notify.messages()]
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while log.read_text().count("config applied") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "SIGHUP: reloading every channel file" in log.read_text()
        assert log.read_text().count("config applied") == 2, log.read_text()[-3000:]  # each file read again
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    assert notify.messages(prefix="STOPPING=1")
    assert processes_mentioning(f"{rtmp_server}/d") + processes_mentioning(f"{rtmp_server}/e") == []

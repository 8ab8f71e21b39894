"""One HTTP server for several channels: ``/c/<name>/...`` per channel, ``/api/channels``, the
channel list page, ``/metrics`` with a ``channel`` label; and one channel's URLs as they were.

First against idle channels (built, not airing) behind aiohttp's test server, then two real
channels (``build_channel``, real ffmpeg) airing in one event loop behind one real server,
driven by chromium: the list page, each channel's page playing its own HLS, the console."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.browser import chromium, click, watch_errors
from tests.daemon import write_config
from tests.rtmp_server import free_port
from webtv.channel import Channel, build_channel
from webtv.config import Config, load_config
from webtv.director import Shot
from webtv.http.server import make_app, start_http
from webtv.library import Library
from webtv.log import CHANNEL
from webtv.metrics import StationMetrics
from webtv.status import ChannelView, OneChannel, Signal

TOKEN = "channels-t0ken"
TOKEN_ENV = "WEBTV_CHANNELS_TOKEN"


class Folder:
    """A ``StationView`` of the channels given, started and stopped by the test."""

    single = False

    def __init__(self, *channels: ChannelView, refused: list[dict] | None = None):
        self._channels = {channel.name: channel for channel in channels}
        self._refused = refused or []
        self.started: Signal[[ChannelView]] = Signal("started")
        self.stopped: Signal[[str]] = Signal("stopped")

    def channels(self) -> dict[str, ChannelView]:
        return dict(self._channels)

    def refused(self) -> list[dict]:
        return self._refused

    def stages(self) -> list[dict]:
        return [{"stage": "video", "backend": "procedural", "what": "procedural", "channels": list(self._channels)}]

    def health(self) -> str | None:
        problems = [f"{name}: {why}" for name, channel in self._channels.items() if (why := channel.health())]
        return "; ".join(problems) or None

    def start(self, channel: ChannelView) -> None:
        self._channels[channel.name] = channel
        self.started.publish(channel)

    def stop(self, name: str) -> None:
        del self._channels[name]
        self.stopped.publish(name)


# ------------------------------------------------------------------------ idle channels


def idle_channel(folder: Path, name: str, theme: str) -> Channel:
    """A channel built but not airing, with two clips in its library (ids 1 and 2)."""
    paths = {"library": folder / "library", "playlists": folder / "playlists", "hls": folder / "hls"}
    channel = Channel(Config(paths=paths, channel={"name": name, "theme": theme}, http={"token_env": TOKEN_ENV}),
                      Library(folder / "library"), folder / "filler.mp4")
    for clip in ("one", "two"):
        made = folder / f"{clip}.mp4"
        made.write_bytes(b"x" * 100)
        channel.library.ingest(made, Shot(prompt=f"{name} {clip}", seed=1, theme=theme), duration=2.0)
    return channel


@pytest.fixture
def two(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    a, b = idle_channel(tmp_path / "a", "a", "owls"), idle_channel(tmp_path / "b", "b", "bats")
    try:
        yield a, b
    finally:
        a.library.close()
        b.library.close()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_each_channel_under_its_name_and_the_list_of_them(two):
    a, b = two
    station = Folder(a, b, refused=[{"file": "/x/broken.toml", "error": "broken.toml: no [channel] name"}])
    async with TestClient(TestServer(make_app(station))) as client:
        listing = await (await client.get("/api/channels")).json()
        assert [(c["channel"], c["theme"], c["url"]) for c in listing["channels"]] == [
            ("a", "owls", "/c/a/"), ("b", "bats", "/c/b/")]
        assert set(listing["channels"][0]) >= set((await (await client.get("/c/a/api/status")).json()))
        assert listing["refused"] == station.refused() and listing["stages"] == station.stages()
        assert (await (await client.get("/c/a/api/status")).json())["channel"] == "a"
        assert (await (await client.get("/c/b/api/status")).json())["channel"] == "b"
        for path in ("/c/nope/api/status", "/c/nope/", "/c/nope/hls/index.m3u8", "/c/nope/api/clips"):
            response = await client.get(path)
            assert response.status == 404 and "'nope'" in (await response.json())["error"], path
        # In a folder the unprefixed channel URLs name no channel: 404 pointing at the list.
        response = await client.get("/api/status")
        assert response.status == 404 and "/api/channels" in (await response.json())["error"]
        assert "api/channels" in await (await client.get("/")).text()  # the channel list page
        assert 'fetch("api/status"' in await (await client.get("/c/a/")).text()  # the player, relative URLs
        assert (await client.get("/c/a/console")).status == 200
        response = await client.get("/c/a", allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/c/a/"
        # /healthz is the daemon's: every channel's problem, named
        response = await client.get("/healthz")
        assert response.status == 503 and "a: " in await response.text() and "; b: " in await response.text()
        assert (await client.get("/c/a/healthz")).status == 503


async def test_a_control_call_touches_only_its_channel(two, tmp_path):
    a, b = two
    station = Folder(a, b)
    async with TestClient(TestServer(make_app(station))) as client:
        response = await client.post("/c/a/api/clips/1/ban", headers=AUTH)
        assert response.status == 200 and (await response.json())["banned"]
        assert a.clip(1).banned and not b.clip(1).banned
        assert (await client.post("/c/b/api/clips/2/keep", headers=AUTH)).status == 200
        assert b.clip(2).keep and not a.clip(2).keep
        assert (await client.post("/c/b/api/skip")).status == 401  # the token still guards each channel
        clips = (await (await client.get("/c/b/api/clips?order=asc")).json())["clips"]
        assert [c["prompt"] for c in clips] == ["b one", "b two"]
        assert clips[0]["thumb"] == "/c/b/api/clips/1/thumb.jpg" and clips[0]["media"] == "/c/b/api/clips/1/media"

        # Live events: a's stream hears a's clips only, and ends when a stops.
        events = await client.get("/c/a/api/events", headers=AUTH)
        assert events.status == 200
        await read_event(events, "status")
        b.events.clip_changed.publish("banned", 2, b.clip(2), None)
        a.events.clip_changed.publish("banned", 2, a.clip(2), None)
        clip = await read_event(events, "clip")
        assert clip["clip"]["prompt"] == "a two" and clip["clip"]["thumb"] == "/c/a/api/clips/2/thumb.jpg"
        # its log panel: a's lines and the daemon's, not b's
        for name in ("b", "a", None):
            CHANNEL.set(name)
            logging.getLogger("webtv.test").warning("said by %s", name or "the daemon")
        CHANNEL.set(None)
        assert (await read_event(events, "log"))["message"] == "said by a"
        assert (await read_event(events, "log"))["message"] == "said by the daemon"
        station.stop("a")
        await until_closed(events)
        assert (await client.post("/c/a/api/clips/1/unban", headers=AUTH)).status == 404

        # b built again (after a crash): its old stream ends, its URLs serve the new one.
        events = await client.get("/c/b/api/events", headers=AUTH)
        await read_event(events, "status")
        again = idle_channel(tmp_path / "b-again", "b", "moths")
        try:
            station.start(again)
            await until_closed(events)
            assert (await (await client.get("/c/b/api/status")).json())["theme"] == "moths"
        finally:
            again.library.close()


async def until_closed(response, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await response.content.readline():
            pass


async def read_event(response, kind: str, timeout: float = 5.0) -> dict:
    """The data of the next ``kind`` event on an SSE response."""
    seen = None
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                seen = line[7:]
            elif line.startswith("data: ") and seen == kind:
                return json.loads(line[6:])


async def test_metrics_carry_the_channel_label_and_follow_the_channels(two, tmp_path):
    a, b = two
    station = Folder(a, b)
    async with TestClient(TestServer(make_app(station))) as client:
        a.events.render_stage.publish("video", 1.0)
        text = await (await client.get("/metrics")).text()
        found = samples(text)
        assert found[("webtv_render_seconds_count", (("channel", "a"), ("stage", "video")))] == 1
        assert found[("webtv_render_seconds_count", (("channel", "b"), ("stage", "video")))] == 0
        assert found[("webtv_library_clips", (("channel", "a"),))] == 2
        assert all(dict(labels).get("channel") in ("a", "b") for _, labels in found), "a series without a channel"
        helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
        assert len(helps) == len(set(helps)), "a family's HELP written twice"

        c = idle_channel(tmp_path / "c", "c", "moths")
        try:
            station.start(c)
            c.events.render_stage.publish("video", 2.0)  # counted from its start
            station.stop("b")
            found = samples(await (await client.get("/metrics")).text())
            assert found[("webtv_render_seconds_count", (("channel", "c"), ("stage", "video")))] == 1
            assert {dict(labels)["channel"] for _, labels in found} == {"a", "c"}
            assert (await client.get("/c/b/api/status")).status == 404
            assert (await client.get("/c/c/api/status")).status == 200
        finally:
            c.library.close()


async def test_one_channel_keeps_its_urls(two):
    a, _ = two
    station = OneChannel(a)
    async with TestClient(TestServer(make_app(station, StationMetrics(station)))) as client:
        for path in ("/api/status", "/c/a/api/status"):
            assert (await (await client.get(path)).json())["channel"] == "a", path
        clips = (await (await client.get("/api/clips?order=asc")).json())["clips"]
        assert clips[0]["thumb"] == "/api/clips/1/thumb.jpg"
        assert (await client.post("/api/clips/1/ban", headers=AUTH)).status == 200 and a.clip(1).banned
        listing = await (await client.get("/api/channels")).json()
        assert [(c["channel"], c["url"]) for c in listing["channels"]] == [("a", "/c/a/")]
        assert listing["refused"] == [] and listing["stages"] == []
        assert 'fetch("api/status"' in await (await client.get("/")).text()  # the player, as before
        response = await client.get("/healthz")
        assert response.status == 503 and await response.text() == f"playout not healthy: {a.health()}\n"
        found = samples(await (await client.get("/metrics")).text())
        assert found[("webtv_library_clips", ())] == 1  # the other is banned; no channel label here


# ------------------------------------------------------------------------ two channels on air


class Airing:
    """Channels built with ``build_channel`` and aired by one event loop in a thread, behind one
    HTTP server (``start_http``) of a ``Folder`` station."""

    def __init__(self, configs: list[Config]):
        self.configs = configs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="airing", daemon=True)

    def start(self) -> "Airing":
        self.thread.start()
        if not self.ready.wait(30) or self.failed:
            raise AssertionError(f"channels not serving: {self.failed!r}")
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._air())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.failed = exc
            self.ready.set()

    async def _air(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        channels = [await build_channel(config) for config in self.configs]
        try:
            http = await start_http(Folder(*channels), None, "127.0.0.1", self.port)
            self.ready.set()
            try:
                await asyncio.gather(*(channel.run(self.stopping) for channel in channels))
            finally:
                await http.cleanup()
        finally:
            for channel in channels:
                await channel.aclose()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)

    def get(self, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={**AUTH, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_for(self, what, timeout: float, message: str) -> dict:
        deadline = time.monotonic() + timeout
        listing = None
        while time.monotonic() < deadline:
            assert self.thread.is_alive(), f"the channels stopped: {self.failed!r}"
            listing = json.loads(self.get("/api/channels")[1])
            if what(listing):
                return listing
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {message}: {listing}")


def on_air(channel: dict) -> bool:
    return bool(channel["now_playing"] and channel["now_playing"]["clip_id"] and channel["library"]["clips"]
                and any(o["kind"] == "hls" and o["state"] == "running" for o in channel["outputs"]))


@pytest.fixture(scope="module")
def airing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-channels")
    small = {"house": {"width": 160, "height": 90, "fps": 12, "video_kbps": 150, "audio_kbps": 32},
             "video": {"clip_seconds": 2.0}, "programme": {"block_seconds": 4.0, "filler_seconds": 2.0},
             "http": {"token_env": TOKEN_ENV}}
    configs = []
    for name, theme in (("a", "owls at dusk"), ("b", "bats in a cave")):
        (folder / name).mkdir()
        configs.append(load_config(write_config(folder / name, 0, [], channel={"name": name, "theme": theme},
                                                **small)))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, TOKEN)
        channels = Airing(configs).start()
        try:
            channels.wait_for(lambda listing: all(on_air(c) for c in listing["channels"]), timeout=60,
                              message="a clip of each channel on air, HLS running")
            channels.folder = folder
            yield channels
        finally:
            channels.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.mark.e2e
def test_the_list_page_leads_to_each_channel_playing_its_own_stream(airing, browser):
    errors: list[str] = []
    page = browser.new_page()
    watch_errors(page, errors)
    hls = []
    page.on("request", lambda r: hls.append(r.url) if "/hls/" in r.url else None)
    try:
        page.goto(airing.url + "/")
        page.wait_for_function("document.querySelectorAll('#channels li').length === 2", timeout=10000)
        items = page.eval_on_selector_all("#channels li", "items => items.map(i => [i.dataset.channel,"
                                          " i.querySelector('a').getAttribute('href'), i.textContent])")
        assert [(name, href) for name, href, _ in items] == [("a", "/c/a/"), ("b", "/c/b/")]
        assert "owls at dusk" in items[0][2] and "bats in a cave" in items[1][2] and "Now: " in items[0][2]
        page.click("#channels li[data-channel='b'] a")
        page.wait_for_url(airing.url + "/c/b/")
        page.wait_for_function("document.querySelector('video').currentTime > 1", timeout=20000)
        assert page.locator("#channel").text_content() == "b"
        assert hls and all(url.startswith(airing.url + "/c/b/hls/") for url in hls), hls
        assert (airing.folder / "b" / "hls" / "index.m3u8").exists()
    finally:
        page.close()
    assert errors == [], "\n".join(errors)


@pytest.mark.e2e
def test_a_channel_console_works_under_its_prefix(airing, browser):
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    watch_errors(page, errors)
    try:
        page.goto(airing.url + "/c/a/console")
        page.fill("#token", TOKEN)
        page.click("#login-button")
        page.locator("#app").wait_for(state="visible", timeout=5000)
        page.wait_for_function("document.querySelectorAll('#grid .card').length >= 1", timeout=15000)
        page.wait_for_function(
            "[...document.querySelectorAll('#grid .card img')].every(i => i.complete && i.naturalWidth > 0)",
            timeout=10000)
        thumbs = page.eval_on_selector_all("#grid .card img", "imgs => imgs.map(i => i.src)")
        assert all(src.startswith(airing.url + "/c/a/api/clips/") for src in thumbs), thumbs
        page.fill("#theme-input", "lanterns on a river")
        click(page, "#theme-set")
        page.wait_for_function("document.querySelector('#theme-current').textContent === 'lanterns on a river'",
                               timeout=5000)
    finally:
        page.close()
    assert errors == [], "\n".join(errors)
    # The theme changed on a only, and was written back to a's file only.
    themes = {c["channel"]: c["theme"] for c in json.loads(airing.get("/api/channels")[1])["channels"]}
    assert themes == {"a": "lanterns on a river", "b": "bats in a cave"}
    assert "lanterns" in (airing.folder / "a" / "channel.toml").read_text()
    assert "lanterns" not in (airing.folder / "b" / "channel.toml").read_text()


@pytest.mark.e2e
def test_metrics_of_two_airing_channels(airing):
    found = samples(airing.get("/metrics")[1])
    for name in ("a", "b"):
        assert found[("webtv_clips_rendered_total", (("channel", name),))] >= 1, name
        assert found[("webtv_output_up", (("channel", name), ("kind", "hls"), ("output", "hls")))] == 1, name
    assert airing.get("/c/a/api/status")[0] == 200 and airing.get("/api/status")[0] == 404

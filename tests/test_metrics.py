"""GET /metrics: the per-channel Prometheus registry, its collector over live state, and the
real daemon scraped twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import Daemon
from webtv.channel import Channel
from webtv.config import Config, HouseSection, ModerationSection
from webtv.director import Shot
from webtv.director.moderation import Moderator
from webtv.director.offline import OfflineDirector
from webtv.http.server import make_app
from webtv.library import Library
from webtv.metrics import ChannelMetrics, StationMetrics
from webtv.playout.block import Block, Entry
from webtv.producer import ProceduralVideo, Stages, SynthAudio
from webtv.producer.pipeline import ClipPipeline
from webtv.producer.producer import Producer, Render
from webtv.producer.sequences import SequenceSource
from webtv.status import OneChannel

TINY = HouseSection(width=160, height=90, fps=12, gop_seconds=1.0, video_kbps=150, audio_kbps=32)
SECRET_URL = "rtmp://live.example.com/app/sk-stream-key-never-shown"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def scrape(metrics: ChannelMetrics) -> dict:
    return samples(metrics.exposition().decode())


def output(name: str, kind: str, target: str, state: str, restarts: int) -> dict:
    """An output as Playout.outputs_status() reports it."""
    return {"name": name, "kind": kind, "target": target, "state": state, "pid": None, "restarts": restarts,
            "uptime_s": 0.0, "last_write_age_s": None, "backoff_s": None, "retry_in_s": None, "lag_kb": 0,
            "last_exit": "", "stderr": [], "problem": None, "write_failures": 0}


class FakePlayout:
    def __init__(self, outputs: list[dict]):
        self.outputs = outputs
        self.blocks_aired = 7
        self.decoder_failures = 1

    def outputs_status(self) -> list[dict]:
        return self.outputs

    def healthy(self) -> bool:
        return True

    def last_byte_age(self) -> float | None:
        return 0.1

    def now_playing(self):
        return None


def ingest(library: Library, folder: Path, name: str, size: int, theme: str) -> None:
    made = folder / name
    made.write_bytes(b"x" * size)
    library.ingest(made, Shot(prompt=f"prompt {name}", seed=1, theme=theme), duration=2.0)


def idle_channel(folder: Path, **config) -> Channel:
    """A Channel built but not running, in ``folder``."""
    paths = {"library": folder / "library", "playlists": folder / "playlists", "hls": folder / "hls"}
    return Channel(Config(paths=paths, **config), Library(folder / "library"), folder / "filler.mp4")


@pytest.fixture
def channel(tmp_path):
    """A Channel that is not running, with a small state."""
    channel = idle_channel(tmp_path, channel={"name": "t", "theme": "owls"})
    ingest(channel.library, tmp_path, "a.mp4", 1000, "owls")
    ingest(channel.library, tmp_path, "b.mp4", 500, "owls")
    ingest(channel.library, tmp_path, "c.mp4", 250, "bats")
    producer = channel.producer.state
    producer.clips_made, producer.clips_failed, producer.prompts_blocked, producer.rendering = 3, 2, 4, [Render(0, "an owl")]
    director = channel.sequences.director.state
    director.fallbacks, director.fallback_active = 5, True
    channel.playout = FakePlayout([
        output("hls", "hls", "hls/index.m3u8", "running", 0),
        output("rtmp-1", "rtmp", SECRET_URL, "backoff", 6),
    ])
    channel.watcher.reloads, channel.watcher.errors = 2, 1
    channel.config_error = "programme.block_secs: unknown key"
    try:
        yield channel
    finally:
        channel.library.close()


def test_collector_reads_the_live_state(channel):
    text = ChannelMetrics(channel).exposition().decode()
    found = samples(text)
    assert value(found, "webtv_clips_rendered_total") == 3
    assert value(found, "webtv_clips_failed_total") == 2
    assert value(found, "webtv_prompts_blocked_total") == 4
    assert value(found, "webtv_producer_rendering") == 1
    assert value(found, "webtv_queue_depth") == 2  # fresh clips of "owls"
    assert value(found, "webtv_library_clips") == 3
    assert value(found, "webtv_library_seconds") == 6.0
    assert value(found, "webtv_library_bytes") == 1750
    assert value(found, "webtv_output_up", output="hls", kind="hls") == 1
    assert value(found, "webtv_output_up", output="rtmp-1", kind="rtmp") == 0
    assert value(found, "webtv_output_restarts_total", output="rtmp-1", kind="rtmp") == 6
    assert value(found, "webtv_output_state", output="rtmp-1", kind="rtmp", state="backoff") == 1
    assert value(found, "webtv_output_state", output="rtmp-1", kind="rtmp", state="running") == 0
    assert value(found, "webtv_output_state", output="hls", kind="hls", state="running") == 1
    assert value(found, "webtv_playout_healthy") == 1
    assert value(found, "webtv_blocks_aired_total") == 7
    assert value(found, "webtv_decoder_failures_total") == 1
    assert value(found, "webtv_config_reloads_total") == 2
    assert value(found, "webtv_config_errors_total") == 1
    assert value(found, "webtv_config_error") == 1
    assert value(found, "webtv_director_fallbacks_total") == 5
    assert value(found, "webtv_director_fallback_active") == 1
    assert 0 <= value(found, "webtv_uptime_seconds") < 60
    # Every family has help text, and no URL or key ever reaches the exposition.
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("webtv_") and family.documentation, family.name
    assert "sk-stream-key" not in text and "rtmp://" not in text


def test_events_are_counted(channel):
    metrics = ChannelMetrics(channel)
    clip = Path("/nowhere/clip.mp4")
    channel.events.block_on_air.publish(Block(1, Path("b1"), (
        Entry(clip, 2.0, "fresh", 1), Entry(clip, 2.5, "fresh", 2), Entry(clip, 3.0, "loop", 3))))
    channel.events.block_on_air.publish(Block(2, Path("b2"), (Entry(clip, 4.0, "filler"),)))
    for stage, seconds in (("music", 0.3), ("video", 1.5), ("video", 0.5), ("encode", 0.2), ("validate", 0.01)):
        channel.events.render_stage.publish(stage, seconds)
    channel.theme_state.set("bats", "api")
    channel.theme_state.set("bats", "api")  # already on: not a change
    channel.theme_state.set("moths", "schedule")

    found = scrape(metrics)
    assert value(found, "webtv_aired_seconds_total", source="fresh") == 4.5
    assert value(found, "webtv_aired_seconds_total", source="loop") == 3.0
    assert value(found, "webtv_aired_seconds_total", source="filler") == 4.0
    assert value(found, "webtv_render_seconds_count", stage="video") == 2
    assert value(found, "webtv_render_seconds_sum", stage="video") == 2.0
    assert value(found, "webtv_render_seconds_count", stage="validate") == 1
    assert value(found, "webtv_render_seconds_bucket", stage="music", le="0.5") == 1
    assert value(found, "webtv_theme_changes_total", source="api") == 1
    assert value(found, "webtv_theme_changes_total", source="schedule") == 1
    assert value(found, "webtv_theme_changes_total", source="config") == 0
    assert value(found, "webtv_queue_depth") == 0  # nothing fresh of "moths"


def test_each_channel_has_its_own_registry(tmp_path):
    a, b = idle_channel(tmp_path / "a"), idle_channel(tmp_path / "b")
    try:
        metrics_a, metrics_b = ChannelMetrics(a), ChannelMetrics(b)
        assert metrics_a.registry is not metrics_b.registry
        a.events.render_stage.publish("video", 1.0)
        assert value(scrape(metrics_a), "webtv_render_seconds_count", stage="video") == 1
        assert value(scrape(metrics_b), "webtv_render_seconds_count", stage="video") == 0
        assert not any(name.startswith("webtv_") for name in REGISTRY._names_to_collectors)
        # A channel that has not started yet scrapes fine: zeros, no outputs.
        found = scrape(metrics_b)
        assert value(found, "webtv_clips_rendered_total") == 0 and value(found, "webtv_library_clips") == 0
        assert not any(name == "webtv_output_up" for name, _ in found)
    finally:
        a.library.close()
        b.library.close()


def test_a_broken_part_does_not_fail_the_scrape(channel):
    channel.playout.outputs_status = lambda: 1 / 0
    found = scrape(ChannelMetrics(channel))
    assert value(found, "webtv_clips_rendered_total") == 3
    assert not any(name.startswith("webtv_output_") for name, _ in found)


async def test_producer_reports_each_render_stage(tmp_path):
    library = Library(tmp_path / "library")
    seen: list[tuple[str, float]] = []
    producer = Producer(
        ClipPipeline(Stages(video=ProceduralVideo(TINY), audio=SynthAudio()), TINY, clip_seconds=1.0),
        SequenceSource(OfflineDirector(), Moderator(ModerationSection()), library, seed=0, shots_per_sequence=2),
        library, theme=lambda: "owls", ahead=1,
        on_stage=lambda stage, seconds: seen.append((stage, seconds)),
    )
    task = asyncio.create_task(producer.run())
    try:
        deadline = time.monotonic() + 30
        while producer.state.clips_made < 1 and time.monotonic() < deadline:
            assert not task.done(), task
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        library.close()
    assert producer.state.clips_made >= 1
    stages = [stage for stage, _ in seen]
    assert stages[:6] == ["music", "loudness", "video", "level", "encode", "validate"], seen
    assert all(seconds >= 0 for _, seconds in seen)


async def test_metrics_route(channel):
    station = OneChannel(channel)
    async with TestClient(TestServer(make_app(station, StationMetrics(station)))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    found = samples(text)
    assert value(found, "webtv_clips_rendered_total") == 3
    assert not any("channel" in dict(labels) for _, labels in found)  # one channel: no channel label, as always


# --------------------------------------------------------------------------- the real daemon


def http_metrics(daemon: Daemon) -> dict:
    status, body = daemon.request("GET", "/metrics")
    assert status == 200, body
    return samples(body)


def aired(found: dict) -> float:
    return sum(v for (name, _), v in found.items() if name == "webtv_aired_seconds_total")


@pytest.mark.e2e
def test_the_daemon_serves_metrics(tmp_path):
    daemon = Daemon(tmp_path / "channel", programme={"block_seconds": 4.0, "filler_seconds": 2.0}).start()
    try:
        daemon.wait_for(lambda s: s["producer"] and s["producer"]["clips_made"] > 0 and s["now_playing"]
                        and any(o["kind"] == "hls" and o["state"] == "running" for o in s["outputs"]),
                        timeout=30, message="a clip made, a block on air, hls running")
        first = http_metrics(daemon)
        deadline = time.monotonic() + 15
        while True:
            time.sleep(0.5)
            second = http_metrics(daemon)
            if aired(second) > aired(first) or time.monotonic() > deadline:
                break
    finally:
        daemon.stop()
    assert value(second, "webtv_clips_rendered_total") > 0
    assert aired(first) > 0 and aired(second) > aired(first), (aired(first), aired(second))
    assert value(second, "webtv_output_up", output="hls", kind="hls") == 1
    assert value(second, "webtv_output_state", output="hls", kind="hls", state="running") == 1
    for stage in ("music", "loudness", "video", "level", "encode", "validate", "check"):
        assert value(second, "webtv_render_seconds_count", stage=stage) > 0, stage
        assert value(second, "webtv_render_seconds_sum", stage=stage) > 0, stage
    assert value(second, "webtv_library_clips") > 0 and value(second, "webtv_library_bytes") > 0
    assert value(second, "webtv_uptime_seconds") > value(first, "webtv_uptime_seconds")

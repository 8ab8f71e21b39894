"""Two real channels in one process on shared stages (``build_channel(config, shared=...)``):
a tiny Zeroscope folder named by both ``[video]`` sections is one instance, loaded once, and
both channels air its clips; released, the instance goes."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.daemon import write_config
from tests.tiny_zeroscope import tiny_text_to_video
from webtv.channel import build_channel
from webtv.config import load_config
from webtv.producer.shared import SharedStages

pytestmark = pytest.mark.e2e

HOUSE = {"width": 160, "height": 96, "fps": 24, "video_kbps": 200, "audio_kbps": 64, "x264_preset": "ultrafast"}


@pytest.fixture(scope="module")
def tiny_t2v(tmp_path_factory):
    return tiny_text_to_video(tmp_path_factory.mktemp("zeroscope") / "t2v")


def channel_file(folder, name: str, theme: str, model) -> object:
    folder.mkdir()
    return load_config(write_config(
        folder, 0, [], channel={"name": name, "theme": theme}, house=HOUSE, producer={"ahead": 1},
        video={"backend": "zeroscope", "model": str(model), "clip_seconds": 1.0, "width": 32, "height": 24,
               "frames": 4, "steps": 2},
        interpolation={"backend": "none"}, quality={"checks": False},
        programme={"block_seconds": 2.0, "filler_seconds": 1.0}, output={"rtmp_urls": [], "hls": True},
    ))


async def test_two_channels_load_one_zeroscope_and_both_air_its_clips(tiny_t2v, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="webtv.producer")
    shared = SharedStages()
    configs = [channel_file(tmp_path / "a", "a", "lighthouses in a storm", tiny_t2v),
               channel_file(tmp_path / "b", "b", "foxes in the snow", tiny_t2v)]
    channels = [await build_channel(config, shared=shared) for config in configs]
    a, b = channels
    assert a.producer.pipeline.stages.video.backend is b.producer.pipeline.stages.video.backend
    assert [e for e in shared.status() if e["stage"] == "video"] == [
        {"stage": "video", "backend": "zeroscope", "what": f"zeroscope ({tiny_t2v})", "channels": ["a", "b"]}]
    stop = asyncio.Event()
    runs = [asyncio.create_task(channel.run(stop)) for channel in channels]
    try:
        deadline = time.monotonic() + 150
        while not all((c.status().now_playing or _nothing).clip_id is not None for c in channels):
            assert time.monotonic() < deadline, [c.status().producer for c in channels]
            assert not any(run.done() for run in runs), [run.exception() for run in runs if run.done()]
            await asyncio.sleep(0.2)
        for channel in channels:
            playing = channel.status().now_playing
            assert playing.theme == channel.config.channel.theme  # its own clip, of its own theme
            assert channel.producer.state.clips_failed == 0, channel.producer.state
            # what its renders queue by is the library's count, kept on the loop (no await since the last check)
            assert channel.fresh_ready_s == channel.library.fresh_seconds(playing.theme)
    finally:
        stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
        for channel in channels:
            await channel.aclose()
    loads = [r for r in caplog.records if r.getMessage().startswith("loading video model")]
    assert len(loads) == 1, [r.getMessage() for r in loads]
    assert "shared by channels a, b: loaded once" in caplog.text
    for channel in channels:
        shared.release(channel.config.channel.name)
    assert shared.status() == []


class _nothing:
    clip_id = None

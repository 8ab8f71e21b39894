"""Fresh clips per minute of two channels on one shared video stage (issue #15).

Builds two real channels in this process with one ``SharedStages``
(``build_channel(config, shared=...)``, as ``webtv run --config DIR`` does): equal
``[video]`` sections, procedural with a fixed ``render_delay_s`` standing in for a GPU model,
so both render on one instance whose gate lets one render through at a time, the channel with
the least fresh airtime ready first. Each channel airs (HLS only) and its producer keeps
``--ahead`` clips ready; with the default (more than the window can make) both want the stage
all the time, so the gate decides who renders. The window starts once both channels have made
their first clip and lasts ``--seconds``; the figure is each channel's clips made in it, per
minute. ``--channels 3 --head-start N`` gives channel a N fresh clips before it starts: the
rule at work. With two channels of one render at a time, only one waits when the stage frees
(the other is encoding its last clip), so they take turns whatever their airtime; with three,
two wait at each turn, and the one with less fresh airtime ready goes first, so a waits until
b and c have as much ready as it. The house format is the tests' small one (320x180, x264 ultrafast) so the local
encode on a 2-core machine does not cap the figure: the render delay does.

Run: .venv/bin/python -m bench.fairness_bench [--delay 1.0] [--seconds 60] [--ahead 1000]
     [--channels 2] [--head-start 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from tests.clips import make_house_clip
from tests.daemon import write_config
from webtv.channel import Channel, build_channel
from webtv.config import Config, HouseSection, load_config
from webtv.director import Shot
from webtv.library import Library
from webtv.producer.shared import SharedStages

HOUSE = {"width": 320, "height": 180, "fps": 24, "video_kbps": 400, "audio_kbps": 64, "x264_preset": "ultrafast"}
THEMES = {"a": "lighthouses in a storm", "b": "foxes in the snow", "c": "trains at night", "d": "coral reefs"}


def channel_config(folder: Path, name: str, args: argparse.Namespace):
    folder.mkdir(parents=True)
    return load_config(write_config(
        folder, 0, [], channel={"name": name, "theme": THEMES[name]}, house=HOUSE, producer={"ahead": args.ahead},
        video={"backend": "procedural", "render_delay_s": args.delay, "clip_seconds": args.clip_seconds},
        programme={"block_seconds": 2 * args.clip_seconds, "filler_seconds": 2.0},
        output={"rtmp_urls": [], "hls": True},
    ))


def head_start(config: Config, clips: int, scratch: Path) -> None:
    """``clips`` fresh clips of the channel's theme in its library, made before it starts."""
    if not clips:
        return
    seconds = config.video.clip_seconds
    source = make_house_clip(scratch / "head-start.mp4", seconds, HouseSection(**HOUSE))
    library = Library(config.paths.library)
    try:
        for i in range(clips):
            copy = shutil.copy(source, scratch / f"head-start-{i}.mp4")
            library.ingest(Path(copy), Shot(f"head start {i}", i, config.channel.theme), seconds)
    finally:
        library.close()


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} in {timeout:g} s")
        await asyncio.sleep(0.1)


async def bench(args: argparse.Namespace, folder: Path) -> dict:
    shared = SharedStages()
    configs = [channel_config(folder / name, name, args) for name in list(THEMES)[:args.channels]]
    head_start(configs[0], args.head_start, folder)
    channels: list[Channel] = [await build_channel(config, shared=shared) for config in configs]
    ready_at_start = [round(c.fresh_ready_s, 1) for c in channels]
    stop = asyncio.Event()
    runs = [asyncio.create_task(channel.run(stop)) for channel in channels]
    try:
        await wait_until(lambda: all(c.producer.state.clips_made >= 1 for c in channels), 120, "first clips")
        before = [c.producer.state.clips_made for c in channels]
        started = time.monotonic()
        await asyncio.sleep(args.seconds)
        window = time.monotonic() - started
        made = [c.producer.state.clips_made - b for c, b in zip(channels, before)]
        ready = [round(c.fresh_ready_s, 1) for c in channels]
        failed = [c.producer.state.clips_failed for c in channels]
        sharing = shared.status()
    finally:
        stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
        for channel in channels:
            await channel.aclose()
            shared.release(channel.config.channel.name)
    per_minute = {c.config.channel.name: round(n * 60 / window, 2) for c, n in zip(channels, made)}
    low, high = min(per_minute.values()), max(per_minute.values())
    return {
        "render_delay_s": args.delay, "clip_seconds": args.clip_seconds, "ahead": args.ahead,
        "window_s": round(window, 1), "clips": dict(zip(per_minute, made)), "clips_per_minute": per_minute,
        "gate_bound_per_minute": round(60 / args.delay, 1),
        "spread": round((high - low) / high, 3) if high else None, "within_20_percent": bool(high and low >= 0.8 * high),
        "head_start_clips": args.head_start, "fresh_ready_s_at_start": dict(zip(per_minute, ready_at_start)),
        "fresh_ready_s_at_end": dict(zip(per_minute, ready)), "clips_failed": dict(zip(per_minute, failed)),
        "video_stage": [e for e in sharing if e["stage"] == "video"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=1.0, help="render_delay_s of the shared video stage")
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument("--ahead", type=int, default=1000, help="[producer] ahead of each channel")
    parser.add_argument("--head-start", type=int, default=0, help="fresh clips channel a has before it starts")
    parser.add_argument("--channels", type=int, default=2, choices=range(2, len(THEMES) + 1))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webtv-fairness-") as scratch:
        result = asyncio.run(bench(args, Path(scratch)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Playout figures for BENCHMARKS.md (issue #2), measured against a real nginx-rtmp on loopback.

1. Cold start to first frame on air: `webtv run` on an empty folder (the filler card is
   encoded first) and again on the same folder with a library, timed from spawning the
   process to the first video packet a reader receives from the RTMP server.
2. CPU-seconds per stream-minute at 1024x576@24 on the same clips: this project's playout
   (decoder -c copy -> relay -> FLV output, run in a process of its own) against the
   AI WebTV command (`ffmpeg -re -f concat ... -c:v libx264 -preset veryfast -tune
   zerolatency -c:a aac -f flv URL`). Both stream for the same time; CPU is user+system of
   the process and all its children (getrusage).
3. Gap at block edges: while (2) streams, a reader on the RTMP server prints every packet of
   this project's stream; the largest gap between consecutive video timestamps (one frame is
   41.7 ms at 24 fps) and the number of block edges it spanned (blocks of ``--block-clips``
   3 s clips).

Run: .venv/bin/python -m bench.playout_bench [--seconds 60] [--starts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.daemon import Daemon
from tests.readers import RtmpReader
from tests.rtmp_server import RtmpServer
from webtv.config import HouseSection, OutputSection
from webtv.director import Sequence, Shot
from webtv.media import ffmpeg_exe
from webtv.producer import make_stages
from webtv.programmer.playlist import write_ffconcat

HOUSE = HouseSection()  # 1024x576@24, the channel default


def time_to_first_frame(daemon: Daemon, stream: str) -> float:
    try:
        took = daemon.start_on_air(stream)
    finally:
        daemon.stop()
    if took is None:
        raise RuntimeError("no frame on air within 30 s:\n" + daemon.log_tail())
    return took


def bench_cold_start(rtmp: RtmpServer, root: Path, starts: int) -> dict:
    results: dict[str, list[float]] = {"empty_library": [], "with_library": []}
    for n in range(starts):
        stream = f"{rtmp.url}/cold{n}"
        daemon = Daemon(root / f"start{n}", rtmp_urls=[stream], house={"width": 1024, "height": 576,
                        "video_kbps": 2500, "audio_kbps": 128, "x264_preset": "veryfast"})
        results["empty_library"].append(time_to_first_frame(daemon, stream))
        results["with_library"].append(time_to_first_frame(daemon, stream))
    return {k: {"median_s": round(statistics.median(v), 2), "max_s": round(max(v), 2), "runs": [round(x, 2) for x in v]}
            for k, v in results.items()}


def make_clips(folder: Path, count: int, seconds: float = 3.0) -> list[Path]:
    from webtv.config import Config
    from webtv.producer import ClipPipeline

    pipeline = ClipPipeline(make_stages(Config()), HOUSE, seconds)
    shots = tuple(Shot(prompt=f"bench shot {i}: a lighthouse in a storm, slow pan left", seed=i, theme="bench",
                       index=i) for i in range(count))
    track = pipeline.compose(Sequence(id="bench", theme="bench", music_prompt="calm", seed=0, shots=shots))
    clips = []
    for shot in shots:
        out = folder / f"clip{shot.index:02d}.mp4"
        pipeline(shot, track, out)
        clips.append(out)
    return clips


def playout_child(clips: list[str], url: str, seconds: float, playlists: str, block_clips: int) -> None:
    """Runs in a process of its own: this project's playout for ``seconds``."""
    from webtv.playout.block import Block, Entry
    from webtv.playout.controller import Playout

    count = 0

    async def next_block() -> Block:
        nonlocal count
        first = count * block_clips
        count += 1
        chosen = [clips[(first + i) % len(clips)] for i in range(block_clips)]
        entries = tuple(Entry(path=Path(c), duration=3.0, source="loop") for c in chosen)
        playlist = write_ffconcat(Path(playlists) / f"block-{count}.ffconcat", [(e.path, e.duration) for e in entries])
        return Block(number=count, playlist=playlist, entries=entries)

    async def main() -> None:
        playout = Playout(OutputSection(rtmp_urls=[url], hls=False), HOUSE, Path(playlists), next_block)
        await playout.start()
        await asyncio.sleep(seconds)
        await playout.stop()

    asyncio.run(main())


def cpu_of(cmd: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def block_edge_gaps(reader: RtmpReader, block_s: float) -> dict:
    video = reader.video()
    if len(video) < 2:
        return {"error": "the reader received no video"}
    gaps = [b.dts - a.dts for a, b in zip(video, video[1:])]
    span = video[-1].dts - video[0].dts
    return {
        "stream_seconds_read": round(span, 1),
        "block_edges": int(span // block_s),
        "largest_video_gap_ms": round(max(gaps) * 1000, 1),
        "smallest_video_gap_ms": round(min(gaps) * 1000, 1),
        "one_frame_ms": round(1000 / HOUSE.fps, 1),
    }


def bench_cpu(rtmp: RtmpServer, root: Path, seconds: float, block_clips: int) -> dict:
    clips = make_clips(root, 10)
    ours_url, theirs_url = f"{rtmp.url}/ours", f"{rtmp.url}/theirs"
    # nginx-rtmp holds a player until the publisher comes (and keeps it after it has gone)
    reader = RtmpReader(ours_url, seconds=None, line_buffered=True).start()
    time.sleep(0.3)
    ours = cpu_of([sys.executable, "-c",
                   "import json,sys; from bench.playout_bench import playout_child; playout_child(*json.loads(sys.argv[1]))",
                   json.dumps([[str(c) for c in clips], ours_url, seconds, str(root), block_clips])])
    reader.stop()  # after cpu_of: its CPU is not counted
    edges = block_edge_gaps(reader, 3.0 * block_clips)
    long_list = write_ffconcat(root / "aiwebtv.ffconcat", [(c, None) for c in clips * (int(seconds // 30) + 2)])
    theirs = cpu_of([ffmpeg_exe(), "-re", "-f", "concat", "-safe", "0", "-i", str(long_list),
                     "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-c:a", "aac",
                     "-t", str(seconds), "-f", "flv", theirs_url])
    per_minute = 60.0 / seconds
    return {
        "stream_seconds": seconds,
        "webtv_cpu_s_per_stream_minute": round(ours * per_minute, 2),
        "aiwebtv_cpu_s_per_stream_minute": round(theirs * per_minute, 2),
        "ratio": round(ours / theirs, 3),
        "gap_at_block_edges": edges,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="stream time for the CPU comparison")
    parser.add_argument("--starts", type=int, default=3, help="cold starts to time")
    parser.add_argument("--block-clips", type=int, default=3,
                        help="3 s clips per block in the CPU run (more edges to measure; the first bench used 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webtv-bench-") as tmp:
        root = Path(tmp)
        with RtmpServer(root / "nginx") as rtmp:
            result = {
                "ffmpeg": subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0],
                "cold_start_to_first_frame": bench_cold_start(rtmp, root, args.starts),
                "cpu": bench_cpu(rtmp, root, args.seconds, args.block_clips),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Clips per minute through remote workers: 1 worker, then 2 (issue #6).

Starts two `webtv worker` processes on loopback (procedural video with a fixed render delay
standing in for a GPU job, synth music), then lets the daemon's own Producer fill a library
through them twice, first with one worker, then with both: the offline director writes the
sequences, each sequence's music is one remote job, each shot's frames come back from a
worker as FFV1, and the house encode, validation and ingest run here, as in `webtv run`.
The producer renders as many shots at once as there are healthy workers. The house format
is the tests' small one (320x180, x264 ultrafast) so that the local encode on a 2-core
machine does not cap the figure.

Best-of-K (issue #13): ``--takes 1 3`` runs both workers once per K instead, each shot drawn
K times (each take a /video job, spread over the workers) and scored on the channel by a tiny
random CLIP (tests/tiny_clip.py: the cost of drawing the takes, not of a real CLIP's scoring).

Run: .venv/bin/python -m bench.workers_bench [--delay 3.0] [--clips 24] [--takes 1 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.worker_harness import start_workers  # noqa: E402
from webtv.config import load_config, with_changes  # noqa: E402
from webtv.director import Shot  # noqa: E402

SHOTS_PER_SEQUENCE = 4


def run(config_path: Path, urls: list[str], clips: int, library_folder: Path, quality: dict | None = None) -> dict:
    from webtv.director.offline import OfflineDirector
    from webtv.library import Library
    from webtv.producer import ClipPipeline, make_stages
    from webtv.producer.producer import Producer
    from webtv.producer.remote import WorkerPool
    from webtv.producer.sequences import SequenceSource

    config = with_changes(load_config(config_path), {
        "video": {"backend": "remote"}, "audio": {"backend": "remote"}, "interpolation": {"backend": "none"},
        "workers": {"urls": urls, "timeout_s": 600.0}, **({"quality": quality} if quality else {}),
    }, "the bench")
    pool = WorkerPool(config.workers)
    stages = make_stages(config, pool)
    pool.check()
    pipeline = ClipPipeline.from_config(config, stages, pool)
    for _ in urls:  # warm up: a client per worker, one job each
        pipeline.frames(Shot("warm up", 0, "bench"))
    library = Library(library_folder)
    sequences = SequenceSource(OfflineDirector(), None, library, seed=len(urls), shots_per_sequence=SHOTS_PER_SEQUENCE)
    producer = Producer(pipeline, sequences, library, theme=lambda: "bench", ahead=clips, capacity=pool.capacity)

    async def fill() -> float:
        started = time.monotonic()
        task = asyncio.create_task(producer.run())
        try:
            while producer.state.clips_made < clips:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return time.monotonic() - started

    wall = asyncio.run(fill())
    status = pool.status()
    pool.close()
    return {
        "workers": len(urls),
        "clips": producer.state.clips_made,
        "failed": producer.state.clips_failed,
        "wall_s": round(wall, 2),
        "clips_per_min": round(producer.state.clips_made / wall * 60, 1),
        "jobs_per_worker": [w["jobs_done"] for w in status],
        "mean_job_s_per_worker": [w["mean_job_s"] for w in status],
        "last_error": producer.state.last_error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=3.0, help="seconds per /video job on a worker")
    parser.add_argument("--clips", type=int, default=24, help="clips per run")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length")
    parser.add_argument("--takes", type=int, nargs="+", help="best-of-K: one two-worker run per K")
    args = parser.parse_args()
    if args.takes:
        return takes_main(args)
    with tempfile.TemporaryDirectory(prefix="webtv-workers-bench-") as tmp:
        folder = Path(tmp)
        procs = start_workers(folder / "workers", 2, video={"render_delay_s": args.delay,
                                                             "clip_seconds": args.seconds})
        try:
            config = procs[0].config  # the same small house format the tests use (320x180, ultrafast)
            one = run(config, [procs[0].url], args.clips, folder / "library-1")
            two = run(config, [p.url for p in procs], args.clips, folder / "library-2")
        finally:
            for proc in procs:
                proc.kill()
    print(json.dumps({
        "render_delay_s": args.delay,
        "clip_seconds": args.seconds,
        "one_worker": one,
        "two_workers": two,
        "speedup": round(two["clips_per_min"] / one["clips_per_min"], 2),
        "ideal_clips_per_min_per_worker": round(60 / args.delay, 1),
    }, indent=2))


def takes_main(args) -> None:
    from tests.tiny_clip import tiny_clip

    with tempfile.TemporaryDirectory(prefix="webtv-workers-bench-") as tmp:
        folder = Path(tmp)
        model = str(tiny_clip(folder / "clip"))
        procs = start_workers(folder / "workers", 2, video={"render_delay_s": args.delay,
                                                             "clip_seconds": args.seconds})
        try:
            runs = {k: run(procs[0].config, [p.url for p in procs], args.clips, folder / f"library-k{k}",
                           {"takes": k, "scorer": "clip", "model": model}) for k in args.takes}
        finally:
            for proc in procs:
                proc.kill()
    print(json.dumps({"render_delay_s": args.delay, "clip_seconds": args.seconds, "workers": 2,
                      "takes": {f"K={k}": r for k, r in runs.items()}}, indent=2))


if __name__ == "__main__":
    main()

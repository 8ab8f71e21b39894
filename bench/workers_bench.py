"""Clips per minute through remote workers: 1 worker, then 2 (issue #6).

Starts two `webtv worker` processes on loopback (procedural video with a fixed render delay
standing in for a GPU job, synth music), then renders the same clips twice through the
WorkerPool, first with one worker, then with both. Each clip is made as the daemon makes it
(`make_stages` with `[video]` and `[audio] backend = "remote"`: the frames come back from a
worker as FFV1, then the house encode and validation run here); one music job per sequence
of 4 shots. Producer threads (3 per worker of the larger run, the same number in both runs:
a worker would idle while its only caller encodes) keep every worker busy, so the figure is
what the pool delivers. The house format is the tests' small one (320x180, x264 ultrafast)
so that the local encode on a 2-core machine does not cap the figure.

Run: .venv/bin/python -m bench.workers_bench [--delay 2.0] [--clips 48] [--threads 6]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.worker_harness import start_workers  # noqa: E402
from webtv.config import load_config  # noqa: E402
from webtv.director import Sequence, Shot  # noqa: E402

SHOTS_PER_SEQUENCE = 4


def run(config_path: Path, urls: list[str], clips: int, threads: int, out: Path) -> dict:
    from webtv.producer import make_stages
    from webtv.producer.producer import make_clip, track_slice
    from webtv.producer.stages import sequence_track

    base = load_config(config_path)
    config = base.model_copy(update={
        "video": base.video.model_copy(update={"backend": "remote"}),
        "audio": base.audio.model_copy(update={"backend": "remote"}),
        "interpolation": base.interpolation.model_copy(update={"backend": "none"}),
        "workers": base.workers.model_copy(update={"urls": urls, "timeout_s": 600.0}),
    })
    stages = make_stages(config)
    pool = stages.workers
    house, seconds = config.house, config.video.clip_seconds
    pool.check()
    for _ in urls:  # warm up: a client per worker, one job each
        stages.video.render(Shot("warm up", 0, "bench"), seconds)

    sequences = -(-clips // SHOTS_PER_SEQUENCE)
    todo = list(range(sequences))
    lock = threading.Lock()
    made: list[float] = []
    errors: list[str] = []

    def producer() -> None:
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop(0)
            shots = tuple(Shot(f"bench shot {n}-{i}, slow pan left", n * 10 + i, "bench", index=i)
                          for i in range(SHOTS_PER_SEQUENCE))
            sequence = Sequence(id=f"s{n}", theme="bench", music_prompt=f"bench music {n}", seed=n, shots=shots)
            try:
                track = sequence_track(stages, sequence, seconds, house.sample_rate, house.channels)
                for shot in shots:
                    target = out / f"clip-{n}-{shot.index}.mp4"
                    make_clip(shot, track_slice(track, shot.index, seconds, house.sample_rate), stages, house,
                              seconds, target)
                    target.unlink()
                    with lock:
                        made.append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(str(exc))

    started = time.monotonic()
    workers = [threading.Thread(target=producer) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall = time.monotonic() - started
    status = pool.status()
    pool.close()
    return {
        "workers": len(urls),
        "clips": len(made),
        "failed": len(errors),
        "wall_s": round(wall, 2),
        "clips_per_min": round(len(made) / wall * 60, 1),
        "jobs_per_worker": [w["jobs_done"] for w in status],
        "mean_job_s_per_worker": [w["mean_job_s"] for w in status],
        "errors": errors[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per /video job on a worker")
    parser.add_argument("--clips", type=int, default=48, help="clips per run")
    parser.add_argument("--threads", type=int, default=6, help="producer threads in both runs")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webtv-workers-bench-") as tmp:
        folder = Path(tmp)
        procs = start_workers(folder / "workers", 2, video={"render_delay_s": args.delay,
                                                             "clip_seconds": args.seconds})
        try:
            out = folder / "clips"
            out.mkdir()
            config = procs[0].config  # the same small house format the tests use (320x180, ultrafast)
            one = run(config, [procs[0].url], args.clips, args.threads, out)
            two = run(config, [p.url for p in procs], args.clips, args.threads, out)
        finally:
            for proc in procs:
                proc.kill()
    print(json.dumps({
        "render_delay_s": args.delay,
        "clip_seconds": args.seconds,
        "threads": args.threads,
        "one_worker": one,
        "two_workers": two,
        "speedup": round(two["clips_per_min"] / one["clips_per_min"], 2),
        "ideal_clips_per_min_per_worker": round(60 / args.delay, 1),
    }, indent=2))


if __name__ == "__main__":
    main()

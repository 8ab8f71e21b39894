"""Theme edit -> first clip of the new theme on air, on the embedded default (issue #4).

Starts `webtv run` on the default house format (1024x576@24, procedural video, synth music,
offline director, the shipped block length), lets it air, then edits `theme` in its
channel.toml several times, timing each edit until /api/status reports a clip of the new
theme on air.

Run: .venv/bin/python -m bench.theme_bench [--edits 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.daemon import Daemon

THEMES = ["glass whales over a desert", "a night market on the moon", "paper boats in a storm drain",
          "clockwork foxes in autumn", "a library under the sea", "neon koi in the rain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webtv-theme-bench-") as tmp:
        daemon = Daemon(Path(tmp) / "channel", house={"width": 1024, "height": 576, "video_kbps": 2500,
                        "audio_kbps": 128, "x264_preset": "veryfast"},
                        programme={"block_seconds": 10.0, "filler_seconds": 4.0},
                        video={"clip_seconds": 3.0}, producer={"ahead": 6}, director={"shots_per_sequence": 4})
        daemon.start()
        try:
            daemon.wait_for(lambda s: s["now_playing"] and s["now_playing"]["clip_id"], timeout=60)
            time.sleep(15)  # settle: the producer has filled its queue
            timings = []
            for theme in THEMES[: args.edits]:
                text = daemon.config.read_text()
                current = daemon.status()["theme"]
                edited = time.monotonic()
                daemon.config.write_text(text.replace(f'theme = "{current}"', f'theme = "{theme}"'))
                daemon.wait_for(lambda s: s["now_playing"] and s["now_playing"]["theme"] == theme, timeout=120)
                timings.append(time.monotonic() - edited)
                time.sleep(7)  # let the new theme air a while before the next edit
        finally:
            daemon.stop()
    print(json.dumps({
        "edits": len(timings),
        "median_s": round(statistics.median(timings), 2),
        "max_s": round(max(timings), 2),
        "runs": [round(t, 2) for t in timings],
    }, indent=2))


if __name__ == "__main__":
    main()

"""Broadcast loudness read back from the stream (issue #13): `webtv run` on an empty library
(the filler card airs first, then the clips as they are made) publishing to a real nginx-rtmp;
a reader records ``--seconds`` of the stream as it arrives (``ffmpeg -c copy``), and ffmpeg's
``ebur128`` meter reads the recording: integrated loudness and true peak of the whole, and the
integrated loudness of each clip and filler card in it, found from ``/api/programme``'s
``recent`` entries (their start times are the stream's wall-clock times; the recording starts at
the stream's first packet, the first entry's start). Each entry is measured a little inside its
edges (``EDGE_S``), so a misplaced edge does not mix two clips.

Goals (``[house] loudness_lufs`` -16, ``true_peak_db`` -1.5): integrated within +-1 LU of
the target, each clip within +-3 LU, the filler within +-1.5 LU, true peak <= target + 0.5.

Run: .venv/bin/python -m bench.loudness_bench [--seconds 60] [--size 640x360]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.daemon import Daemon
from tests.listen import loudness
from tests.rtmp_server import RtmpServer
from webtv.config import load_config

EDGE_S = 0.2


def record(url: str, seconds: float, out: Path) -> subprocess.Popen:
    """An ffmpeg reader waiting on ``url`` (nginx-rtmp holds it until the publisher comes),
    saving ``seconds`` of the stream as it arrives."""
    return subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-rw_timeout", "30000000", "-i", url, "-t", f"{seconds:g}",
                             "-c", "copy", "-f", "flv", str(out)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="640x360")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="loudness-bench-") as tmp:
        root = Path(tmp)
        with RtmpServer(root / "nginx") as rtmp:
            stream, recording = f"{rtmp.url}/loud", root / "aired.flv"
            daemon = Daemon(root / "channel", rtmp_urls=[stream],
                            house={"width": width, "height": height, "video_kbps": 1200, "x264_preset": "veryfast"},
                            video={"clip_seconds": 3.0}, producer={"ahead": 6},
                            programme={"block_seconds": 9.0, "filler_seconds": 3.0})
            reader = record(stream, args.seconds, recording)
            time.sleep(0.3)
            daemon.start()
            try:
                reader.wait(timeout=args.seconds + 60)
                code, body = daemon.request("GET", "/api/programme")
            finally:
                daemon.stop()
            if reader.returncode != 0 or code != 200:
                print(reader.stderr.read().decode(errors="replace"), body, daemon.log_tail(), file=sys.stderr)
                return 1
            target = load_config(daemon.config).house.loudness_lufs
            whole = loudness(recording)
            entries = sorted(json.loads(body)["recent"], key=lambda p: p["start"])
            t0, rows = entries[0]["start"], []
            for entry in entries:
                at, length = entry["start"] - t0, entry["end"] - entry["start"]
                if at + length > args.seconds or length <= 2 * EDGE_S + 0.4:
                    continue
                measured = loudness(recording, at + EDGE_S, length - 2 * EDGE_S)
                rows.append({"source": entry["source"], "clip_id": entry["clip_id"], "at": round(at, 2),
                             "seconds": round(length, 2), "lufs": measured.integrated})
    clips = [r["lufs"] for r in rows if r["source"] != "filler"]
    fillers = [r["lufs"] for r in rows if r["source"] == "filler"]
    result = {"seconds": args.seconds, "target_lufs": target, "integrated_lufs": whole.integrated,
              "true_peak_dbtp": whole.true_peak, "clips": len(clips), "fillers": len(fillers),
              "clip_lufs_min": min(clips, default=None), "clip_lufs_max": max(clips, default=None),
              "filler_lufs": fillers, "entries": rows}
    print(json.dumps(result, indent=1))
    print(f"\n| figure | measured | goal |\n| --- | --- | --- |\n"
          f"| integrated, {args.seconds:g} s | {whole.integrated:.1f} LUFS | {target - 1:g} .. {target + 1:g} |\n"
          f"| true peak | {whole.true_peak:.1f} dBTP | <= -1.0 |\n"
          f"| clips ({len(clips)}) | {min(clips, default=float('nan')):.1f} .. {max(clips, default=float('nan')):.1f} LUFS"
          f" | {target - 3:g} .. {target + 3:g} |\n"
          f"| filler card ({len(fillers)}) | {', '.join(f'{f:.1f}' for f in fillers)} LUFS"
          f" | {target - 1.5:g} .. {target + 1.5:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

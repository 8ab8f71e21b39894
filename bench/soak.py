"""Soak (issue #5): playout for a long stretch with theme changes and killed outputs.

Runs `webtv run` (HLS + one RTMP output to a local nginx-rtmp) for --minutes. Every
--theme-every seconds the theme changes through POST /api/theme; every --kill-every seconds
one output's ffmpeg is killed -9 (RTMP and HLS in turn). A reader stays connected to the
RTMP stream the whole time, reconnecting when its session ends. Each minute it samples the
daemon's RSS, open fds and child processes.

Reports: the samples and their trend (least-squares slope per hour over the second half, after
warm-up), RTMP sessions seen by the reader against the RTMP kills, the longest wait for a
video packet inside a session and across a reconnect, HLS media-sequence continuity, and the
restarts per output against the kills.

Run: .venv/bin/python -m bench.soak [--minutes 30]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import tempfile
import threading
import time
from pathlib import Path

from tests.daemon import Daemon
from tests.readers import RtmpReader
from tests.rtmp_server import RtmpServer
from webtv.process import child_pids

TOKEN = "soak-token"
THEMES = ["glass whales over a desert", "a night market on the moon", "paper boats in a storm drain",
          "clockwork foxes in autumn", "a library under the sea", "neon koi in the rain"]


def proc_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_mb": round(rss_kb / 1024, 1), "fds": fds, "children": len(child_pids(pid))}


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else sum((t - mx) * (v - my) for t, v in points) / var * 3600


class Watcher(threading.Thread):
    """Keeps an RTMP reader connected; records each session's packets' arrival times."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.sessions: list[list[float]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            reader = RtmpReader(self.url, seconds=None, rw_timeout_us=5_000_000).start()
            arrivals: list[float] = []
            self.sessions.append(arrivals)
            while reader.proc.poll() is None and self.running:
                arrivals[:] = [p.arrived for p in reader.video()]
                time.sleep(0.5)
            reader.stop()
            arrivals[:] = [p.arrived for p in reader.video()]
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--theme-every", type=float, default=180)
    parser.add_argument("--kill-every", type=float, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webtv-soak-") as tmp:
        root = Path(tmp)
        with RtmpServer(root / "nginx") as rtmp:
            url = f"{rtmp.url}/soak"
            daemon = Daemon(root / "channel", rtmp_urls=[url], env={"SOAK_TOKEN": TOKEN},
                            http={"token_env": "SOAK_TOKEN"}, library={"max_clips": 200})
            daemon.start()
            daemon.wait_for(lambda s: len(s["outputs"]) == 2 and all(o["state"] == "running" for o in s["outputs"]),
                            timeout=60)
            watcher = Watcher(url)
            watcher.start()
            started = time.monotonic()
            next_theme, next_kill, next_sample = args.theme_every, args.kill_every, 0.0
            samples, kills, hls_sequences, themes = [], {"rtmp": 0, "hls": 0}, [], 0
            try:
                while (elapsed := time.monotonic() - started) < args.minutes * 60:
                    if elapsed >= next_sample:
                        samples.append({"minute": round(elapsed / 60, 1), **proc_sample(daemon.proc.pid)})
                        next_sample += 60
                    if elapsed >= next_theme:
                        theme = THEMES[themes % len(THEMES)]
                        code, _ = daemon.request("POST", "/api/theme", {"theme": theme}, token=TOKEN)
                        assert code == 200, code
                        themes += 1
                        next_theme += args.theme_every
                    if elapsed >= next_kill:
                        kind = "rtmp" if sum(kills.values()) % 2 == 0 else "hls"
                        os.kill(daemon.output(kind)["pid"], signal.SIGKILL)
                        kills[kind] += 1
                        next_kill += args.kill_every
                    try:
                        text = (daemon.folder / "hls" / "index.m3u8").read_text()
                        hls_sequences.append(int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1)))
                    except (OSError, AttributeError):
                        pass  # not written yet at the very start
                    time.sleep(1.0)
                status = daemon.status()
            finally:
                watcher.running = False
                watcher.join(timeout=10)
                daemon.stop()
    half = [s for s in samples if s["minute"] >= args.minutes / 2]
    sessions = [s for s in watcher.sessions if s]
    inside = max((b - a for s in sessions for a, b in zip(s, s[1:])), default=0.0)
    across = max((later[0] - earlier[-1] for earlier, later in zip(sessions, sessions[1:])), default=0.0)
    restarts = {o["kind"]: o["restarts"] for o in status["outputs"]}
    print(json.dumps({
        "minutes": args.minutes,
        "theme_changes": themes,
        "kills": kills,
        "restarts": restarts,
        "unexpected_restarts": {k: restarts.get(k, 0) - kills[k] for k in kills},
        "rtmp_sessions_seen": len(sessions),
        "longest_video_wait_in_session_s": round(inside, 2),
        "longest_video_wait_across_reconnect_s": round(across, 2),
        "hls_sequence_never_went_back": all(b >= a for a, b in zip(hls_sequences, hls_sequences[1:])),
        "hls_segments_made": hls_sequences[-1] - hls_sequences[0],
        "trend_per_hour_second_half": {k: round(slope_per_hour([(s["minute"] * 60, s[k]) for s in half]), 2)
                                       for k in ("rss_mb", "fds", "children")},
        "library": status["library"],
        "samples": samples,
    }, indent=2))


if __name__ == "__main__":
    main()

"""Several channels in one `webtv run --config DIR`, read from outside (issue #15's must-shows).

Two channel files name the same tiny Zeroscope folder: the daemon loads it once and both
channels air its clips, each its own theme, to its own RTMP URL on a real nginx-rtmp. While both
streams are read for a minute, the operator edits one file's theme (only that channel changes),
breaks the other file (it airs on, with ``config_error``), adds a third file (it airs) and
removes it (its ffmpegs are gone), and kill -9s the first channel's RTMP output. The second
channel's reader keeps one session throughout, its largest gap between video timestamps within
one frame + 20 ms; the first's is as good until its output is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.daemon import REPO, processes_mentioning, write_config
from tests.rtmp_server import free_port
from tests.readers import RtmpReader
from tests.tiny_zeroscope import tiny_text_to_video

pytestmark = pytest.mark.e2e

FPS = 24
READ_S = 60.0
HOUSE = {"width": 160, "height": 96, "fps": FPS, "video_kbps": 200, "audio_kbps": 64, "x264_preset": "ultrafast"}


def channel_file(folder: Path, name: str, stream: str, theme: str, video: dict) -> Path:
    return write_config(folder, None, [stream], f"{name}.toml", channel={"name": name, "theme": theme}, house=HOUSE,
                        video=video, interpolation={"backend": "none"}, quality={"checks": False},
                        producer={"ahead": 2}, programme={"block_seconds": 4.0, "filler_seconds": 1.0},
                        output={"hls": False})


class Folder:
    """`webtv run --config DIR` and its HTTP API."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        (folder / "daemon.toml").write_text(f'[http]\nhost = "127.0.0.1"\nport = {self.port}\n')
        self.log = folder.parent / f"{folder.name}.log"

    def start(self) -> "Folder":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "webtv", "run", "--config", str(self.folder)],
                                         cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=os.environ)
        return self

    def get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def status(self, name: str) -> dict | None:
        return self.get(f"/c/{name}/api/status")

    def wait(self, what, timeout: float, message: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"daemon exited with {self.proc.returncode}: {self.tail()}"
            value = what()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {message}: {self.get('/api/channels')}\n{self.tail()}")

    def on_air(self, name: str, timeout: float) -> dict:
        return self.wait(lambda: (s := self.status(name)) and (s["now_playing"] or {}).get("clip_id") is not None
                         and s, timeout, f"a fresh clip of channel {name} on air")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def largest_gap(video) -> float:
    return max(b.dts - a.dts for a, b in zip(video, video[1:]))


def test_two_channels_share_one_model_air_at_once_and_stay_apart_through_edits_files_and_a_killed_output(
        tmp_path, rtmp_server):
    model = tiny_text_to_video(tmp_path / "zeroscope_v2_576w")
    video = {"backend": "zeroscope", "model": str(model), "clip_seconds": 1.0, "width": 32, "height": 24,
             "frames": 4, "steps": 2}
    folder = tmp_path / "channels"
    folder.mkdir()
    a_file = channel_file(folder, "a", f"{rtmp_server}/a", "owls at night", video)
    b_file = channel_file(folder, "b", f"{rtmp_server}/b", "cities by day", video)
    daemon = Folder(folder).start()
    readers: list[RtmpReader] = []
    try:
        for name in ("a", "b"):  # each airs a Zeroscope clip of its own theme
            playing = daemon.on_air(name, timeout=120)["now_playing"]
            assert playing["theme"] == {"a": "owls at night", "b": "cities by day"}[name], playing
        listing = daemon.get("/api/channels")
        assert [c["channel"] for c in listing["channels"]] == ["a", "b"]
        assert [c["url"] for c in listing["channels"]] == ["/c/a/", "/c/b/"]
        shared = [{**s, "channels": sorted(s["channels"])} for s in listing["stages"] if s["stage"] == "video"]
        assert shared == [{"stage": "video", "backend": "zeroscope", "what": f"zeroscope ({model})",
                           "channels": ["a", "b"]}], listing["stages"]
        loads = [line for line in daemon.tail(10**7).splitlines() if "loading video model" in line]
        assert len(loads) == 1, loads  # one instance, two channels
        for name in ("a", "b"):  # the journal says whose clip it made
            assert f"channel={name} clip made" in daemon.tail(10**7)

        readers = [RtmpReader(f"{rtmp_server}/{name}", seconds=None, rw_timeout_us=10_000_000).start()
                   for name in ("a", "b")]
        began = time.monotonic()
        daemon.wait(lambda: all(r.video() for r in readers), 15, "both readers receiving video")

        # an edit of a's theme changes only a
        a_file.write_text(a_file.read_text().replace("owls at night", "foxes in the snow"))
        daemon.wait(lambda: daemon.status("a")["theme"] == "foxes in the snow", 10, "a's new theme")
        assert daemon.status("b")["theme"] == "cities by day"
        daemon.wait(lambda: (daemon.status("a")["now_playing"] or {}).get("theme") == "foxes in the snow", 30,
                    "a's new theme on air")

        # a broken b airs on, with config_error; a is untouched
        b_file.write_text(b_file.read_text() + "\n[programme\n")
        b = daemon.wait(lambda: (s := daemon.status("b")) and s["config_error"] and s, 10, "b's config_error")
        assert "b.toml" in b["config_error"] and b["theme"] == "cities by day"
        assert daemon.status("a")["config_error"] is None

        # a third file added live airs; removed, it stops with no ffmpeg left
        c_file = channel_file(folder, "c", f"{rtmp_server}/c", "harbours in fog", {"clip_seconds": 1.0})
        c = daemon.wait(lambda: (s := daemon.status("c")) and s["playout"]["last_byte_age_s"] is not None and s, 30,
                        "channel c on air")
        assert c["theme"] == "harbours in fog"
        assert [x["channel"] for x in daemon.get("/api/channels")["channels"]] == ["a", "b", "c"]
        c_file.unlink()
        daemon.wait(lambda: [x["channel"] for x in daemon.get("/api/channels")["channels"]] == ["a", "b"], 15,
                    "channel c gone from /api/channels")
        daemon.wait(lambda: not processes_mentioning(f"{rtmp_server}/c") and not processes_mentioning(str(folder / "c")),
                    10, "c's processes gone")
        assert daemon.get("/c/c/api/status") is None  # 404

        # kill -9 of a's RTMP output, late in the read: b's reader must not notice
        daemon.wait(lambda: time.monotonic() - began >= READ_S - 15, READ_S, "the read going on")
        rtmp_a = next(o for o in daemon.status("a")["outputs"] if o["kind"] == "rtmp")
        killed_at = time.monotonic()
        os.kill(rtmp_a["pid"], signal.SIGKILL)
        daemon.wait(lambda: next(o for o in daemon.status("a")["outputs"] if o["kind"] == "rtmp")["restarts"] >= 1,
                    15, "a's RTMP output restarted")
        daemon.wait(lambda: time.monotonic() - began >= READ_S, READ_S, "a minute of reading")
        statuses = {name: daemon.status(name) for name in ("a", "b")}
    finally:
        for reader in readers:
            reader.stop()
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.tail()
    a_reader, b_reader = readers
    b_video = b_reader.video()
    assert b_reader.ended is None or b_reader.ended >= began + READ_S, "b's reader session ended"
    assert b_video[-1].dts - b_video[0].dts >= READ_S - 2, "b's stream did not last the read"
    assert largest_gap(b_video) <= 1 / FPS + 0.020, f"b: largest video gap {largest_gap(b_video) * 1000:.0f} ms"
    assert all(b.dts > a.dts for a, b in zip(b_video, b_video[1:])), "b's video timestamps went backwards"
    a_video = [p for p in a_reader.video() if p.arrived < killed_at]
    assert a_video[-1].dts - a_video[0].dts >= READ_S - 20, "a's stream did not last until its output was killed"
    assert largest_gap(a_video) <= 1 / FPS + 0.020, f"a: largest video gap {largest_gap(a_video) * 1000:.0f} ms"
    assert next(o for o in statuses["b"]["outputs"] if o["kind"] == "rtmp")["restarts"] == 0
    for name in ("a", "b"):
        assert statuses[name]["producer"]["clips_failed"] == 0, statuses[name]["producer"]
    assert not processes_mentioning(str(folder))

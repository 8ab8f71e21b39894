"""Disk full, on a small tmpfs holding the README's layout (channel.toml, library, playlists and
hls in one folder): production pauses with a ``disk_full`` state after retention was asked for
room, HLS segments that fail to write make ``/healthz`` say why, the RTMP stream goes on, and
production resumes by itself when space returns; no temp file is left and no clip is lost.

One daemon, one episode (``episode``): the disk is kept full for a while by a process that takes
every byte freed (as a runaway log would), then the space is given back. The tests read what
the episode saw."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.clips import add_to_library
from tests.daemon import Daemon
from tests.readers import RtmpReader
from webtv.library import Library

pytestmark = pytest.mark.e2e

FPS = 24
FULL_S = 8.0  # how long the disk is kept full
OLD = 4  # aired clips of an old theme: retention may delete them
SHOTS = 3  # clips a sequence: the producer renders them one after another, then rests


def mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` on ``folder``; why not, or None."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"cannot run mount: {exc}"
    return None if done.returncode == 0 else f"mount -t tmpfs not permitted here: {done.stderr.strip()}"


class DiskHog(threading.Thread):
    """Keeps the filesystem of ``path`` full: takes every byte freed, twice a second."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.stopped = threading.Event()
        self.first_full = threading.Event()

    def run(self) -> None:
        chunk = b"\0" * 65536
        with open(self.path, "ab", buffering=0) as f:
            while not self.stopped.is_set():
                try:
                    while True:
                        f.write(chunk)
                except OSError:
                    for size in (4096, 512):  # the last pages too
                        try:
                            while True:
                                f.write(chunk[:size])
                        except OSError:
                            pass
                self.first_full.set()
                self.stopped.wait(0.5)

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
        self.path.unlink(missing_ok=True)


def disk_full(status: dict) -> bool:
    """What the status says: production paused for a full disk."""
    return (status.get("disk") or {}).get("full") is True and status["producer"].get("paused") == "disk_full"


def healthz(daemon: Daemon) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(daemon.url + "/healthz", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(daemon: Daemon, name: str) -> float | None:
    with urllib.request.urlopen(daemon.url + "/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


@dataclass
class Episode:
    daemon: Daemon
    seeded: list[tuple[int, str]]  # (id, file) of the old clips
    before: dict
    during: list[dict] = field(default_factory=list)  # status polls while full
    healthz_full: list[tuple[int, str]] = field(default_factory=list)
    disk_full_metric: float | None = None
    resumed_after_s: float | None = None  # disk_full cleared
    made_after_s: float | None = None  # the next clip made
    after: dict | None = None
    healthz_after: tuple[int, str] | None = None
    video: list = field(default_factory=list)  # RtmpReader packets while full
    video_before: list = field(default_factory=list)  # the 3 s before, for comparison
    leftovers: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    aired_during: set[int] = field(default_factory=set)  # clip ids on air while full


@pytest.fixture(scope="module")
def episode(tmp_path_factory, rtmp_server, clip_file):
    root = tmp_path_factory.mktemp("disk-full")
    mnt = root / "mnt"
    why = mount_tmpfs(mnt, "32m")
    if why:
        pytest.skip(why)
    try:
        yield run_episode(mnt, root, rtmp_server, clip_file)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def run_episode(mnt: Path, root: Path, rtmp_server: str, clip_file: Path) -> Episode:
    folder = mnt / "channel"
    library = Library(folder / "library")
    seeded = []
    for i in range(OLD):
        clip = add_to_library(library, clip_file, f"old clip {i}", "an old theme")
        library.mark_aired([clip.id], 100.0 + i)
        seeded.append((clip.id, f"{clip.id:08d}.mp4"))
    library.close()
    url = f"{rtmp_server}/diskfull"
    daemon = Daemon(folder, rtmp_urls=[url], director={"shots_per_sequence": SHOTS}, programme={"block_seconds": 4.0})
    daemon.log_path = root / "daemon.log"  # the log is not on the full disk
    hog = DiskHog(mnt / "ballast")
    # nginx-rtmp holds a player until the publisher comes: the reader waits while the daemon starts
    reader = RtmpReader(url, seconds=None, line_buffered=True).start()
    started = time.monotonic()
    daemon.start()
    try:
        before = daemon.wait_for(
            lambda s: s["producer"]["clips_made"] >= 2 and s["playout"]["blocks_aired"] >= 2
            and all(o["state"] == "running" for o in s["outputs"]), timeout=60, message="on air, producing")
        ep = Episode(daemon, seeded, before)
        # The disk fills while no clip renders (a second sequence made): the next block or
        # sequence that needs room finds it full and asks retention first.
        daemon.wait_for(lambda s: s["producer"]["clips_made"] >= 2 * SHOTS and not s["producer"]["rendering"],
                        timeout=30, message="a second sequence made")
        first_video = reader.first_video_after(started, 20)
        assert first_video is not None, "nothing on the RTMP stream"
        # 3 s of stream before, past the reader's probing (whose packets come in one burst)
        time.sleep(max(0.0, first_video + 2.0 + 3.0 - time.monotonic()))
        full_at = time.monotonic()
        settled_at = full_at - 3.0
        hog.start()
        assert hog.first_full.wait(10), "the disk never filled"
        while time.monotonic() - full_at < FULL_S:
            status = daemon.status()
            if status is not None:
                ep.during.append(status)
                if status["now_playing"] and status["now_playing"]["clip_id"] is not None:
                    ep.aired_during.add(status["now_playing"]["clip_id"])
            ep.healthz_full.append(healthz(daemon))
            if ep.disk_full_metric is None or ep.disk_full_metric == 0:
                ep.disk_full_metric = metric(daemon, "webtv_disk_full")
            time.sleep(0.25)
        full_video_until = time.monotonic()
        made = daemon.status()["producer"]["clips_made"]
        hog.stop()
        freed_at, freed_wall = time.monotonic(), time.time()
        deadline = freed_at + 25
        while time.monotonic() < deadline and ep.made_after_s is None:
            status = daemon.status()
            if status is not None:
                if ep.resumed_after_s is None and not disk_full(status):
                    ep.resumed_after_s = time.monotonic() - freed_at
                if status["producer"]["clips_made"] > made:
                    ep.made_after_s = time.monotonic() - freed_at
            time.sleep(0.1)
        ep.after = daemon.wait_for(lambda s: s["playout"]["blocks_aired"] > ep.during[-1]["playout"]["blocks_aired"]
                                   and s["playout"]["healthy"], timeout=20, message="a block aired, healthy again")
        ep.healthz_after = healthz(daemon)
        ep.video = [p for p in reader.video() if full_at <= p.arrived <= full_video_until]
        ep.video_before = [p for p in reader.video() if settled_at <= p.arrived < full_at]
    finally:
        hog.stop()
        reader.stop()
        daemon.stop()
    lib = folder / "library"
    # A render in flight at the stop is cleaned at the next start (reconcile); what the full disk
    # left would be older than the moment space returned.
    ep.leftovers = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp") or (
        p.parent.name == "incoming" and p.stat().st_mtime < freed_wall))
    with sqlite3.connect(lib / "index.sqlite") as db:
        ep.rows = db.execute("SELECT id, file, times_aired FROM clips ORDER BY id").fetchall()
    ep.files = {p.name for p in (lib / "clips").iterdir()}
    return ep


def test_production_pauses_with_a_disk_full_state(episode):
    paused = [s for s in episode.during if s["producer"].get("paused") == "disk_full"]
    assert paused, f"never paused: {[s['producer'] for s in episode.during[-2:]]}"
    assert disk_full(paused[-1])
    assert episode.disk_full_metric == 1.0
    failed = episode.during[-1]["producer"]["clips_failed"] - episode.before["producer"]["clips_failed"]
    assert failed <= 3, f"{failed} renders failed in {FULL_S:.0f} s of full disk: the producer kept trying"


def test_retention_is_asked_for_room_first(episode):
    deleted = [s["library"]["deleted"] for s in episode.during]
    assert deleted[-1] >= 1, "retention was not asked for room"
    assert episode.before["library"]["deleted"] == 0, "no quota is set: every deletion was to make room"


def test_hls_segments_not_written_make_healthz_say_why(episode):
    failing = [text for code, text in episode.healthz_full if code == 503]
    assert failing, f"/healthz said {set(episode.healthz_full)} while HLS could not write"
    assert "hls" in failing[-1] and "segment" in failing[-1], failing[-1]
    hls = [next(o for o in s["outputs"] if o["kind"] == "hls") for s in episode.during]
    assert any(o.get("problem") for o in hls)


def test_rtmp_stream_goes_on_while_the_disk_is_full(episode):
    video = episode.video
    assert len(video) > FULL_S * FPS * 0.8, f"{len(video)} video packets in {FULL_S:.0f} s"
    gaps = [b.dts - a.dts for a, b in zip(video, video[1:])]
    waits = [b.arrived - a.arrived for a, b in zip(video, video[1:])]
    before = [b.arrived - a.arrived for a, b in zip(episode.video_before, episode.video_before[1:])]
    print(f"\nwhile full: largest gap between video timestamps {max(gaps) * 1000:.1f} ms, largest wait between"
          f" arrivals {max(waits) * 1000:.0f} ms (in the 3 s before: {max(before, default=0) * 1000:.0f} ms)")
    assert max(gaps) <= 1 / FPS + 0.020, f"largest gap between video timestamps {max(gaps) * 1000:.0f} ms"
    span, wall = video[-1].dts - video[0].dts, video[-1].arrived - video[0].arrived
    assert abs(wall - span) < 1.0, f"{span:.1f} s of stream arrived over {wall:.1f} s"


def test_production_resumes_within_10s_of_space_returning(episode):
    print(f"\nspace returned: production resumed after {episode.resumed_after_s} s, the next clip made after"
          f" {episode.made_after_s} s")
    assert any(disk_full(s) for s in episode.during), "production never paused"
    assert episode.resumed_after_s is not None and episode.resumed_after_s <= 10.0
    # the next clip comes when one is wanted (fewer than `ahead` fresh): at most a block or two later
    assert episode.made_after_s is not None and episode.made_after_s <= 20.0
    assert not disk_full(episode.after)
    assert episode.healthz_after[0] == 200, episode.healthz_after


def test_no_temp_files_and_the_library_is_consistent(episode):
    assert episode.leftovers == []
    names = {row[1] for row in episode.rows}
    assert names == episode.files, f"rows without files {names - episode.files}, files without rows {episode.files - names}"


def test_aired_counts_recover(episode):
    aired = {row[0]: row[2] for row in episode.rows}
    fresh_aired = [cid for cid in episode.aired_during if cid in aired and cid not in dict(episode.seeded)]
    assert fresh_aired, "no clip of the library aired while the disk was full"
    assert all(aired[cid] >= 1 for cid in fresh_aired), {cid: aired[cid] for cid in fresh_aired}

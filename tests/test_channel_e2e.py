"""The whole channel, as a user runs it: `webtv run` streaming to a real nginx-rtmp and to HLS,
read back with ffprobe and watched in headless chromium. The channel lives under a folder
whose name has a space and a single quote."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.browser import launch_chromium
from tests.clips import make_house_clip
from tests.daemon import Daemon, processes_mentioning
from tests.readers import RtmpReader
from webtv.config import HouseSection
from webtv.media import ffprobe_exe

pytestmark = pytest.mark.e2e

FPS = 24


@pytest.fixture(scope="module")
def channel(tmp_path_factory, rtmp_server):
    folder = tmp_path_factory.mktemp("e2e") / "it's a channel"
    # 6 s blocks (three 2 s clips): a clip chosen again, or a block chosen next, comes sooner
    daemon = Daemon(folder, rtmp_urls=[f"{rtmp_server}/webtv"], programme={"block_seconds": 6.0}).start()
    try:
        daemon.wait_for(
            lambda s: {o["kind"]: o["state"] for o in s["outputs"]} == {"rtmp": "running", "hls": "running"},
            timeout=30, message="outputs running",
        )
        yield daemon
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def stream_url(rtmp_server):
    return f"{rtmp_server}/webtv"


def hls_sequence(folder: Path) -> int | None:
    try:
        text = (folder / "hls" / "index.m3u8").read_text()
    except OSError:
        return None
    found = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    return int(found.group(1)) if found else None


def test_web_page_plays_in_chromium(channel):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(channel.url + "/")
            page.wait_for_function("document.querySelector('video').currentTime > 0.5", timeout=30000)
            start = page.evaluate("document.querySelector('video').currentTime")
            page.wait_for_timeout(4000)
            later = page.evaluate("document.querySelector('video').currentTime")
            assert later - start > 2.0, f"currentTime went from {start} to {later}"
            assert page.evaluate("typeof Hls !== 'undefined' && Hls.isSupported()"), "hls.js not in use"
            assert page.locator("#channel").inner_text() == "test channel"
        finally:
            browser.close()


def test_kill_rtmp_output_recovers_within_3s_and_hls_is_unaffected(channel, stream_url):
    rtmp, hls = channel.output("rtmp"), channel.output("hls")
    sequence_before = hls_sequence(channel.folder)
    killed_at = time.monotonic()
    os.kill(rtmp["pid"], signal.SIGKILL)
    recovered = None
    while time.monotonic() - killed_at < 10 and recovered is None:
        reader = RtmpReader(stream_url, seconds=1).start()
        recovered = reader.first_video_after(killed_at, timeout=2.0)
        reader.stop()
    assert recovered is not None, "no frames from the RTMP server after the kill"
    assert recovered - killed_at <= 3.0, f"frames readable again after {recovered - killed_at:.2f} s"
    after = channel.wait_for(lambda s: next(o for o in s["outputs"] if o["kind"] == "rtmp")["restarts"] >= 1,
                             timeout=5, message="restart counted")
    hls_after = next(o for o in after["outputs"] if o["kind"] == "hls")
    assert hls_after["pid"] == hls["pid"] and hls_after["restarts"] == hls["restarts"]
    until = time.monotonic() + 2 * 2.0 + 1  # two 2 s segments and a second
    while not (hls_sequence(channel.folder) or -1) > sequence_before and time.monotonic() < until:
        time.sleep(0.2)
    assert hls_sequence(channel.folder) > sequence_before, "HLS stopped advancing"


def test_corrupted_library_clip_is_skipped_on_air(channel):
    index = channel.folder / "library" / "index.sqlite"
    channel.wait_for(lambda s: s["library"]["clips"] >= 4, timeout=60, message="library of 4 clips")
    # The next block is chosen (and its clips checked) a little before it airs: take the clip
    # that is next in line and in none of the blocks written so far, so it airs soon after: the
    # oldest fresh one (blocks of three 2 s clips are often all fresh), else the one least
    # recently aired (early in a run every aired clip may still be in a written block: wait).
    deadline = time.monotonic() + 60
    while True:
        on_air = channel.status()["now_playing"]["block"]
        pending = "".join(p.read_text() for p in (channel.folder / "playlists").glob("block-*.ffconcat")
                          if int(p.stem.split("-")[1]) >= on_air)
        with sqlite3.connect(index) as db:
            rows = db.execute(
                "SELECT id, file FROM clips WHERE state = 'ok'"
                " ORDER BY times_aired > 0, CASE WHEN times_aired = 0 THEN created ELSE last_aired END"
            ).fetchall()
        candidates = [(i, f) for i, f in rows if f not in pending]
        if candidates:
            break
        assert time.monotonic() < deadline, "no aired clip outside the blocks written so far"
        time.sleep(0.5)
    clip_id, name = candidates[0]
    victim = channel.folder / "library" / "clips" / name

    def block_numbers() -> dict[int, Path]:
        return {int(p.stem.split("-")[1]): p for p in (channel.folder / "playlists").glob("block-*.ffconcat")}

    # blocks are numbered in the order they are written (file times are too coarse to tell a
    # block written just before the corruption from one written just after)
    written_before = max(block_numbers(), default=-1)
    with open(victim, "r+b") as f:
        f.seek(victim.stat().st_size // 2)
        f.write(os.urandom(4096))

    def state() -> str:
        with sqlite3.connect(index) as db:
            return db.execute("SELECT state FROM clips WHERE id = ?", (clip_id,)).fetchone()[0]

    deadline = time.monotonic() + 40
    while state() != "broken" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state() == "broken", "corrupted clip was not caught"
    # the clip is checked (and marked broken) while its block is chosen, before the block is written
    deadline = time.monotonic() + 15
    while not (later_blocks := [p for n, p in block_numbers().items() if n > written_before]):
        assert time.monotonic() < deadline, "no block written after the corruption"
        time.sleep(0.2)
    for block in later_blocks:
        assert name not in block.read_text(), f"{block.name} airs the corrupted clip"
    assert channel.status()["outputs"][0]["state"] == "running"


def segment_frame_sizes(segments: list[Path]) -> set[tuple[int, int]]:
    """Every decoded video frame's size in these HLS segments."""
    sizes = set()
    for segment in segments:
        out = subprocess.run([ffprobe_exe(), "-v", "error", "-select_streams", "v", "-show_entries",
                              "frame=width,height", "-of", "csv=p=0", str(segment)],
                             capture_output=True, text=True, timeout=30).stdout
        sizes |= {tuple(map(int, line.split(","))) for line in out.split() if line.count(",") == 1}
    return sizes


def test_clip_replaced_after_its_block_was_chosen_is_skipped(channel, tmp_path):
    """A clip file replaced by a valid mp4 of another size after the programmer chose (and
    checked) it for the next block: it never airs (every frame HLS writes keeps the house
    size), it is marked broken with a log line, and the outputs keep running."""
    index = channel.folder / "library" / "index.sqlite"
    playlists, hls = channel.folder / "playlists", channel.folder / "hls"
    channel.wait_for(lambda s: s["library"]["clips"] >= 4, timeout=60, message="library of 4 clips")
    other = make_house_clip(tmp_path / "other.mp4", 2.0, HouseSection(width=160, height=90, fps=FPS, video_kbps=200,
                                                                      audio_kbps=64), pattern="smptebars")

    def blocks() -> dict[int, Path]:
        return {int(p.stem.split("-")[1]): p for p in playlists.glob("block-*.ffconcat")}

    def names(playlist: Path) -> list[str]:
        return re.findall(r"(\d{8}\.mp4)'", playlist.read_text())

    on_air = max(blocks())
    deadline = time.monotonic() + 20
    while max(blocks()) == on_air and time.monotonic() < deadline:
        time.sleep(0.02)
    chosen = max(blocks())
    assert chosen > on_air, "no new block chosen"
    listed = names(blocks()[chosen])
    position, name = next((i, n) for i, n in enumerate(listed) if n not in names(blocks()[on_air]))
    victim = channel.folder / "library" / "clips" / name
    tmp = victim.with_name("replacement.tmp")
    shutil.copyfile(other, tmp)
    os.replace(tmp, victim)  # a new file of another size where the clip was
    replaced_at = time.time()

    # Watch what HLS writes until well past the clip's slot in the block (2 s clips).
    segments, seen = [], set()
    until = time.monotonic() + 2.0 * (position + 1) + 5
    while time.monotonic() < until:
        for segment in hls.glob("seg_*.ts"):
            if segment.name not in seen and segment.stat().st_mtime >= replaced_at:
                seen.add(segment.name)
                copy = tmp_path / segment.name
                try:
                    shutil.copyfile(segment, copy)
                except FileNotFoundError:
                    continue
                segments.append(copy)
        time.sleep(0.3)
    assert len(segments) >= 3
    sizes = segment_frame_sizes(segments)
    assert sizes == {(320, 180)}, f"frames of {sizes} aired after {name} was replaced"
    with sqlite3.connect(index) as db:
        state, reason = db.execute("SELECT state, reason FROM clips WHERE file = ?", (name,)).fetchone()
    assert state == "broken", f"{name} is {state}"
    assert f"file={name}" in channel.log_tail(10**6)
    assert all(o["state"] == "running" for o in channel.status()["outputs"])


def test_sigterm_stops_within_5s_leaving_no_ffmpeg(channel):
    assert processes_mentioning(str(channel.folder)), "expected ffmpeg children while on air"
    took = channel.stop()
    assert channel.proc.returncode == 0, channel.log_tail()
    assert took <= 5.0, f"took {took:.1f} s to stop"
    time.sleep(0.3)
    assert processes_mentioning(str(channel.folder)) == []


def test_restart_airs_from_the_library_at_once(channel, stream_url):
    with sqlite3.connect(channel.folder / "library" / "index.sqlite") as db:
        rows_before = db.execute("SELECT id, file, digest FROM clips ORDER BY id").fetchall()
    took = channel.start_on_air(stream_url, timeout=15)
    assert took is not None and took <= 8.0, f"on air after {took} s"
    status = channel.wait_for(lambda s: s["now_playing"] is not None, timeout=5)
    assert status["now_playing"]["clip_id"] is not None, "aired the filler with a library full of clips"
    with sqlite3.connect(channel.folder / "library" / "index.sqlite") as db:
        rows_after = db.execute("SELECT id, file, digest FROM clips ORDER BY id").fetchall()
    assert rows_after[: len(rows_before)] == rows_before
    channel.stop()

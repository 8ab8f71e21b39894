"""Retention: the library kept under its quotas, protected clips never deleted, crash repair."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time

import pytest

from tests.clips import add_to_library, make_house_clip
from tests.daemon import Daemon
from webtv.config import LibrarySection, ProgrammeSection
from webtv.director import Shot
from webtv.library import Library, LibraryLocked
from webtv.library.retention import Retention
from webtv.programmer import Programmer


def programme(block_seconds: float) -> ProgrammeSection:
    """A programme of short blocks (shorter than the config allows: one test clip each)."""
    return ProgrammeSection.model_construct(block_seconds=block_seconds, filler_seconds=1.0)


def add(library, clip_file, prompt, theme="forest", aired=0, when=1.0):
    clip = add_to_library(library, clip_file, prompt, theme)
    for _ in range(aired):
        library.mark_aired([clip.id], when)
    return clip


def files(library) -> set[str]:
    return {p.name for p in library.clips_dir.iterdir()}


def rows(library) -> set[str]:
    return {r[0] for r in library.db.execute("SELECT file FROM clips")}


def consistent(library) -> bool:
    return files(library) == rows(library)


async def test_quota_by_count_deletes_in_order_and_never_the_protected(library, clip_file, tmp_path):
    theme = ["sea"]
    a = add(library, clip_file, "a", aired=5, when=10.0)
    b = add(library, clip_file, "b", aired=5, when=20.0)
    prog = Programmer(library, tmp_path / "playlists", programme(1.0), tmp_path / "filler.mp4", lambda: theme[0])
    first = await prog.next_block()  # the least recently aired: a
    prog.on_air(first, time.time())
    second = await prog.next_block()  # then b: a on air, b next
    assert [e.clip_id for e in first.entries] == [a.id] and [e.clip_id for e in second.entries] == [b.id]
    assert prog.protected_clip_ids() == {a.id, b.id}

    broken = add(library, clip_file, "broken", aired=0)
    library.mark_broken(broken.id, "test")
    h = add(library, clip_file, "h", aired=5)  # as aired as b, newer: after it
    c = add(library, clip_file, "c", aired=2)
    d = add(library, clip_file, "d", aired=1)
    e = add(library, clip_file, "e never aired, other theme")
    f = add(library, clip_file, "f fresh", theme="sea")
    g = add(library, clip_file, "g fresh", theme="sea")
    k = add(library, clip_file, "k kept", aired=9)
    assert library.set_keep(k.id, True) and library.get(k.id).keep
    assert not library.set_keep(99999, True)

    deleted_events = []
    retention = Retention(library, LibrarySection(max_clips=7), prog.protected_clip_ids, lambda: theme[0],
                          on_deleted=deleted_events.append)
    assert library.usage()[0] == 10
    # broken first, then most aired (a, b protected, k kept), then oldest
    assert await retention.enforce() == [broken.id, h.id, c.id]
    assert library.usage()[0] == 7 and not retention.state.over_quota
    assert deleted_events == [[broken.id, h.id, c.id]]
    assert consistent(library)
    assert await retention.enforce() == []

    retention.reconfigure(LibrarySection(max_clips=4))
    assert await retention.enforce() == [d.id, e.id]
    # left: a (on air), b (next), f and g (fresh of the theme), k (kept): over quota, reported
    assert {c.id for c in library.all_clips()} == {a.id, b.id, f.id, g.id, k.id}
    assert retention.state.over_quota and retention.status().over_quota
    assert retention.status().clips_total == 5 and retention.status().kept == 1
    assert consistent(library)

    prog.on_air(second, time.time())  # a is no longer on air: it goes
    assert prog.protected_clip_ids() == {b.id}
    assert await retention.enforce() == [a.id]
    assert not retention.state.over_quota and library.usage()[0] == 4
    assert retention.status().deleted == 6
    assert consistent(library) and not (library.clips_dir / f"{a.id:08d}.mp4").exists()
    assert "a" not in [c.prompt for c in library.all_clips()]
    all_playlist = (tmp_path / "playlists" / "all.ffconcat").read_text()
    assert f"{b.id:08d}.mp4" in all_playlist


async def test_clips_of_a_block_being_chosen_are_not_deleted(library, clip_file, tmp_path, monkeypatch):
    import asyncio
    import threading

    clips = [add(library, clip_file, f"c{i}", aired=1, when=float(i)) for i in range(4)]
    prog = Programmer(library, tmp_path / "playlists", programme(2.0), tmp_path / "filler.mp4", lambda: "sea")
    gate, checking = threading.Event(), threading.Event()
    real_check = library.check_intact

    def slow_check(clip):
        checking.set()
        gate.wait(10)
        return real_check(clip)

    monkeypatch.setattr(library, "check_intact", slow_check)
    choosing = asyncio.create_task(prog.next_block())
    await asyncio.to_thread(checking.wait, 10)  # next_block is half-way, its candidates in hand
    retention = Retention(library, LibrarySection(max_clips=1), prog.protected_clip_ids, lambda: "sea")
    assert await retention.enforce() == []  # every clip is a candidate of the block being chosen
    gate.set()
    block = await choosing
    assert [e.clip_id for e in block.entries] == [clips[0].id, clips[1].id]
    assert all(e.path.exists() for e in block.entries)
    assert await retention.enforce() == [clips[2].id, clips[3].id]  # the chosen block stays


async def test_quota_by_bytes_and_after_ingest(library, clip_file, tmp_path):
    size = clip_file.stat().st_size
    old = [add(library, clip_file, f"old {i}", aired=3 - i) for i in range(3)]  # aired 3, 2, 1
    retention = Retention(library, LibrarySection(max_bytes=int(2.5 * size)), set,
                          lambda: "sea")
    assert await retention.enforce() == [old[0].id]
    assert library.usage() == (2, 2 * size)
    add(library, clip_file, "new", aired=1)
    assert retention.after_ingest() == [old[1].id]  # rows at once; the file off the loop
    assert library.usage() == (2, 2 * size)
    await retention.flush()
    assert consistent(library)


async def test_a_crash_half_way_through_is_reconciled_at_the_next_start(tmp_path, clip_file):
    root = tmp_path / "library"
    library = Library(root)
    gone_file, gone_row, whole = (add(library, clip_file, name) for name in ("gone file", "gone row", "whole"))
    # delete, first half only: the row is gone, the file is not (what a crash after forget leaves)
    assert library.forget([gone_row.id]) == [gone_row.path]
    # the opposite half: the file is gone, the row is not
    gone_file.path.unlink()
    # an ingest that renamed its file but never committed the row, and a render cut short
    shutil.copy(clip_file, library.clips_dir / "00000042.mp4")
    shutil.copy(clip_file, library.incoming_path())
    library.close()

    library = Library(root)
    try:
        assert [c.id for c in library.all_clips()] == [whole.id]
        assert files(library) == {whole.path.name} == rows(library)
        assert list(library.incoming_dir.iterdir()) == []
        assert library.total_made() == 3  # ids are never handed out twice: new prompts, new names
        new = add(library, clip_file, "after the crash")
        assert new.id == 4 and consistent(library)
        assert library.check_intact(new) is None
    finally:
        library.close()


def test_a_library_open_elsewhere_cannot_be_opened_until_it_is_closed(tmp_path):
    root = tmp_path / "library"
    first = Library(root)
    leftover = first.incoming_path()
    leftover.write_bytes(b"a render in flight")
    with pytest.raises(LibraryLocked, match=f"in use by pid {os.getpid()}"):
        Library(root)
    assert leftover.exists()  # the second opener repaired nothing
    first.close()
    Library(root).close()  # the lock went with the first
    assert not leftover.exists()


def test_ingest_removes_the_renamed_file_when_the_commit_fails(library, clip_file):
    class FailingCommit:
        def __init__(self, db):
            self.db = db

        def execute(self, *args):
            return self.db.execute(*args)

        def __enter__(self):
            return self.db.__enter__()

        def __exit__(self, *exc):
            self.db.rollback()
            raise sqlite3.OperationalError("disk I/O error")

    made = library.incoming_path()
    shutil.copy(clip_file, made)
    real, library.db = library.db, FailingCommit(library.db)
    try:
        with pytest.raises(sqlite3.OperationalError):
            library.ingest(made, Shot(prompt="x", seed=0, theme="sea"), 1.0)
    finally:
        library.db = real
    assert files(library) == set() and rows(library) == set()


def test_an_old_index_gains_the_keep_column(tmp_path, clip_file):
    root = tmp_path / "library"
    (root / "clips").mkdir(parents=True)
    shutil.copy(clip_file, root / "clips" / "00000001.mp4")
    db = sqlite3.connect(root / "index.sqlite")
    db.executescript("""
        CREATE TABLE clips (
            id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL UNIQUE, prompt TEXT NOT NULL,
            theme TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', duration REAL NOT NULL,
            created REAL NOT NULL, times_aired INTEGER NOT NULL DEFAULT 0, last_aired REAL,
            size INTEGER NOT NULL, digest TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'ok', reason TEXT);
    """)
    db.execute("INSERT INTO clips (file, prompt, theme, duration, created, size, digest)"
               " VALUES ('00000001.mp4', 'old', 'sea', 1.0, 1.0, 1, 'x')")
    db.commit()
    db.close()
    library = Library(root)
    try:
        clip = library.get(1)
        assert clip is not None and clip.keep is False
        assert library.set_keep(1, True) and library.get(1).keep is True
    finally:
        library.close()
    library = Library(root)  # migrating twice is harmless
    try:
        assert library.get(1).keep is True
    finally:
        library.close()


# -- the real daemon ---------------------------------------------------------------------------

TOKEN = "keep-t0ken"


@pytest.mark.e2e
def test_keep_endpoint_is_off_without_a_token(tmp_path):
    daemon = Daemon(tmp_path / "channel").start()
    try:
        daemon.wait_for(lambda s: True, timeout=30, message="http up")
        code, body = daemon.request("POST", "/api/clips/1/keep", token="anything")
        assert code == 403, body
    finally:
        daemon.kill()


@pytest.mark.e2e
def test_daemon_keeps_the_library_at_its_quota_while_airing(tmp_path):
    # the library starts at its quota (four clips aired before, of the channel's theme), so the
    # first clips the producer makes are already over it and retention deletes from the start
    library = Library(tmp_path / "channel" / "library")
    seed = make_house_clip(tmp_path / "seed.mp4", seconds=2.0)  # house format, one block long
    for i in range(4):
        clip = add_to_library(library, seed, f"aired before {i}", "lighthouses in a storm", duration=2.0)
        for _ in range(3):
            library.mark_aired([clip.id], time.time() - 3600)
    library.close()
    daemon = Daemon(
        tmp_path / "channel",
        env={"WEBTV_RETENTION_TOKEN": TOKEN}, http={"token_env": "WEBTV_RETENTION_TOKEN"},
        director={"shots_per_sequence": 1}, producer={"ahead": 1}, video={"clip_seconds": 2.0},
        programme={"block_seconds": 2.0, "filler_seconds": 2.0},
        library={"max_clips": 4, "check_interval_s": 1},
    ).start()
    clips_dir = daemon.folder / "library" / "clips"
    try:
        status = daemon.wait_for(lambda s: s["now_playing"] is not None and s["now_playing"]["clip_id"],
                                 timeout=40, message="a clip on air")
        kept = status["now_playing"]["clip_id"]
        assert status["library"]["max_clips"] == 4 and status["library"]["bytes"] > 0

        # the control API: same token rules as /api/theme
        assert daemon.request("POST", f"/api/clips/{kept}/keep")[0] == 401
        assert daemon.request("POST", f"/api/clips/{kept}/keep", token="wrong")[0] == 401
        assert daemon.request("POST", "/api/clips/abc/keep", token=TOKEN)[0] == 400
        assert daemon.request("POST", "/api/clips/-3/keep", token=TOKEN)[0] == 400
        assert daemon.request("POST", f"/api/clips/{kept}/keep", {"keep": "yes"}, token=TOKEN)[0] == 400
        assert daemon.request("POST", "/api/clips/987654/keep", token=TOKEN)[0] == 404
        code, body = daemon.request("POST", f"/api/clips/{kept}/keep", token=TOKEN)
        assert code == 200 and '"keep": true' in body, body

        # airing on: never above the quota, the clip on air and the kept clip always on disk
        first_block = status["now_playing"]["block"]
        started, samples = time.monotonic(), 0
        while time.monotonic() - started < 12 or status["library"]["deleted"] < 2:
            assert time.monotonic() - started < 45, f"fewer than 2 clips deleted: {status['library']}"
            status = daemon.status()
            library = status["library"]
            assert library["clips_total"] <= 4 and not library["over_quota"], library
            on_air = status["now_playing"]
            if on_air and on_air["clip_id"]:
                if not (clips_dir / f"{on_air['clip_id']:08d}.mp4").exists():
                    again = daemon.status()["now_playing"]  # still on air after the look: a real miss
                    assert again and again["block"] != on_air["block"], f"file of the clip on air missing: {on_air}"
            assert (clips_dir / f"{kept:08d}.mp4").exists(), "the kept clip was deleted"
            samples += 1
            time.sleep(0.2)
        assert samples > 30
        assert status["now_playing"]["block"] >= first_block + 5, "still airing"
        daemon.wait_for(lambda s: s["library"]["clips_total"] == len(list(clips_dir.iterdir())), timeout=5,
                        message="index and files agree")

        # unmarked, the much aired clip goes at the next deletion
        code, body = daemon.request("POST", f"/api/clips/{kept}/keep", {"keep": False}, token=TOKEN)
        assert code == 200 and '"keep": false' in body, body
        deadline = time.monotonic() + 15
        while (clips_dir / f"{kept:08d}.mp4").exists():
            assert time.monotonic() < deadline, "the unkept clip was never deleted"
            time.sleep(0.2)
        assert daemon.request("POST", f"/api/clips/{kept}/keep", token=TOKEN)[0] == 404
        assert daemon.status()["library"]["clips_total"] <= 4
        log = daemon.log_tail(10**7)
        assert "clip skipped on air" not in log and "): decoder " not in log, "a deleted clip was aired"
    finally:
        daemon.kill()

"""The parts of the disk-full handling, one at a time, on a tiny tmpfs (the whole daemon on a full
disk is tests/test_disk_full.py)."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import time

import pytest

from tests.clips import add_to_library
from tests.test_disk_full import mount_tmpfs
from webtv.config import LibrarySection, ProgrammeSection
from webtv.files import write_atomic
from webtv.library import Library
from webtv.library.retention import Retention
from webtv.library.space import DiskGuard, free_bytes, is_disk_full
from webtv.media.commands import HLS_INDEX
from webtv.playout.output import HlsOutput
from webtv.programmer import Programmer


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs; ``fill()`` takes every free byte, ``free()`` gives them back."""
    mnt = tmp_path / "mnt"
    why = mount_tmpfs(mnt, "2m")
    if why:
        pytest.skip(why)

    class Disk:
        path = mnt
        ballast = mnt / "ballast"

        def fill(self) -> None:
            with open(self.ballast, "ab", buffering=0) as f:
                for size in (65536, 4096, 512):
                    try:
                        while True:
                            f.write(b"\0" * size)
                    except OSError:
                        pass

        def free(self) -> None:
            self.ballast.unlink(missing_ok=True)

    try:
        yield Disk()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


@pytest.mark.fast
def test_what_counts_as_disk_full():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    assert is_disk_full(full)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("encode failed") from exc
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert is_disk_full(RuntimeError("ffmpeg failed (exit 1):\nav_interleaved_write_frame(): No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("validate failed: unreadable"))


@pytest.mark.fast
async def test_hls_segments_not_written_whole_are_output_failures(tmp_path):
    out = HlsOutput("hls", tmp_path, gop_seconds=2.0, list_size=5, buffer_bytes=1 << 20)
    playlist = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n" + "".join(f"#EXTINF:2.000000,\nseg_{n}.ts\n" for n in (3, 4, 5))
    (tmp_path / HLS_INDEX).write_text(playlist)
    for n in (3, 4, 5):
        (tmp_path / f"seg_{n}.ts").write_bytes(b"\x47" * 188 * 50)  # whole TS packets
    (tmp_path / "seg_5.ts").write_bytes(b"\x47" * 188 * 3)  # small (a still card) but whole
    assert out.problem() is None and out.write_failures == 0
    (tmp_path / "seg_5.ts").write_bytes(b"")
    (tmp_path / "seg_4.ts").write_bytes(b"\x47" * 4096)
    problem = out.problem()
    assert problem and "seg_5.ts 0 bytes" in problem and "seg_4.ts 4096 bytes" in problem
    assert out.write_failures == 2
    out.problem()
    assert out.write_failures == 2, "a segment counts once"
    assert out.status()["problem"] == problem and out.status()["write_failures"] == 2
    (tmp_path / HLS_INDEX).write_text("")
    assert "empty" in out.problem()


def test_write_atomic_leaves_no_temp_file_on_a_full_disk(tiny_disk):
    target = tiny_disk.path / "list.ffconcat"
    target.write_text("old\n")
    tiny_disk.fill()
    with pytest.raises(OSError) as caught:
        write_atomic(target, "new\n" * 10_000)
    assert is_disk_full(caught.value)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tiny_disk.path.iterdir()) == ["ballast", "list.ffconcat"]


async def test_full_disk_index_writes_block_playlists_and_room(tiny_disk, clip_file):
    """A block playlist that cannot be written is the block before it again; aired counts wait
    for space; retention makes room with the library's reserve, in its order and protections;
    the guard pauses, and resumes when space returns."""
    library = Library(tiny_disk.path / "library")
    try:
        assert library.reserve.held()
        old = [add_to_library(library, clip_file, f"old {i}", "old theme") for i in range(3)]
        for clip in old:
            library.mark_aired([clip.id], 1.0)
        prog = Programmer(library, tiny_disk.path / "playlists", ProgrammeSection.model_construct(
            block_seconds=1.0, filler_seconds=1.0), tiny_disk.path / "filler.mp4", lambda: "sea")
        retention = Retention(library, LibrarySection(), prog.protected_clip_ids, lambda: "sea")
        first = await prog.next_block()
        prog.on_air(first, time.time())
        assert first.entries[0].clip_id == old[0].id

        tiny_disk.fill()
        assert free_bytes(tiny_disk.path) == 0
        second = await prog.next_block()
        assert second.number == first.number + 1 and second.playlist == first.playlist  # the block before, again
        prog.on_air(second, time.time())
        assert library.get(first.entries[0].clip_id).times_aired == 2, "recorded later, not now"
        assert prog._unrecorded and library.reserve.held()

        guard = DiskGuard(tiny_disk.path, lambda: 10_000_000, 0, retention.make_room, library.reserve, poll_s=0.1,
                          on_space_back=prog.record_aired)
        assert not await guard.room() and guard.full  # room made with the reserve, not enough
        assert not library.reserve.held()
        left = library.all_clips()
        assert {c.id for c in left} == prog.protected_clip_ids() == {old[0].id}, "on air and next are kept"
        assert {p.name for p in library.clips_dir.iterdir()} == {c.path.name for c in left}

        tiny_disk.free()
        guard.clip_bytes = lambda: 10_000
        assert await guard.room() and not guard.full and guard.pauses == 1
        assert library.get(old[0].id).times_aired == 3 and not prog._unrecorded
        assert library.reserve.held(), "the reserve is made again when there is room"
    finally:
        library.close()



async def test_a_render_that_ran_out_of_space_asks_retention_for_room_once(tmp_path, monkeypatch):
    """The disk filled in the middle of a render: production pauses, and retention is asked for
    room (once for the pause), as when the guard finds the disk full before a render."""
    free = {"bytes": 50_000}
    monkeypatch.setattr("webtv.library.space.free_bytes", lambda folder: free["bytes"])
    asked: list[int] = []

    async def make_room(wanted: int) -> int:
        asked.append(wanted)
        return 0

    guard = DiskGuard(tmp_path, lambda: 10_000, 0, make_room, poll_s=0.1)
    assert await guard.room() and asked == []
    free["bytes"] = 4_000  # something else took the space; the render fails for want of it
    assert guard.render_failed(OSError(errno.ENOSPC, "No space left on device"))
    assert not await guard.room() and guard.full
    assert len(asked) == 1, "retention was not asked for room after a render ran out of space"
    assert not await guard.room() and len(asked) == 1, "asked again within one pause"
    free["bytes"] = 60_000
    assert await guard.room() and not guard.full

"""What airs next: fresh clips of the theme, then the least recently aired, then the filler."""

import pytest

from tests.clips import add_to_library
from webtv.config import ProgrammeSection
from webtv.programmer import Programmer

pytestmark = pytest.mark.fast


def add(library, clip_file, prompt, theme, tags=()):
    return add_to_library(library, clip_file, prompt, theme, tags)


def programmer(library, tmp_path, theme, block_seconds=3.0):
    filler = tmp_path / "filler.mp4"
    programme = ProgrammeSection(block_seconds=block_seconds, filler_seconds=2.0)
    return Programmer(library, tmp_path / "playlists", programme, filler, lambda: theme[0])


async def test_empty_library_airs_the_filler(library, tmp_path):
    prog = programmer(library, tmp_path, ["sea"])
    block = await prog.next_block()
    assert [e.source for e in block.entries] == ["filler"]
    assert "filler.mp4" in block.playlist.read_text()


async def test_fresh_of_the_theme_first_then_least_recently_aired(library, clip_file, tmp_path):
    theme = ["sea"]
    old_a = add(library, clip_file, "old a", "forest")
    old_b = add(library, clip_file, "old b", "forest")
    library.mark_aired([old_a.id], 100.0)
    library.mark_aired([old_b.id], 50.0)
    other_theme_fresh = add(library, clip_file, "never aired forest", "forest")
    fresh = add(library, clip_file, "fresh sea", "sea")
    prog = programmer(library, tmp_path, theme, block_seconds=4.0)
    block = await prog.next_block()
    ids = [e.clip_id for e in block.entries]
    assert ids == [fresh.id, other_theme_fresh.id, old_b.id, old_a.id]
    assert [e.source for e in block.entries] == ["fresh", "loop", "loop", "loop"]

    prog.on_air(block, started_at=1000.0)
    assert library.get(fresh.id).times_aired == 1
    assert library.get(old_a.id).last_aired == pytest.approx(1003.0)
    newer = add(library, clip_file, "fresher sea", "sea")
    block2 = await prog.next_block()
    assert block2.entries[0].clip_id == newer.id and block2.entries[0].source == "fresh"
    assert block2.entries[1].clip_id == fresh.id  # aired first in the last block, so least recent now


async def test_small_library_plays_round_instead_of_filler(library, clip_file, tmp_path):
    only = add(library, clip_file, "lonely", "sea")
    prog = programmer(library, tmp_path, ["sea"], block_seconds=3.0)
    block = await prog.next_block()
    assert [e.clip_id for e in block.entries] == [only.id] * 3
    assert block.duration == pytest.approx(3.0)


async def test_corrupted_clip_is_skipped_and_marked_broken(library, clip_file, tmp_path):
    good = add(library, clip_file, "good", "sea")
    bad = add(library, clip_file, "bad", "sea")
    with open(bad.path, "r+b") as f:
        f.seek(2000)
        f.write(b"\x00" * 64)
    prog = programmer(library, tmp_path, ["sea"], block_seconds=2.0)
    block = await prog.next_block()
    assert bad.id not in [e.clip_id for e in block.entries]
    assert str(bad.path) not in block.playlist.read_text()
    assert library.get(bad.id).state == "broken"
    assert library.get(good.id).state == "ok"
    assert library.stats() == (1, 1.0)


async def test_catalogue_playlists(library, clip_file, tmp_path):
    add(library, clip_file, "one", "sea", tags=["Blue Water", "calm"])
    add(library, clip_file, "two", "sea", tags=["calm"])
    prog = programmer(library, tmp_path, ["sea"])
    prog.write_catalogue()
    folder = tmp_path / "playlists"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["all.ffconcat", "fresh.ffconcat", "tag-blue-water.ffconcat", "tag-calm.ffconcat"]
    assert (folder / "tag-calm.ffconcat").read_text().count("file ") == 2
    assert (folder / "all.ffconcat").read_text().startswith("ffconcat version 1.0\n")


async def test_old_block_playlists_are_pruned(library, tmp_path):
    prog = programmer(library, tmp_path, ["sea"])
    for _ in range(7):
        await prog.next_block()
    blocks = sorted(p.name for p in (tmp_path / "playlists").glob("block-*"))
    assert blocks == [f"block-{n:06d}.ffconcat" for n in (4, 5, 6, 7)]
    again = programmer(library, tmp_path, ["sea"])  # a restart carries on numbering
    assert (await again.next_block()).number == 8


async def test_failed_block_is_rechecked(library, clip_file, tmp_path):
    """A clip that broke after its block was chosen is caught when the decoder fails on it."""
    first = add(library, clip_file, "first", "sea")
    second = add(library, clip_file, "second", "sea")
    prog = programmer(library, tmp_path, ["sea"], block_seconds=2.0)
    block = await prog.next_block()
    second.path.write_bytes(b"not a video")
    await prog.recheck(block)
    assert library.get(second.id).state == "broken"
    assert library.get(first.id).state == "ok"
    assert second.id not in [e.clip_id for e in (await prog.next_block()).entries]


async def test_a_query_that_fails_falls_back_to_the_library_then_the_filler(library, clip_file, tmp_path, caplog):
    theme = ["a\ud800b"]  # a theme SQLite cannot bind: the fresh query raises
    clip = add(library, clip_file, "a lighthouse", "sea")
    prog = programmer(library, tmp_path, theme, block_seconds=2.0)
    block = await prog.next_block()
    assert [(e.clip_id, e.source) for e in block.entries] == [(clip.id, "loop")] * 2
    assert "fresh clips" in caplog.text
    library.db.close()  # every query raises now
    block = await prog.next_block()
    assert [e.source for e in block.entries] == ["filler"]
    assert "rotation" in caplog.text

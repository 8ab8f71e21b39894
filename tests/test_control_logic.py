"""The control room's logic without a daemon: banned clips in the library and the programmer,
browse, the programme guide, XMLTV, and the event hub's bound on slow clients."""

from __future__ import annotations

import asyncio
import errno
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from webtv.config import ProgrammeSection
from webtv.director import Shot
from webtv.http.control import slot_json, xmltv
from webtv.http.events import QUEUE, EventHub
from webtv.library import Library
from webtv.playout.block import Block, Entry
from webtv.programmer import Programmer
from webtv.programmer.guide import aired_slots, project, split

pytestmark = pytest.mark.fast


def add(library: Library, folder: Path, n: int, theme: str = "owls", tags: tuple[str, ...] = ()) -> int:
    made = folder / f"made-{n}.mp4"
    made.write_bytes(b"x" * (100 + n))
    return library.ingest(made, Shot(prompt=f"shot {n}", seed=n, theme=theme, tags=tags), duration=2.0).id


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "library")
    yield library
    library.close()


def test_banned_clips_never_air_and_go_first_under_retention(lib, tmp_path):
    ids = [add(lib, tmp_path, n) for n in range(4)]
    lib.mark_aired([ids[0]], 5.0)
    lib.mark_broken(ids[1], "bad")
    banned = lib.set_banned(ids[3], True)
    assert banned.banned and banned.label == "banned"
    assert ids[3] not in {c.id for c in [*lib.fresh("owls", 10), *lib.rotation(10), *lib.all_clips()]}
    assert [c.id for c in lib.deletion_order()][:2] == [ids[3], ids[1]]
    assert lib.set_banned(ids[1], True).state == "broken"  # a broken clip stays broken
    assert lib.set_banned(ids[3], False).label == "fresh" and lib.airable(set(ids)) == {ids[0], ids[2], ids[3]}


def test_browse_filters_sorts_and_pages(lib, tmp_path):
    ids = [add(lib, tmp_path, n, theme="owls" if n % 2 else "bats", tags=(f"t{n % 3}",)) for n in range(6)]
    lib.mark_aired([ids[4]], 10.0)
    lib.mark_aired([ids[2]], 20.0)
    lib.set_keep(ids[5], True)
    assert lib.browse(label="aired")[0] == 2 and lib.browse(label="kept")[1][0].id == ids[5]
    assert [c.id for c in lib.browse(sort="aired")[1]][:2] == [ids[2], ids[4]]  # nulls last
    assert [c.id for c in lib.browse(sort="aired", descending=False)[1]][:2] == [ids[4], ids[2]]
    assert {c.id for c in lib.browse(theme="owls")[1]} == {ids[1], ids[3], ids[5]}
    assert {c.id for c in lib.browse(tag="t1")[1]} == {ids[1], ids[4]}
    total, page = lib.browse(limit=2, offset=1, descending=False)
    assert total == 6 and [c.id for c in page] == ids[1:3]


def owls_programmer(lib: Library, tmp_path: Path, block_seconds: float) -> Programmer:
    filler = tmp_path / "filler.mp4"
    filler.write_bytes(b"card")
    return Programmer(lib, tmp_path / "playlists", ProgrammeSection(block_seconds=block_seconds, filler_seconds=2.0),
                      filler, lambda: "owls")


async def test_revise_leaves_out_clips_banned_or_deleted_after_the_block_was_chosen(lib, tmp_path):
    ids = [add(lib, tmp_path, n) for n in range(3)]
    programmer = owls_programmer(lib, tmp_path, block_seconds=6.0)
    block = await programmer.next_block()
    assert [e.clip_id for e in block.entries] == ids
    lib.set_banned(ids[0], True)
    lib.forget([ids[2]])
    revised = await programmer.revise(block)
    assert [e.clip_id for e in revised.entries] == [ids[1]]
    assert f"{ids[0]:08d}.mp4" not in block.playlist.read_text()
    assert programmer.queue_next(ids[1]) and not programmer.queue_next(ids[0])
    assert [e.clip_id for e in (await programmer.next_block()).entries][0] == ids[1]


def entry(clip_id: int | None, seconds: float = 2.0) -> Entry:
    return Entry(path=Path(f"/c/{clip_id}.mp4"), duration=seconds, source="loop" if clip_id else "filler",
                 clip_id=clip_id, prompt=f"p{clip_id}" if clip_id else "")


def test_aired_slots_are_cut_where_the_next_block_began_on_either_clock():
    # block 1 skipped 2.6 s of stream in; block 2's decoder took 0.4 s to start: on air at Unix 103
    history = [(Block(1, Path("b1"), (entry(1), entry(2), entry(3))), 100.0, 100.0),
               (Block(2, Path("b2"), (entry(4), entry(5))), 103.0, 102.6)]
    slots = aired_slots(history)
    assert [(s.clip_id, s.start, s.end) for s in slots] == [(1, 100, 102), (2, 102, 103), (4, 103, 105),
                                                            (5, 105, 107)]
    assert [(s.stream_start, s.stream_end) for s in slots] == [(100, 102), (102, 102.6), (102.6, 104.6),
                                                               (104.6, 106.6)]
    guide = split(slots, now=104.0)
    assert guide.now.clip_id == 4 and [s.clip_id for s in guide.recent] == [1, 2] and guide.next[0].clip_id == 5


def test_projection_fills_blocks_and_falls_back_to_the_filler():
    from webtv.library import Clip

    clips = [Clip(i, Path(f"/c/{i}.mp4"), f"p{i}", "owls", (), 2.0, 0.0, 0, None, 1, "d", "ok") for i in (7, 8, 9)]
    slots = project(clips, entry(None), block_seconds=5.0, number=3, start=10.0, until=30.0)
    assert [s.clip_id for s in slots][:4] == [7, 8, 9, 7] and all(s.projected for s in slots)
    assert [s.block for s in slots][:6] == [3, 3, 3, 4, 4, 4] and slots[-1].end >= 30.0
    assert [s.entry.source for s in slots][:4] == ["fresh", "fresh", "fresh", "loop"]
    card = project([], entry(None), block_seconds=5.0, number=1, start=0.0, until=5.0)
    assert [(s.clip_id, s.block) for s in card] == [(None, 1), (None, 2), (None, 3)]


def test_xmltv_parses_with_utc_times():
    slots = split(aired_slots([(Block(1, Path("b"), (entry(1), entry(None))), 0.0, 0.0)]), now=1.0)
    tv = ET.fromstring(xmltv("Owl & Co <TV>", [slots.now, *slots.next]))
    assert tv.find("channel/display-name").text == "Owl & Co <TV>"
    first, second = tv.findall("programme")
    assert (first.get("start"), first.get("stop")) == ("19700101000000 +0000", "19700101000002 +0000")
    assert first.find("title").text == "p1" and "more is on its way" in second.find("title").text


def test_viewers_read_a_weighted_prompt_without_its_weights():
    weighted = replace(entry(3), prompt="a (red fox:1.3) running")
    slot = split(aired_slots([(Block(1, Path("b"), (weighted,)), 0.0, 0.0)]), now=1.0).now
    assert (slot_json(slot)["prompt"], slot_json(slot)["caption"]) == ("a (red fox:1.3) running", "a red fox running")
    assert ET.fromstring(xmltv("owls", [slot])).find("programme/title").text == "a red fox running"


async def test_a_slow_events_client_is_dropped_not_waited_for():
    hub = EventHub(lambda: {})
    stuck = asyncio.create_task(asyncio.sleep(3600))

    class Client:
        task = stuck
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE)

    hub.clients.add(Client)
    for n in range(QUEUE + 1):
        hub.publish("log", {"n": n})  # never waits
    await asyncio.sleep(0)
    assert not hub.clients and hub.dropped == 1 and stuck.cancelled()


async def test_a_clip_asked_for_leads_the_next_block_even_when_that_block_was_chosen_already(lib, tmp_path,
                                                                                            monkeypatch):
    ids = [add(lib, tmp_path, n) for n in range(5)]
    programmer = owls_programmer(lib, tmp_path, block_seconds=4.0)
    on_air = await programmer.next_block()
    programmer.on_air(on_air, 100.0)
    chosen = await programmer.next_block()  # the next block, chosen before the operator asks
    assert [e.clip_id for e in chosen.entries] == ids[2:4]
    assert programmer.queue_next(ids[4])
    assert [s.clip_id for s in programmer.guide(now=101.0).next if s.block == chosen.number] == [ids[4], ids[2]]
    assert await programmer.revise(on_air) == on_air  # the block on air is never rewritten
    with monkeypatch.context() as m:  # a full disk: the block airs as its playlist says, the clip waits
        m.setattr("webtv.programmer.programmer.write_ffconcat", lambda *a: (_ for _ in ()).throw(
            OSError(errno.ENOSPC, "No space left on device")))
        assert await programmer.revise(chosen) == chosen
    revised = await programmer.revise(chosen)  # its decoder starts: the clip asked for leads it
    assert [e.clip_id for e in revised.entries] == [ids[4], ids[2]] and revised.duration == 4.0
    assert revised.entries[0].stamp is not None  # checked like every clip chosen
    files = [line for line in chosen.playlist.read_text().splitlines() if line.startswith("file ")]
    assert f"{ids[4]:08d}.mp4" in files[0] and len(files) == 2
    programmer.on_air(revised, 104.0)
    assert ids[4] not in [e.clip_id for e in (await programmer.next_block()).entries]  # asked once, aired once

"""library -> what airs next, as ffconcat block playlists.

Order of preference: fresh clips of the current theme, then the library least recently
aired first, then the filler card. There is always something to air.

The programmer also knows which clips must stay on disk: ``protected_clip_ids()`` is every
clip of the blocks it handed out that have not been superseded on air (the block on air and
the next one, already chosen), plus the candidates of a block being chosen right now.
Retention never deletes those.

An operator may ask for a clip to air next (``queue_next``): it leads the next block whose
decoder starts. A block handed out may still change until then: the playout asks ``revise``,
which leaves out the clips banned or deleted since the block was chosen and puts the clips
asked for since at its front (the block is then cut back to about ``block_seconds``), unless
the block is on air already.

Each clip chosen is checked (size and digest) and its file's ``Stamp`` recorded in its entry;
the playout compares the file with that stamp just before the block's decoder opens it and
hands back the clips that changed since (``reconfirm``): they are checked again, marked broken
if they fail, and left out of the block.

A full disk must not take the channel off air. When a block playlist cannot be written for
want of space, the block before it airs again (its playlist is still on disk; its clips count
as loop) rather than none, until retention has made room (``webtv.library.space``). Aired
counts that cannot be recorded are kept and recorded with the next block that can be, or when
space returns (``record_aired``); their clips are not offered as fresh meanwhile. The
catalogue playlists (``all``, ``fresh``, ``tag-*``) are for outside readers: one that cannot
be written stays as it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Callable, TypeVar

from webtv.config import ProgrammeSection
from webtv.library import Clip, Library
from webtv.library.space import is_disk_full
from webtv.playout.block import Block, Entry
from webtv.playout.clipfile import Stamp
from webtv.programmer.guide import HORIZON_S, RECENT_S, Guide, Slot, aired_slots, block_slots, project, split
from webtv.programmer.playlist import slug, write_ffconcat

log = logging.getLogger("webtv.programmer")

KEEP_BLOCKS = 4

T = TypeVar("T")


class Programmer:
    def __init__(
        self,
        library: Library,
        playlists_dir: Path,
        programme: ProgrammeSection,
        filler: Path,
        theme: Callable[[], str],
    ):
        """``filler`` is the card made for ``programme.filler_seconds``; it lasts that long."""
        self.library = library
        self.dir = Path(playlists_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.block_seconds = programme.block_seconds
        self.filler = filler
        self.filler_seconds = programme.filler_seconds
        self.theme = theme
        self.blocks_made = max((_block_number(p) for p in self.dir.glob("block-*.ffconcat")), default=0)
        self._tag_playlists: set[str] = set()
        self._handed: list[Block] = []  # handed out and not superseded on air: on air, next
        self._choosing: set[int] = set()  # candidates of the block being chosen
        self._unrecorded: list[tuple[int, float]] = []  # (clip, when) aired, not yet in the index
        self._catalogue_failing = False
        self._requested: list[int] = []  # clips an operator asked to air next, in order
        self._revised = 0  # the newest block handed to revise: its decoder has started
        self._aired: deque[tuple[Block, float, float]] = deque()  # blocks that went on air: Unix, stream clock

    def reconfigure(self, programme: ProgrammeSection) -> None:
        """An edited ``[programme]``: the next block chosen has the new length. The filler card
        was made for the old ``filler_seconds`` and stays until the next start."""
        self.block_seconds = programme.block_seconds

    def protected_clip_ids(self) -> set[int]:
        """Clips that are on air, chosen to air next, or being chosen: never to be deleted."""
        ids = set(self._choosing)
        for block in self._handed:
            ids.update(e.clip_id for e in block.entries if e.clip_id is not None)
        return ids

    async def next_block(self) -> Block:
        """Choose the next block, write its playlist, and return it."""
        try:
            entries = await self._choose()
            self.blocks_made += 1
            number = self.blocks_made
            playlist = self.dir / f"block-{number:06d}.ffconcat"
            block = Block(number=number, playlist=playlist, entries=tuple(entries))
            before = self._handed[-1] if self._handed else None
            # Protected from here on; a block handed out but never aired drops out as later ones air.
            self._handed = [*self._handed[-(KEEP_BLOCKS - 1):], block]
            if not await self._write_block(block):
                block = self._repeat(before, number)
        finally:
            self._choosing.clear()
        self._prune_blocks(number)
        return block

    async def _write_block(self, block: Block) -> bool:
        """Write ``block``'s playlist; False when the disk is too full for it (see the module)."""
        try:
            await asyncio.to_thread(write_ffconcat, block.playlist, [(e.path, e.duration) for e in block.entries])
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            return False
        return True

    def _repeat(self, before: Block | None, number: int) -> Block:
        """Block ``number`` when its playlist could not be written: ``before`` again."""
        if before is None or not before.playlist.exists():
            raise OSError(f"disk full: block {number}'s playlist cannot be written, and no earlier one is left")
        log.error("disk full: block %d's playlist cannot be written; block %d airs again", number, before.number)
        entries = tuple(replace(e, source="loop") if e.source == "fresh" else e for e in before.entries)
        block = replace(before, number=number, entries=entries)
        self._handed[-1] = block
        return block

    def on_air(self, block: Block, started_at: float, stream_at: float | None = None) -> None:
        """Record what went on air; called by the playout when a block starts (Unix time, and
        the same on the stream's clock: ``webtv.programmer.guide``)."""
        self._handed = [b for b in self._handed if b.number >= block.number]
        self._aired.append((block, started_at, started_at if stream_at is None else stream_at))
        while len(self._aired) > 2 and self._aired[1][1] < started_at - RECENT_S - 60:
            self._aired.popleft()
        offset = 0.0
        for entry in block.entries:
            if entry.clip_id is not None:
                self._unrecorded.append((entry.clip_id, started_at + offset))
            offset += entry.duration
        self.record_aired()

    def record_aired(self) -> bool:
        """Write the aired counts not yet in the index (then the catalogue); False when the disk
        is too full."""
        recorded = False
        while self._unrecorded:
            clip_id, when = self._unrecorded[0]
            try:
                self.library.mark_aired([clip_id], when)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                log.warning("disk full: %d aired clips not recorded yet; recorded with a later block",
                            len(self._unrecorded))
                return False
            del self._unrecorded[0]
            recorded = True
        if recorded:
            self.write_catalogue()
        return True

    async def recheck(self, block: Block) -> None:
        """A block's decoder failed: find the clips that broke since they were chosen."""
        seen: set[int] = set()
        for entry in block.entries:
            if entry.clip_id is None or entry.clip_id in seen:
                continue
            seen.add(entry.clip_id)
            clip = self.library.get(entry.clip_id)
            if clip is not None and clip.state == "ok":
                await self._intact(clip)

    def write_catalogue(self) -> None:
        """``all``, ``fresh`` (never aired, current theme) and one playlist per tag; on a full disk
        the ones that cannot be written stay as they were."""
        try:
            self._write_catalogue()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            if not self._catalogue_failing:
                log.warning("disk full: catalogue playlists not updated: %s", exc)
            self._catalogue_failing = True
            return
        self._catalogue_failing = False

    def _write_catalogue(self) -> None:
        clips = self.library.all_clips()
        write_ffconcat(self.dir / "all.ffconcat", [(c.path, c.duration) for c in clips])
        theme = self.theme()
        fresh = [c for c in clips if c.times_aired == 0 and c.theme == theme]
        write_ffconcat(self.dir / "fresh.ffconcat", [(c.path, c.duration) for c in fresh])
        by_tag: dict[str, list[Clip]] = {}
        for clip in clips:
            for tag in clip.tags:
                by_tag.setdefault(slug(tag), []).append(clip)
        for name, tagged in by_tag.items():
            write_ffconcat(self.dir / f"tag-{name}.ffconcat", [(c.path, c.duration) for c in tagged])
        for gone in self._tag_playlists - set(by_tag):
            (self.dir / f"tag-{gone}.ffconcat").unlink(missing_ok=True)
        self._tag_playlists = set(by_tag)

    def queue_next(self, clip_id: int) -> bool:
        """Air ``clip_id`` at the start of the next block chosen; False when it cannot air
        (no such clip, banned or broken)."""
        if not self.library.airable({clip_id}):
            return False
        if clip_id not in self._requested:
            self._requested.append(clip_id)
        return True

    async def revise(self, block: Block) -> Block:
        """``block`` as it may air now (the playout asks just before its decoder starts):
        without the clips banned or deleted since it was chosen, led by the clips asked for
        since (``queue_next``) unless it is on air already. The filler airs when nothing is
        left; a block changed has its playlist written again."""
        ids = {e.clip_id for e in block.entries if e.clip_id is not None}
        gone = ids - self._query("airable clips", lambda: self.library.airable(ids), ids)
        on_air = bool(self._aired) and block.number <= self._aired[-1][0].number
        asked = [] if on_air else await self._asked_for()
        self._revised = max(self._revised, block.number)
        if not gone and not asked:
            return block
        entries = [e for e in block.entries if e.clip_id not in gone]
        if gone:
            log.info("block %d: clips no longer airable left out: %s", block.number, sorted(gone))
        if asked:
            log.info("block %d: led by the clips asked for: %s", block.number, [e.clip_id for e in asked])
            entries = self._led_by(asked, entries)
        try:
            return await self._rewrite(block, entries)
        except OSError as exc:  # the decoder may have to read the playlist: it must be the block aired
            if not is_disk_full(exc):
                raise
            log.error("disk full: block %d airs as chosen (its playlist cannot be rewritten)", block.number)
            self._requested[:0] = [e.clip_id for e in asked if e.clip_id not in self._requested]
            self._handed = [block if b.number == block.number else b for b in self._handed]
            return block
        finally:
            self._choosing.difference_update(e.clip_id for e in asked)

    async def _asked_for(self) -> list[Entry]:
        """The clips asked to air next (taken off the queue), each checked as a clip chosen."""
        clips, self._requested = self._asked_clips(), []
        self._choosing.update(c.id for c in clips)  # protected until in a block handed out
        entries = []
        for clip in clips:
            stamp = await self._intact(clip)
            if stamp is not None:
                entries.append(self._entry(clip, "fresh" if clip.times_aired == 0 else "loop", stamp))
        return entries

    def _led_by(self, lead: list[Entry], entries: list[Entry]) -> list[Entry]:
        """``lead`` then ``entries`` (without the clips in ``lead`` and the filler), cut once the
        block is ``block_seconds`` long, as a block chosen is."""
        ids = {e.clip_id for e in lead}
        block, total = list(lead), sum(e.duration for e in lead)
        for entry in entries:
            if total >= self.block_seconds:
                break
            if entry.clip_id not in ids and entry.source != "filler":
                block.append(entry)
                total += entry.duration
        return block

    async def _rewrite(self, block: Block, entries: list[Entry]) -> Block:
        """``block`` with ``entries`` (the filler when none), its playlist written again."""
        if not entries:
            entries = [Entry(path=self.filler, duration=self.filler_seconds, source="filler")]
        block = replace(block, entries=tuple(entries))
        self._handed = [block if b.number == block.number else b for b in self._handed]
        await asyncio.to_thread(write_ffconcat, block.playlist, [(e.path, e.duration) for e in entries])
        return block

    def guide(self, now: float | None = None) -> Guide:
        """The programme: the slot on air, the next hour at least (the blocks chosen, then a
        projection from the library), and the last ``RECENT_S`` aired (``webtv.programmer.guide``)."""
        now = time.time() if now is None else now
        slots = aired_slots(self._aired)
        on_air = self._aired[-1] if self._aired else None
        ahead: list[Slot] = []
        at = on_air[1] + on_air[0].duration if on_air else now
        asked = [self._entry(c, "fresh" if c.times_aired == 0 else "loop") for c in self._asked_clips()]
        for block in self._handed:
            if on_air is None or block.number > on_air[0].number:
                if asked and block.number > self._revised:  # the block the clips asked for will lead
                    block, asked = replace(block, entries=tuple(self._led_by(asked, list(block.entries)))), []
                ahead += block_slots(block, at)
                at += block.duration
        planned = {s.clip_id for s in [*slots, *ahead] if s.end > now and s.clip_id is not None}
        filler = Entry(path=self.filler, duration=self.filler_seconds, source="filler")
        ahead += project(self._projection_order(planned), filler, self.block_seconds, self.blocks_made + 1, max(at, now),
                         now + HORIZON_S)
        behind = on_air[1] - on_air[2] if on_air else 0.0  # the stream's clock behind Unix time now
        return split([*slots, *(replace(s, stream_start=s.start - behind, stream_end=s.end - behind) for s in ahead)],
                     now)

    def _projection_order(self, planned: set[int]) -> list[Clip]:
        """The clips in the order the next blocks would take them: asked for, fresh of the
        theme, the rest least recently aired first, those already planned last."""
        theme = self.theme()
        asked = self._asked_clips()
        fresh = self._query("fresh clips", lambda: self.library.fresh(theme, limit=64))
        rotation = self._query("rotation", lambda: self.library.rotation(limit=256))
        order, seen = [], set()
        for clip in [*asked, *fresh, *rotation]:
            if clip.id not in seen and clip.id not in planned:
                order.append(clip)
                seen.add(clip.id)
        return order + [c for c in rotation if c.id in planned]

    def _asked_clips(self) -> list[Clip]:
        return [c for c in map(self.library.get, self._requested) if c is not None and c.state == "ok"]

    async def _choose(self) -> list[Entry]:
        theme = self.theme()
        chosen: list[Entry] = []
        total = 0.0

        async def take(clips: list[Clip], source: str) -> None:
            nonlocal total
            for clip in clips:
                if total >= self.block_seconds:
                    return
                stamp = await self._intact(clip)
                if stamp is not None:
                    chosen.append(self._entry(clip, source, stamp))
                    total += clip.duration

        asked = set(self._requested)
        chosen += await self._asked_for()
        total += sum(e.duration for e in chosen)
        unrecorded = {clip_id for clip_id, _ in self._unrecorded}
        fresh = [c for c in self._query("fresh clips", lambda: self.library.fresh(theme, limit=64))
                 if c.id not in unrecorded and c.id not in asked]
        self._choosing.update(c.id for c in fresh)  # in the same step as the query: retention waits
        await take(fresh, "fresh")
        picked = {e.clip_id for e in chosen}
        rotation = self._query("rotation", lambda: self.library.rotation(limit=64, exclude=picked))
        self._choosing.update(c.id for c in rotation)
        await take(rotation, "loop")
        # A library smaller than a block plays round again rather than falling to the filler.
        once = list(chosen)
        while once and total < self.block_seconds:
            for entry in once:
                if total >= self.block_seconds:
                    break
                chosen.append(replace(entry, source="loop"))
                total += entry.duration
        if not chosen:
            chosen.append(Entry(path=self.filler, duration=self.filler_seconds, source="filler"))
        return chosen

    def _query(self, what: str, query: Callable[[], T], failed: T | None = None) -> T:
        """``query()``, or ``failed`` (no clips) when it raises (a value SQLite cannot take, a
        broken index): the block is then made of what is left, the library loop or the filler,
        never not made."""
        try:
            return query()
        except Exception as exc:  # noqa: BLE001 - whatever failed, something must air
            log.error("programmer: %s query failed, choosing without it: %s: %s", what, type(exc).__name__, exc)
            return [] if failed is None else failed

    async def _intact(self, clip: Clip) -> Stamp | None:
        """The stamp of ``clip``'s file when it is as it entered the library; else None, and
        the clip is marked broken (logged)."""
        problem, stamp = await asyncio.to_thread(self._check, clip)
        if problem is None:
            return stamp
        log.warning("clip skipped on air: clip=%d file=%s reason=%s", clip.id, clip.path.name, problem)
        self.library.mark_broken(clip.id, problem)
        return None

    def _check(self, clip: Clip) -> tuple[str | None, Stamp | None]:
        """Size and digest, with the file's stamp taken before and after: equal stamps say the
        digest read that very file, unchanged throughout. Blocking: reads the file."""
        before = Stamp.of_path(clip.path)
        problem = self.library.check_intact(clip)
        after = Stamp.of_path(clip.path)
        if problem is None and (before is None or before != after):
            problem = "file changed while it was checked"
        return problem, after

    async def reconfirm(self, block: Block, changed: list[tuple[Entry, str]]) -> Block:
        """``block`` without the clips whose file changed since they were checked (the
        playout's ``on_changed``): each is checked again; one still intact (its stamp moved,
        e.g. a hard link was added) keeps its place with the new stamp, the others are marked
        broken and leave it. The filler airs when nothing is left; the playlist is rewritten."""
        stamps: dict[Path, Stamp | None] = {}
        for entry, _ in changed:
            clip = self.library.get(entry.clip_id) if entry.clip_id is not None else None
            stamps[entry.path] = await self._intact(clip) if clip is not None else None
        entries = [replace(e, stamp=stamps[e.path]) if e.path in stamps else e
                   for e in block.entries if e.path not in stamps or stamps[e.path] is not None]
        return await self._rewrite(block, entries)

    @staticmethod
    def _entry(clip: Clip, source: str, stamp: Stamp | None = None) -> Entry:
        return Entry(
            path=clip.path, duration=clip.duration, source=source,  # type: ignore[arg-type]
            clip_id=clip.id, prompt=clip.prompt, theme=clip.theme, stamp=stamp,
            narration=clip.narration, characters=clip.characters, episode=clip.episode, episode_title=clip.episode_title,
            scores=clip.scores,
        )

    def _prune_blocks(self, newest: int) -> None:
        in_use = {b.playlist for b in self._handed}  # a block aired again keeps an older playlist
        # with the decoders' lists (".block-N.ffconcat.SEQ.air") a crash left behind
        for old in [*self.dir.glob("block-*.ffconcat"), *self.dir.glob(".block-*.air")]:
            if _block_number(old) <= newest - KEEP_BLOCKS and old not in in_use:
                old.unlink(missing_ok=True)


def _block_number(path: Path) -> int:
    try:
        return int(path.name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return 0

"""The programme guide: what aired, what is on, what comes next, with wall-clock times.

``GET /api/programme`` and ``/epg.xml`` show the same ``Slot`` list. Times are Unix seconds.
Aired slots carry their real start (the block went on air when its first byte reached the
outputs; each entry starts its clip durations later) and are cut where the next block really
began, so a block skipped or ended early shows as short as it was. Every slot also carries its
times on the stream's own clock (``stream_start``/``stream_end``, see ``Playout._stream_clock``):
an output's timestamps (HLS program dates) keep a constant lead over those, where the Unix
times fall further behind the stream after every skip. What comes after the block
on air is known for the block already chosen; beyond it, the guide projects what the
programmer would choose from the library as it is now (``projected``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from webtv.library import Clip
from webtv.playout.block import Block, Entry

RECENT_S = 600.0  # how far back `recent` reaches
HORIZON_S = 3600.0  # how far ahead `next` reaches at least


@dataclass(frozen=True)
class Slot:
    """A block's entry (clip or filler card) at its time on air."""

    entry: Entry
    block: int
    start: float
    end: float
    projected: bool = False  # a guess from the library as it is now, not a block chosen
    stream_start: float | None = None  # on the stream's clock (None: as start, end)
    stream_end: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def clip_id(self) -> int | None:  # None for the filler card
        return self.entry.clip_id

    @property
    def prompt(self) -> str | None:
        return self.entry.prompt or None


@dataclass(frozen=True)
class Guide:
    now: Slot | None
    next: list[Slot]
    recent: list[Slot]
    keyframe_s: float | None = None  # the house keyframe interval: HLS segments open only on keyframes


def aired_slots(history: Sequence[tuple[Block, float, float]]) -> list[Slot]:
    """Every entry of the blocks that went on air (block, Unix time it did, the same on the
    stream's clock), each block cut where the next one began, on either clock."""
    slots = []
    for i, (block, started, streamed) in enumerate(history):
        cut, stream_cut = history[i + 1][1:] if i + 1 < len(history) else (math.inf, math.inf)
        at, stream_at = started, streamed
        for entry in block.entries:
            if at >= cut:
                break
            slots.append(Slot(entry, block.number, at, min(at + entry.duration, cut), stream_start=stream_at,
                              stream_end=max(stream_at, min(stream_at + entry.duration, stream_cut))))
            at += entry.duration
            stream_at += entry.duration
    return slots


def block_slots(block: Block, start: float) -> list[Slot]:
    """``block``'s entries if it starts at ``start``."""
    slots, at = [], start
    for entry in block.entries:
        slots.append(Slot(entry, block.number, at, at + entry.duration))
        at += entry.duration
    return slots


def project(order: Sequence[Clip], filler: Entry, block_seconds: float, number: int, start: float,
            until: float, most: int = 5000) -> list[Slot]:
    """Blocks ``number``, ``number + 1``... from ``start`` until ``until``, as the programmer
    makes them: clips taken in ``order`` (going round again at the end) until a block is at
    least ``block_seconds`` long; the filler card alone when there is nothing to take."""
    slots: list[Slot] = []
    at, i = start, 0
    while at < until and len(slots) < most:
        length = 0.0
        while length < block_seconds and len(slots) < most:
            if order:
                clip = order[i % len(order)]
                i += 1
                source = "fresh" if clip.times_aired == 0 and i <= len(order) else "loop"
                entry = Entry(path=clip.path, duration=clip.duration, source=source,  # type: ignore[arg-type]
                              clip_id=clip.id, prompt=clip.prompt, theme=clip.theme)
            else:
                entry = filler
            slots.append(Slot(entry, number, at, at + entry.duration, projected=True))
            at += entry.duration
            length += entry.duration
            if not order:
                break
        number += 1
    return slots


def split(slots: Iterable[Slot], now: float) -> Guide:
    """Aired and known slots into the slot on air at ``now``, what comes after, and what aired
    in the last ``RECENT_S``."""
    on, later, recent = None, [], []
    for slot in slots:
        if slot.end <= now:
            if slot.end > now - RECENT_S:
                recent.append(slot)
        elif slot.start <= now and on is None:
            on = slot
        else:
            later.append(slot)
    return Guide(on, later, recent)

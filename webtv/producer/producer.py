"""shot -> clip: the producer loop that keeps fresh clips of the current theme ready.

Per sequence: the director writes the shots, the audio backend composes one track for the
whole sequence, and each shot's clip carries its slice of that track, so the music runs on
across cuts. Each clip is encoded once into the house format, validated, then moved into
the library. Rendering runs in a daemon thread; the event loop stays free.

With a moderator, nothing is made for a blocked theme, and every sequence is moderated
before its music or any of its shots is rendered: blocked shots are dropped and logged with
the rule that blocked them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from webtv.config import HouseSection, ProducerSection
from webtv.director import Sequence, Shot
from webtv.library import Clip, Library, file_digest
from webtv.producer.base import Progress
from webtv.producer.house import encode_clip, validate_clip
from webtv.producer.stages import Stages, render_frames, sequence_track

if TYPE_CHECKING:
    from webtv.producer.pipeline import ClipPipeline
    from webtv.producer.sequences import SequenceSource

log = logging.getLogger("webtv.producer")

T = TypeVar("T")


def make_clip(
    shot: Shot,
    audio: np.ndarray,
    stages: Stages,
    house: HouseSection,
    seconds: float,
    out: Path,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> float:
    """Render, encode and validate one clip into ``out``; returns its duration. Blocking.
    ``timings``, when given, gets the seconds each stage took (video, upscale, interpolate,
    encode, validate)."""
    timings = {} if timings is None else timings
    frames = render_frames(stages, shot, seconds, house.fps, progress, timings)
    if progress:
        progress("encode", 0.0)
    started = time.monotonic()
    encode_clip(frames, audio, shot.prompt, house, out)
    timings["encode"] = time.monotonic() - started
    if progress:
        progress("encode", 1.0)
    started = time.monotonic()
    probed = validate_clip(out, house, frames.seconds)
    timings["validate"] = time.monotonic() - started
    return probed.duration


def track_slice(track: np.ndarray, index: int, seconds: float, sample_rate: int) -> np.ndarray:
    start = round(index * seconds * sample_rate)
    return track[start : start + round(seconds * sample_rate)]


async def off_loop(call: Callable[..., T], *args) -> T:
    """``call(*args)`` in a daemon thread. Unlike asyncio.to_thread, a render that takes
    minutes (torch on a GPU) does not hold up the daemon's exit: asyncio.run waits for its
    executor's threads, the interpreter does not wait for daemon threads."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def work() -> None:
        try:
            result, error = call(*args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed while this ran: nobody waits for the result

    threading.Thread(target=work, name=f"render-{getattr(call, '__name__', 'work')}", daemon=True).start()
    return await future


@dataclass
class _Rendered:
    """A clip made in the library's incoming folder, not indexed yet."""

    file: Path
    duration: float
    digest: str
    timings: dict[str, float]
    seconds: float


@dataclass
class ProducerState:
    clips_made: int = 0
    clips_failed: int = 0
    rendering: str | None = None
    last_error: str | None = None
    prompts_blocked: int = 0


class Producer:
    # STAND-IN for recipe: the new constructor, mapped onto the loop below through properties.
    def __init__(
        self,
        pipeline: "ClipPipeline",
        sequences: "SequenceSource",
        library: Library,
        theme: Callable[[], str],
        ahead: int,
        capacity: Callable[[], int] = lambda: 1,
        on_clip: Callable[[Clip], None] | None = None,
        on_stage: Callable[[str, float], None] | None = None,
    ):
        self.pipeline, self.sequences = pipeline, sequences
        self.library = library
        self.ahead = ahead
        self.capacity = capacity
        self.theme = theme
        self.on_clip = on_clip
        self.on_stage = on_stage  # on_stage(stage, seconds): a render stage finished (metrics)
        self.state = ProducerState()
        self._wake = asyncio.Event()
        self._skipped = 0  # sequences or shots not made (moderated, already made): seeds move on
        self._theme_verdict: tuple[object, str, str | None] | None = None  # (moderator, theme, rule)

    def reconfigure(self, section: ProducerSection) -> None:
        self.ahead = section.ahead
        self.wake()

    director = property(lambda self: self.sequences.director)
    moderator = property(lambda self: self.sequences.moderator)
    shots_per_sequence = property(lambda self: self.sequences.shots_per_sequence)
    seed = property(lambda self: self.sequences.seed)
    stages = property(lambda self: self.pipeline.stages)
    house = property(lambda self: self.pipeline.house)
    clip_seconds = property(lambda self: self.pipeline.clip_seconds)

    def wake(self) -> None:
        """Look again now (a clip aired, or the theme changed)."""
        self._wake.set()

    async def run(self) -> None:
        for leftover in self.library.incoming_dir.glob("*"):
            leftover.unlink(missing_ok=True)
        while True:
            theme = self.theme()
            if self.library.count_fresh(theme) >= self.ahead or await self._theme_blocked(theme):
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=2.0)
                except TimeoutError:
                    pass
                continue
            # Seeds follow the library's size so a restart goes on to new prompts.
            seed = self.seed * 1_000_003 + self.library.total_made() + self._skipped
            sequence = await self.director.write_sequence(theme, self.shots_per_sequence, seed)
            sequence = await self._moderate(sequence)
            if sequence is not None:
                sequence = self._new_shots(sequence)
            if sequence is None:
                self._skipped += 1  # the next sequence's seed moves on
                await asyncio.sleep(1.0)
                continue
            await self._produce(sequence)

    def _new_shots(self, sequence: Sequence) -> Sequence | None:
        """The shots not in the library yet (renumbered), or None: no shot is rendered twice."""
        new = [shot for shot in sequence.shots if not self.library.has_prompt(shot.prompt, shot.theme)]
        for shot in sequence.shots:
            if shot not in new:
                log.info("shot already in the library, not rendered again: prompt=%r", shot.prompt)
        if not new:
            return None
        return replace(sequence, shots=tuple(replace(shot, index=i) for i, shot in enumerate(new)))

    async def _theme_blocked(self, theme: str) -> bool:
        """Whether moderation blocks the theme; asked once per theme and moderator."""
        moderator = self.moderator
        if moderator is None:
            return False
        cached = self._theme_verdict
        if cached is not None and cached[0] is moderator and cached[1] == theme:
            return cached[2] is not None
        rule = await moderator.check(theme)
        self._theme_verdict = (moderator, theme, rule)
        if rule is not None:
            self.state.prompts_blocked += 1
            log.warning("theme blocked: rule=%s theme=%r: nothing is made for it", rule, theme)
        return rule is not None

    async def _moderate(self, sequence: Sequence) -> Sequence | None:
        """The part of ``sequence`` moderation lets through, or None; blocked prompts are logged."""
        if self.moderator is None:
            return sequence
        kept, blocked = await self.moderator.filter_sequence(sequence)
        for prompt, rule in blocked:
            self.state.prompts_blocked += 1
            log.warning("prompt blocked: rule=%s prompt=%r", rule, prompt)
        return kept

    async def _produce(self, sequence: Sequence) -> None:
        try:
            started = time.monotonic()
            track = await off_loop(sequence_track, self.stages, sequence, self.clip_seconds, self.house.sample_rate,
                                   self.house.channels)
            self._stage("music", time.monotonic() - started)
        except Exception as exc:  # a failed backend must not stop the channel
            self._failed(f"music for sequence {sequence.id}", exc)
            await asyncio.sleep(1.0)
            return
        # Shots render side by side while remote workers can take them (one at a time on a
        # local GPU); they enter the library in shot order.
        slots = asyncio.Semaphore(self._parallel())
        renders = [asyncio.create_task(self._render_shot(shot, track, sequence.theme, slots)) for shot in sequence.shots]
        try:
            for shot, render in zip(sequence.shots, renders):
                rendered = await render
                if rendered is not None:
                    self._ingest(shot, rendered)
        finally:
            for render in renders:
                render.cancel()

    def _parallel(self) -> int:
        return self.capacity()

    async def _render_shot(self, shot: Shot, track: np.ndarray, theme: str,
                           slots: asyncio.Semaphore) -> "_Rendered | None":
        async with slots:
            if self.theme() != theme:
                log.info("theme changed: shot %d of %r not rendered", shot.index, theme)
                return None
            audio = track_slice(track, shot.index, self.clip_seconds, self.house.sample_rate)
            out = self.library.incoming_path()
            self.state.rendering = shot.prompt
            started = time.monotonic()
            timings: dict[str, float] = {}
            try:
                duration = await off_loop(make_clip, shot, audio, self.stages, self.house, self.clip_seconds, out,
                                          None, timings)
                digest = await asyncio.to_thread(file_digest, out)
            except Exception as exc:
                out.unlink(missing_ok=True)
                self._failed(f"shot {shot.prompt!r}", exc)
                return None
            finally:
                if self.state.rendering == shot.prompt:
                    self.state.rendering = None
            return _Rendered(out, duration, digest, timings, time.monotonic() - started)

    def _ingest(self, shot: Shot, rendered: "_Rendered") -> None:
        try:
            clip = self.library.ingest(rendered.file, shot, rendered.duration, rendered.digest)
        except Exception as exc:
            rendered.file.unlink(missing_ok=True)
            self._failed(f"shot {shot.prompt!r}", exc)
            return
        self.state.clips_made += 1
        for stage, seconds in rendered.timings.items():
            self._stage(stage, seconds)
        log.info("clip made: clip=%d seconds=%.2f render_s=%.2f prompt=%r", clip.id, rendered.duration,
                 rendered.seconds, shot.prompt)
        if self.on_clip:
            self.on_clip(clip)

    def _stage(self, stage: str, seconds: float) -> None:
        if self.on_stage is not None:
            try:
                self.on_stage(stage, seconds)
            except Exception:  # noqa: BLE001 - metrics must not stop production
                log.exception("on_stage callback failed")

    def _failed(self, what: str, exc: Exception) -> None:
        self.state.clips_failed += 1
        self.state.last_error = f"{what}: {exc}"
        log.error("render failed, skipped: %s: %s", what, exc)

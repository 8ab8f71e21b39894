"""shot -> clip: the producer loop that keeps fresh clips of the current theme ready.

Per sequence (from the SequenceSource: written, moderated, new to the library): the
pipeline composes one music track for the whole sequence (a story sequence's lines spoken
and fitted first: its shots then last as their lines do), then makes each shot's clip with
its slice of that track, so the music runs on across cuts; a clip enters the library with the
narration as spoken. Shots render side by side up to
``capacity()`` (the healthy remote workers; one on a local GPU) and enter the library in
shot order. Rendering runs in daemon threads; the event loop stays free.

Disk space: before each sequence the producer asks its ``DiskGuard`` for room (which asks
retention first); without room it pauses (``state.paused = "disk_full"``), starts nothing and
asks again every ``poll_s``. A render that fails for want of space pauses it the same way.

Quality before air (``[quality]``): a clip enters with the seed of the take that went on and
every take's score. A shot whose takes all score under ``min_score`` (LowScore), or whose take
the recipe's ``check`` step rejects as mostly black, frozen or silent (Rejected), is dropped:
its file is deleted from ``incoming/`` and never indexed, it is logged and counted by reason in
``state.rejected`` (``low_score``, ``black``, ``frozen``, ``silent``), not as a failure, and
the next shot goes on.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from webtv.config import redact_url
from webtv.director import Shot
from webtv.library import Clip, Library, file_digest
from webtv.library.space import DiskGuard
from webtv.producer.checks import Rejected
from webtv.producer.pipeline import Abandoned, ClipPipeline, ClipResult, Track
from webtv.producer.remote.pool import JOB_WATCHER
from webtv.producer.sequences import SequenceSource
from webtv.producer.takes import LowScore

if TYPE_CHECKING:
    from webtv.config import ProducerSection
    from webtv.director import Sequence

log = logging.getLogger("webtv.producer")

T = TypeVar("T")


RENDER_THREAD = "render-"  # the name of every off_loop thread starts so


async def off_loop(call: Callable[..., T], *args) -> T:
    """``call(*args)`` in a daemon thread, in a copy of the caller's context (as
    asyncio.to_thread). Unlike asyncio.to_thread, a render that takes minutes (torch on a GPU)
    does not hold up the daemon's exit: asyncio.run waits for its executor's threads, the
    interpreter does not wait for daemon threads."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    context = contextvars.copy_context()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def work() -> None:
        try:
            result, error = context.run(call, *args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed while this ran: nobody waits for the result

    threading.Thread(target=work, name=f"{RENDER_THREAD}{getattr(call, '__name__', 'work')}", daemon=True).start()
    return await future


def renders_running() -> int:
    """How many ``off_loop`` calls are still running (their threads alive)."""
    return sum(t.name.startswith(RENDER_THREAD) and t.is_alive() for t in threading.enumerate())


@dataclass
class _Rendered:
    """A clip made in the library's incoming folder, not indexed yet."""

    file: Path
    made: ClipResult
    digest: str
    seconds: float


@dataclass
class Render:
    """One shot being rendered, as ``/api/status`` ``producer.rendering`` lists it. ``stage``
    and ``fraction`` are set from the render's thread as the recipe reports its steps."""

    shot: int  # the shot's index in its sequence
    prompt: str
    stage: str | None = None  # the recipe's step running now (video, upscale, ... encode)
    fraction: float = 0.0  # of that step
    started_at: float = 0.0  # Unix time
    worker: str | None = None  # the remote worker running this step (URL redacted); None for a local step

    def progress(self, stage: str, fraction: float) -> None:
        if stage != self.stage:
            self.worker = None  # until the step sends a job to a worker
        self.stage, self.fraction = stage, max(0.0, min(1.0, float(fraction)))

    def runs_on(self, worker_url: str) -> None:
        """A remote job of this render went to ``worker_url`` (``JOB_WATCHER``)."""
        self.worker = redact_url(worker_url)


@dataclass
class ProducerState:
    clips_made: int = 0
    clips_failed: int = 0
    rendering: list[Render] = field(default_factory=list)  # every shot being rendered now (a new list each change)
    last_error: str | None = None  # the last failure, until a clip enters the library again
    last_error_at: float | None = None  # when the last failure happened (Unix time); kept
    prompts_blocked: int = 0
    paused: str | None = None  # why production is paused: "disk_full"; None while it is not
    rejected: dict[str, int] = field(default_factory=dict)  # shots dropped before the library, by reason
    last_rejected: str | None = None  # the last shot dropped and why


class Producer:
    """Keeps ``ahead`` fresh clips of ``theme()`` in the library.

    ``on_clip(clip)``: a clip entered the library; ``on_stage(step, seconds)``: a step of
    the recipe finished (metrics); music is reported when composed, a clip's steps when it
    enters the library; ``on_failed(what, reason)``: a clip (or music) was not made.
    """

    def __init__(
        self,
        pipeline: ClipPipeline,
        sequences: SequenceSource,
        library: Library,
        theme: Callable[[], str],
        ahead: int,
        capacity: Callable[[], int] = lambda: 1,
        on_clip: Callable[[Clip], None] | None = None,
        on_stage: Callable[[str, float], None] | None = None,
        disk: DiskGuard | None = None,
        on_failed: Callable[[str, str], None] | None = None,
    ):
        self.pipeline, self.sequences = pipeline, sequences
        self.library = library
        self.theme = theme
        self.ahead = ahead
        self.capacity = capacity
        self.on_clip = on_clip
        self.on_stage = on_stage
        self.on_failed = on_failed
        self.disk = disk
        self.state = ProducerState()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look again now (a clip aired, or the theme changed)."""
        self._wake.set()

    def reconfigure(self, section: "ProducerSection") -> None:
        """Apply an edited ``[producer]`` section live."""
        self.ahead = section.ahead
        self.wake()

    async def run(self) -> None:
        for leftover in self.library.incoming_dir.glob("*"):
            leftover.unlink(missing_ok=True)
        while True:
            if not await self._room():
                await self._rest(self.disk.poll_s)
                continue
            theme = self.theme()
            if self.library.count_fresh(theme) >= self.ahead or await self._theme_blocked(theme):
                await self._rest(2.0)
                continue
            sequence = await self.sequences.next(theme)
            self.state.prompts_blocked = self.sequences.prompts_blocked
            if sequence is None:
                await asyncio.sleep(1.0)
                continue
            await self._produce(sequence)

    async def _rest(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _room(self) -> bool:
        """Whether there is disk space for the next clips (see the module)."""
        if self.disk is None:
            return True
        ok = await self.disk.room()
        self.state.paused = None if ok else "disk_full"
        return ok

    async def _theme_blocked(self, theme: str) -> bool:
        rule = await self.sequences.theme_rule(theme)
        self.state.prompts_blocked = self.sequences.prompts_blocked
        return rule is not None

    async def _produce(self, sequence: "Sequence") -> None:
        try:
            track = await off_loop(self.pipeline.compose, sequence)
        except Exception as exc:  # a failed backend must not stop the channel
            self._failed(f"music for sequence {sequence.id}", exc)
            await asyncio.sleep(1.0)
            return
        if self.state.paused:  # the disk filled while the music was made
            return
        self._report(track.timings)
        slots = asyncio.Semaphore(max(1, self.capacity()))
        renders = [asyncio.create_task(self._render_shot(shot, track, sequence.theme, slots)) for shot in sequence.shots]
        try:
            for shot, render in zip(sequence.shots, renders):
                rendered = await render
                if rendered is not None:
                    self._ingest(track.aired(shot), rendered)
        finally:
            for render in renders:
                render.cancel()

    async def _render_shot(self, shot: Shot, track: Track, theme: str,
                           slots: asyncio.Semaphore) -> "_Rendered | None":
        async with slots:
            if self.theme() != theme:
                log.info("theme changed: shot %d of %r not rendered", shot.index, theme)
                return None
            if self.state.paused or not await self._room():
                log.info("production paused (%s): shot %d of %r not rendered", self.state.paused, shot.index, theme)
                return None
            out = self.library.incoming_path()
            render = Render(shot.index, shot.prompt, started_at=time.time())
            self.state.rendering = [*self.state.rendering, render]
            JOB_WATCHER.set(render.runs_on)  # this task's context, copied into the render's thread
            abandoned = threading.Event()

            def progress(stage: str, fraction: float) -> None:
                if abandoned.is_set():
                    raise Abandoned(f"shot {shot.index}: production stopped")
                render.progress(stage, fraction)

            started = time.monotonic()
            try:
                try:
                    made = await off_loop(self.pipeline, shot, track, out, progress)
                except asyncio.CancelledError:
                    abandoned.set()  # the thread runs on to its next report, then stops
                    raise
                digest = await asyncio.to_thread(file_digest, out)
            except (LowScore, Rejected) as exc:
                out.unlink(missing_ok=True)
                self._rejected(exc.reason, f"shot {shot.prompt!r}", exc)
                return None
            except Exception as exc:
                out.unlink(missing_ok=True)
                self._failed(f"shot {shot.prompt!r}", exc)
                return None
            finally:
                self.state.rendering = [r for r in self.state.rendering if r is not render]
            return _Rendered(out, made, digest, time.monotonic() - started)

    def _ingest(self, shot: Shot, rendered: "_Rendered") -> None:
        takes, scores = rendered.made.takes, {}
        if takes is not None:  # the clip is the kept take: its seed redraws it
            shot, scores = replace(shot, seed=takes.seed), {"scores": takes.scores, "score": takes.score}
        try:
            clip = self.library.ingest(rendered.file, shot, rendered.made.duration, rendered.digest, **scores)
        except Exception as exc:
            rendered.file.unlink(missing_ok=True)
            self._failed(f"shot {shot.prompt!r}", exc)
            return
        self.state.clips_made += 1
        self.state.last_error = None  # production works again; last_error_at says when it did not
        if self.disk is not None:
            self.disk.clip_made()
        self._report(rendered.made.timings)
        log.info("clip made: clip=%d seconds=%.2f render_s=%.2f%s prompt=%r", clip.id, rendered.made.duration,
                 rendered.seconds, f" scores={list(takes.scores)} kept={takes.kept}" if takes else "", shot.prompt)
        if self.on_clip:
            self.on_clip(clip)

    def _report(self, timings: dict[str, float]) -> None:
        if self.on_stage is None:
            return
        for step, seconds in timings.items():
            try:
                self.on_stage(step, seconds)
            except Exception:  # noqa: BLE001 - metrics must not stop production
                log.exception("on_stage callback failed")

    def _rejected(self, reason: str, what: str, exc: Exception) -> None:
        """A shot dropped on purpose (quality), not a failure: counted by reason, logged, told."""
        self.state.rejected = {**self.state.rejected, reason: self.state.rejected.get(reason, 0) + 1}
        self.state.last_rejected = f"{what}: {exc}"
        log.warning("shot dropped before the library (%s): %s: %s", reason, what, exc)
        self._tell(what, exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.state.clips_failed += 1
        self.state.last_error = f"{what}: {exc}"
        self.state.last_error_at = time.time()
        log.error("render failed, skipped: %s: %s", what, exc)
        self._tell(what, exc)
        if self.disk is not None and self.disk.render_failed(exc):
            self.state.paused = "disk_full"

    def _tell(self, what: str, exc: Exception) -> None:
        if self.on_failed is not None:
            try:
                self.on_failed(what, str(exc))
            except Exception:  # noqa: BLE001 - a listener must not stop production
                log.exception("on_failed callback failed")

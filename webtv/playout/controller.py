"""The playout controller: schedules block decoders, relays them, supervised outputs behind.

Two tasks and a queue. The scheduler starts decoders; the relay airs them one after the other;
between them sits a queue of started decoders bounded at one: one decoder waits beside the
one on air, never more (the scheduler starts the next only once the relay has taken the last
one: ``Queue.join``).

Timing: each decoder runs ``-re``, so its stream clock starts when it is spawned (plus its
start-up time). Decoders are spawned on an absolute schedule, spawn(k+1) = spawn(k) +
duration(k), never on the previous decoder's EOF, so start-up latency is paid once and errors
do not accumulate over days: block k+1's clock starts exactly one block after block k's. The
relay switches to the next decoder at the current one's EOF; anything the next one wrote in
the meantime waits in its pipe.

The schedule is re-anchored to "now" only when it cannot be kept: the first block, a late
``next_block()``, or a block that failed or ended early (the relay tells the scheduler through
a one-message mailbox, ``Resume``, so the next block is spawned at once instead of leaving dead
air for the rest of the failed block's slot).

An operator's skip (``skip()``) ends the block on air deliberately: its decoder is killed and
the block takes the "ended early" path above (the next block is spawned at once, at the stream
time where the skipped one stopped), logged as a skip rather than a failure.

Just before a decoder starts, the block is handed to ``revise`` (the programmer leaves out
clips banned or deleted since it chose them and puts a clip asked to air next at its front),
so a block's duration is known only from there: the next spawn and offset are taken from the
block as revised. Then every file of its block is opened and compared with the stamp
the programmer took when it checked the clip (``clipfile``); a clip changed since is handed to
``on_changed``, which returns the block without it, and the decoder reads the files opened.

Continuity is by construction, not by timing: each decoder is told the stream time its
packets start at (``offset``, MPEG-TS ticks modulo 2^33, see ``timeline``), offset(k+1) =
offset(k) + duration(k), so the outputs read one continuous timeline and never re-base. When a
block falls short (failed, ended early, killed), the next offset is where its packets actually
ended, read from their video timestamps; a decoder started before that was known, with an
offset that no longer follows on, is replaced by one with the right offset before it airs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from webtv.config import HouseSection, OutputSection

from . import timeline
from .block import Block, Entry
from .clipfile import AirFiles, open_for_air
from .decoder import Decoder
from .output import Backoff, HlsOutput, Output, RtmpOutput
from .relay import Relay
from .verdict import Verdict, judge

log = logging.getLogger(__name__)

OnAir = Callable[[Block, float, float], object]  # block, Unix time on air, the same on the stream's clock
Changed = list[tuple[Entry, str]]  # entries whose file is not as checked, and why
OnChanged = Callable[[Block, Changed], Awaitable[Block]]


@dataclass(frozen=True)
class Resume:
    """From the relay to the scheduler: decoder ``seq`` fell short and the stream stopped at
    ``offset``; start the next decoder now, at that offset (with ``block`` when it is a block
    to air again, whose first decoder was replaced). Stale once a later decoder has started."""

    seq: int
    offset: int
    block: Block | None = None


@dataclass
class _Pumped:
    """What pumping one decoder saw."""

    stalled_s: float | None = None
    overran_s: float | None = None


class Playout:
    """Airs the blocks ``next_block()`` returns, without a break, to every configured output.

    Tunables (keyword arguments): ``lead_s`` how long before a block is due its decoder is
    spawned (it only shifts the nominal due time: consecutive spawns are always one block
    duration apart), ``prefetch_s`` how long before that ``next_block()`` is called,
    ``late_slack_s`` lateness tolerated before the schedule is re-anchored, ``stall_s`` how long
    a decoder may go silent before it is killed, ``overrun_s`` how far past its slot a block
    may run while the next one waits, ``backoff`` the output restart policy, ``origin_s`` the
    stream time the first block starts at (anything: it is taken modulo the 2^33 wrap),
    ``read_every_s`` how often the relay takes what the decoder on air wrote (the bytes reach
    the outputs in batches of about that much stream time: the CPU of the relay and of every
    output grows with the number of batches, not with the bytes).
    ``on_changed(block, changed)`` returns ``block`` without the clips whose file changed
    since they were checked (the programmer marks them broken); without it they are dropped.
    ``revise(block)`` returns the block as it may air now, just before its decoder starts.
    """

    def __init__(
        self,
        output: OutputSection,
        house: HouseSection,
        hls_dir: Path,
        next_block: Callable[[], Awaitable[Block]],
        on_air: OnAir | None = None,
        on_failed: Callable[[Block], object] | None = None,
        on_changed: OnChanged | None = None,
        revise: Callable[[Block], Awaitable[Block]] | None = None,
        *,
        lead_s: float = 0.1,
        prefetch_s: float = 2.0,
        late_slack_s: float = 0.05,
        stall_s: float = 5.0,
        overrun_s: float = 3.0,
        healthy_within_s: float = 5.0,
        backoff: Backoff = Backoff(),
        origin_s: float = 10.0,
        read_every_s: float = 0.1,
    ):
        self.output_config = output
        self.house = house
        self.hls_dir = Path(hls_dir)
        self.next_block = next_block
        self.on_air = on_air
        self.on_failed = on_failed
        self.on_changed = on_changed
        self.revise = revise
        self._airing: Decoder | None = None  # the decoder whose bytes the relay passes on now
        self.lead_s = lead_s
        self.prefetch_s = prefetch_s
        self.late_slack_s = late_slack_s
        self.stall_s = stall_s
        self.overrun_s = overrun_s
        self.healthy_within_s = healthy_within_s
        self.backoff = backoff
        self.read_every_s = read_every_s
        self.origin = timeline.ticks(origin_s) % timeline.TS_WRAP
        self.frame_ticks = timeline.ticks(1 / house.fps)
        self.buffer_bytes = output.buffer_kb * 1024
        self.relay = Relay(gop_limit=max(64 * 1024, self.buffer_bytes // 2))
        self._hls: HlsOutput | None = None
        self._rtmp: dict[str, RtmpOutput] = {}  # url -> output
        self._rtmp_counter = 0
        self._tasks: list[asyncio.Task] = []
        self._running = False
        self._queue: asyncio.Queue[Decoder] = asyncio.Queue(maxsize=1)  # started, waiting to air
        self._resume: asyncio.Queue[Resume] = asyncio.Queue(maxsize=1)  # relay -> scheduler
        self._decoders: set[Decoder] = set()  # every decoder process not yet reaped
        self._now_playing: tuple[Block, float] | None = None  # block, epoch it went on air
        self._stream_mark: tuple[int, float] | None = None  # the last block on air: offset, stream clock
        self._started_loop: float | None = None
        self._first_byte_loop: float | None = None
        self._cpu_decoders = 0.0
        self._cpu_removed = 0.0
        self._bg: set[asyncio.Task] = set()
        self.blocks_aired = 0
        self.decoder_failures = 0
        self.late_spawns = 0
        self.replaced_decoders = 0
        self.joins: list[dict] = []  # last 50 joins: block, silence_s before its first byte, late_s vs due

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        loop = asyncio.get_running_loop()
        self._started_loop = loop.time()
        config = self.output_config
        self.buffer_bytes = config.buffer_kb * 1024
        self.relay = Relay(gop_limit=max(64 * 1024, self.buffer_bytes // 2))
        self._rtmp.clear()
        self._queue = asyncio.Queue(maxsize=1)
        self._resume = asyncio.Queue(maxsize=1)
        self._stream_mark = None
        if config.hls:
            self._hls = HlsOutput(
                "hls", self.hls_dir, self.house.gop_seconds, config.hls_list_size,
                self.buffer_bytes, backoff=self.backoff, primer=self.relay.snapshot,
            )
            self.relay.add(self._hls)
            await self._hls.start()
        for url in config.rtmp_urls:
            await self._add_rtmp(url)
        self._tasks = [
            loop.create_task(self._schedule(), name="playout-schedule"),
            loop.create_task(self._relay_loop(), name="playout-relay"),
        ]
        log.info("playout started: %s", ", ".join(o.name + " " + o.target for o in self.relay.outputs.values()) or "no outputs")

    async def stop(self) -> None:
        """Stop everything: decoders killed, outputs closed (SIGTERM, SIGKILL after 1.5 s)."""
        if not self._running:
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        decoders = list(self._decoders)
        self._now_playing = None
        outputs = list(self.relay.outputs.values())
        await asyncio.gather(
            *(d.kill() for d in decoders),
            *(o.stop(grace=1.2) for o in outputs),
            return_exceptions=True,
        )
        for d in decoders:
            self._account(d)
        self._decoders.clear()
        for task in list(self._bg):
            task.cancel()
        log.info("playout stopped")

    async def reconfigure(self, output: OutputSection) -> None:
        """A new ``[output]`` section: ``rtmp_urls`` apply now (destinations added and removed
        live); ``hls``, ``hls_list_size`` and ``buffer_kb`` at the next ``start()``."""
        await self.set_rtmp_urls(output.rtmp_urls)
        self.output_config = output

    # -- the schedule ------------------------------------------------------------------------

    async def _resume_before(self, when: float | None, seq: int) -> Resume | None:
        """Wait until loop time ``when`` (None: do not wait); return early with the relay's
        Resume after decoder ``seq`` if one comes. Resumes about earlier decoders are stale
        (a later decoder started already; the relay checks that one's offset) and dropped."""
        loop = asyncio.get_running_loop()
        while True:
            delay = 0.0 if when is None else when - loop.time()
            try:
                if delay <= 0:
                    resume = self._resume.get_nowait()
                else:
                    resume = await asyncio.wait_for(self._resume.get(), delay)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                return None
            if resume.seq == seq:
                return resume

    async def _fetch_block(self) -> Block:
        delay = 0.5
        while True:
            try:
                block = await self.next_block()
                if not block.entries or block.duration <= 0:
                    raise ValueError(f"block {block.number} is empty")
                return block
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the programme side failing must not end playout
                log.error("next_block() failed: %s; asking again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        next_spawn: float | None = None  # loop time the next decoder is due to start; None: now
        offset = self.origin  # the stream time the next block starts at
        seq = 0  # decoders started so far
        fetched: Block | None = None  # a block from next_block(), not started yet
        while True:
            await self._queue.join()  # the relay has taken every started decoder
            resume = None
            if next_spawn is not None:
                resume = await self._resume_before(next_spawn - self.prefetch_s, seq)
            if resume is None or resume.block is None:
                if fetched is None:
                    fetched = await self._fetch_block()
                if resume is None:
                    resume = await self._resume_before(next_spawn, seq)
            if resume is not None and resume.block is not None:
                block = resume.block  # a replaced decoder's block airs first; `fetched` waits
            else:
                block, fetched = fetched, None
            now = loop.time()
            if resume is not None:
                spawn_at, offset = now, resume.offset
            elif next_spawn is None:
                spawn_at = now
            elif now > next_spawn + self.late_slack_s:
                self.late_spawns += 1
                log.warning("block %d: spawned %.2f s late (next_block slow?); schedule re-anchored",
                            block.number, now - next_spawn)
                spawn_at = now
            else:
                spawn_at = next_spawn
            if self.revise is not None:
                block = await self.revise(block)
            block, files = await self._open_files(block)
            decoder = Decoder(block, due=spawn_at + self.lead_s, offset=offset, seq=seq + 1, files=files)
            self._decoders.add(decoder)  # before the spawn, so stop() finds it whatever happens
            try:
                await decoder.start()
            except OSError as exc:
                log.error("block %d: cannot start decoder: %s", block.number, exc)
                self._decoders.discard(decoder)
                self.decoder_failures += 1
                next_spawn = None
                await asyncio.sleep(0.5)
                continue
            seq += 1
            self._queue.put_nowait(decoder)  # never full: join() above saw it empty
            next_spawn = spawn_at + block.duration
            offset = timeline.advance(offset, timeline.ticks(block.duration))

    async def _open_files(self, block: Block) -> tuple[Block, AirFiles]:
        """Open ``block``'s files for its decoder; a clip changed since it was checked is
        handed to ``on_changed`` and the block it returns is opened instead (three tries: a file
        changing all the time is left out of the decoder's list, and the block ends early)."""
        files = await asyncio.to_thread(open_for_air, block)
        for _ in range(2):
            if not files.changed:
                break
            files.close()
            for entry, why in files.changed:
                log.warning("block %d: clip %s not aired: %s", block.number, entry.path.name, why)
            if self.on_changed is not None:
                block = await self.on_changed(block, files.changed)
            else:
                gone = {entry.path for entry, _ in files.changed}
                block = replace(block, entries=tuple(e for e in block.entries if e.path not in gone) or block.entries)
            files = await asyncio.to_thread(open_for_air, block)
        return block, files

    # -- the relay ---------------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        end: int | None = None  # stream time where the aired stream stopped (None: nothing yet)
        while True:
            decoder = await self._queue.get()
            self._queue.task_done()  # taken: the scheduler may start the next one
            try:
                if end is not None and abs(timeline.between(decoder.offset, end)) > self.frame_ticks:
                    await self._replace(decoder, end)
                    continue
                self._airing = decoder
                try:
                    verdict = await self._air(decoder)
                finally:
                    self._airing = None
                end = self.relay.span.end(self.frame_ticks)
                if not verdict.ok:
                    self._tell_scheduler(Resume(decoder.seq, end))
            finally:
                if not decoder.child.running:
                    self._account(decoder)
                    self._decoders.discard(decoder)

    async def skip(self) -> Entry | None:
        """End the block on air now (an operator's skip); the next block follows at once, on
        the same stream timeline. Returns the entry that was on air (None when nothing was)."""
        decoder, now = self._airing, self.now_playing()
        if decoder is None or decoder.first_byte_at is None or now is None:
            return None
        decoder.skipped = True
        log.info("block %d: skipped by the operator at %s", decoder.block.number, now[1].path.name)
        await decoder.kill()
        return now[1]

    def _tell_scheduler(self, resume: Resume) -> None:
        """Post ``resume``, replacing an unread one (only the latest can still apply)."""
        try:
            self._resume.get_nowait()
        except asyncio.QueueEmpty:
            pass
        self._resume.put_nowait(resume)

    async def _replace(self, decoder: Decoder, end: int) -> None:
        """``decoder`` was started before the block ahead of it fell short: its packets would
        leave a gap (or overlap) in stream time. Air its block again from ``end``."""
        self.replaced_decoders += 1
        log.warning("block %d: decoder started at stream time %.3f s, the stream stopped at %.3f s; "
                    "starting it again there", decoder.block.number, timeline.seconds(decoder.offset),
                    timeline.seconds(end))
        self._tell_scheduler(Resume(decoder.seq, end, decoder.block))  # before any await: no later decoder yet
        await decoder.kill()

    def _account(self, decoder: Decoder) -> None:
        if not decoder.accounted:
            decoder.accounted = True
            self._cpu_decoders += decoder.child.cpu_seconds()

    async def _pump(self, decoder: Decoder) -> _Pumped:
        """Relay ``decoder``'s bytes until its EOF; kill it if it goes silent for ``stall_s``, or
        runs ``overrun_s`` past its slot while the next decoder waits."""
        loop = asyncio.get_running_loop()
        block = decoder.block
        relay = self.relay
        relay.new_source(decoder.offset)
        slot_end = decoder.due + block.duration
        while True:
            try:
                async with asyncio.timeout(self.stall_s):
                    data = await decoder.read(self.read_every_s)
            except TimeoutError:
                await decoder.kill()
                return _Pumped(stalled_s=self.stall_s)
            if not data:
                return _Pumped()
            if decoder.first_byte_at is None:
                self._went_on_air(decoder, loop.time())
            decoder.bytes_out += len(data)
            relay.take(data)
            late = loop.time() - slot_end
            if late > self.overrun_s and not self._queue.empty():
                await decoder.kill()
                return _Pumped(overran_s=late)

    def _went_on_air(self, decoder: Decoder, now: float) -> None:
        block = decoder.block
        last = self.relay.last_byte_at
        decoder.first_byte_at = now
        if self._first_byte_loop is None:
            self._first_byte_loop = now
        started_at = time.time()
        self._now_playing = (block, started_at)
        self.blocks_aired += 1
        self.joins.append({
            "block": block.number,
            "silence_s": round(now - last, 3) if last is not None else None,
            "late_s": round(now - decoder.due, 3),
            "stream_s": round(timeline.seconds(decoder.offset), 3),
        })
        del self.joins[:-50]
        self._callback(self.on_air, block, started_at, self._stream_clock(decoder.offset, started_at))

    def _stream_clock(self, offset: int, started_at: float) -> float:
        """When the block starting at stream time ``offset`` (on air at Unix time
        ``started_at``) starts on the stream's own clock: the first block's Unix start plus the
        stream time since. An output's timestamps (HLS program dates) keep a constant lead over
        it, while the Unix starts fall a little further behind the stream after every block
        that ended early (the next decoder's start-up time is not stream time)."""
        if self._stream_mark is None:
            at = started_at
        else:
            mark, mark_at = self._stream_mark
            at = mark_at + timeline.seconds(timeline.between(offset, mark))
        self._stream_mark = (offset, at)
        return at

    async def _air(self, decoder: Decoder) -> Verdict:
        """Pump ``decoder`` to its end, then judge how it went; a failed block is logged and
        reported through ``on_failed``."""
        loop = asyncio.get_running_loop()
        block = decoder.block
        took_at = loop.time()
        pumped = await self._pump(decoder)
        code = await decoder.finish()
        media_s = timeline.seconds(self.relay.span.length(self.frame_ticks))
        verdict = judge(
            bytes_out=decoder.bytes_out, exit_code=code, media_s=media_s, duration_s=block.duration,
            stalled_s=pumped.stalled_s, overran_s=pumped.overran_s,
        )
        if not verdict.ok and decoder.skipped:
            log.info("block %d: ended by a skip after %.1f s of stream time", block.number, media_s)
        elif not verdict.ok:
            self.decoder_failures += 1
            log.error("block %d (%s): decoder %s after %.1f s (%.1f s of stream time) of %.1f s: %s",
                      block.number, block.playlist, verdict.reason,
                      loop.time() - (decoder.first_byte_at or took_at), media_s, block.duration,
                      decoder.stderr_text() or "no message")
            self._callback(self.on_failed, block)
        elif decoder.stderr_text():
            log.debug("block %d decoder: %s", block.number, decoder.stderr_text())
        return verdict

    def _callback(self, fn: Callable | None, *args) -> None:
        if fn is None:
            return
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._bg.add(task)
                task.add_done_callback(self._bg.discard)
        except Exception:  # noqa: BLE001
            log.exception("%s callback failed", getattr(fn, "__name__", fn))

    # -- outputs -----------------------------------------------------------------------------

    async def _add_rtmp(self, url: str) -> RtmpOutput:
        self._rtmp_counter += 1
        out = RtmpOutput(f"rtmp-{self._rtmp_counter}", url, self.buffer_bytes, backoff=self.backoff,
                         primer=self.relay.snapshot)
        self._rtmp[url] = out
        self.relay.add(out)
        await out.start()
        log.info("output %s: %s added", out.name, out.target)
        return out

    async def set_rtmp_urls(self, urls: Iterable[str]) -> None:
        """Add and remove RTMP destinations live; HLS and unchanged destinations are untouched."""
        wanted = list(dict.fromkeys(urls))
        OutputSection(rtmp_urls=wanted)  # validates: raises pydantic.ValidationError
        if not self._running:
            self.output_config = self.output_config.model_copy(update={"rtmp_urls": wanted})
            return
        gone = [self._rtmp.pop(u) for u in list(self._rtmp) if u not in wanted]
        for out in gone:
            self.relay.remove(out.name)
        await asyncio.gather(*(self._retire(out) for out in gone))
        for url in wanted:
            if url not in self._rtmp:
                await self._add_rtmp(url)
        self.output_config = self.output_config.model_copy(update={"rtmp_urls": wanted})

    async def _retire(self, out: Output) -> None:
        await out.stop(grace=1.2)
        self._cpu_removed += out.cpu_seconds()
        log.info("output %s: %s removed", out.name, out.target)

    # -- reporting ---------------------------------------------------------------------------

    def outputs_status(self) -> list[dict]:
        return [o.status() for o in self.relay.outputs.values()]

    def outputs(self) -> list[Output]:
        return list(self.relay.outputs.values())

    def now_playing(self) -> tuple[Block, Entry, float] | None:
        """The block on air, the entry on air within it, and when that entry went on air (epoch)."""
        if self._now_playing is None:
            return None
        block, started_at = self._now_playing
        entry, offset = block.locate(max(0.0, time.time() - started_at))
        return block, entry, started_at + offset

    def last_byte_age(self) -> float | None:
        """Seconds since the relay last passed on a byte (None before the first)."""
        if self.relay.last_byte_at is None:
            return None
        return asyncio.get_running_loop().time() - self.relay.last_byte_at

    def healthy(self) -> bool:
        """Running, and bytes flowed within ``healthy_within_s``."""
        if not self._running:
            return False
        age = self.last_byte_age()
        if age is None:
            return asyncio.get_running_loop().time() - (self._started_loop or 0) < self.healthy_within_s * 3
        return age < self.healthy_within_s

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) of the decoders and outputs so far, this run."""
        decoders = self._cpu_decoders + sum(
            d.child.cpu_seconds() for d in self._decoders if not d.accounted
        )
        outputs = {o.name: o.cpu_seconds() for o in self.relay.outputs.values()}
        total = decoders + self._cpu_removed + sum(outputs.values())
        return {"decoders": decoders, **outputs, "removed_outputs": self._cpu_removed, "total": total}

    def stats(self) -> dict:
        loop = asyncio.get_running_loop()
        on_air_s = loop.time() - self._first_byte_loop if self._first_byte_loop is not None else 0.0
        return {
            "running": self._running,
            "healthy": self.healthy(),
            "on_air_s": round(on_air_s, 1),
            "bytes_relayed": self.relay.bytes,
            "last_byte_age_s": self.last_byte_age(),
            "blocks_aired": self.blocks_aired,
            "decoder_failures": self.decoder_failures,
            "late_spawns": self.late_spawns,
            "cpu_s": {k: round(v, 2) for k, v in self.cpu_seconds().items()},
            "pids": self.pids(),
        }

    def pids(self) -> list[int]:
        """Every live child: decoders and outputs."""
        found = [d.pid for d in self._decoders if d.child.running]
        found += [o.pid for o in self.relay.outputs.values() if o.pid is not None]
        return found

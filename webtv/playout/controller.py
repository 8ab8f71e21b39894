"""The playout controller: schedules block decoders, relays them, supervises the outputs.

Timing: each decoder runs ``-re``, so its stream clock starts when it is spawned (plus its
start-up time). Decoders are spawned on an absolute schedule, spawn(k+1) = spawn(k) +
duration(k), never on the previous decoder's EOF, so start-up latency is paid once and errors
do not accumulate over days: block k+1's clock starts exactly one block after block k's. The
relay switches to the next decoder at the current one's EOF; anything the next one wrote in
the meantime waits in its pipe. The output ffmpegs re-base the MPEG-TS timestamps at each join.

The schedule is re-anchored to "now" only when it cannot be kept: the first block, a late
``next_block()``, or a block that failed or ended early (then the next block is spawned at
once instead of leaving dead air for the rest of the failed block's slot).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from webtv.config import HouseSection, OutputSection

from .block import Block, Entry
from .decoder import Decoder
from .output import Backoff, HlsOutput, Output, RtmpOutput
from .relay import Relay

log = logging.getLogger(__name__)

OnAir = Callable[[Block, float], object]


class Playout:
    """Airs the blocks ``next_block()`` returns, without a break, to every configured output.

    Tunables (keyword arguments): ``lead_s`` how long before a block is due its decoder is
    spawned (it only shifts the nominal due time: consecutive spawns are always one block
    duration apart), ``prefetch_s`` how long before that ``next_block()`` is called,
    ``late_slack_s`` lateness tolerated before the schedule is re-anchored, ``stall_s`` how long
    a decoder may go silent before it is killed, ``overrun_s`` how far past its slot a block
    may run while the next one waits, ``backoff`` the output restart policy.
    """

    def __init__(
        self,
        output: OutputSection,
        house: HouseSection,
        hls_dir: Path,
        next_block: Callable[[], Awaitable[Block]],
        on_air: OnAir | None = None,
        on_failed: Callable[[Block], object] | None = None,
        *,
        lead_s: float = 0.1,
        prefetch_s: float = 2.0,
        late_slack_s: float = 0.05,
        stall_s: float = 5.0,
        overrun_s: float = 3.0,
        healthy_within_s: float = 5.0,
        backoff: Backoff = Backoff(),
    ):
        self.output_config = output
        self.house = house
        self.hls_dir = Path(hls_dir)
        self.next_block = next_block
        self.on_air = on_air
        self.on_failed = on_failed
        self.lead_s = lead_s
        self.prefetch_s = prefetch_s
        self.late_slack_s = late_slack_s
        self.stall_s = stall_s
        self.overrun_s = overrun_s
        self.healthy_within_s = healthy_within_s
        self.backoff = backoff
        self.buffer_bytes = output.buffer_kb * 1024
        self.relay = Relay(gop_limit=max(64 * 1024, self.buffer_bytes // 2))
        self._hls: HlsOutput | None = None
        self._rtmp: dict[str, RtmpOutput] = {}  # url -> output
        self._rtmp_counter = 0
        self._tasks: list[asyncio.Task] = []
        self._running = False
        self._hurry = asyncio.Event()  # re-anchor: spawn the next block now
        self._slot: Decoder | None = None  # spawned, waiting for the relay
        self._spawning = False  # the scheduler is starting the next decoder right now
        self._slot_filled = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._slot_free.set()
        self._current: Decoder | None = None
        self._decoders: set[Decoder] = set()  # every decoder process not yet reaped
        self._now_playing: tuple[Block, float] | None = None  # block, epoch it went on air
        self._started_loop: float | None = None
        self._first_byte_loop: float | None = None
        self._cpu_decoders = 0.0
        self._cpu_removed = 0.0
        self._bg: set[asyncio.Task] = set()
        self.blocks_aired = 0
        self.decoder_failures = 0
        self.late_spawns = 0
        self.joins: list[dict] = []  # last 50 joins: block, silence_s before its first byte, late_s vs due

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        loop = asyncio.get_running_loop()
        self._started_loop = loop.time()
        self.relay.outputs.clear()
        self._rtmp.clear()
        self._hurry.clear()
        self._slot_filled.clear()
        self._slot_free.set()
        if self.output_config.hls:
            self._hls = HlsOutput(
                "hls", self.hls_dir, self.house.gop_seconds, self.output_config.hls_list_size,
                self.buffer_bytes, backoff=self.backoff,
            )
            self.relay.add(self._hls)
            await self._hls.start()
        for url in self.output_config.rtmp_urls:
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
        self._current = self._slot = None
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

    # -- the schedule ------------------------------------------------------------------------

    async def _sleep_until(self, when: float) -> None:
        """Sleep until loop time ``when``, or until a re-anchor is asked for."""
        delay = when - asyncio.get_running_loop().time()
        if delay <= 0 or self._hurry.is_set():
            return
        try:
            await asyncio.wait_for(self._hurry.wait(), delay)
        except asyncio.TimeoutError:
            pass

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
        next_spawn: float | None = None
        while True:
            await self._slot_free.wait()  # at most one decoder waits beside the one on air
            if next_spawn is not None:
                await self._sleep_until(next_spawn - self.prefetch_s)
            block = await self._fetch_block()
            if next_spawn is not None:
                await self._sleep_until(next_spawn)
            now = loop.time()
            if next_spawn is None or self._hurry.is_set():
                spawn_at = now
            elif now > next_spawn + self.late_slack_s:
                self.late_spawns += 1
                log.warning("block %d: spawned %.2f s late (next_block slow?); schedule re-anchored",
                            block.number, now - next_spawn)
                spawn_at = now
            else:
                spawn_at = next_spawn
            self._hurry.clear()
            decoder = Decoder(block, due=spawn_at + self.lead_s)
            self._decoders.add(decoder)  # before the spawn, so stop() finds it whatever happens
            self._spawning = True
            try:
                await decoder.start()
            except OSError as exc:
                log.error("block %d: cannot start decoder: %s", block.number, exc)
                self._decoders.discard(decoder)
                self.decoder_failures += 1
                next_spawn = None
                await asyncio.sleep(0.5)
                continue
            finally:
                self._spawning = False
            self._slot = decoder
            self._slot_free.clear()
            self._slot_filled.set()
            next_spawn = spawn_at + block.duration

    # -- the relay ---------------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        while True:
            await self._slot_filled.wait()
            decoder, self._slot = self._slot, None
            self._slot_filled.clear()
            self._slot_free.set()
            self._current = decoder
            try:
                await self._air(decoder)
            finally:
                if not decoder.child.running:
                    self._account(decoder)
                    self._decoders.discard(decoder)
                self._current = None

    def _account(self, decoder: Decoder) -> None:
        if not decoder.accounted:
            decoder.accounted = True
            self._cpu_decoders += decoder.child.cpu_seconds()

    async def _air(self, decoder: Decoder) -> None:
        loop = asyncio.get_running_loop()
        block = decoder.block
        relay = self.relay
        relay.new_source()
        took_at = loop.time()
        gap_before = (took_at - relay.last_byte_at) if relay.last_byte_at is not None else None
        first = True
        why_stopped = ""
        while True:
            try:
                async with asyncio.timeout(self.stall_s):
                    data = await decoder.read()
            except TimeoutError:
                why_stopped = f"no output for {self.stall_s:g} s"
                await decoder.kill()
                break
            if not data:
                break
            if first:
                first = False
                now = loop.time()
                decoder.first_byte_at = now
                if self._first_byte_loop is None:
                    self._first_byte_loop = now
                started_at = time.time()
                self._now_playing = (block, started_at)
                self.blocks_aired += 1
                self.joins.append({
                    "block": block.number,
                    "silence_s": round(now - relay.last_byte_at, 3) if gap_before is not None else None,
                    "late_s": round(now - decoder.due, 3),
                })
                del self.joins[:-50]
                self._callback(self.on_air, block, started_at)
            decoder.bytes_out += len(data)
            relay.take(data)
            if self._slot is not None and loop.time() > decoder.due + block.duration + self.overrun_s:
                why_stopped = f"ran {loop.time() - decoder.due - block.duration:.1f} s past its slot"
                await decoder.kill()
                break
        code = await decoder.finish()
        ended = loop.time()
        slot_end = decoder.due + block.duration
        short = ended < slot_end - 0.5  # e.g. a clip it could not open after the first
        if why_stopped or code != 0 or decoder.bytes_out == 0 or short:
            self.decoder_failures += 1
            what = why_stopped or (f"exit code {code}" if code else f"ended {slot_end - ended:.1f} s early")
            log.error("block %d (%s): decoder %s after %.1f s of %.1f s: %s",
                      block.number, block.playlist, what,
                      ended - (decoder.first_byte_at or took_at), block.duration,
                      decoder.stderr_text() or "no message")
            self._callback(self.on_failed, block)
        elif decoder.stderr_text():
            log.debug("block %d decoder: %s", block.number, decoder.stderr_text())
        # Ended well before its slot did: air the next block now rather than leave dead air.
        if short and self._slot is None and not self._spawning:
            log.warning("block %d left %.1f s of its slot empty; next block now", block.number, slot_end - ended)
            self._hurry.set()

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
        out = RtmpOutput(f"rtmp-{self._rtmp_counter}", url, self.buffer_bytes, backoff=self.backoff)
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

    async def reconfigure(self, output: OutputSection) -> None:  # STAND-IN for playout
        """Apply an edited ``[output]``: RTMP destinations live; the rest waits for the next start."""
        await self.set_rtmp_urls(output.rtmp_urls)

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

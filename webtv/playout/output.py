"""The output side: one supervised ffmpeg per destination, fed MPEG-TS on stdin, ``-c copy``.

An RTMP output is ``-f mpegts -i pipe:0 -c copy -f flv URL``; ffmpeg never reconnects by
itself, so supervision is the reconnect: a process that exits (killed, server gone, broken
pipe, or restarted by the relay because its buffer overflowed) is started again after a
backoff: 0.25 s after a stable run, doubling on each failure up to 30 s, back to 0.25 s
once bytes have flowed to the destination for ``stable_s`` (a process that only lived long,
e.g. waiting on a server that never completes the handshake, does not count). HLS is the
same with the hls muxer, run inside the HLS folder so no path (spaces, quotes, percent
signs) ever reaches ffmpeg's command line or its segment-name pattern.

State comes from bytes actually written, as ffmpeg reports them (``-progress`` on its
stdout, every 0.5 s: the muxed size and time grow only once the destination took the
bytes): ``connecting`` while the process is up and has written nothing yet, ``running``
while it writes, ``stalled`` when bytes fed to it have waited ``stall_s`` without anything
being written (a SIGSTOPped ffmpeg, a server that accepts the socket and never answers, a
peer that stopped reading). An output the relay has nothing for (between blocks) is not
stalled: only bytes it was given and did not write count.

An output whose process runs may still fail: ffmpeg's hls muxer says nothing when a segment
cannot be written (a full disk) and lists it anyway, empty or cut short. ``problem()`` says so
(``HlsOutput.segment_problem``: the newest listed segments, whole TS packets or not), each such
segment counts in ``write_failures``, and ``/healthz`` names it. A restart would not mend it, so
the output is not restarted for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from webtv.config import redact_url
from webtv.media.commands import HLS_INDEX, hls_command, rtmp_command

from .proc import Child

log = logging.getLogger(__name__)

Kind = Literal["rtmp", "hls"]
State = Literal["connecting", "running", "stalled", "backoff", "stopped"]
STATES: tuple[State, ...] = ("connecting", "running", "stalled", "backoff", "stopped")

_SEGMENT_RE = re.compile(r"^seg_(\d+)\.ts(\.tmp)?$")
TS_PACKET = 188  # bytes; the mpegts muxer writes whole packets (the relay cuts on them too)

# Expected at a block join (a new PAT/PMT and continuity counters; the first audio packet
# of a block overlaps the last one's tail by a few ms and is moved on) or after a restart; not news.
_ROUTINE = ("timestamp discontinuity", "Non-monotonous DTS", "Non-monotonic DTS", "corrupt input packet", "out of order",
            "Packet corrupt", "changing to")


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.25
    cap_s: float = 30.0
    factor: float = 2.0
    stable_s: float = 10.0  # bytes written this long in one run reset the delay to first_s

    def delay(self, quick_failures: int) -> float:
        return min(self.cap_s, self.first_s * self.factor ** max(0, quick_failures - 1))


def read_media_sequence(index: Path) -> tuple[int, int] | None:
    """(EXT-X-MEDIA-SEQUENCE, number of segments) of an HLS playlist, or None."""
    try:
        text = index.read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    if not m:
        return None
    return int(m.group(1)), len(re.findall(r"^#EXTINF:", text, re.M))


def _segment_number(name: str) -> int:
    m = _SEGMENT_RE.match(name)
    return int(m.group(1)) if m else -1


class Output:
    """A supervised output process. ``feed`` never blocks; ``primer()`` supplies the bytes a
    fresh process starts with (the relay's GOP cache: PAT, PMT and everything since the last
    video keyframe), so it begins at a keyframe at once."""

    def __init__(
        self,
        name: str,
        kind: Kind,
        target: str,
        buffer_bytes: int,
        primer: Callable[[], bytes] = lambda: b"",
        backoff: Backoff = Backoff(),
        stall_s: float = 4.0,
    ):
        self.name = name
        self.kind = kind
        self.target = target  # shown in status and logs; never a stream key
        self.buffer_bytes = buffer_bytes
        self.backoff = backoff
        self.stall_s = stall_s
        self.primer = primer
        self._phase: Literal["up", "backoff", "stopped"] = "stopped"
        self._shown: State = "stopped"  # the state last logged
        # this run's writes (loop times): first and last time the written size grew, and since
        # when bytes fed to the process have been waiting for a write (None: nothing waits)
        self._first_write_at: float | None = None
        self._last_write_at: float | None = None
        self._waiting_since: float | None = None
        self.restarts = 0
        self.quick_failures = 0
        self.retry_at: float | None = None  # loop time of the next start while in backoff
        self.last_backoff_s: float | None = None
        self.last_exit: str = ""
        self.child: Child | None = None
        self.cpu_exited = 0.0
        self.bytes_in = 0
        self.overflows = 0
        self._accepting = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._started_once = False

    # -- what differs per kind -------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def cwd(self) -> Path | None:
        return None

    def scrub(self, line: str) -> str:
        return line

    def before_start(self) -> None:
        """Runs just before each (re)start, on the loop thread."""

    def problem(self) -> str | None:
        """Why the output fails while its process runs (None: it does not, as far as we can tell)."""
        return None

    @property
    def write_failures(self) -> int:
        """What the output's process could not write (HLS: segments), since start."""
        return 0

    # -- supervision -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"output-{self.name}")

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            self._phase = "up"
            self._first_write_at = self._last_write_at = self._waiting_since = None
            self.retry_at = None
            self.before_start()
            child = Child(
                self.command(), name=self.name, stdin=True, stdout=True, cwd=self.cwd(), scrub=self.scrub,
                on_line=self._on_line, tail=20,
            )
            self.child = child
            try:
                await self._run_once(child)
            except BaseException:
                child.signal(signal.SIGKILL)  # cancelled: leave nothing behind
                raise
            if self._stop.is_set():
                break
            if self.wrote_for_s() >= self.backoff.stable_s:
                self.quick_failures = 1
            else:
                self.quick_failures += 1
            delay = self.backoff.delay(self.quick_failures)
            self.last_backoff_s = delay
            self.restarts += 1
            self._phase = self._shown = "backoff"
            self.retry_at = loop.time() + delay
            log.warning("output %s (%s) stopped, %s; restart #%d in %.2f s",
                        self.name, self.target, self.last_exit, self.restarts, delay)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
        self._phase = self._shown = "stopped"
        self.retry_at = None

    async def _run_once(self, child: Child) -> tuple[int | None, float]:
        """Start ``child``, prime it, wait for its end; the exit code and seconds it lived."""
        loop = asyncio.get_running_loop()
        try:
            await child.spawn()
        except OSError as exc:
            self.last_exit = f"cannot start ffmpeg: {exc}"
            log.error("output %s: %s", self.name, self.last_exit)
            return None, 0.0
        if self._stop.is_set():  # stop() came while it was starting
            await child.kill()
            return child.returncode, 0.0
        self._started_once = True
        first = self.primer()
        if first and child.write(first):
            self._waiting_since = loop.time()
        self._accepting = True
        helpers = [loop.create_task(self._read_progress(child), name=f"output-{self.name}-progress"),
                   loop.create_task(self._watch(child), name=f"output-{self.name}-watch")]
        try:
            code = await child.wait()
        finally:
            for task in helpers:
                task.cancel()
            self._accepting = False
        lived = loop.time() - child.started
        self.cpu_exited += child.cpu_seconds()
        child.cleanup()
        why = child.stderr_tail[-1] if child.stderr_tail else "no message"
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.last_exit = f"{how} after {lived:.1f} s: {why}"
        return code, lived

    async def _read_progress(self, child: Child) -> None:
        """Read ffmpeg's ``-progress`` lines until EOF (stdout must be drained, or ffmpeg
        blocks); a growing ``total_size`` (bytes the muxer wrote) or ``out_time_us`` (for
        muxers that write files of their own, as HLS does) is a write."""
        loop = asyncio.get_running_loop()
        seen = {b"total_size": 0, b"out_time_us": 0}
        pending = b""
        while chunk := await child.stdout.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-256:]  # progress lines are short: a longer one is not one
            for line in lines:
                key, _, value = line.strip().partition(b"=")
                if key in seen and value.isdigit() and int(value) > seen[key]:
                    seen[key] = int(value)
                    now = loop.time()
                    if self._first_write_at is None:
                        self._first_write_at = now
                    self._last_write_at = now
                    self._waiting_since = None

    async def _watch(self, child: Child) -> None:
        """Log each change of state while the process runs (the state itself is computed
        when asked, so it is never stale)."""
        while True:
            await asyncio.sleep(0.25)
            state = self.state
            if state == self._shown:
                continue
            if state == "stalled":
                log.warning("output %s (%s) stalled: bytes given to it %.1f s ago are not written yet",
                            self.name, self.target, self.stall_s)
            elif state == "running":
                log.info("output %s (%s) running: bytes are written", self.name, self.target)
            self._shown = state

    @property
    def state(self) -> State:
        if self._phase != "up":
            return self._phase
        waiting = self._waiting_since
        if waiting is not None and asyncio.get_running_loop().time() - waiting > self.stall_s:
            return "stalled"
        return "connecting" if self._last_write_at is None else "running"

    def wrote_for_s(self) -> float:
        """Seconds from this run's first write to its last (0 before any)."""
        if self._first_write_at is None or self._last_write_at is None:
            return 0.0
        return self._last_write_at - self._first_write_at

    def last_write_age(self) -> float | None:
        """Seconds since this run last wrote (None: nothing written yet, or not running)."""
        if self._phase != "up" or self._last_write_at is None:
            return None
        return asyncio.get_running_loop().time() - self._last_write_at

    def _on_line(self, line: str) -> None:
        if any(r in line for r in _ROUTINE):
            log.debug("output %s: %s", self.name, line)
        else:
            log.info("output %s: %s", self.name, line)

    def feed(self, data: bytes) -> None:
        """Queue ``data`` for the process; restart the process if it lags ``buffer_bytes``."""
        child = self.child
        if not self._accepting or child is None:
            return
        if not child.write(data):
            self._accepting = False  # its stdin is gone; the exit follows
            return
        if self._waiting_since is None:
            self._waiting_since = asyncio.get_running_loop().time()
        self.bytes_in += len(data)
        backlog = child.stdin_backlog()
        if backlog > self.buffer_bytes:
            self.overflows += 1
            self._accepting = False
            log.warning("output %s (%s) is %d KB behind (limit %d KB): restarting it",
                        self.name, self.target, backlog // 1024, self.buffer_bytes // 1024)
            child.signal(signal.SIGKILL)

    async def stop(self, grace: float = 1.2) -> None:
        """Stop supervising and end the process: close stdin, SIGTERM, SIGKILL after ``grace``."""
        self._stop.set()
        self._accepting = False
        child = self.child
        if child is not None and child.running:
            await child.stop(grace)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        child = self.child
        if child is not None and child.running:  # started after the check above
            await child.kill()
        self._phase = self._shown = "stopped"

    # -- reporting -------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """A process is up and takes data."""
        return self._accepting

    @property
    def pid(self) -> int | None:
        child = self.child
        return child.pid if child is not None and child.running else None

    def cpu_seconds(self) -> float:
        child = self.child
        live = child.cpu_seconds() if child is not None and child.running else 0.0
        return self.cpu_exited + live

    def status(self) -> dict:
        loop = asyncio.get_running_loop()
        child = self.child
        running = child is not None and child.running
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "state": self.state,
            "pid": child.pid if running else None,
            "restarts": self.restarts,
            "uptime_s": round(child.uptime(), 1) if running else 0.0,
            "last_write_age_s": None if (age := self.last_write_age()) is None else round(age, 2),
            "backoff_s": self.last_backoff_s,
            "retry_in_s": round(max(0.0, self.retry_at - loop.time()), 2) if self.retry_at is not None else None,
            "lag_kb": (child.stdin_backlog() // 1024) if running else 0,
            "last_exit": self.last_exit,
            "stderr": list(child.stderr_tail)[-5:] if child is not None else [],
            "problem": self.problem(),
            "write_failures": self.write_failures,
        }


class RtmpOutput(Output):
    def __init__(self, name: str, url: str, buffer_bytes: int, **kw):
        super().__init__(name, "rtmp", redact_url(url), buffer_bytes, **kw)
        self.url = url
        secrets = []
        m = re.match(r"^\w+://(?:([^@/]*)@)?[^/]*(/[^?]*)?(?:\?(.*))?$", url)
        if m:
            if m.group(1):
                secrets.append(m.group(1))
            parts = (m.group(2) or "").split("/")
            if len(parts) > 2 and parts[-1]:
                secrets.append(parts[-1])
            if m.group(3):
                secrets.append(m.group(3))
        self._secrets = [s for s in secrets if len(s) >= 3]

    def command(self) -> list[str]:
        return rtmp_command(self.url)

    def scrub(self, line: str) -> str:
        line = line.replace(self.url, self.target)
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return line


class HlsOutput(Output):
    def __init__(self, name: str, hls_dir: Path, gop_seconds: float, list_size: int, buffer_bytes: int, **kw):
        super().__init__(name, "hls", str(hls_dir), buffer_bytes, **kw)
        self.hls_dir = Path(hls_dir)
        self.gop_seconds = gop_seconds
        self.list_size = list_size
        self._start_number = 0
        self._restarted = False
        self._failed_segments: set[str] = set()
        self._write_failures = 0

    def cwd(self) -> Path:
        return self.hls_dir

    def before_start(self) -> None:
        self.hls_dir.mkdir(parents=True, exist_ok=True)
        # Continue the media sequence of the playlist on disk (a restart, or yesterday's
        # run), so players never see the sequence go backwards.
        found = read_media_sequence(self.hls_dir / HLS_INDEX)
        start = found[0] + found[1] if found else 0
        self._restarted = self._started_once or found is not None
        self._start_number = max(start, self._start_number)
        # Segments of an earlier process are not deleted by the new one: remove them once
        # players reading the old playlist cannot want them any more.
        keep_s = (self.list_size + 2) * self.gop_seconds
        asyncio.get_running_loop().call_later(keep_s, self._remove_older_than, self._start_number)

    def _remove_older_than(self, number: int) -> None:
        try:
            names = os.listdir(self.hls_dir)
        except OSError:
            return
        for name in names:
            m = _SEGMENT_RE.match(name)
            if m and int(m.group(1)) < number:
                try:
                    os.unlink(self.hls_dir / name)
                except OSError:
                    pass

    @property
    def write_failures(self) -> int:
        return self._write_failures

    def problem(self) -> str | None:
        return self.segment_problem()

    def segment_problem(self, newest: int = 2) -> str | None:
        """Why the ``newest`` segments listed in the playlist are not whole, or None. The mpegts
        muxer writes whole 188-byte packets, so a segment is whole when its size is a non-zero
        multiple of 188; a write cut short by a full disk ends on a block boundary instead.
        Counts each such segment once."""
        index = self.hls_dir / HLS_INDEX
        try:
            text = index.read_text(errors="replace")
        except FileNotFoundError:
            return None  # not started yet
        except OSError as exc:
            return f"{HLS_INDEX} unreadable: {exc.strerror}"
        if not text:
            return f"{HLS_INDEX} is empty: the playlist was not written (disk full?)"
        problems = []
        for name in re.findall(r"^(seg_\d+\.ts)$", text, re.M)[-newest:]:
            try:
                size = os.stat(self.hls_dir / name).st_size
            except OSError:
                size = 0
            if size == 0 or size % TS_PACKET:
                if name not in self._failed_segments:
                    self._failed_segments.add(name)
                    self._write_failures += 1
                    log.error("output %s: segment %s not written whole: %d bytes", self.name, name, size)
                problems.append(f"{name} {size} bytes")
        if len(self._failed_segments) > 256:
            self._failed_segments = set(sorted(self._failed_segments, key=_segment_number)[-64:])
        if problems:
            return f"segments not written whole (disk full?): {', '.join(problems)}"
        return None

    def command(self) -> list[str]:
        return hls_command(self.gop_seconds, self.list_size, self._start_number, discont=self._restarted)

    def remove_all(self) -> None:
        """Delete the playlist and every segment (e.g. on a fresh start)."""
        self._remove_older_than(1 << 62)
        try:
            os.unlink(self.hls_dir / HLS_INDEX)
        except OSError:
            pass

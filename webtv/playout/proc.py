"""Child processes for playout: spawned from the event loop, reaped without threads.

Every child is put in its own process group (a Ctrl-C at the terminal reaches only the daemon,
which then stops its children in order) and gets PR_SET_PDEATHSIG=SIGKILL, so it dies with the
thread that spawned it, i.e. the event loop thread, even when the daemon is killed with -9.
The exit is noticed through a pidfd and reaped with ``os.wait4``, which also gives the child's
CPU time (``rusage``) for accounting; no child watcher thread is involved.

A child's stdout is read either as a stream (``stdout=True``: the loop reads whenever the pipe
has data, one wake-up per write of the child) or polled (``stdout="polled"``: nobody watches
the pipe; ``read_ready()`` takes whatever it holds when asked, so a reader that asks every
50 ms wakes 20 times a second however often the child writes; the pipe is enlarged to 1 MB
where the system allows, so a child is not held up between two looks).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import fcntl
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
POLLED_PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size's default


def _child_setup(parent_pid: int) -> None:
    """Runs in the child between fork and exec (so: no allocation-heavy work, no logging)."""
    os.setpgid(0, 0)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live (or zombie) process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (IndexError, ValueError):
        return None


class Child:
    """One ffmpeg (or any) child: optional stdin writer transport, stdout reader, stderr tail.

    ``stdin``/``stdout`` are requested with the flags; stderr is always drained into
    ``stderr_tail`` (last ``tail`` lines, passed through ``scrub`` first, e.g. to hide stream
    keys) and handed to ``on_line`` if given.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        stdin: bool = False,
        stdout: bool | Literal["polled"] = False,
        cwd: Path | str | None = None,
        tail: int = 20,
        scrub: Callable[[str], str] = lambda s: s,
        on_line: Callable[[str], None] | None = None,
        stdout_limit: int = 1 << 20,
        pass_fds: Sequence[int] = (),
    ):
        self.argv = list(argv)
        self._pass_fds = tuple(pass_fds)
        self.name = name
        self._want_stdin = stdin
        self._want_stdout = stdout
        self._cwd = cwd
        self._scrub = scrub
        self._on_line = on_line
        self._stdout_limit = stdout_limit
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=tail)
        self.pid: int | None = None
        self.started = 0.0  # loop.time() at spawn
        self.started_wall = 0.0
        self.returncode: int | None = None
        self.cpu_at_exit: float | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.stdin_closed = True
        self._popen: subprocess.Popen | None = None
        self._exited: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self._pidfd: int | None = None
        self._stderr_done: asyncio.Event | None = None
        self._read_transports: list[asyncio.BaseTransport] = []

    # -- life cycle -------------------------------------------------------------------------

    async def spawn(self) -> None:
        loop = asyncio.get_running_loop()
        me = os.getpid()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if self._want_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if self._want_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self._cwd,
            preexec_fn=lambda: _child_setup(me),
            close_fds=True,
            pass_fds=self._pass_fds,
        )
        self.pid = self._popen.pid
        self.started = loop.time()
        self.started_wall = time.time()
        self._exited = loop.create_future()
        try:
            self._pidfd = os.pidfd_open(self.pid)
            loop.add_reader(self._pidfd, self._reap)
        except (AttributeError, OSError):
            self._pidfd = None
            self._tasks.append(loop.create_task(self._poll_exit(), name=f"{self.name}-poll"))
        if self._want_stdin:
            self.stdin, _ = await loop.connect_write_pipe(_PipeProtocol, self._popen.stdin)
            self.stdin_closed = False
            self.stdin.get_protocol().on_lost = self._stdin_lost
        if self._want_stdout == "polled":
            fd = self._popen.stdout.fileno()
            os.set_blocking(fd, False)
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, POLLED_PIPE_BYTES)
            except OSError:  # over the system's limit: the default 64 KB pipe
                pass
        elif self._want_stdout:
            self.stdout = asyncio.StreamReader(limit=self._stdout_limit)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(self.stdout), self._popen.stdout
            )
            self._read_transports.append(transport)
        err = asyncio.StreamReader(limit=1 << 16)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(err), self._popen.stderr)
        self._read_transports.append(transport)
        self._stderr_done = asyncio.Event()
        self._tasks.append(loop.create_task(self._drain(err), name=f"{self.name}-stderr"))

    def _stdin_lost(self) -> None:
        self.stdin_closed = True

    def _reap(self) -> None:
        try:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, rusage = self.pid, 0, None
        if pid == 0:
            return
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.returncode = os.waitstatus_to_exitcode(status) if rusage is not None else -1
        if self._popen is not None:
            self._popen.returncode = self.returncode  # so subprocess never waits on it again
        self.cpu_at_exit = (rusage.ru_utime + rusage.ru_stime) if rusage is not None else None
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(self.returncode)

    async def _poll_exit(self) -> None:
        while self.returncode is None:
            await asyncio.sleep(0.05)
            self._reap()

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:  # a line longer than the limit
                    raw = await reader.read(1 << 16)
                if not raw:
                    break
                line = self._scrub(raw.decode(errors="replace").rstrip())
                if not line:
                    continue
                self.stderr_tail.append(line)
                if self._on_line is not None:
                    try:
                        self._on_line(line)
                    except Exception:  # noqa: BLE001 - a logging callback must not end the drain
                        log.exception("stderr callback failed")
        finally:
            self._stderr_done.set()

    @property
    def running(self) -> bool:
        return self.pid is not None and self.returncode is None

    async def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal); None if still running at timeout."""
        if self._exited is None:
            return self.returncode
        try:
            code = await asyncio.wait_for(asyncio.shield(self._exited), timeout)
        except asyncio.TimeoutError:
            return None
        if self._stderr_done is not None:  # the last words, usually the reason it stopped
            try:
                await asyncio.wait_for(self._stderr_done.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        return code

    def signal(self, sig: int) -> None:
        if self.running:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def close_stdin(self) -> None:
        if self.stdin is not None and not self.stdin_closed:
            self.stdin_closed = True
            self.stdin.close()

    async def stop(self, grace: float = 1.5) -> int | None:
        """Close stdin, SIGTERM, and SIGKILL what is left after ``grace`` seconds."""
        self.close_stdin()
        if self.running:
            self.signal(signal.SIGTERM)
            if await self.wait(grace) is None:
                self.signal(signal.SIGKILL)
                await self.wait(2.0)
        self.cleanup()
        return self.returncode

    async def kill(self) -> int | None:
        self.close_stdin()
        self.signal(signal.SIGKILL)
        await self.wait(2.0)
        self.cleanup()
        return self.returncode

    def cleanup(self) -> None:
        """Close the pipes and end the helper tasks (once the process has exited)."""
        if self.stdin is not None and not self.stdin.is_closing():
            self.stdin.abort()
        for transport in self._read_transports:
            if not transport.is_closing():
                transport.close()  # also when paused with unread data, so no fd is left open
        if self._popen is not None:  # pipes never handed to a transport (a cancelled spawn)
            for pipe in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
                if pipe is not None and not pipe.closed:
                    try:
                        pipe.close()
                    except OSError:
                        pass
        for task in self._tasks:
            if not task.done():
                task.cancel()

    def cpu_seconds(self) -> float:
        if self.cpu_at_exit is not None:
            return self.cpu_at_exit
        if self.pid is not None and self.returncode is None:
            return proc_cpu_seconds(self.pid) or 0.0
        return 0.0

    def uptime(self) -> float:
        if not self.running:
            return 0.0
        return asyncio.get_running_loop().time() - self.started

    def read_ready(self, n: int = POLLED_PIPE_BYTES) -> bytes | None:
        """A polled stdout: what the child wrote since the last call, without waiting; None when
        nothing waits, b"" at the end (the child closed it, or ``cleanup()`` did)."""
        pipe = self._popen.stdout if self._popen is not None else None
        if pipe is None or pipe.closed:
            return b""
        try:
            return os.read(pipe.fileno(), n)
        except BlockingIOError:
            return None

    def write(self, data: bytes) -> bool:
        """Queue ``data`` for stdin without blocking; False when stdin is gone."""
        if self.stdin is None or self.stdin_closed or self.stdin.is_closing():
            return False
        self.stdin.write(data)
        return True

    def stdin_backlog(self) -> int:
        if self.stdin is None or self.stdin_closed or self.stdin.is_closing():
            return 0
        return self.stdin.get_write_buffer_size()


class _PipeProtocol(asyncio.BaseProtocol):
    on_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost()

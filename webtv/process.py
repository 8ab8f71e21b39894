"""Child-process hygiene: no ffmpeg outlives the daemon."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def child_pids(parent: int | None = None) -> list[int]:
    """Direct children of ``parent`` (default: this process), read from /proc."""
    parent = os.getpid() if parent is None else parent
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def kill_children(grace: float = 1.0, naming: tuple[str, ...] | None = None) -> list[int]:
    """SIGTERM every child still running (``naming``: those whose command line names one of
    these paths or URLs, a channel's of several), SIGKILL those left after ``grace`` seconds."""
    pids = child_pids()
    if naming is not None:
        pids = [pid for pid in pids if _names(pid, naming)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return pids


def _names(pid: int, texts: tuple[str, ...]) -> bool:
    """Whether an argument of ``pid`` is one of ``texts`` or has one followed by "/" in it (a
    file in that folder: the folder /a/lib is not named by /a/lib2/x)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return any(arg == text or text.rstrip("/") + "/" in arg for arg in args for text in texts)


def _alive(pid: int) -> bool:
    """Running, not a zombie (whoever spawned it reaps it; waiting here would steal its status)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

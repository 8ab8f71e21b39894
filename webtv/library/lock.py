"""One process per library: an exclusive lock on ``<library>/webtv.lock``, holding its pid.

The lock is ``flock(2)`` on an open file: the kernel drops it when the holder's process ends,
however it ends (kill -9 included), so a stale lock cannot outlive its daemon and the file is
never deleted (deleting a lock file races with the next taker). The file is opened without
truncating it and the pid is written only once the lock is held, so a process that fails to
take the lock reads the holder's pid, not an empty file. The descriptor is close-on-exec: the
ffmpeg processes the daemon starts do not hold the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "webtv.lock"


class LibraryLocked(Exception):
    """The library is held by another process."""

    def __init__(self, path: Path, holder: int | None):
        self.path, self.holder = path, holder
        who = f"pid {holder}" if holder is not None else "another process (its pid is not written yet)"
        super().__init__(f"{path.parent}: library in use by {who} (lock file {path.name}); one daemon per library")


class LibraryLock:
    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def take(cls, root: Path) -> "LibraryLock":
        """Lock the library at ``root`` (made if missing) for this process, or raise
        LibraryLocked naming the holder. Never blocks."""
        root.mkdir(parents=True, exist_ok=True)
        path = root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid(os.pread(fd, 32, 0))
            os.close(fd)
            raise LibraryLocked(path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the lock; the file stays (see the module)
            self._fd = None


def _pid(text: bytes) -> int | None:
    try:
        return int(text.decode("ascii").strip())
    except ValueError:
        return None

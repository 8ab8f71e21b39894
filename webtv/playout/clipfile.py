"""Clip files from their check to their decoder: the file that airs is the file that was checked.

The programmer checks each clip (size and digest) when it chooses a block and records the
file's ``Stamp`` (device, inode, size, modification and change times) taken around that check.
Just before a block's decoder starts, ``open_for_air`` opens every file of the block and
compares the open file with its stamp: a file replaced since (renamed over, deleted and
written again: another inode) or written in place (another size or change time; the change
time cannot be set back) is reported, not aired. The decoder then reads the very files that
were opened, through the descriptors it inherits (``/dev/fd/N`` in its list), so a file
renamed over or deleted after this point cannot reach the air either.

What stays open: a clip written in place after its block's decoder started, before the
decoder reaches it (at most one block); it is caught when the clip is next chosen.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .block import Block, Entry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stamp:
    """What identifies a file's contents without reading them."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Stamp":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @classmethod
    def of_path(cls, path: Path) -> "Stamp | None":
        try:
            return cls.of(os.stat(path))
        except OSError:
            return None

    def differs(self, other: "Stamp") -> str | None:
        """Why ``other`` is not this file as it was checked, or None."""
        if (other.dev, other.ino) != (self.dev, self.ino):
            return "file replaced since it was checked"
        if other.size != self.size:
            return f"file changed size since it was checked: {other.size} bytes, checked {self.size}"
        if (other.mtime_ns, other.ctime_ns) != (self.mtime_ns, self.ctime_ns):
            return "file written since it was checked"
        return None


@dataclass
class AirFiles:
    """The open files of one block, for one decoder: ``fds`` by path, ``changed`` the entries
    whose file is not as checked (with the reason). Close it once the decoder has started."""

    fds: dict[Path, int] = field(default_factory=dict)
    changed: list[tuple[Entry, str]] = field(default_factory=list)

    def ffconcat(self, block: Block) -> str:
        """The decoder's list: each entry read through its inherited descriptor; one that was
        not opened by its path (the decoder fails there, as on any missing file)."""
        lines = ["ffconcat version 1.0\n"]
        for entry in block.entries:
            fd = self.fds.get(entry.path)
            name = f"/dev/fd/{fd}" if fd is not None else str(entry.path)
            lines.append(f"file {quote(name)}\nduration {entry.duration:.6f}\n")
        return "".join(lines)

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def quote(path: str) -> str:
    """A path as one ffconcat token: a quoted token is literal up to the next single quote, so
    a quote inside is closed, escaped and reopened."""
    return "'" + path.replace("'", "'\\''") + "'"


def open_for_air(block: Block) -> AirFiles:
    """Open every file of ``block`` and compare it with its stamp (blocking: a few syscalls per
    file). Entries without a stamp (the filler) are opened unchecked; one of those that cannot
    be opened stays in the list by its path, and the decoder fails there as it always has."""
    files = AirFiles()
    for entry in block.entries:
        if entry.path in files.fds:
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if entry.stamp is not None:
                files.changed.append((entry, f"file missing: {exc.strerror}"))
            else:
                log.error("cannot open %s: %s", entry.path, exc.strerror)
            continue
        why = entry.stamp.differs(Stamp.of(os.fstat(fd))) if entry.stamp is not None else None
        if why is not None:
            os.close(fd)
            files.changed.append((entry, why))
            continue
        files.fds[entry.path] = fd
    return files

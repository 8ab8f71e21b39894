"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

log = logging.getLogger("webtv.files")


def write_atomic(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) so that a reader sees the old file or the new
    one, never a mix; after a crash the file is one of the two.

    The text goes to a temporary file beside the file, is flushed to disk, and is renamed
    over it (the folder is not flushed: playlists are written often, on the event loop, and
    can be written again; a crash right after the rename may leave the old file). A symlink is
    followed at every call (the file it points to now is replaced; the link stays a link).
    An existing file keeps its mode and owner (the owner where the process may set it:
    as root, or its own group); a new file gets 0666 less the umask, as ``open()`` makes it.
    On any failure (disk full) the temporary file is removed and the file is untouched.
    """
    path = Path(os.path.realpath(target))
    try:
        before = os.stat(path)
    except FileNotFoundError:
        before = None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # A new file is made like open() would (the umask applies); an existing one starts private
    # and gets the old mode once its owner is set.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if before is None else 0o600)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if before is not None:
                _keep_owner(f.fileno(), before, path)
                os.fchmod(f.fileno(), stat.S_IMODE(before.st_mode))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _keep_owner(fd: int, before: os.stat_result, path: Path) -> None:
    if (before.st_uid, before.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, before.st_uid, before.st_gid)
    except PermissionError:
        log.warning("%s: cannot keep its owner %d:%d (not permitted); it is now owned by this process",
                    path, before.st_uid, before.st_gid)

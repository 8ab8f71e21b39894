"""Finding ffmpeg and ffprobe, and the one error every media step raises."""

from __future__ import annotations

import functools
import shutil


class MediaError(Exception):
    """A media file is unreadable or not what it should be; the message says why."""


@functools.cache
def ffmpeg_exe() -> str:
    """ffmpeg from PATH, else the static build shipped inside imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MediaError("ffmpeg not found on PATH and imageio-ffmpeg is not installed") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffprobe_exe() -> str | None:
    return shutil.which("ffprobe")

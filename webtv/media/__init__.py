"""Media at the bottom layer: finding ffmpeg, every ffmpeg/ffprobe command line
(``webtv.media.commands``), and asking what a media file holds."""

from .probe import ProbeResult, StreamInfo, probe
from .tools import MediaError, ffmpeg_exe, ffprobe_exe

__all__ = ["MediaError", "ProbeResult", "StreamInfo", "ffmpeg_exe", "ffprobe_exe", "probe"]

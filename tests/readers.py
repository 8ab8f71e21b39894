"""Reading a stream back the way a viewer's player would: ffprobe on the RTMP URL."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from webtv.media import ffprobe_exe


@dataclass
class Packet:
    arrived: float  # time.monotonic() when ffprobe printed it
    kind: str  # "video" | "audio"
    dts: float
    key: bool


@dataclass
class RtmpReader:
    """ffprobe printing every packet of ``url`` as it arrives, for ``seconds`` of stream time
    (``None``: until the stream ends or the reader is stopped).

    ``rw_timeout_us``, ``nobuffer`` (``-fflags nobuffer``) and ``analyzeduration_us`` go to ffprobe;
    ``line_buffered`` runs it under ``stdbuf -oL`` (when there is one), so arrival times are honest.

    A reader that joins a live stream on nginx-rtmp gets sound at once but its first video at the
    next keyframe: up to a GOP (2 s) of sound alone, and ffprobe counts ``seconds`` from the first
    packet of either. To be sure of video, read more than a GOP, or ``None`` and stop the reader.
    """

    url: str
    seconds: float | None = 3600.0
    rw_timeout_us: int = 15_000_000
    nobuffer: bool = False
    analyzeduration_us: int | None = None
    line_buffered: bool = False
    packets: list[Packet] = field(default_factory=list)
    ended: float | None = None  # time.monotonic() when ffprobe's output ended

    def command(self) -> list[str]:
        cmd = [ffprobe_exe(), "-v", "error", "-rw_timeout", str(self.rw_timeout_us)]
        if self.nobuffer:
            cmd += ["-fflags", "nobuffer"]
        if self.analyzeduration_us is not None:
            cmd += ["-analyzeduration", str(self.analyzeduration_us)]
        cmd += ["-show_entries", "packet=codec_type,dts_time,flags", "-of", "csv=p=0"]
        if self.seconds is not None:
            cmd += ["-read_intervals", f"%+{self.seconds}"]
        cmd.append(self.url)
        if self.line_buffered and shutil.which("stdbuf"):
            cmd = ["stdbuf", "-oL", *cmd]
        return cmd

    def start(self) -> "RtmpReader":
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            parts = line.strip().split(",")
            if len(parts) < 3 or parts[1] in ("", "N/A"):
                continue
            self.packets.append(Packet(time.monotonic(), parts[0], float(parts[1]), "K" in parts[2]))
        self.ended = time.monotonic()

    def wait(self, timeout: float) -> int:
        """Wait for ffprobe to end by itself; returns its exit code."""
        code = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=5)
        return code

    def first_video_after(self, since: float, timeout: float) -> float | None:
        """Arrival time of the first video packet after ``since``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for packet in self.packets:
                if packet.kind == "video" and packet.arrived >= since:
                    return packet.arrived
            if self.proc.poll() is not None and not self._thread.is_alive():
                return None
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._thread.join(timeout=5)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    def video(self) -> list[Packet]:
        return [p for p in self.packets if p.kind == "video"]

    def audio(self) -> list[Packet]:
        return [p for p in self.packets if p.kind == "audio"]

"""How much of a clip is black, frozen or silent, by ffmpeg's own detectors.

One decode of the file through ``blackdetect``, ``freezedetect`` and ``silencedetect``
(``webtv.media.commands.detect_command``); each logs the stretches it found as
``black_start:0 black_end:2.5``, ``lavfi.freezedetect.freeze_start: 0.5`` /
``freeze_end: ...``, ``silence_start: 0`` / ``silence_end: ...``. A stretch still open at the
end of the file (freezedetect reports none there) lasts to the end.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .commands import detect_command
from .probe import probe
from .tools import MediaError

_EVENT = re.compile(r"\b(?:lavfi\.freezedetect\.)?(black|freeze|silence)_(start|end)\s*:\s*(-?[\d.]+(?:e-?\d+)?)")


@dataclass(frozen=True)
class Detected:
    """Seconds of the clip each detector found (stretches of at least its minimum length)."""

    duration: float
    black: float
    frozen: float
    silent: float

    def share(self, seconds: float) -> float:
        return seconds / self.duration if self.duration > 0 else 0.0


def stretches(log: str, duration: float) -> dict[str, float]:
    """Seconds per detector ("black", "freeze", "silence") from the detectors' log lines."""
    total = {"black": 0.0, "freeze": 0.0, "silence": 0.0}
    open_at: dict[str, float] = {}
    for kind, edge, value in _EVENT.findall(log):
        at = min(max(float(value), 0.0), duration)
        if edge == "start":
            open_at.setdefault(kind, at)
        elif kind in open_at:
            total[kind] += max(0.0, at - open_at.pop(kind))
    for kind, start in open_at.items():
        total[kind] += max(0.0, duration - start)
    return total


def detect(path: Path | str, *, black_pixel: float, freeze_noise_db: float, silence_db: float,
           min_s: float, timeout: float = 120) -> Detected:
    """Black, frozen and silent seconds of ``path`` (MediaError when ffmpeg cannot read it)."""
    duration = probe(path).duration
    args = detect_command(path, black_pixel=black_pixel, freeze_noise_db=freeze_noise_db, silence_db=silence_db,
                          min_s=min_s)
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(f"{path}: the black/frozen/silent detectors timed out") from None
    log = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise MediaError(f"{path}: the detectors could not read it ({log.strip().splitlines()[-1:] or 'no output'})")
    found = stretches(log, duration)
    return Detected(duration, found["black"], found["freeze"], found["silence"])

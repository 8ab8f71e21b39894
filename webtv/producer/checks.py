"""A take's picture and sound checked before it may enter the library.

The encoded take (whatever made its frames and sound: a local model, a webtv worker, a
public Space through an adapter) is decoded once through ffmpeg's detectors
(``webtv.media.detect``); a take black, frozen or silent for more than its ``[quality]``
share is rejected with the reasons, worst first (a black picture is frozen too: it is
counted as black). Silence is judged on the clip's whole sound, so a narrated clip's voice
counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from webtv.config import QualitySection
from webtv.media.detect import Detected, detect
from webtv.producer.pipeline import StageError

REASONS = ("black", "frozen", "silent")
"""Why a take is rejected, in the order a take with several is counted by."""


class Rejected(StageError):
    """The ``check`` step found the take unfit to air; ``reasons`` name why (REASONS), the
    first one counts."""

    def __init__(self, reasons: tuple[str, ...], detail: str):
        RuntimeError.__init__(self, f"rejected ({', '.join(reasons)}): {detail}")
        self.stage = "check"
        self.reasons = reasons

    @property
    def reason(self) -> str:
        return self.reasons[0]


@dataclass(frozen=True)
class Checks:
    """The picture and sound checks, by ``[quality]``'s thresholds."""

    quality: QualitySection = QualitySection()

    @classmethod
    def from_config(cls, quality: QualitySection) -> "Checks | None":
        """The checks ``[quality]`` asks for; None when they are off."""
        return cls(quality) if quality.checks else None

    def __call__(self, path: Path) -> Detected:
        """Detect and judge the take at ``path``: what was found, or Rejected."""
        q = self.quality
        found = detect(path, black_pixel=q.black_pixel, freeze_noise_db=q.freeze_noise_db, silence_db=q.silence_db,
                       min_s=q.min_stretch_s)
        judged = (("black", found.black, q.max_black), ("frozen", found.frozen, q.max_frozen),
                  ("silent", found.silent, q.max_silent))
        over = [(reason, seconds, limit) for reason, seconds, limit in judged if found.share(seconds) > limit]
        if over:
            detail = "; ".join(f"{reason} for {seconds:.1f} of {found.duration:.1f} s (over {limit:.0%})"
                               for reason, seconds, limit in over)
            raise Rejected(tuple(reason for reason, _, _ in over), detail)
        return found

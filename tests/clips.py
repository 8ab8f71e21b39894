"""House-format test clips made with plain ffmpeg (lavfi), independent of the producer."""

from __future__ import annotations

import subprocess
from pathlib import Path

from webtv.config import HouseSection
from webtv.media import ffmpeg_exe

SMALL_HOUSE = HouseSection(width=320, height=180, fps=24, video_kbps=400, audio_kbps=64)


def make_house_clip(
    path: Path,
    seconds: float = 3.0,
    house: HouseSection = SMALL_HOUSE,
    hue: int = 0,
    *,
    pattern: str = "testsrc2",
    frequency: int | None = None,
    preset: str = "ultrafast",
    bframes: bool = True,
) -> Path:
    """A ``seconds`` long clip in ``house``'s format: a lavfi test ``pattern`` (hue-rotated by
    ``hue`` degrees) and a sine tone (``frequency`` Hz, 220 + ``hue`` unless given). ``bframes=False``
    forbids B-frames (``-bf 0``); x264's ultrafast preset makes none anyway."""
    size = f"{house.width}x{house.height}"
    video = f"{pattern}=size={size}:rate={house.fps}:duration={seconds}" + (f",hue=h={hue}" if hue else "")
    tone = 220 + hue if frequency is None else frequency
    subprocess.run(
        [
            ffmpeg_exe(), "-v", "error", "-y",
            "-f", "lavfi", "-i", video,
            "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate={house.sample_rate}:duration={seconds}",
            "-c:v", "libx264", "-preset", preset, "-profile:v", house.h264_profile, "-pix_fmt", "yuv420p",
            *([] if bframes else ["-bf", "0"]),
            "-g", str(house.gop_frames), "-keyint_min", str(house.gop_frames), "-sc_threshold", "0",
            "-flags", "+cgop", "-b:v", f"{house.video_kbps}k",
            "-c:a", "aac", "-b:a", f"{house.audio_kbps}k", "-ac", str(house.channels),
            "-t", str(seconds), "-movflags", "+faststart", str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


def add_to_library(library, clip_file: Path, prompt: str, theme: str, tags=(), duration: float = 1.0):
    """Ingest a copy of ``clip_file`` as a clip of ``prompt``/``theme``, as the producer would."""
    import shutil

    from webtv.director import Shot

    made = library.incoming_path()
    shutil.copy(clip_file, made)
    return library.ingest(made, Shot(prompt=prompt, seed=0, theme=theme, tags=tuple(tags)), duration)

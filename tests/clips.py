"""House-format test clips made with plain ffmpeg (lavfi), independent of the producer."""

from __future__ import annotations

import subprocess
from pathlib import Path

from webtv.config import HouseSection
from webtv.media import ffmpeg_exe

SMALL_HOUSE = HouseSection(width=320, height=180, fps=24, video_kbps=400, audio_kbps=64)


def make_house_clip(path: Path, seconds: float = 3.0, house: HouseSection = SMALL_HOUSE, hue: int = 0) -> Path:
    size = f"{house.width}x{house.height}"
    subprocess.run(
        [
            ffmpeg_exe(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={house.fps}:duration={seconds},hue=h={hue}",
            "-f", "lavfi", "-i", f"sine=frequency={220 + hue}:sample_rate={house.sample_rate}:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", house.h264_profile, "-pix_fmt", "yuv420p",
            "-g", str(house.gop_frames), "-keyint_min", str(house.gop_frames), "-sc_threshold", "0",
            "-flags", "+cgop", "-b:v", f"{house.video_kbps}k",
            "-c:a", "aac", "-b:a", f"{house.audio_kbps}k", "-ac", str(house.channels),
            "-t", str(seconds), "-movflags", "+faststart", str(path),
        ],
        check=True,
    )
    return path

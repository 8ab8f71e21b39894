"""ffconcat playlists: names that would break or escape a list are written safely, and ffmpeg
reads back exactly the files listed."""

import re
import subprocess

import pytest

from webtv.media import ffmpeg_exe
from webtv.programmer.playlist import render_ffconcat, slug, write_ffconcat

pytestmark = pytest.mark.fast

NASTY = ["plain", "with space", "it's quoted", "dollar $HOME", "new\nline", "back\\slash", "'; file 'x.wav"]


def make_tone(path, seconds, freq):
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}",
         "-c:a", "pcm_s16le", str(path)],
        check=True,
    )


def test_ffmpeg_reads_every_nasty_name_back(tmp_path):
    files = []
    for i, name in enumerate(NASTY):
        folder = tmp_path / name
        folder.mkdir()
        path = folder / f"{name}.wav"
        make_tone(path, 0.5 + i * 0.25, 300 + 100 * i)
        files.append(path)
    playlists = tmp_path / "play lists'"
    playlists.mkdir()
    target = write_ffconcat(playlists / "block.ffconcat", [(p, None) for p in files])
    done = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "concat", "-safe", "0", "-i", str(target), "-f", "null", "-"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    probe = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-f", "concat", "-safe", "0", "-i", str(target), "-f", "null", "-"],
        capture_output=True, text=True,
    )
    # total duration = sum of all files: none skipped, none extra (e.g. /etc/passwd)
    expected = sum(0.5 + i * 0.25 for i in range(len(NASTY)))
    h, m, s = re.findall(r"time=(\d+):(\d+):([\d.]+)", probe.stderr)[-1]
    assert abs(int(h) * 3600 + int(m) * 60 + float(s) - expected) < 0.05


def test_quotes_cannot_escape_the_file_directive(tmp_path):
    text = render_ffconcat([(tmp_path / "a' \nfile '/etc/passwd", 1.0)], tmp_path / ".links")
    lines = text.splitlines()
    assert lines[0] == "ffconcat version 1.0"
    assert len([line for line in lines if line.startswith("file ")]) == 1
    assert "/etc/passwd" not in text
    assert lines[2] == "duration 1.000000"


def test_written_atomically_and_replaced(tmp_path):
    target = tmp_path / "all.ffconcat"
    write_ffconcat(target, [(tmp_path / "a.mp4", 1.0)])
    write_ffconcat(target, [(tmp_path / "b.mp4", 2.0)])
    assert "b.mp4" in target.read_text() and "a.mp4" not in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["all.ffconcat"]


@pytest.mark.parametrize("tag, expected", [("Sci-Fi", "sci-fi"), ("a b/c", "a-b-c"), ("$'\n", None)])
def test_slug_is_file_name_safe(tag, expected):
    out = slug(tag)
    assert out.replace("-", "").isalnum()
    if expected:
        assert out == expected

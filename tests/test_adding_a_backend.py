"""README "Adding a backend" stays true: its three blocks (the module, the config class, the
registry line), applied to a copy of the package, give a backend that `webtv check` knows
and `webtv render` airs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from webtv.media import ffmpeg_exe

REPO = Path(__file__).resolve().parents[1]


def readme_blocks() -> list[tuple[str, str]]:
    """(the file the text before it names, the code) for each block of the section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Adding a backend", 1)[1].split("\n## ", 1)[0]
    found = []
    for match in re.finditer(r"(?P<before>(?:(?!```).)*?)```python\n(?P<code>.*?)```", section, re.S):
        files = re.findall(r"`(webtv/[\w/]+\.py)`", match.group("before"))
        assert files, f"no file named before the block:\n{match.group('code')}"
        found.append((files[0], match.group("code")))
    return found


def apply(package: Path, file: str, code: str) -> None:
    target = package.parent / file
    if not target.exists():  # the new module
        target.write_text(code)
        return
    text = target.read_text()
    union = re.search(r"^(\w+_BACKENDS) = .*$", code, re.M)
    if union:  # the config class, and the union that names it
        line = re.search(rf"^{union.group(1)} = .*$", text, re.M)
        assert line, f"{file} has no {union.group(1)}"
        text = text[: line.start()] + code.strip() + "\n" + text[line.end():]
    else:  # a registry line, into the mapping of its stage
        opening = re.search(r"^VIDEO: Mapping\[str, Factory\] = MappingProxyType\(\{\n", text, re.M)
        assert opening, f"{file} has no VIDEO mapping"
        text = text[: opening.end()] + code + text[opening.end():]
    target.write_text(text)


def test_the_readme_recipe_adds_a_backend_that_renders(tmp_path):
    blocks = readme_blocks()
    assert [file for file, _ in blocks] == ["webtv/producer/wash.py", "webtv/config.py",
                                            "webtv/producer/registry.py"]
    package = tmp_path / "webtv"
    shutil.copytree(REPO / "webtv", package, ignore=shutil.ignore_patterns("__pycache__"))
    for file, code in blocks:
        apply(package, file, code)

    config = tmp_path / "channel.toml"
    config.write_text('[house]\nwidth = 320\nheight = 180\nx264_preset = "ultrafast"\n\n'
                      '[video]\nbackend = "wash"\nclip_seconds = 1.0\ncolour = [200, 30, 30]\n')
    run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=120)
    check = subprocess.run([sys.executable, "-m", "webtv", "check", "--config", str(config)], **run)
    assert check.returncode == 0, check.stderr
    assert "video:      wash, 1 s clips" in check.stdout

    misplaced = tmp_path / "misplaced.toml"
    misplaced.write_text('[video]\nbackend = "procedural"\ncolour = [1, 2, 3]\n')
    wrong = subprocess.run([sys.executable, "-m", "webtv", "check", "--config", str(misplaced)], **run)
    assert wrong.returncode == 2
    assert 'misplaced.toml:3: video.colour: belongs to backend "wash", not "procedural"' in wrong.stderr

    out = tmp_path / "red.mp4"
    render = subprocess.run([sys.executable, "-m", "webtv", "render", "a red room", "--out", str(out),
                             "--config", str(config)], **run)
    assert render.returncode == 0, render.stderr
    corner = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(out), "-vf", "crop=16:16:0:0,scale=1:1",
                             "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                            capture_output=True, check=True).stdout
    assert len(corner) == 3 and corner[0] > 150 and corner[1] < 80 and corner[2] < 80, list(corner)

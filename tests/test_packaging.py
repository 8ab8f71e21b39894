"""What a user gets outside this checkout: `webtv render` in any folder (on the built-in
defaults when there is no channel.toml), `webtv --version`, and a wheel that serves the page
(hls.min.js inside)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.daemon import REPO
from webtv.config import Config
from webtv.media import probe

HLS_JS = "webtv/http/static/vendor/hls.min.js"


def webtv(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m webtv`` from this checkout, run in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "webtv", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_render_outside_the_repository_runs_on_the_defaults_and_says_so(tmp_path):
    done = webtv("render", "a red kite over the sea", "--out", "kite.mp4", "--seed", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no channel.toml here: rendering with the built-in defaults" in done.stderr
    info = probe(tmp_path / "kite.mp4")
    house = Config().house
    assert (info.video.width, info.video.height) == (house.width, house.height)
    # a config named on the command line must be there
    missing = webtv("render", "x", "--out", "x.mp4", "--config", "channel.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "channel.toml: config file not found" in missing.stderr


def test_the_wheel_carries_hls_js_and_its_version_is_webtv_version(tmp_path):
    assert (REPO / HLS_JS).is_file(), f"{HLS_JS} is missing: `make setup` fetches it"
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("webtv", "interpolation"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("webtv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert HLS_JS in names and "webtv/http/static/index.html" in names
    version = webtv("--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"webtv {wheel.name.split('-')[1]}"

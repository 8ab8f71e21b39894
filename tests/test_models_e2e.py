"""The model stack end to end on the CPU, with tiny random models written by save_pretrained
(as a user with downloaded models has them): Zeroscope -> XL upscale -> FILM -> MusicGen, and LTX-Video
-> house clip, through `webtv render` and through the running daemon."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.daemon import REPO, Daemon, write_config
from tests.tiny_film import save_scripted, tiny_film
from tests.tiny_ltx import tiny_ltx
from tests.tiny_musicgen import tiny_musicgen
from tests.tiny_zeroscope import tiny_text_to_video, tiny_video_to_video
from webtv.config import HouseSection
from webtv.media import ffmpeg_exe, probe

pytestmark = pytest.mark.e2e

HOUSE = {"width": 320, "height": 180, "fps": 24, "video_kbps": 400, "audio_kbps": 64, "x264_preset": "ultrafast"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("models")
    return SimpleNamespace(
        video=tiny_text_to_video(root / "zeroscope_v2_576w"),
        xl=tiny_video_to_video(root / "zeroscope_v2_XL"),
        film=save_scripted(tiny_film(), root / "film_net_fp32.pt"),  # TorchScript, like the public release
        music=tiny_musicgen(root / "musicgen-small"),
    )


def model_sections(models) -> dict:
    return {
        "video": {"backend": "zeroscope", "model": str(models.video), "clip_seconds": 1.0,
                  "width": 32, "height": 24, "frames": 4, "steps": 2},
        "upscale": {"backend": "zeroscope", "model": str(models.xl), "width": 64, "height": 40, "steps": 2},
        "interpolation": {"backend": "film", "model": str(models.film)},
        "audio": {"backend": "musicgen", "model": str(models.music)},
    }


def audio_rms(path: Path) -> float:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a", "-f", "f32le", "-ac", "1",
                          "-ar", "48000", "pipe:1"], capture_output=True, check=True).stdout
    samples = np.frombuffer(raw, dtype=np.float32)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def assert_house_clip(path: Path, seconds: float) -> None:
    house = HouseSection(**HOUSE)
    found = probe(path)
    assert found.video is not None and (found.video.width, found.video.height) == (house.width, house.height)
    assert abs(found.duration - seconds) < 0.05, f"{path.name} lasts {found.duration} s, not {seconds}"
    assert found.audio is not None, f"{path.name} has no sound"
    assert audio_rms(path) > 1e-3, f"{path.name}'s sound is silent"


def test_render_command_runs_every_model_into_a_house_clip(models, tmp_path):
    config = write_config(tmp_path, 0, [], house=HOUSE, video={"clip_seconds": 1.0},
                          upscale={"backend": "zeroscope", "width": 64, "height": 40})  # the XL pass's real 1024x576 takes minutes on a CPU
    out = tmp_path / "clip.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "webtv", "render", "a lighthouse in a storm", "--out", str(out),
         "--config", str(config), "--video-model", str(models.video), "--upscale-model", str(models.xl),
         "--music-model", str(models.music), "--film-model", str(models.film),
         "--steps", "2", "--frames", "4", "--size", "32x24"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for stage in ("music", "video", "upscale", "interpolate", "encode"):
        assert f"{stage} " in done.stderr, f"no progress for {stage}: {done.stderr}"
    assert_house_clip(out, 1.0)
    assert not list(tmp_path.glob(".*partial*")), "a partial file was left behind"


def test_render_command_names_a_missing_model_folder(tmp_path):
    config = write_config(tmp_path, 0, [], house=HOUSE)
    missing = tmp_path / "no-such-model"
    done = subprocess.run(
        [sys.executable, "-m", "webtv", "render", "x", "--out", str(tmp_path / "c.mp4"), "--config", str(config),
         "--video-model", str(missing)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert str(missing) in done.stderr
    assert not (tmp_path / "c.mp4").exists()


def test_the_daemon_airs_clips_the_models_made_and_answers_while_rendering(models, tmp_path, rtmp_server):
    stream = f"{rtmp_server}/models"
    channel = Daemon(tmp_path / "channel", [stream], house=HOUSE, producer={"ahead": 2},
                     programme={"block_seconds": 4.0, "filler_seconds": 2.0}, **model_sections(models))
    slowest = [0.0]
    polling = threading.Event()

    def poll_status() -> None:  # /api/status must answer while torch works
        while not polling.is_set():
            started = time.monotonic()
            if channel.status() is not None:
                slowest[0] = max(slowest[0], time.monotonic() - started)
            time.sleep(0.1)

    try:
        took = channel.start_on_air(stream, timeout=30)
        assert took is not None, channel.log_tail()
        poller = threading.Thread(target=poll_status, daemon=True)
        poller.start()
        status = channel.wait_for(lambda s: s["producer"]["clips_made"] >= 1, timeout=180, message="a clip made")
        assert status["producer"]["clips_failed"] == 0, status["producer"]
        status = channel.wait_for(lambda s: (s["now_playing"] or {}).get("clip_id") is not None, timeout=60,
                                  message="a made clip on air")
        polling.set()
        poller.join()
        clips = sorted((channel.folder / "library" / "clips").glob("*.mp4"))
        assert clips
        assert_house_clip(clips[0], 1.0)
        assert slowest[0] < 1.0, f"/api/status took {slowest[0]:.2f} s during a render"
    finally:
        polling.set()
        took = channel.stop()
    assert took <= 5.0, f"the daemon took {took:.1f} s to stop with models loaded"
    assert channel.proc.returncode == 0, channel.log_tail()  # not SIGABRT from a render left in torch


@pytest.fixture(scope="module")
def ltx_model(tmp_path_factory) -> Path:
    return tiny_ltx(tmp_path_factory.mktemp("models") / "LTX-Video-0.9.8-13B-distilled")


def ltx_sections(model: Path) -> dict:
    """LTX draws a 1 s clip at the house rate (24 frames + the first), so nothing interpolates."""
    return {"video": {"backend": "ltx", "model": str(model), "clip_seconds": 1.0, "width": 64, "height": 32,
                      "frames": 25, "frame_rate": 24, "steps": 2, "timesteps": [1000, 500]},
            "interpolation": {"backend": "none"}}


def test_render_command_makes_a_house_clip_with_ltx(ltx_model, tmp_path):
    config = write_config(tmp_path, 0, [], house=HOUSE, **ltx_sections(ltx_model))
    out = tmp_path / "ltx.mp4"
    done = subprocess.run([sys.executable, "-m", "webtv", "render", "a lighthouse in a storm", "--out", str(out),
                           "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "video " in done.stderr and "encode " in done.stderr, done.stderr
    assert_house_clip(out, 1.0)


def test_the_daemon_airs_ltx_clips(ltx_model, tmp_path):
    channel = Daemon(tmp_path / "channel", [], house=HOUSE, producer={"ahead": 1},
                     programme={"block_seconds": 4.0, "filler_seconds": 2.0}, **ltx_sections(ltx_model))
    try:
        channel.start()
        status = channel.wait_for(lambda s: (s["now_playing"] or {}).get("clip_id") is not None, timeout=120,
                                  message="an LTX clip on air")
        assert status["producer"]["clips_failed"] == 0, status["producer"]
        clips = sorted((channel.folder / "library" / "clips").glob("*.mp4"))
        assert clips
        assert_house_clip(clips[0], 1.0)
    finally:
        took = channel.stop()
    assert took <= 5.0, f"the daemon took {took:.1f} s to stop with LTX loaded"

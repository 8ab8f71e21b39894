"""The model benchmark runs: a GPU session depends on it, so it is checked here on the tests'
tiny models (the real sizes take minutes a stage on a CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.daemon import REPO


def test_models_bench_times_every_stage_with_the_speed_switches(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.models_bench", "--random-weights", "--tiny", "--size", "32x24",
         "--upscale-size", "64x40", "--frames", "4", "--steps", "2", "--upscale-steps", "2", "--seconds", "1",
         "--channels-last", "--attention", "math", "--guidance", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["stage"] for row in report["rows"]] == ["video", "upscale", "interpolate", "music", "loudness"]
    assert all(row["seconds"] > 0 and row["peak_gb"] > 0 for row in report["rows"])
    assert report["airtime_per_wall_s"] > 0
    assert "frames out: (24, 40, 64, 3) at 24 fps" in done.stdout


def test_models_bench_times_the_ltx_stage_on_ltx_condition_pipeline(tmp_path):
    """--preset ltx-distilled times webtv.producer.ltx.LtxVideo (the daemon's stage) over
    LTXConditionPipeline; --tiny: the tests' tiny LTX model at 64x32, 9 frames retimed to 8."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.models_bench", "--random-weights", "--tiny", "--preset", "ltx-distilled",
         "--device", "cpu", "--seconds", "1", "--fps", "8", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["stage"] for row in report["rows"]] == ["video", "interpolate", "music", "loudness"]
    assert "frames out: (8, 32, 64, 3) at 8 fps" in done.stdout

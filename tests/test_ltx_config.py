"""`[video] backend = "ltx"` as config: what `webtv check` refuses (with the rule), what it
shows, what `webtv render`'s flags do with it, and the backend the registry builds."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from webtv.config import ConfigError, LtxVideoSection, parse_config, summary

pytestmark = pytest.mark.fast

LTX = '[video]\nbackend = "ltx"\nclip_seconds = 3.0\n'


def parse(text: str):
    return parse_config(text, Path("channel.toml"), {})


def test_check_refuses_a_size_ltx_cannot_draw_naming_the_rule_and_line(tmp_path):
    path = tmp_path / "channel.toml"
    path.write_text(LTX + "width = 1000\nheight = 576\n")
    done = subprocess.run([sys.executable, "-m", "webtv", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout
    assert (":4: video.width: LTX-Video draws widths and heights that are multiples of 32 (its VAE turns 32x32 "
            "pixels into one latent): 1000 is not; 992 or 1024 is") in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("line, expected", [
    ("frames = 72", ":4: video.frames: LTX-Video draws 8k+1 frames (its VAE packs 8 frames into one latent after "
                    "the first): 72 is not; 65 or 73 is"),
    ("height = 500", ":4: video.height: LTX-Video draws widths and heights that are multiples of 32"),
    ("height = 16", ":4: video.height: Input should be greater than or equal to 32"),
    ("steps = 4\ntimesteps = [1000, 900, 0.03]", "video: timesteps lists 3 timesteps but steps = 4: give steps = 3"),
    ("steps = 40", "video: timesteps lists 8 timesteps but steps = 40: give steps = 8, or timesteps = []"),
    ("timesteps = [0.03, 1000]\nsteps = 2", "timesteps must fall from at most 1000 to at least 0"),
])
def test_sizes_frames_and_schedules_the_model_cannot_take_are_refused(line, expected):
    with pytest.raises(ConfigError) as caught:
        parse(LTX + line + "\n")
    assert expected in str(caught.value)


def test_a_zeroscope_size_key_under_ltx_and_an_ltx_key_under_zeroscope_are_named():
    with pytest.raises(ConfigError, match='video.decode_timestep: belongs to backend "ltx", not "zeroscope"'):
        parse('[video]\nbackend = "zeroscope"\ndecode_timestep = 0.05\n')
    with pytest.raises(ConfigError, match='video.forward_chunking: belongs to backend "zeroscope", not "ltx"'):
        parse(LTX + "forward_chunking = true\n")


def test_defaults_are_the_distilled_model_at_the_house_size_and_check_says_what_it_draws():
    config = parse(LTX)
    video = config.video
    assert isinstance(video, LtxVideoSection)
    assert video.model == "Lightricks/LTX-Video-0.9.8-13B-distilled"
    assert (video.width, video.height) == (config.house.width, config.house.height)
    assert (video.frames, video.frame_rate) == (73, 24)  # 3 s at 24 fps, plus the first frame
    assert (video.steps, video.guidance) == (8, 1.0)
    assert video.timesteps == [1000, 993, 987, 981, 975, 909, 725, 0.03]  # the distilled schedule
    line = next(line for line in summary(config).splitlines() if line.startswith("video:"))
    assert line == ("video:      ltx (Lightricks/LTX-Video-0.9.8-13B-distilled), 1024x576, 73 frames at 24 fps "
                    "(3.04 s), 3 s clips")


def test_the_fields_a_flop_counter_reads_are_there():
    video = parse(LTX + 'model = "Lightricks/LTX-Video-0.9.7-distilled"\nwidth = 768\nheight = 512\n'
                        'frames = 97\nsteps = 8\nguidance = 1.0\n').video
    assert (video.model, video.width, video.height, video.frames, video.steps, video.guidance) == \
        ("Lightricks/LTX-Video-0.9.7-distilled", 768, 512, 97, 8, 1.0)


def render_flags(**given) -> argparse.Namespace:
    flags = dict(video_model=None, upscale_model=None, music_model=None, film_model=None, steps=None, frames=None,
                 size=None)
    return argparse.Namespace(**{**flags, **given})


def test_render_flags_keep_the_ltx_backend_and_its_rules(tmp_path):
    from webtv.cli import with_model_flags

    config = parse(LTX)
    folder = tmp_path / "ltx"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    changed = with_model_flags(config, render_flags(video_model=str(folder), frames=25, size="64x32"))
    assert changed.video.backend == "ltx" and changed.video.model == str(folder)
    assert (changed.video.frames, changed.video.width, changed.video.height) == (25, 64, 32)
    fewer = with_model_flags(config, render_flags(steps=4))
    assert (fewer.video.steps, fewer.video.timesteps) == (4, [])  # the pipeline's own 4-step schedule
    assert with_model_flags(config, render_flags(steps=8)).video.timesteps == config.video.timesteps
    with pytest.raises(ConfigError, match="video.frames: LTX-Video draws 8k.1 frames"):
        with_model_flags(config, render_flags(frames=24))
    procedural = parse('[video]\nclip_seconds = 3.0\n')
    assert with_model_flags(procedural, render_flags(video_model=str(folder))).video.backend == "zeroscope"


def test_the_registry_builds_the_ltx_backend_without_loading_it():
    from webtv.producer import make_stages
    from webtv.producer.ltx import LtxVideo

    stages = make_stages(parse(LTX + '\n[interpolation]\nbackend = "none"\n'))
    assert isinstance(stages.video, LtxVideo) and stages.video.pipeline is None
    assert type(stages.interpolate).__name__ == "NoInterpolation"

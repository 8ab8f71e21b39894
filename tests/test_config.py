"""`webtv check` and the config loader: good files pass, bad ones name the key or line."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from webtv.config import (Config, ConfigError, OutputSection, ScheduleEntry, Section, ZeroscopeVideoSection, check_worker,
                          live_config, load_config, parse_config, pending_restart, redact_url, summary, with_changes,
                          worker_problems)

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[1]


def check(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webtv", "check", "--config", str(path)],
        capture_output=True, text=True, env=env, timeout=60,
    )


def test_shipped_channel_toml_is_valid():
    done = check(REPO / "channel.toml")
    assert done.returncode == 0, done.stderr
    assert "theme:" in done.stdout and "1024x576@24" in done.stdout


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[channel]\nname = 3\n', ["channel.name", ":2:"]),
        ('[channel]\nname = "x"\n\n[output]\nrtmp_url = []\n', ["output.rtmp_url", "unknown key", ":5:"]),
        ('[channel\nname = "x"\n', ["invalid TOML", "line 1"]),
        ('[house]\nfps = "fast"\n', ["house.fps", ":2:"]),
        ('[http]\nport = 70000\n', ["http.port", ":2:"]),
        ('[programme]\nblock_seconds = 1\n', ["programme.block_seconds"]),
        ('[output]\nrtmp_urls = ["http://example/app/key"]\n', ["output.rtmp_urls", "rtmp://"]),
        ('[house]\nfont = "no-such-font.ttf"\n', ["house.font", "not found", ":2:"]),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path, text, expected):
    path = tmp_path / "channel.toml"
    path.write_text(text)
    done = check(path)
    assert done.returncode == 2
    for fragment in expected:
        assert fragment in done.stderr, done.stderr


def test_system_prompt_that_is_not_utf8_text_exits_2_naming_the_key(tmp_path):
    (tmp_path / "prompt.txt").write_bytes("Écris des plans de caméra".encode("cp1252"))
    path = tmp_path / "channel.toml"
    path.write_text('[director]\nbackend = "openai"\nsystem_prompt = "prompt.txt"\n')
    done = check(path)
    assert done.returncode == 2
    assert "channel.toml:3: director.system_prompt" in done.stderr and "not UTF-8 text" in done.stderr, done.stderr


def test_missing_config_file(tmp_path):
    done = check(tmp_path / "absent.toml")
    assert done.returncode == 2
    assert "absent.toml" in done.stderr and "not found" in done.stderr


def test_env_vars_expand_and_stream_keys_stay_hidden(tmp_path):
    path = tmp_path / "channel.toml"
    path.write_text('[output]\nrtmp_urls = ["rtmp://ingest.example/app/${STREAM_KEY}"]\n')
    done = check(path, env={"PATH": "/usr/bin:/bin", "STREAM_KEY": "live_sekrit_123"})
    assert done.returncode == 0, done.stderr
    assert "live_sekrit_123" not in done.stdout + done.stderr
    assert "rtmp://ingest.example/app/***" in done.stdout
    config = load_config(path, env={"STREAM_KEY": "live_sekrit_123"})
    assert config.output.rtmp_urls == ["rtmp://ingest.example/app/live_sekrit_123"]

    missing = check(path, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2
    assert "STREAM_KEY" in missing.stderr and "output.rtmp_urls[0]" in missing.stderr


def test_relative_paths_resolve_against_the_file(tmp_path):
    folder = tmp_path / "conf dir"
    folder.mkdir()
    path = folder / "channel.toml"
    path.write_text('[paths]\nlibrary = "lib"\nhls = "/var/tmp/abs"\n')
    config = load_config(path)
    assert config.paths.library == folder / "lib"
    assert config.paths.hls == Path("/var/tmp/abs")
    assert config.paths.playlists == folder / "playlists"


def test_invalid_value_error_is_a_config_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[video]\nclip_seconds = -1\n")
    with pytest.raises(ConfigError, match="video.clip_seconds"):
        load_config(path)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("rtmp://live.twitch.tv/app/live_123_abc", "rtmp://live.twitch.tv/app/***"),
        ("rtmp://user:pw@host/app/key?token=1", "rtmp://host/app/***"),
        ("rtmp://host/app", "rtmp://host/app"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


# ----------------------------------------------------------------------------- backends as typed config


def webtv(command: str, path: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webtv", command, "--config", str(path), *extra],
                          capture_output=True, text=True, timeout=timeout)


WRONG_BACKEND_KEY = '[video]\nbackend = "zeroscope"\nclip_seconds = 2.0\nrender_delay_s = 1.0\n'
BAD_CRON = '[[schedule]]\nat = "06:00"\ntheme = "dawn"\n\n[[schedule]]\ncron = "99 25 * * funday"\ntheme = "never"\n'


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    "text, expected",
    [
        (WRONG_BACKEND_KEY, [':4: video.render_delay_s: belongs to backend "procedural", not "zeroscope"']),
        (BAD_CRON, [":6: schedule[1].cron:", "99 25 * * funday", "not a valid schedule"]),
    ],
)
def test_check_and_run_refuse_with_exit_2_naming_key_and_line(tmp_path, command, text, expected):
    path = tmp_path / "channel.toml"
    path.write_text(text)
    done = webtv(command, path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("webtv: config error:\n"), done.stderr
    for fragment in expected:
        assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_worker_refuses_remote_stages_naming_the_line(tmp_path):
    path = tmp_path / "worker.toml"
    path.write_text('[workers]\nurls = ["http://gpu1:7860/"]\n\n[audio]\nbackend = "remote"\n')
    done = webtv("worker", path, "--port", "1")
    assert done.returncode == 2
    assert ':5: audio.backend: "remote" cannot be used by a worker' in done.stderr, done.stderr


def problems(text: str) -> list[str]:
    try:
        parse_config(text, Path("c.toml"), {})
    except ConfigError as exc:
        return str(exc).splitlines()
    return []


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[upscale]\nsteps = 3\n', 'c.toml:2: upscale.steps: belongs to backend "zeroscope", not "none"'),
        ('[video]\nframes = 8\n', 'c.toml:2: video.frames: belongs to backend "zeroscope" or "remote" or "ltx", not "procedural"'),
        ('[video]\nbackend = "procedural"\n\n[video.adapter]\nendpoint = "/run"\n',
         'c.toml:4: video.adapter: belongs to backend "remote", not "procedural"'),
        ('[director]\nbase_url = "http://x/v1"\n', 'c.toml:2: director.base_url: belongs to backend "openai", not "offline"'),
        ('[interpolation]\nbackend = "none"\nbatch = 2\n', 'c.toml:3: interpolation.batch: belongs to backend "film", not "none"'),
        ('[audio]\nbackend = "musicgen"\ncolour = 1\n', "c.toml:3: audio.colour: unknown key (check its spelling)"),
        ('[video]\nbackend = "sora"\n', "c.toml:2: video.backend: 'sora' is not a video backend; one of "
                                        "'procedural', 'zeroscope', 'remote'"),
        ('[video]\nbackend = "zeroscope"\nsteps = 0\n', "c.toml:3: video.steps: Input should be greater than or equal to 1"),
        ('[[schedule]]\ntheme = "x"\nat = "25:00"\n', "c.toml:3: schedule[0].at: at = '25:00' is not a time of day"),
        ('[[schedule]]\ntheme = "x"\ncron = "0 20 * *"\n', "c.toml:3: schedule[0].cron: cron = '0 20 * *' needs 5 fields"),
        ('[[schedule]]\ntheme = "x"\n', "c.toml:1: schedule[0]: give exactly one of cron or at"),
        ('[quality]\ntakes = 3\n', "c.toml:2: quality.takes: more than one take needs a scorer"),
        ('[quality]\nmin_score = 0.2\n', 'c.toml:2: quality.min_score: needs a scorer: set quality.scorer = "clip"'),
        ('[quality]\nscorer = "clip"\nscore_on = "workers"\n', 'c.toml:3: quality.score_on: "workers" needs workers.urls'),
        ('[quality]\nscorer = "clip"\ntakes = 0\n', "c.toml:3: quality.takes: Input should be greater than or equal to 1"),
    ],
)
def test_union_and_schedule_errors_name_key_line_and_owner(text, expected):
    found = problems(text)
    assert any(line.startswith(expected) for line in found), found


@pytest.mark.parametrize(
    "text, env, expected",
    [
        ('[channel]\ntheme = "bells\\u0007 at dawn"\n', {}, "c.toml:2: channel.theme: holds a control character, U+0007"),
        ('[channel]\ntheme = "${THEME}"\n', {"THEME": "a\udcffb"},  # os.environ's surrogateescape of a non-UTF-8 byte
         "c.toml:2: channel.theme: cannot be encoded as UTF-8: lone surrogate U+DCFF"),
        ('[[schedule]]\nat = "06:00"\ntheme = "x\\u202ey"\n', {}, "c.toml:3: schedule[0].theme: holds an invisible format"),
        ('[[schedule]]\nat = "06:00"\ntheme = "x"\ntags = ["a\\tb"]\n', {}, "c.toml:4: schedule[0].tags[0]: holds a control"),
    ],
)
def test_themes_and_tags_must_be_printable_text(text, env, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("c.toml"), env)
    assert any(line.startswith(expected) for line in str(caught.value).splitlines()), str(caught.value)


def test_a_table_without_backend_keeps_the_default_and_its_keys():
    config = parse_config('[video]\nclip_seconds = 2.0\nrender_delay_s = 0.5\n[interpolation]\n[audio]\n',
                          Path("c.toml"), {})
    assert (config.video.backend, config.video.render_delay_s) == ("procedural", 0.5)
    assert (config.upscale.backend, config.interpolation.backend, config.audio.backend) == ("none", "minterpolate", "synth")
    assert config.director.backend == "offline" and not config.needs_workers


def test_director_retry_backoff_is_a_config_key():
    from webtv.director import make_director

    config = parse_config('[director]\nbackend = "openai"\nretry_backoff_s = 0.1\n', Path("c.toml"), {})
    assert config.director.retry_backoff_s == 0.1 and make_director(config.director).backoff_s == 0.1
    default = parse_config('[director]\nbackend = "openai"\n', Path("c.toml"), {}).director
    assert default.retry_backoff_s == 1.0 and make_director(default).backoff_s == 1.0
    found = problems('[director]\nbackend = "openai"\nretry_backoff_s = 0\n')
    assert any(line.startswith("c.toml:3: director.retry_backoff_s: Input should be greater than 0") for line in found), found


def test_cross_section_rules_name_each_key(tmp_path):
    found = problems('[video]\nbackend = "remote"\nclip_seconds = 20\n\n[audio]\nbackend = "remote"\n\n'
                     '[moderation]\nopenai = true\n')
    assert found == [
        "c.toml: programme.block_seconds: must be at least video.clip_seconds (20): a block holds whole clips",
        'c.toml:2: video.backend: "remote" needs workers.urls: the workers that take its jobs',
        'c.toml:6: audio.backend: "remote" needs workers.urls: the workers that take its jobs',
        'c.toml:9: moderation.openai: asks the [director] server, so it needs [director] backend = "openai"',
    ]


def test_missing_weights_and_model_folders_fail_at_load(tmp_path):
    folder = tmp_path / "t2v"
    folder.mkdir()
    path = tmp_path / "channel.toml"
    path.write_text('[video]\nbackend = "zeroscope"\nmodel = "./t2v"\n\n[audio]\nbackend = "musicgen"\n'
                    'model = "./nowhere"\n\n[interpolation]\nbackend = "film"\nmodel = "film.pt"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines() == [
        f"{path}:11: interpolation.model: file not found: {tmp_path / 'film.pt'}",
        f"{path}:3: video.model: {folder}: no model_index.json in the folder "
        "(expected a folder written by save_pretrained, or a hub snapshot)",
        f"{path}:7: audio.model: {tmp_path / 'nowhere'}: no such folder",
    ]
    (folder / "model_index.json").write_text("{}")
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "config.json").write_text("{}")
    (tmp_path / "film.pt").write_bytes(b"")
    config = load_config(path)
    assert config.video.model == str(folder) and config.interpolation.model == tmp_path / "film.pt"


def test_film_without_weights_is_allowed_and_the_summary_says_it_falls_back():
    config = parse_config('[video]\nbackend = "zeroscope"\n[interpolation]\nbackend = "film"\n', Path("c.toml"), {})
    assert "interpolate: film without weights (interpolation.model unset): falls back to minterpolate" in summary(config)


def test_worker_problems_and_check_worker(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text('[workers]\nurls = ["http://a/"]\n[video]\nbackend = "remote"\n')
    config = load_config(path)
    assert worker_problems(config) == [(("video", "backend"), '"remote" cannot be used by a worker, '
                                                               'which renders the stage itself')]
    with pytest.raises(ConfigError, match=r"w\.toml:4: video\.backend"):
        check_worker(config)
    check_worker(load_config(REPO / "channel.toml"))  # a local config serves


def test_schedule_entries_build_the_trigger_the_daemon_runs():
    from apscheduler.triggers.cron import CronTrigger

    from webtv.theme.schedule import trigger

    entry = ScheduleEntry(theme="x", cron="0 20 * * fri")
    assert isinstance(trigger(entry), CronTrigger) and str(trigger(entry)) == str(CronTrigger.from_crontab("0 20 * * fri"))
    assert "hour='6'" in str(ScheduleEntry(theme="y", at="06:00").trigger())


# ----------------------------------------------------------------------------- live or restart


def edited(config: Config, **changes: dict) -> Config:
    return with_changes(config, changes, "test")


def test_pending_restart_names_sections_and_restart_keys():
    old = Config()
    new = edited(old, video={"backend": "zeroscope"}, house={"fps": 25}, output={"hls": False, "rtmp_urls": []},
                 workers={"urls": ["http://a/"]}, programme={"block_seconds": 20.0}, channel={"theme": "owls"})
    assert pending_restart(old, new) == ["house", "video", "output.hls"]
    assert pending_restart(old, edited(old, output={"buffer_kb": 128, "hls_list_size": 9})) == [
        "output.hls_list_size", "output.buffer_kb"]
    assert pending_restart(old, old) == []


def test_live_config_keeps_what_waits_for_a_restart():
    old = Config()
    new = edited(old, video={"backend": "zeroscope"}, house={"fps": 25},
                 output={"hls": False, "rtmp_urls": ["rtmp://h/app/key"]},
                 workers={"urls": ["http://a/"]}, programme={"block_seconds": 20.0}, channel={"theme": "owls"})
    live = live_config(old, new)
    assert live.video == old.video and live.house == old.house and live.output.hls is True
    assert live.output.rtmp_urls == ["rtmp://h/app/key"] and live.workers.urls == ["http://a/"]
    assert live.programme.block_seconds == 20.0 and live.channel.theme == "owls"


def test_every_section_declares_live_or_restart():
    restart = {name for name, field in Config.model_fields.items()
               if isinstance(field.default, Section) and field.default.restart}
    assert restart == {"house", "video", "upscale", "interpolation", "audio", "voice", "subtitles", "paths", "http"}
    assert OutputSection.restart_keys == ("hls", "hls_list_size", "buffer_kb")


# ----------------------------------------------------------------------------- webtv render's model flags


def flags(**values) -> argparse.Namespace:
    base = dict(video_model=None, upscale_model=None, music_model=None, film_model=None, steps=None, frames=None, size=None)
    return argparse.Namespace(**{**base, **values})


def test_a_model_flag_switches_the_backend_and_drops_the_old_ones_keys(tmp_path):
    from webtv.cli import with_model_flags

    config = parse_config('[video]\nrender_delay_s = 2.0\nclip_seconds = 2.0\n', Path("c.toml"), {})
    switched = with_model_flags(config, flags(video_model="owner/t2v", steps=3, frames=8, size="64x32"))
    assert isinstance(switched.video, ZeroscopeVideoSection)
    assert (switched.video.model, switched.video.steps, switched.video.frames, switched.video.width) == ("owner/t2v", 3, 8, 64)
    assert switched.video.clip_seconds == 2.0  # shared by every video backend: kept
    assert switched.upscale.backend == "none"  # --steps reaches the upscale pass only when there is one
    both = with_model_flags(config, flags(video_model="owner/t2v", upscale_model="owner/xl", steps=3))
    assert both.upscale.steps == 3 and both.upscale.model == "owner/xl"


def test_a_flag_the_backend_cannot_take_is_a_config_error():
    from webtv.cli import with_model_flags

    with pytest.raises(ConfigError, match=r'command-line flags: video\.frames: belongs to backend "zeroscope" or "remote"'):
        with_model_flags(Config(), flags(frames=8))
    with pytest.raises(ConfigError, match=r"video\.steps: Input should be greater than or equal to 1"):
        with_model_flags(Config(), flags(video_model="owner/t2v", steps=0))


def test_check_warns_about_house_settings_twitch_rejects_or_degrades(tmp_path):
    twitch = '[output]\nrtmp_urls = ["rtmp://live.twitch.tv/app/${KEY}"]\n'
    path = tmp_path / "c.toml"
    path.write_text(twitch + "\n[house]\nvideo_kbps = 8000\ngop_seconds = 4.0\naudio_kbps = 192\n")
    done = check(path, env={**os.environ, "KEY": "live_123_secret"})
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("webtv: warning:")]
    assert warnings == [
        f"webtv: warning: {path}:5: house.video_kbps: 8000 kb/s is over the 6000 kb/s Twitch takes "
        "(rtmp://live.twitch.tv/app/***)",
        f"webtv: warning: {path}:6: house.gop_seconds: a keyframe every 4 s; Twitch wants one every 2 s "
        "(rtmp://live.twitch.tv/app/***)",
        f"webtv: warning: {path}:7: house.audio_kbps: 192 kb/s is over the 160 kb/s Twitch takes "
        "(rtmp://live.twitch.tv/app/***)",
    ]
    assert "live_123_secret" not in done.stderr + done.stdout
    # the defaults suit Twitch; another server gets no Twitch advice
    path.write_text(twitch.replace("live.twitch.tv", "ingest.global-contribute.live-video.net"))
    assert "warning" not in check(path, env={**os.environ, "KEY": "k"}).stderr
    path.write_text('[output]\nrtmp_urls = ["rtmp://a.rtmp.youtube.com/live2/k"]\n[house]\nvideo_kbps = 8000\n')
    assert "warning" not in check(path).stderr
    path.write_text('[output]\nrtmp_urls = ["rtmps://x.contribute.live-video.net/app/k"]\n[house]\nfps = 25\n'
                    'gop_seconds = 1.98\n')
    assert "warning" not in check(path).stderr  # 1.98 s at 25 fps is a 50-frame GOP: a keyframe every 2 s


def test_the_summary_shows_the_takes_and_the_loudness_target():
    text = summary(parse_config('[house]\nloudness_lufs = -23\n[quality]\ntakes = 3\nscorer = "clip"\nmin_score = 0.2\n',
                                Path("c.toml"), {}))
    assert "takes:      best of 3, scored by CLIP (openai/clip-vit-base-patch32) on the channel over 4 frames," \
           " a shot under 0.2 is dropped" in text
    assert "loudness:   -23 LUFS integrated (EBU R128), true peak <= -1.5 dBTP" in text
    assert "takes:      1, not scored" in summary(parse_config("", Path("c.toml"), {}))

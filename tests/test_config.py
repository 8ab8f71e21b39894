"""`webtv check` and the config loader: good files pass, bad ones name the key or line."""

import subprocess
import sys
from pathlib import Path

import pytest

from webtv.config import ConfigError, load_config, redact_url

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

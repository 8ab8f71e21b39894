"""A channel folder's files: daemon.toml, channel files, and every error naming both files."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from webtv.cli import main
from webtv.config import ConfigError
from webtv.folder import DaemonConfig, load_channel_file, load_daemon_config, load_folder

pytestmark = pytest.mark.fast


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def channel(name: str | None, *extra: str) -> str:
    lines = ["[channel]", f'name = "{name}"' if name is not None else "", 'theme = "owls"', *extra]
    return "\n".join(lines) + "\n"


def test_a_folder_of_two_channels_shares_the_daemon_sections_and_defaults_paths_per_file(tmp_path):
    write(tmp_path, "daemon.toml", '[http]\nport = 8181\ntoken_env = "TOK"\n[workers]\nurls = ["http://gpu:7860"]\n')
    write(tmp_path, "b.toml", channel(None, "[video]", 'backend = "remote"'))
    write(tmp_path, "a.toml", channel("alpha", "[paths]", 'hls = "/tmp/x/alpha-hls"'))
    write(tmp_path, ".a.toml.swp.toml", "not toml at all [")
    read = load_folder(tmp_path)
    assert read.refused == {}
    assert [p.name for p in read.channels] == ["a.toml", "b.toml"]
    a, b = read.channels.values()
    assert (a.channel.name, b.channel.name) == ("alpha", "b")  # an unset name: the file's stem
    for config in (a, b):
        assert config.http.port == 8181 and config.http.token_env == "TOK"
        assert config.workers.urls == ["http://gpu:7860"]
    assert a.paths.library == tmp_path / "a" / "library"
    assert a.paths.hls == Path("/tmp/x/alpha-hls")
    assert (b.paths.library, b.paths.playlists, b.paths.hls) == (
        tmp_path / "b" / "library", tmp_path / "b" / "playlists", tmp_path / "b" / "hls")
    assert read.daemon.source == tmp_path / "daemon.toml"


def test_no_daemon_file_means_the_defaults_and_remote_stages_need_its_workers(tmp_path):
    write(tmp_path, "a.toml", channel("a", "[video]", 'backend = "remote"'))
    read = load_folder(tmp_path)
    assert read.daemon == DaemonConfig()
    assert '"remote" needs workers.urls' in read.refused[tmp_path / "a.toml"]


@pytest.mark.parametrize("section", ["http", "workers"])
def test_a_channel_file_setting_a_daemon_wide_section_is_refused_naming_both_files(tmp_path, section):
    write(tmp_path, "daemon.toml", "[http]\nport = 8181\n")
    bad = write(tmp_path, "a.toml", channel("a", f"[{section}]", "retries = 1" if section == "workers" else "port = 1"))
    with pytest.raises(ConfigError) as exc:
        load_channel_file(bad, load_daemon_config(tmp_path), {})
    assert str(exc.value) == (f"{bad}:4: {section}: [{section}] is daemon-wide in a channel folder: "
                              f"set it in {tmp_path / 'daemon.toml'} and remove it here")


def test_clashes_name_both_files_and_the_later_file_is_refused(tmp_path):
    write(tmp_path, "a.toml", channel("news", "[output]", 'rtmp_urls = ["rtmp://x/live/k1"]'))
    write(tmp_path, "b.toml", channel("news"))
    write(tmp_path, "c.toml", channel("c", "[paths]", 'library = "a/library"'))
    write(tmp_path, "d.toml", channel("d", "[paths]", 'hls = "a/playlists"', "[output]",
                                      'rtmp_urls = ["rtmp://y/live/k2", "rtmp://x/live/k1"]'))
    write(tmp_path, "e.toml", channel("no/slash"))
    read = load_folder(tmp_path)
    assert list(read.channels) == [tmp_path / "a.toml"]
    a = tmp_path / "a.toml"
    assert read.refused[tmp_path / "b.toml"] == (
        f"{tmp_path / 'b.toml'}:2: channel.name: 'news' is also the name of {a}: each channel of a folder needs its own")
    assert f"c.toml:5: paths.library: {tmp_path / 'a' / 'library'} is also paths.library of {a}" \
        in read.refused[tmp_path / "c.toml"]
    d = read.refused[tmp_path / "d.toml"]
    assert f"paths.hls: {tmp_path / 'a' / 'playlists'} is also paths.playlists of {a}" in d
    assert f"output.rtmp_urls[1]: rtmp://x/live/*** is also an RTMP URL of {a}: one stream has one publisher" in d
    assert "k1" not in d  # stream keys stay out of errors
    assert "'no/slash' cannot be a channel's id" in read.refused[tmp_path / "e.toml"]


def test_a_reload_is_checked_against_the_others_but_not_against_itself(tmp_path):
    a = write(tmp_path, "a.toml", channel("a"))
    b = write(tmp_path, "b.toml", channel("b"))
    read = load_folder(tmp_path)
    daemon = read.daemon
    assert load_channel_file(a, daemon, read.channels).channel.name == "a"
    write(tmp_path, "a.toml", channel("b"))
    with pytest.raises(ConfigError, match=f"'b' is also the name of {b}"):
        load_channel_file(a, daemon, read.channels)


def test_daemon_file_errors_name_the_daemon_file(tmp_path):
    path = write(tmp_path, "daemon.toml", "[http]\nport = 8181\n[channel]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: channel: \[channel\] belongs in a channel file"):
        load_daemon_config(tmp_path)
    write(tmp_path, "daemon.toml", "[http]\nport = 99999\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: http.port: "):
        load_daemon_config(tmp_path)
    write(tmp_path, "daemon.toml", '[workers]\nurls = ["http://a"]\n[[workers.credentials]]\nurl = "http://b"\n')
    with pytest.raises(ConfigError, match=r"workers.credentials\[0\].url: not one of workers.urls"):
        load_daemon_config(tmp_path)
    with pytest.raises(ConfigError, match="not a folder of channel files"):
        load_daemon_config(tmp_path / "nowhere")


def test_check_a_folder_prints_every_channel_and_exits_2_when_one_is_invalid(tmp_path, capsys):
    write(tmp_path, "daemon.toml", "[http]\nport = 8181\n")
    write(tmp_path, "a.toml", channel("a"))
    write(tmp_path, "b.toml", channel("b"))
    assert main(["check", "--config", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "channel:    a" in out and "channel:    b" in out
    assert "2 channel(s), 0 refused" in out and "http:       127.0.0.1:8181" in out
    write(tmp_path, "c.toml", channel("c", "[programme]", "block_seconds = -1"))
    assert main(["check", "--config", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "2 channel(s), 1 refused" in captured.out
    assert f"{tmp_path / 'c.toml'}:5: programme.block_seconds" in captured.err


@pytest.fixture
def sigmask():
    """``webtv run`` holds SIGHUP until its daemon handles it: give the test process its mask back."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_run_a_folder_without_a_valid_channel_exits_2(tmp_path, capsys, sigmask):
    write(tmp_path, "a.toml", channel("a", "[programme]", "block_seconds = -1"))
    assert main(["run", "--config", str(tmp_path)]) == 2
    assert "no valid channel file" in capsys.readouterr().err
    write(tmp_path, "daemon.toml", "[http]\nport = -1\n")
    assert main(["run", "--config", str(tmp_path)]) == 2

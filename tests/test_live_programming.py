"""Operators change a running channel: channel.toml edits, the control API, the schedule."""

from __future__ import annotations

import datetime
import re
import signal
import time
from pathlib import Path

import pytest

from tests.daemon import Daemon

pytestmark = pytest.mark.e2e

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def channel(tmp_path_factory, rtmp_server):
    daemon = Daemon(
        tmp_path_factory.mktemp("live") / "channel",
        env={"WEBTV_TEST_TOKEN": TOKEN},
        http={"token_env": "WEBTV_TEST_TOKEN"},
        programme={"block_seconds": 4.0, "filler_seconds": 2.0},
        moderation={"words": ["forbidden"], "patterns": [r"blood\w*"]},
    ).start()
    try:
        daemon.wait_for(lambda s: s["now_playing"] is not None and s["now_playing"]["clip_id"], timeout=40,
                        message="a clip on air")
        yield daemon
    finally:
        daemon.kill()


def edit(channel: Daemon, old: str, new: str) -> None:
    text = channel.config.read_text()
    assert old in text
    channel.config.write_text(text.replace(old, new))


def on_air_theme(theme: str):
    return lambda s: s["now_playing"] is not None and s["now_playing"]["theme"] == theme


def test_theme_edit_in_channel_toml_goes_on_air(channel):
    old = channel.status()["theme"]
    edit(channel, f'theme = "{old}"', 'theme = "glass whales over a desert"')
    status = channel.wait_for(on_air_theme("glass whales over a desert"), timeout=40,
                              message="a clip of the new theme on air")
    assert status["theme"] == "glass whales over a desert" and status["theme_source"] == "config"
    assert status["now_playing"]["source"] == "fresh"


def test_broken_edit_keeps_the_last_good_config_until_fixed(channel):
    good = channel.config.read_text()
    channel.config.write_text(good.replace('[programme]\n', '[programme]\nblock_secs = 3\n'))
    status = channel.wait_for(lambda s: s["config_error"] is not None, timeout=10, message="config_error")
    assert "programme.block_secs" in status["config_error"] and "unknown key" in status["config_error"]
    assert re.search(r":\d+:", status["config_error"]), "no line number"
    channel.config.write_text(good.replace('theme = "glass whales', 'theme = ["glass whales'))
    status = channel.wait_for(lambda s: "invalid TOML" in (s["config_error"] or ""), timeout=10)
    assert "line" in status["config_error"]
    block = status["now_playing"]["block"]
    channel.wait_for(lambda s: s["now_playing"]["block"] > block, timeout=20, message="still airing")
    assert channel.status()["theme"] == "glass whales over a desert"
    channel.config.write_text(good)
    channel.wait_for(lambda s: s["config_error"] is None, timeout=10, message="error cleared")


def test_blocked_theme_is_not_applied(channel):
    text = channel.config.read_text()
    channel.config.write_text(text.replace('theme = "glass whales over a desert"', 'theme = "bloody forbidden rites"'))
    status = channel.wait_for(lambda s: s["config_error"] is not None, timeout=10)
    assert "moderation" in status["config_error"]
    assert status["theme"] == "glass whales over a desert"
    channel.config.write_text(text)
    channel.wait_for(lambda s: s["config_error"] is None, timeout=10)


def test_post_theme_needs_the_token_and_keeps_comments(channel):
    text = channel.config.read_text()
    channel.config.write_text("# operator notes: keep this line\n" + text.replace(
        "[channel]\n", "[channel]\n# the theme below is changed through the API\n"))
    time.sleep(0.5)
    assert channel.request("POST", "/api/theme", {"theme": "paper boats at night"})[0] == 401
    assert channel.request("POST", "/api/theme", {"theme": "paper boats at night"}, token="wrong")[0] == 401
    assert channel.request("POST", "/api/theme", {"nope": 1}, token=TOKEN)[0] == 400
    code, body = channel.request("POST", "/api/theme", {"theme": "forbidden dance"}, token=TOKEN)
    assert code == 422 and "word:forbidden" in body
    code, body = channel.request("POST", "/api/theme", {"theme": "paper boats at night"}, token=TOKEN)
    assert code == 200, body
    written = channel.config.read_text()
    assert 'theme = "paper boats at night"' in written
    assert written.startswith("# operator notes: keep this line\n")
    assert "# the theme below is changed through the API" in written
    status = channel.wait_for(on_air_theme("paper boats at night"), timeout=40, message="API theme on air")
    assert status["theme_source"] == "api" and status["config_error"] is None


def test_schedule_entry_switches_the_theme(channel):
    due = datetime.datetime.now() + datetime.timedelta(seconds=4)  # 3 to 4 s away: the reload takes ~0.1 s
    text = channel.config.read_text()
    channel.config.write_text(text + f'\n[[schedule]]\nat = "{due:%H:%M:%S}"\ntheme = "a night market on the moon"\n')
    status = channel.wait_for(lambda s: s["schedule"]["next"] is not None, timeout=10, message="schedule loaded")
    assert status["schedule"]["next"]["theme"] == "a night market on the moon"
    status = channel.wait_for(lambda s: s["theme"] == "a night market on the moon", timeout=20,
                              message="scheduled theme")
    assert status["theme_source"] == "schedule"
    assert status["schedule"]["current"]["theme"] == "a night market on the moon"
    channel.wait_for(on_air_theme("a night market on the moon"), timeout=40, message="scheduled theme on air")


def test_rtmp_outputs_added_and_removed_live(channel, rtmp_server):
    hls_pid = channel.output("hls")["pid"]
    text = channel.config.read_text()
    url = f"{rtmp_server}/live-added"
    channel.config.write_text(text.replace("rtmp_urls = []", f'rtmp_urls = ["{url}"]'))
    channel.wait_for(lambda s: any(o["kind"] == "rtmp" and o["state"] == "running" for o in s["outputs"]),
                     timeout=15, message="rtmp output added")
    channel.config.write_text(text)
    channel.wait_for(lambda s: not any(o["kind"] == "rtmp" for o in s["outputs"]), timeout=15,
                     message="rtmp output removed")
    assert channel.output("hls")["pid"] == hls_pid


def test_sighup_reloads_channel_toml(channel):
    """SIGHUP (systemd's ExecReload) reads channel.toml again, as a watched edit would; the
    daemon stays on air and says so in its log."""
    before = channel.status()["config_reloads"]
    channel.proc.send_signal(signal.SIGHUP)
    channel.wait_for(lambda s: s["config_reloads"] > before, timeout=10, message="a reload on SIGHUP")
    assert re.search(r"SIGHUP: reloading .*channel\.toml", channel.log_tail(20000))
    assert channel.proc.poll() is None and channel.status()["playout"]["healthy"]


def test_sighup_while_starting_is_a_reload_not_the_end(tmp_path):
    """A SIGHUP that comes while the daemon is still reading its config (before its handler
    is in) waits for the handler: the daemon comes up and reloads, it does not exit 129."""
    daemon = Daemon(tmp_path / "channel", output={"rtmp_urls": [], "hls": True})
    daemon.start()
    try:
        deadline = time.monotonic() + 10  # the moment webtv.cli holds SIGHUP, the config not yet read
        while not int(re.search(r"SigBlk:\s*([0-9a-f]+)", (Path(f"/proc/{daemon.proc.pid}/status")).read_text())
                      .group(1), 16) & (1 << (signal.SIGHUP - 1)):
            assert time.monotonic() < deadline and daemon.proc.poll() is None, "SIGHUP is never held while starting"
            time.sleep(0.002)
        daemon.proc.send_signal(signal.SIGHUP)
        status = daemon.wait_for(lambda s: s["config_reloads"] >= 1, timeout=30, message="the held SIGHUP served")
        assert daemon.proc.poll() is None and status["outputs"]
        assert "SIGHUP (while starting): reloading" in daemon.log_tail(20000)
    finally:
        daemon.stop()


def test_bad_live_edits_keep_the_last_good_config_and_the_watch_goes_on(channel):
    """A bad [[schedule]] entry leaves the good slots scheduled; a system prompt that is not
    UTF-8 text (the file is there, so only reading it finds out) is a config error too; after
    both, the next good edit still applies."""
    text = channel.config.read_text()
    good = text.split("\n[[schedule]]")[0] + '\n[[schedule]]\ncron = "30 4 1 1 *"\ntheme = "new year at dawn"\n'
    channel.config.write_text(good)
    channel.wait_for(lambda s: (s["schedule"]["next"] or {}).get("theme") == "new year at dawn", timeout=10,
                     message="the good schedule loaded")
    channel.config.write_text(good + '\n[[schedule]]\ncron = "0 99 * * *"\ntheme = "never"\n')
    status = channel.wait_for(lambda s: s["config_error"] is not None, timeout=10, message="config_error")
    assert "schedule" in status["config_error"] and "0 99 * * *" in status["config_error"]
    assert status["schedule"]["next"]["theme"] == "new year at dawn"
    (channel.folder / "prompt.txt").write_bytes("Écris des plans de caméra".encode("cp1252"))
    channel.config.write_text(good.replace("[director]\n", '[director]\nbackend = "openai"\n'
                                           'base_url = "http://127.0.0.1:9/v1"\nsystem_prompt = "prompt.txt"\n'))
    status = channel.wait_for(lambda s: "director.system_prompt" in (s["config_error"] or ""), timeout=10,
                              message="config_error naming director.system_prompt")
    assert "UTF-8" in status["config_error"] and status["director"]["backend"] == "offline"
    channel.config.write_text(re.sub(r'theme = ".*"', 'theme = "kites over the dunes"', good, count=1))
    status = channel.wait_for(lambda s: s["theme"] == "kites over the dunes", timeout=10,
                              message="the next good edit applied")
    assert status["config_error"] is None and status["schedule"]["next"]["theme"] == "new year at dawn"
    reloads = status["config_reloads"]
    channel.config.write_text(text)
    channel.wait_for(lambda s: s["config_reloads"] > reloads, timeout=10, message="the file put back")


def test_mutations_are_off_without_a_token(tmp_path):
    daemon = Daemon(tmp_path / "no token").start()
    try:
        daemon.wait_for(lambda s: s["outputs"], timeout=30)
        code, body = daemon.request("POST", "/api/theme", {"theme": "x"}, token="anything")
        assert code == 403 and "token_env" in body
    finally:
        daemon.stop()

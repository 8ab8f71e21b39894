"""What enters a running channel from outside: the control API's theme, its write-back into
channel.toml (one transaction, mode kept, a symlinked file followed), odd HTTP requests.
One daemon serves every check here."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.daemon import Daemon

pytestmark = pytest.mark.e2e

TOKEN = "t0ken-for-boundary-tests"


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    daemon = Daemon(tmp_path_factory.mktemp("boundary") / "channel", env={"WEBTV_TEST_TOKEN": TOKEN},
                    http={"token_env": "WEBTV_TEST_TOKEN"}, programme={"block_seconds": 4.0, "filler_seconds": 2.0})
    daemon.start()
    try:
        daemon.wait_for(lambda s: s["playout"]["blocks_aired"] >= 1, timeout=40, message="a block on air")
        yield daemon
    finally:
        daemon.kill()


def post_theme(channel: Daemon, theme: str) -> tuple[int, str]:
    return channel.request("POST", "/api/theme", {"theme": theme}, token=TOKEN)


def test_theme_that_is_not_printable_text_is_refused_and_the_channel_airs_on(channel):
    before = channel.status()
    for theme, reason in (("a\ud800b", "UTF-8"), ("bells\x07 at dawn", "control character"),
                          ("two\nlines", "control character"), ("\u202eevil", "format character")):
        code, body = post_theme(channel, theme)
        assert code == 400 and reason in body, (theme, code, body)
    status = channel.wait_for(lambda s: s["playout"]["blocks_aired"] > before["playout"]["blocks_aired"],
                              timeout=20, message="the next block on air")
    assert status["theme"] == before["theme"]
    assert 'theme = "lighthouses in a storm"' in channel.config.read_text()
    code, body = post_theme(channel, "snow on a café terrace \u2603\ufe0f, \U0001F469\u200d\U0001F680")
    assert code == 200, body
    assert channel.status()["theme"].startswith("snow on a café terrace")

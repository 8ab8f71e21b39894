"""What enters a running channel from outside: the control API's theme, its write-back into
channel.toml (one transaction, mode kept, a symlinked file followed), odd HTTP requests.
One daemon serves every check here."""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.daemon import Daemon

pytestmark = pytest.mark.e2e

TOKEN = "t0ken-for-boundary-tests"


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("boundary") / "channel"
    daemon = Daemon(folder, env={"WEBTV_TEST_TOKEN": TOKEN}, http={"token_env": "WEBTV_TEST_TOKEN"},
                    programme={"block_seconds": 4.0, "filler_seconds": 2.0},
                    paths={name: str(folder / name) for name in ("library", "playlists", "hls")})
    # channel.toml is a link to the file in conf-a/, as when an operator keeps the file elsewhere
    link_to(daemon.config, folder / "conf-a", daemon.config.read_text())
    daemon.start()
    try:
        daemon.wait_for(lambda s: s["playout"]["blocks_aired"] >= 1, timeout=40, message="a block on air")
        yield daemon
    finally:
        daemon.kill()


def link_to(link: Path, folder: Path, text: str) -> Path:
    """Write ``text`` to channel.toml in ``folder`` and point ``link`` at it (one rename, as
    ``ln -sfn`` does); returns the file."""
    folder.mkdir(exist_ok=True)
    target = folder / "channel.toml"
    target.write_text(text)
    tmp = link.with_name(".channel.toml.link")
    tmp.symlink_to(target)
    os.replace(tmp, link)
    return target


def retheme(text: str, theme: str) -> str:
    return re.sub(r"^theme = .*$", f"theme = {json.dumps(theme)}", text, count=1, flags=re.M)


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


def test_write_back_keeps_the_files_mode_and_owner(channel):
    target = channel.config.resolve()
    owner = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())  # another owner needs root
    os.chmod(target, 0o600)
    os.chown(target, *owner)
    code, body = post_theme(channel, "gulls over a harbour")
    assert code == 200, body
    after = os.stat(target)
    assert stat.S_IMODE(after.st_mode) == 0o600 and (after.st_uid, after.st_gid) == owner
    assert channel.config.is_symlink() and 'theme = "gulls over a harbour"' in target.read_text()


def test_a_theme_that_cannot_be_saved_does_not_air(channel):
    target = channel.config.resolve()
    good, before = target.read_text(), channel.status()["theme"]
    target.write_text(good + "\n[broken\n")
    code, body = post_theme(channel, "never saved: syntax")
    assert code == 409 and "not saved" in body and "line" in body, body
    assert channel.status()["theme"] == before
    assert target.read_text().endswith("[broken\n")
    target.rename(target.with_name("away.toml"))
    code, body = post_theme(channel, "never saved: missing")
    assert code == 409 and "not found" in body, body
    target.with_name("away.toml").rename(target)
    target.write_text(good)
    channel.wait_for(lambda s: s["config_error"] is None, timeout=10, message="config_error cleared")
    assert channel.status()["theme"] == before


def test_a_repointed_link_is_followed_by_the_watcher_and_the_write_back(channel):
    old = channel.config.resolve()
    new = link_to(channel.config, channel.folder / "conf-b", retheme(old.read_text(), "a repointed link"))
    channel.wait_for(lambda s: s["theme"] == "a repointed link", timeout=10, message="the new target's theme")
    code, body = post_theme(channel, "written through the link")
    assert code == 200, body
    assert 'theme = "written through the link"' in new.read_text()
    assert "written through the link" not in old.read_text() and channel.config.is_symlink()
    new.write_text(retheme(new.read_text(), "edited in the new target"))
    channel.wait_for(lambda s: s["theme"] == "edited in the new target", timeout=10, message="an edit of the new target")


def test_a_theme_that_cannot_be_saved_on_a_full_disk_does_not_air(channel):
    full = channel.folder / "conf-full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and a container that allows it): {mounted.stderr}")
    back, before = channel.config.resolve(), channel.status()["theme"]
    try:
        target = link_to(channel.config, full, back.read_text())
        with pytest.raises(OSError), open(full / "ballast", "wb") as ballast:
            while True:
                ballast.write(b"\0" * 4096)
                ballast.flush()
        code, body = post_theme(channel, "lost to a full disk")
        assert code == 507 and "not saved" in body and "No space left" in body, body
        assert channel.status()["theme"] == before
        assert "lost to a full disk" not in target.read_text()
        assert sorted(p.name for p in full.iterdir()) == ["ballast", "channel.toml"]
    finally:
        try:
            reloads = channel.status()["config_reloads"]
            link_to(channel.config, back.parent, back.read_text())
            channel.wait_for(lambda s: s["config_reloads"] > reloads, timeout=10, message="the link read back")
        finally:
            subprocess.run(["umount", "-l", str(full)], check=True)


def raw_request(channel: Daemon, method: str, target: str, headers: dict[str, bytes | str], body: bytes = b"") -> int:
    """A request sent as written (header values as bytes, the path unnormalised); its status."""
    connection = http.client.HTTPConnection("127.0.0.1", channel.port, timeout=5)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


def test_odd_requests_answer_401_or_404_not_500(channel):
    body = json.dumps({"theme": "a request with odd bytes"}).encode()
    assert raw_request(channel, "POST", "/api/theme", {"Authorization": b"Bearer \xff\xfe" + TOKEN.encode()}, body) == 401
    assert raw_request(channel, "POST", "/api/theme", {"Authorization": b"Bearer \xc3\xa9t\xc3\xa9"}, body) == 401
    for scheme in ("bearer", "BEARER"):
        assert raw_request(channel, "POST", "/api/theme", {"Authorization": f"{scheme} {TOKEN}"}, body) == 200, scheme
    for target in ("/hls/%00", "/hls/index%00.m3u8", "/hls/" + "a" * 300, "/hls/" + "b" * 200 + "/" + "c" * 255 + ".ts",
                   "/hls/" + "/".join(["d" * 200] * 30)):
        assert raw_request(channel, "GET", target, {}) == 404, target[:40]

"""Faults a channel meets over months: the RTMP server gone for 30 s, the daemon killed -9,
requests that try to leave the HLS folder, stream keys that must not leak."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import Daemon, processes_mentioning
from tests.readers import RtmpReader
from tests.rtmp_server import RtmpServer

pytestmark = pytest.mark.e2e

KEY = "live_sekrit_stream_key_42"


def hls_sequence(daemon: Daemon) -> int:
    text = (daemon.folder / "hls" / "index.m3u8").read_text()
    return int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))


def rtmp_output(status: dict) -> dict:
    return next(o for o in status["outputs"] if o["kind"] == "rtmp")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    rtmp = RtmpServer(tmp_path_factory.mktemp("own-nginx")).start()
    yield rtmp
    rtmp.stop()


@pytest.fixture(scope="module")
def channel(tmp_path_factory, server):
    daemon = Daemon(tmp_path_factory.mktemp("reliability") / "channel", rtmp_urls=[f"{server.url}/{KEY}"],
                    output={"wedged_after_s": 3.0}).start()
    try:
        daemon.wait_for(lambda s: len(s["outputs"]) == 2 and all(o["state"] == "running" for o in s["outputs"]),
                        timeout=30, message="outputs running")
        yield daemon
    finally:
        daemon.kill()


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("target", [
    "/hls/../channel.toml", "/hls/%2e%2e/channel.toml", "/hls/..%2fchannel.toml", "/hls/%2e%2e%2fchannel.toml",
    "/hls/../../../../etc/passwd", "/hls//etc/passwd", "/hls/%2fetc%2fpasswd", "/hls/..\\channel.toml",
])
def test_hls_serves_nothing_outside_its_folder(channel, target):
    code, data = raw_get(channel.port, target)
    assert code == 404, data[:200]
    assert b"[channel]" not in data and b"root:" not in data


def test_hls_files_are_served(channel):
    deadline = time.monotonic() + 15
    while not (channel.folder / "hls" / "index.m3u8").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    code, data = raw_get(channel.port, "/hls/index.m3u8")
    assert code == 200 and b"#EXTM3U" in data


def test_stream_key_never_shown(channel):
    status = channel.request("GET", "/api/status")[1]
    assert KEY not in status and "/***" in status
    done = subprocess.run([sys.executable, "-m", "webtv", "check", "--config", str(channel.config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and KEY not in done.stdout + done.stderr
    assert KEY not in channel.log_tail(10**7)


def test_rtmp_server_down_30s_reconnects_with_backoff_and_hls_goes_on(channel, server):
    sequence_before = hls_sequence(channel)
    restarts_before = rtmp_output(channel.status())["restarts"]
    server.stop()
    down_at = time.monotonic()
    states, backoffs = set(), []
    while time.monotonic() - down_at < 30:
        out = rtmp_output(channel.status())
        states.add(out["state"])
        if out.get("backoff_s") and (not backoffs or backoffs[-1] != out["backoff_s"]):
            backoffs.append(out["backoff_s"])
        time.sleep(0.25)
    assert "backoff" in states
    assert len(backoffs) >= 3 and backoffs == sorted(backoffs) and backoffs[-1] >= 4 * backoffs[0], backoffs
    assert hls_sequence(channel) >= sequence_before + 10, "HLS stopped making segments while RTMP was down"
    assert channel.output("hls")["restarts"] == 0

    server.start(keep_port=True)
    back_at = time.monotonic()
    status = channel.wait_for(lambda s: rtmp_output(s)["state"] == "running", timeout=40, message="RTMP back")
    assert rtmp_output(status)["restarts"] > restarts_before
    reader = RtmpReader(f"{server.url}/{KEY}", seconds=None).start()  # 2 s may be sound alone
    try:
        assert reader.first_video_after(back_at, timeout=20) is not None, "no frames after the server came back"
    finally:
        reader.stop()


def test_stopped_outputs_show_stalled_in_status_metrics_and_healthz(channel):
    """SIGSTOP both output ffmpegs: the relay still feeds them but nothing is written, so
    /api/status says "stalled", /metrics counts them down, and /healthz answers 503 once every
    output has been down for wedged_after_s; SIGCONT and all is well again."""
    pids = [o["pid"] for o in channel.status()["outputs"]]
    assert all(o["state"] == "running" for o in channel.status()["outputs"])
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        status = channel.wait_for(lambda s: all(o["state"] == "stalled" for o in s["outputs"]), timeout=8,
                                  message="both outputs stalled")
        assert [o["pid"] for o in status["outputs"]] == pids
        samples = [s for family in text_string_to_metric_families(channel.request("GET", "/metrics")[1])
                   for s in family.samples if s.name in ("webtv_output_up", "webtv_output_state")]
        for out in status["outputs"]:
            mine = {(s.name, s.labels.get("state")): s.value for s in samples if s.labels["output"] == out["name"]}
            assert mine[("webtv_output_up", None)] == 0
            assert mine[("webtv_output_state", "stalled")] == 1 and mine[("webtv_output_state", "running")] == 0
        deadline = time.monotonic() + 8
        while (health := channel.request("GET", "/healthz"))[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert health[0] == 503 and "stalled" in health[1], health
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    channel.wait_for(lambda s: all(o["state"] == "running" for o in s["outputs"]), timeout=10, message="running again")
    assert channel.request("GET", "/healthz")[0] == 200


def test_kill9_daemon_back_on_air_within_5s_library_intact(channel, server):
    channel.wait_for(lambda s: s["library"]["clips"] >= 4, timeout=60, message="some library")
    index = channel.folder / "library" / "index.sqlite"
    channel.proc.send_signal(signal.SIGKILL)
    channel.proc.wait()
    time.sleep(0.5)
    with sqlite3.connect(index) as db:
        before = db.execute("SELECT id, file, digest, prompt FROM clips WHERE state = 'ok' ORDER BY id").fetchall()
    playout_left = [cmd for _, cmd in processes_mentioning(str(channel.folder)) if "-f concat" in cmd or "pipe:0" in cmd]
    assert playout_left == [], f"playout ffmpeg outlived the daemon: {playout_left}"

    took = channel.start_on_air(f"{server.url}/{KEY}", timeout=20)
    assert took is not None and took <= 5.0, f"on air after {took} s"
    status = channel.wait_for(lambda s: s["now_playing"] is not None, timeout=10)
    assert status["now_playing"]["clip_id"] is not None
    time.sleep(8)  # the producer goes on making clips
    with sqlite3.connect(index) as db:
        after = db.execute("SELECT id, file, digest, prompt FROM clips WHERE state = 'ok' ORDER BY id").fetchall()
        prompts = [row[0] for row in db.execute("SELECT prompt FROM clips")]
    assert after[: len(before)] == before, "library changed across the restart"
    for _, name, _, _ in before:
        assert (channel.folder / "library" / "clips" / name).is_file()
    assert len(prompts) == len(set(prompts)), "a clip was rendered twice"


def test_second_daemon_on_the_same_library_exits_2_naming_the_holder(channel, tmp_path):
    """A second `webtv run` on a library in use (its own port: it would air) stops before it
    touches the library: the first daemon's render in flight stays, no clip goes."""
    library = channel.folder / "library"
    in_flight = library / "incoming" / "4242-1.mp4"  # what a render leaves there until it is ingested
    in_flight.write_bytes(b"half a render")
    clips_before = {p.name for p in (library / "clips").iterdir()}
    second = Daemon(tmp_path / "second", paths={"library": str(library)}).start()
    try:
        second.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    finally:
        second.kill()
    try:
        assert second.proc.returncode == 2, second.log_tail()
        assert f"pid {channel.proc.pid}" in second.log_tail() and str(library) in second.log_tail()
        assert in_flight.exists(), "the second daemon deleted a render in flight"
        assert clips_before <= {p.name for p in (library / "clips").iterdir()}
        assert not (tmp_path / "second" / "playlists").exists(), "the second daemon wrote playlists"
        assert channel.status()["playout"]["healthy"]
    finally:
        in_flight.unlink(missing_ok=True)

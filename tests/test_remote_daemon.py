"""The daemon rendering through remote workers: `webtv run` with `[video]` and `[audio]
backend = "remote"` calling two real `webtv worker` processes (procedural video with a render
delay standing in for a GPU, synth music) over gradio_client, airing HLS.

The tests run in order on one channel: two workers render and their clips air; one is killed
mid-job and the job completes on the other; both are killed and the library airs while
/api/status says why; one comes back and is used again."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest

from tests.daemon import Daemon
from webtv.config import redact_url
from tests.worker_harness import QUIET_ENV, start_workers

pytestmark = pytest.mark.e2e

RENDER_DELAY = 1.2  # seconds per /video job on a worker


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    procs = start_workers(tmp_path_factory.mktemp("workers"), 2, video={"render_delay_s": RENDER_DELAY})
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()


@pytest.fixture(scope="module")
def channel(tmp_path_factory, workers):
    daemon = Daemon(
        tmp_path_factory.mktemp("remote channel"),
        env={**QUIET_ENV, "TMPDIR": str(tmp_path_factory.mktemp("daemon-tmp"))},
        video={"backend": "remote", "clip_seconds": 2.0},
        audio={"backend": "remote"},
        interpolation={"backend": "none"},
        workers={"urls": [w.url for w in workers], "timeout_s": 20, "retries": 2,
                 "health_interval_s": 0.5, "probe_after_s": 1.5},
        producer={"ahead": 100},  # keep rendering all along
        programme={"block_seconds": 6.0, "filler_seconds": 2.0},
    ).start()
    try:
        daemon.wait_for(lambda s: any(o["state"] == "running" for o in s["outputs"]), timeout=30,
                        message="HLS output running")
        yield daemon
    finally:
        daemon.kill()


def by_url(status: dict) -> dict[str, dict]:
    return {w["url"]: w for w in status["workers"]}


def hls(status: dict) -> dict:
    return next(o for o in status["outputs"] if o["kind"] == "hls")


def test_renders_through_two_workers_and_airs_the_clips(channel, workers):
    status = channel.wait_for(
        lambda s: s["producer"]["clips_made"] >= 3 and all(w["jobs_done"] >= 2 for w in s["workers"]),
        timeout=60, message="clips rendered on both workers")
    assert status["producer"]["clips_failed"] == 0, status["producer"]
    assert status["workers_summary"] == "2 of 2 workers healthy"
    for worker in workers:
        entry = by_url(status)[worker.url]
        assert entry["state"] == "healthy" and entry["failures"] == 0
        assert entry["mean_job_s"] > 0 and set(entry) >= {"url", "state", "jobs_done", "failures", "mean_job_s"}
    aired = channel.wait_for(
        lambda s: (s["now_playing"] or {}).get("clip_id") is not None and s["now_playing"]["source"] == "fresh",
        timeout=20, message="a remotely rendered clip on air")
    assert aired["now_playing"]["theme"] == "lighthouses in a storm"


def test_worker_killed_mid_job_the_job_completes_on_the_other(channel, workers):
    def rendering(worker) -> bool:  # the worker itself is inside a /video job (its log says so)
        log = worker.log_tail(100_000)
        return log.count("video started") > log.count("video done")

    def video_in_flight(s: dict) -> bool:
        return any(by_url(s)[w.url]["running"] == ["/video"] and rendering(w) for w in workers)

    status = channel.wait_for(video_in_flight, timeout=20, message="a /video job in flight")
    victim = next(w for w in workers if by_url(status)[w.url]["running"] == ["/video"] and rendering(w))
    assert redact_url(victim.url) in {r["worker"] for r in status["producer"]["rendering"] if r["stage"] == "video"}
    other = next(w for w in workers if w is not victim)
    victim.kill()
    killed_at = time.monotonic()
    made, failed = status["producer"]["clips_made"], status["producer"]["clips_failed"]
    other_done = by_url(status)[other.url]["jobs_done"]
    hls_before = hls(status)

    after = channel.wait_for(lambda s: s["producer"]["clips_made"] >= made + 2, timeout=30,
                             message="two more clips after the kill")
    assert after["producer"]["clips_failed"] == failed, after["producer"]  # the job was not lost
    gone = by_url(after)[victim.url]
    assert gone["state"] in ("down", "probing") and gone["failures"] >= 1, gone
    assert by_url(after)[other.url]["jobs_done"] >= other_done + 2
    assert after["workers_summary"].startswith(f"1 of 2 workers up; down: {victim.url}")
    # the channel never stopped: the same HLS output process, running, blocks moving on
    assert hls(after)["state"] == "running" and hls(after)["pid"] == hls_before["pid"]
    assert hls(after)["restarts"] == hls_before["restarts"]
    assert time.monotonic() - killed_at < 30


def test_all_workers_down_the_library_airs_and_status_says_why(channel, workers):
    for worker in workers:
        worker.kill()
    status = channel.wait_for(lambda s: s["workers_summary"].startswith("all 2 workers are down"),
                              timeout=15, message="all workers down in status")
    assert "Connection refused" in status["workers_summary"] or "connection" in status["workers_summary"]
    assert "airs its library" in status["workers_summary"]
    assert all(w["state"] in ("down", "probing") for w in status["workers"])
    block = status["now_playing"]["block"]
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = channel.status()
        playing = now["now_playing"]
        assert playing["clip_id"] is not None and playing["source"] != "filler", playing  # library clips, no card
        seen.add(playing["clip_id"])
        if playing["block"] >= block + 1 and len(seen) >= 2:
            break
        time.sleep(0.3)
    assert playing["block"] >= block + 1, "no new block aired while the workers were down"
    assert hls(now)["state"] == "running"
    failed = channel.wait_for(lambda s: "down" in (s["producer"]["last_error"] or ""), timeout=10,
                              message="the producer says why it made nothing")
    assert "workers are down" in failed["producer"]["last_error"]


def test_a_worker_back_is_used_again(channel, workers):
    status = channel.status()
    worker = workers[0]
    done_before = by_url(status)[worker.url]["jobs_done"]
    made = status["producer"]["clips_made"]
    worker.start().wait_ready()
    back = channel.wait_for(
        lambda s: by_url(s)[worker.url]["state"] == "healthy" and by_url(s)[worker.url]["jobs_done"] > done_before
        and s["producer"]["clips_made"] > made,
        timeout=30, message="the worker back in use")
    assert back["workers_summary"].startswith("1 of 2 workers up; down: " + workers[1].url)


def test_workers_edited_in_the_channel_file_apply_without_a_restart(channel, workers):
    def set_urls(urls: list[str]) -> None:
        text = channel.config.read_text()
        text = re.sub(r"(?m)^urls = .*$", "urls = " + json.dumps(urls), text, count=1)
        channel.config.write_text(text)

    kept, removed = workers[0].url, workers[1].url
    set_urls([kept])
    status = channel.wait_for(lambda s: list(by_url(s)) == [kept], timeout=15, message="the worker removed")
    assert "workers" not in status["config_pending_restart"]
    assert status["workers_summary"] == "1 of 1 workers healthy"
    set_urls([kept, removed])
    status = channel.wait_for(lambda s: list(by_url(s)) == [kept, removed], timeout=15, message="the worker added")
    assert "workers" not in status["config_pending_restart"]


def test_sigterm_with_a_long_remote_job_in_flight_stops_within_5s(channel, workers):
    slow = workers[1]  # back with a 30 s render: a real GPU job's length
    slow.config.write_text(slow.config.read_text().replace(f"render_delay_s = {RENDER_DELAY}", "render_delay_s = 30"))
    slow.start().wait_ready()
    channel.wait_for(lambda s: by_url(s)[slow.url]["running"] == ["/video"], timeout=30,
                     message="a 30 s job on the slow worker")
    started = time.monotonic()
    channel.proc.send_signal(signal.SIGTERM)
    try:
        channel.proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        channel.proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to the log
        channel.proc.wait(timeout=10)
        pytest.fail(f"still running 5 s after SIGTERM with a remote job in flight:\n{channel.log_tail(20000)}")
    assert channel.proc.returncode == 0, channel.log_tail()
    assert time.monotonic() - started <= 5.0

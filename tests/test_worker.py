"""The render worker (`webtv worker`, a real Gradio app in a subprocess) and the pool that
calls it with gradio_client: endpoints, lossless transport, routing, retry, timeouts, health
take-out and probe-back, adapters for Spaces with other signatures, `webtv render --remote`."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.daemon import REPO
from tests.rtmp_server import free_port
from tests.worker_harness import QUIET_ENV, WorkerProcess
from webtv.config import (AdapterSection, RemoteAudioSection, RemoteInterpolationSection, RemoteUpscaleSection,
                          RemoteVideoSection, RemoteVoiceSection, WorkersSection, load_config)
from webtv.director import Sequence, Shot
from webtv.producer.base import Frames
from webtv.producer.remote import (JobFailed, RemoteAudio, RemoteInterpolator, RemoteUpscaler, RemoteVideo,
                                   RemoteVoice, WorkerPool, WorkersDown, read_frames, write_frames)

DELAY = 0.6  # the worker's procedural render takes this long


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    proc = WorkerProcess(tmp_path_factory.mktemp("worker"), video={"render_delay_s": DELAY}).start()
    try:
        yield proc.wait_ready()
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def worker_config(worker):
    return load_config(worker.config)


def pool_of(*urls: str, start: bool = False, **settings) -> WorkerPool:
    section = WorkersSection(urls=list(urls), **{"timeout_s": 30, "retries": 2, "health_interval_s": 0.5,
                                                 "probe_after_s": 1.0, **settings})
    return WorkerPool(section, start=start)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"  # nothing listens there


SHOT = Shot(prompt="a lighthouse in a storm, slow pan left", seed=7, theme="storms")


def test_health_endpoint_reports_backends(worker):
    from gradio_client import Client

    client = Client(worker.url, verbose=False, download_files=False, analytics_enabled=False)
    info = client.predict(api_name="/health")
    assert info["webtv_worker"] == 1
    assert info["backends"] == {"video": "procedural", "upscale": "none", "interpolation": "minterpolate",
                                "audio": "synth", "voice": "espeak"}
    endpoints = {e.api_name for e in client.endpoints.values()}
    assert {"/health", "/video", "/upscale", "/interpolate", "/music", "/voice", "/clip"} <= endpoints
    client.close()


def test_video_frames_travel_losslessly(worker, worker_config):
    from webtv.producer.procedural import ProceduralVideo

    pool = pool_of(worker.url)
    try:
        frames = RemoteVideo(pool, RemoteVideoSection()).render(SHOT, 2.0)
        local = ProceduralVideo(worker_config.house)._draw(SHOT, 2.0, None)
        assert frames.fps == 24.0 and frames.array.shape == local.array.shape == (48, 44, 80, 3)
        assert np.array_equal(frames.array, local.array), "the frames changed on the way"
        [status] = pool.status()
        assert status["state"] == "healthy" and status["jobs_done"] == 1 and status["mean_job_s"] >= DELAY
    finally:
        pool.close()


def test_upscale_none_round_trips_noise_and_interpolate_retimes(worker, tmp_path):
    pool = pool_of(worker.url)
    try:
        noise = np.random.default_rng(1).integers(0, 256, (5, 37, 51, 3), dtype=np.uint8)  # odd sizes too
        back = RemoteUpscaler(pool, RemoteUpscaleSection()).upscale(Frames(noise, 7.5), SHOT)
        assert back.fps == 7.5 and np.array_equal(back.array, noise)
        out = RemoteInterpolator(pool, RemoteInterpolationSection()).interpolate(
            Frames(noise[:, :36, :48], 2.5), 2.0, 24)
        assert out.fps == 24.0 and out.array.shape == (48, 36, 48, 3)
        # the file format itself: exact frame rate, exact pixels
        path = write_frames(Frames(noise, 24000 / 1001), tmp_path / "f.mkv")
        again = read_frames(path)
        assert abs(again.fps - 24000 / 1001) < 1e-9 and np.array_equal(again.array, noise)
    finally:
        pool.close()


def test_music_matches_the_local_synth(worker):
    from webtv.producer.synth import SynthAudio

    sequence = Sequence(id="s1", theme="storms", music_prompt="calm piano, slow", seed=3, shots=(SHOT,))
    pool = pool_of(worker.url)
    try:
        remote = RemoteAudio(pool, RemoteAudioSection()).compose(sequence, 4.0, 48000, 2)
    finally:
        pool.close()
    local = SynthAudio().compose(sequence, 4.0, 48000, 2)
    assert remote.shape == local.shape == (192000, 2) and remote.dtype == np.float32
    assert np.array_equal(remote, local)


def test_voice_matches_the_local_espeak(worker):
    from webtv.config import EspeakVoiceSection
    from webtv.producer.voice import EspeakVoice

    pool = pool_of(worker.url)
    try:
        remote = RemoteVoice(pool, RemoteVoiceSection()).speak("-a line, not an option.", "en+f3", 170, 48000)
    finally:
        pool.close()
    local = EspeakVoice(EspeakVoiceSection()).speak("-a line, not an option.", "en+f3", 170, 48000)
    assert remote.ndim == 1 and remote.dtype == np.float32 and len(remote) > 48000
    assert np.array_equal(remote, local), "the speech changed on the way"


def test_a_narrated_clip_from_the_worker_lasts_as_its_line(worker, tmp_path):
    from webtv.producer.house import validate_clip
    from webtv.producer.remote import render_remote_clip

    house = load_config(worker.config).house
    out = render_remote_clip(worker.url, "a fox in the snow", 3, tmp_path / "told.mp4", 60, seconds=2.0,
                             house=house, narration="The fox waits.")
    assert validate_clip(out, house, 3.0).video.width == 320  # a short line: the shortest shot, not 2 s


def test_render_remote_cli_makes_a_house_clip(worker, tmp_path):
    from webtv.producer.house import validate_clip

    config = worker.config  # the same small house format
    out = tmp_path / "out dir" / "clip.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "webtv", "render", "a red kite over the sea", "--remote", worker.url,
         "--out", str(out), "--config", str(config), "--seed", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, **QUIET_ENV},
    )
    assert done.returncode == 0, done.stderr
    assert f"made by {worker.url}" in done.stdout
    house = load_config(config).house
    info = validate_clip(out, house, 2.0)
    assert info.video.width == 320 and info.audio.channels == 2
    assert not list(out.parent.glob(".*partial*"))


def test_least_busy_choice():
    pool = pool_of("http://a/", "http://b/", "http://c/")
    a, b, c = pool._workers
    for w in (a, b, c):
        w.state = "healthy"
    a.in_flight = 1
    b.per_endpoint["/video"] = [2, 10.0]  # mean 5 s
    c.per_endpoint["/video"] = [2, 4.0]  # mean 2 s: the faster of the idle two
    c.per_endpoint["/music"] = [1, 9.0]  # its music is slow, but that is another endpoint
    assert pool._acquire(set(), "/video") is c
    assert pool._acquire(set(), "/video") is b  # c now has a job in flight
    c.state = "down"
    assert pool._acquire({"http://b/"}, "/video") is a  # the only one left, busy or not
    assert pool._acquire({"http://a/", "http://b/"}, "/video") is None
    # similar speeds (within 1.5x) take turns, least recently used first
    for w in (a, b, c):
        w.state, w.in_flight, w.last_used = "healthy", 0, 0.0
    b.per_endpoint["/video"], c.per_endpoint["/video"] = [2, 4.0], [2, 5.0]  # 2.0 and 2.5 s; a: none yet
    picks = []
    for _ in range(4):
        w = pool._acquire(set(), "/video")
        picks.append(w.url)
        w.in_flight -= 1
    assert picks == ["http://a/", "http://b/", "http://c/", "http://a/"]


def test_edited_urls_keep_the_known_workers():
    pool = pool_of("http://a/", "http://b/")
    pool._workers[1].jobs_done = 5
    pool.update(WorkersSection(urls=["http://b/", "http://c/"], retries=1))
    assert [(s["url"], s["jobs_done"], s["state"]) for s in pool.status()] == [
        ("http://b/", 5, "unknown"), ("http://c/", 0, "unknown")]
    assert pool.section.retries == 1
    pool.close()


def test_failed_job_is_retried_on_another_worker(worker):
    dead = dead_url()
    pool = pool_of(dead, worker.url)  # neither checked yet: the dead one is tried first
    try:
        frames = RemoteVideo(pool, RemoteVideoSection()).render(SHOT, 1.0)
        assert len(frames.array) == 24
        first, second = pool.status()
        assert first["url"] == dead and first["state"] == "down" and first["failures"] == 1
        assert "Connection refused" in first["last_error"]
        assert second["state"] == "healthy" and second["jobs_done"] == 1 and second["failures"] == 0
        assert pool.summary().startswith("1 of 2 workers up; down: " + dead)
    finally:
        pool.close()


def test_app_error_is_reported_and_keeps_the_worker(worker, tmp_path):
    from gradio_client import handle_file

    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a video at all")
    pool = pool_of(worker.url)
    try:
        with pytest.raises(JobFailed, match="upscale failed"):
            pool.submit("/upscale", handle_file(str(junk)), "p", 1, False, "")
        [status] = pool.status()
        assert status["state"] != "down" and status["failures"] == 1  # the worker is fine; the input was not
    finally:
        pool.close()


def test_job_past_its_timeout_fails_and_takes_the_worker_out(worker):
    pool = pool_of(worker.url, timeout_s=DELAY / 3, retries=0)
    try:
        started = time.monotonic()
        with pytest.raises(JobFailed, match="no result within"):
            RemoteVideo(pool, RemoteVideoSection()).render(SHOT, 1.0)
        assert time.monotonic() - started < DELAY + 1.0
        [status] = pool.status()
        assert status["state"] == "down" and "no result within" in status["last_error"]
    finally:
        pool.close()
    time.sleep(DELAY)  # the worker finishes the abandoned job


def test_all_workers_down_raises_workers_down_naming_why():
    pool = pool_of(dead_url(), dead_url())
    try:
        statuses = pool.check()
        assert [s["state"] for s in statuses] == ["down", "down"]
        started = time.monotonic()
        with pytest.raises(WorkersDown, match=r"all 2 workers are down \(.*Connection refused"):
            pool.submit("/video", "p", 1, 1.0, False, "")
        assert 0.4 <= time.monotonic() - started < 3.0  # waited one health interval for a worker to come back
        assert "airs its library" in pool.summary()
    finally:
        pool.close()
    with pytest.raises(WorkersDown, match="no workers configured"):
        pool_of().submit("/video")


# --------------------------------------------------------------------------- model backends


@pytest.fixture(scope="module")
def tiny_worker(tmp_path_factory):
    """A worker whose config names the model backends: tiny random Zeroscope (video and XL
    upscale), MusicGen, VITS (the voice) and CLIP (/score) written to disk, run on the CPU."""
    from tests.tiny_clip import tiny_clip
    from tests.tiny_musicgen import tiny_musicgen
    from tests.tiny_vits import tiny_vits
    from tests.tiny_zeroscope import tiny_text_to_video, tiny_video_to_video

    folder = tmp_path_factory.mktemp("tiny-worker")
    proc = WorkerProcess(
        folder / "worker", env={"OMP_NUM_THREADS": "1"},
        video={"backend": "zeroscope", "model": str(tiny_text_to_video(folder / "t2v")), "width": 40, "height": 32,
               "frames": 4, "steps": 2, "device": "cpu"},
        upscale={"backend": "zeroscope", "model": str(tiny_video_to_video(folder / "xl")), "width": 64,
                 "height": 48, "steps": 4, "device": "cpu"},
        audio={"backend": "musicgen", "model": str(tiny_musicgen(folder / "musicgen")), "device": "cpu"},
        voice={"backend": "vits", "model": str(tiny_vits(folder / "vits")), "device": "cpu"},
        quality={"model": str(tiny_clip(folder / "clip")), "device": "cpu"},
    ).start()
    proc.clip_model = str(folder / "clip")
    try:
        yield proc.wait_ready()
    finally:
        proc.kill()


def test_worker_serves_the_model_backends_its_config_names(tiny_worker, tmp_path):
    from webtv.producer.house import validate_clip

    pool = pool_of(tiny_worker.url, timeout_s=120)
    try:
        [status] = pool.check()
        assert status["backends"] == {"video": "zeroscope", "upscale": "zeroscope", "interpolation": "minterpolate",
                                      "audio": "musicgen", "voice": "vits"}
        frames = RemoteVideo(pool, RemoteVideoSection()).render(SHOT, 2.0)
        assert frames.array.shape == (4, 32, 40, 3) and frames.seconds == 2.0
        bigger = RemoteUpscaler(pool, RemoteUpscaleSection()).upscale(frames, SHOT)
        assert bigger.array.shape == (4, 48, 64, 3) and bigger.fps == frames.fps
        sequence = Sequence(id="s", theme="storms", music_prompt="calm strings", seed=2)
        track = RemoteAudio(pool, RemoteAudioSection()).compose(sequence, 2.0, 48000, 2)
        assert track.shape == (96000, 2) and np.abs(track).max() > 0
        speech = RemoteVoice(pool, RemoteVoiceSection()).speak("a fox in the snow", None, 160, 48000)
        assert speech.ndim == 1 and len(speech) > 4800 and np.abs(speech).max() > 0
    finally:
        pool.close()
    # the whole chain on the worker: Zeroscope -> XL -> minterpolate -> MusicGen -> house encode
    from webtv.producer.remote import render_remote_clip

    house = load_config(tiny_worker.config).house
    out = render_remote_clip(tiny_worker.url, "a fox in the snow", 3, tmp_path / "clip.mp4", 120, seconds=2.0,
                             house=house)
    assert validate_clip(out, house, 2.0).video.width == 320


def test_takes_are_drawn_and_scored_on_the_worker(tiny_worker, tmp_path):
    """[quality] score_on = "workers": three takes drawn by /video, each rated by /score with
    the worker's CLIP, the same scores the channel's own CLIP gives the same frames."""
    from dataclasses import replace

    from webtv.config import Config
    from webtv.producer import ClipPipeline, make_stages
    from webtv.producer.takes import ClipScorer

    config = Config.model_validate({
        "house": load_config(tiny_worker.config).house.model_dump(), "video": {"backend": "remote"},
        "interpolation": {"backend": "none"}, "workers": {"urls": [tiny_worker.url], "timeout_s": 120},
        "quality": {"takes": 3, "scorer": "clip", "score_on": "workers", "model": tiny_worker.clip_model}})
    pool = WorkerPool(config.workers, start=False)
    try:
        before = pool.check()[0]["jobs_done"]
        pipeline = ClipPipeline.from_config(config, make_stages(config, pool), pool)
        made = pipeline.single(SHOT, tmp_path / "clip.mp4")
        assert pool.check()[0]["jobs_done"] - before == 6  # three /video, three /score
        drawn = [RemoteVideo(pool, RemoteVideoSection()).render(replace(SHOT, seed=seed), 2.0)
                 for seed in made.takes.seeds]
    finally:
        pool.close()
    local = ClipScorer(config.quality)
    assert made.takes.scores == pytest.approx([local.score(frames, SHOT.prompt) for frames in drawn], abs=1e-5)
    assert made.takes.score == max(made.takes.scores)


# --------------------------------------------------------------------------- adapters


@pytest.fixture(scope="module")
def fake_spaces(tmp_path_factory):
    """A Gradio app with other endpoint signatures, like public Zeroscope and MusicGen Spaces:
    /run (prompt, seed, frames, steps) -> an MP4, /predict (text, duration) -> audio."""
    folder = tmp_path_factory.mktemp("fake-spaces")
    saved = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")  # Gradio's cache, not /tmp/gradio
    import gradio as gr

    from webtv.media import ffmpeg_exe

    calls: list[tuple] = []

    def run(prompt, seed, frames, steps):
        calls.append(("run", prompt, seed, frames, steps))
        path = str(folder / f"zs-{time.monotonic_ns()}.mp4")
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=8",
                        "-frames:v", str(int(frames)), "-pix_fmt", "yuv420p", "-c:v", "libx264", path], check=True)
        return path

    def predict(text, duration):
        calls.append(("predict", text, duration))
        t = np.arange(int(32000 * float(duration))) / 32000
        return 32000, (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)

    with gr.Blocks(analytics_enabled=False) as app:
        prompt, seed = gr.Textbox(), gr.Number(precision=0)
        frames, steps = gr.Number(precision=0), gr.Number(precision=0)
        video = gr.Video()
        gr.Button().click(run, [prompt, seed, frames, steps], video, api_name="run")
        text, duration = gr.Textbox(), gr.Number()
        audio = gr.Audio(type="numpy")
        gr.Button().click(predict, [text, duration], audio, api_name="predict")
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       ssr_mode=False, allowed_paths=[str(folder)])
    try:
        yield f"http://127.0.0.1:{port}/", calls
    finally:
        app.close()
        if saved is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas deprecations inside Gradio
def test_adapters_call_spaces_with_other_signatures(fake_spaces):
    url, calls = fake_spaces
    pool = pool_of(url)
    try:
        assert pool.check()[0]["state"] == "healthy"  # no /health there: its config answers
        video = RemoteVideoSection(frames=12, steps=5,
                                   adapter=AdapterSection(endpoint="/run", args=["$prompt", "$seed", "$frames", "$steps"]))
        frames = RemoteVideo(pool, video).render(SHOT, 3.0)
        assert ("run", SHOT.prompt, SHOT.seed, 12, 5) in calls
        assert frames.array.shape == (12, 48, 64, 3) and abs(frames.seconds - 3.0) < 1e-9  # retimed to the shot
        audio = RemoteAudioSection(adapter=AdapterSection(endpoint="/predict", args=["$prompt", "$seconds"]))
        sequence = Sequence(id="s", theme="t", music_prompt="slow strings", seed=1)
        track = RemoteAudio(pool, audio).compose(sequence, 2.5, 48000, 2)
        assert ("predict", "slow strings", 2.5) in calls
        assert track.shape == (120000, 2) and 0.15 < np.abs(track[1000:-1000]).max() < 0.3
    finally:
        pool.close()


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")
def test_an_adapter_gets_the_prompt_without_its_weights(fake_spaces):
    url, calls = fake_spaces
    pool = pool_of(url)
    try:
        video = RemoteVideoSection(frames=2, steps=1,
                                   adapter=AdapterSection(endpoint="/run", args=["$prompt", "$seed", "$frames", "$steps"]))
        RemoteVideo(pool, video).render(Shot(prompt="a (red fox:1.4) in (fresh snow:0.8)", seed=9, theme="t"), 1.0)
        assert ("run", "a red fox in fresh snow", 9, 2, 1) in calls
    finally:
        pool.close()


# --------------------------------------------------------------------------- last: kills the worker


def test_killed_worker_is_taken_out_then_probed_back(worker):
    pool = pool_of(worker.url, start=True, timeout_s=10, retries=0)
    video = RemoteVideo(pool, RemoteVideoSection())
    try:
        deadline = time.monotonic() + 10
        while pool.status()[0]["state"] != "healthy" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.status()[0]["state"] == "healthy"
        result: dict = {}

        def job():
            try:
                video.render(SHOT, 1.0)
            except Exception as exc:  # noqa: BLE001
                result["error"] = exc

        thread = threading.Thread(target=job)
        thread.start()
        while pool.status()[0]["in_flight"] == 0:
            time.sleep(0.01)
        time.sleep(DELAY / 3)
        worker.kill()  # mid-job
        thread.join(timeout=15)
        assert isinstance(result.get("error"), JobFailed)
        assert "connection to the worker lost" in str(result["error"]) or "Connect" in str(result["error"])
        [status] = pool.status()
        assert status["state"] in ("down", "probing") and status["failures"] == 1
        with pytest.raises(WorkersDown, match="the only worker is down"):
            video.render(SHOT, 1.0)

        worker.start().wait_ready()  # back, on the same port
        deadline = time.monotonic() + 15
        while pool.status()[0]["state"] != "healthy" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pool.status()[0]["state"] == "healthy", pool.status()
        assert len(video.render(SHOT, 1.0).array) == 24
        assert pool.status()[0]["jobs_done"] == 1
    finally:
        pool.close()

"""Quality before air (issue #13, items 4 and 5): a take mostly black, frozen or silent is
rejected with its reasons and never reaches the library, whether a local backend or a Gradio
app behind a ``[video.adapter]`` made it; clips and the filler card are made at the house
loudness (EBU R128, read back by ffmpeg's ``ebur128``).

Real ffmpeg, a real Gradio app, and one real daemon airing from that app."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.daemon import Daemon
from tests.listen import loudness
from tests.rtmp_server import free_port
from tests.worker_harness import QUIET_ENV
from webtv.config import AdapterSection, HouseSection, RemoteAudioSection, RemoteVideoSection, WorkersSection
from webtv.director import Shot
from webtv.media.detect import stretches
from webtv.producer import ClipPipeline, Frames, Stages, SynthAudio
from webtv.producer.checks import Checks, Rejected
from webtv.producer.house import make_card
from webtv.producer.procedural import ProceduralVideo

TINY = HouseSection(width=128, height=72, fps=12, video_kbps=200, audio_kbps=64, x264_preset="ultrafast")


class Takes:
    """A video backend that draws what the prompt asks for: "black" (a black picture), "frozen"
    (one noisy still), else the procedural picture."""

    def __init__(self, house: HouseSection):
        self.procedural = ProceduralVideo(house)
        self.house = house

    def render(self, shot, seconds, progress=None, *, light=False) -> Frames:
        count, shape = round(seconds * self.house.fps), (self.house.height, self.house.width, 3)
        if "black" in shot.prompt:
            return Frames(np.zeros((count, *shape), np.uint8), self.house.fps)
        if "frozen" in shot.prompt:
            still = np.random.default_rng(shot.seed).integers(0, 255, shape, dtype=np.uint8)
            return Frames(np.repeat(still[None], count, axis=0), self.house.fps)
        return self.procedural.render(shot, seconds, progress)


class Music(SynthAudio):
    """The synth, silent when the music prompt says "silent", ``gain`` times as loud otherwise."""

    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def compose(self, sequence, seconds, sample_rate, channels, *, light=False):
        samples = super().compose(sequence, seconds, sample_rate, channels)
        return samples * (0.0 if "silent" in sequence.music_prompt else self.gain)


def take(prompt: str) -> Shot:
    return Shot(prompt=prompt, seed=3, theme="lighthouses")


@pytest.mark.fast
def test_the_detectors_stretches_are_summed_and_an_open_one_lasts_to_the_end():
    log = ("[blackdetect @ 0x1] black_start:0 black_end:0.75 black_duration:0.75\n"
           "[freezedetect @ 0x2] lavfi.freezedetect.freeze_start: 0.5\n"
           "[silencedetect @ 0x3] silence_start: 0.25\n[silencedetect @ 0x3] silence_end: 1 | silence_duration: 0.75\n"
           "[blackdetect @ 0x1] black_start:1.5 black_end:2 black_duration:0.5\n")
    assert stretches(log, 2.0) == {"black": 1.25, "freeze": 1.5, "silence": 0.75}


@pytest.mark.parametrize("prompt, reasons", [
    ("a black take", ("black", "frozen")),  # a black picture is a still one too; counted as black
    ("a frozen take", ("frozen",)),
    ("a silent take", ("silent",)),
])
def test_a_black_frozen_or_silent_take_is_rejected_with_its_reasons(tmp_path, prompt, reasons):
    pipeline = ClipPipeline(Stages(video=Takes(TINY), audio=Music()), TINY, 2.0, checks=Checks())
    with pytest.raises(Rejected) as caught:
        pipeline.single(take(prompt), tmp_path / "take.mp4")
    assert caught.value.reasons == reasons and caught.value.reason == reasons[0]
    assert re.search(rf"{reasons[0]} for [12]\.\d of 2\.0 s \(over 50%\)", str(caught.value)), caught.value


@pytest.mark.parametrize("gain", [0.02, 1.0])
def test_clips_and_the_filler_card_are_made_at_the_house_loudness(tmp_path, gain):
    """The synth alone sits near -10 LUFS, at 0.02 near -44; the filler card's pad near -32."""
    pipeline = ClipPipeline(Stages(video=Takes(TINY), audio=Music(gain)), TINY, 3.0, checks=Checks())
    made = pipeline.single(take("a lighthouse at dusk"), tmp_path / "clip.mp4")
    assert list(made.timings)[:2] == ["music", "loudness"] and "level" in made.timings and "check" in made.timings
    clip = loudness(tmp_path / "clip.mp4")
    assert abs(clip.integrated - TINY.loudness_lufs) <= 2.0 and clip.true_peak <= TINY.true_peak_db + 0.5, clip
    if gain == 1.0:
        make_card("test channel\nmore is on its way", 3.0, TINY, tmp_path / "card.mp4")
        card = loudness(tmp_path / "card.mp4")
        assert abs(card.integrated - TINY.loudness_lufs) <= 1.0 and card.true_peak <= TINY.true_peak_db + 0.5, card


# --------------------------------------------------------------------------- a Space behind an adapter


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A Gradio app like a public Space: /run (prompt, seed, frames, mode) -> an MP4 that is
    black or frozen when the prompt says so (mode "asked"), or black at every other call (mode
    "alternate"); /predict (text, duration) -> audio, silent when the text says so."""
    folder = tmp_path_factory.mktemp("space")
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")
    import gradio as gr

    calls = {"run": 0}

    def run(prompt, seed, frames, mode):
        calls["run"] += 1
        black = "black" in prompt if mode == "asked" else calls["run"] % 2 == 0
        source = "color=c=black:" if black else "color=c=gray:" if "frozen" in prompt else "testsrc2="
        path = str(folder / f"take-{time.monotonic_ns()}.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}size=64x48:rate=8",
                        "-frames:v", str(int(frames)), "-pix_fmt", "yuv420p", "-c:v", "libx264", path], check=True)
        return path

    def predict(text, duration):
        t = np.arange(int(32000 * float(duration))) / 32000
        return 32000, (np.sin(2 * np.pi * 330 * t) * (0 if "silent" in text else 8000)).astype(np.int16)

    with gr.Blocks(analytics_enabled=False) as app:
        prompt, seed, frames, mode = gr.Textbox(), gr.Number(precision=0), gr.Number(precision=0), gr.Textbox()
        text, duration = gr.Textbox(), gr.Number()
        gr.Button().click(run, [prompt, seed, frames, mode], gr.Video(), api_name="run")
        gr.Button().click(predict, [text, duration], gr.Audio(type="numpy"), api_name="predict")
    port = free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                       ssr_mode=False, allowed_paths=[str(folder)])
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


VIDEO_ADAPTER = {"endpoint": "/run", "args": ["$prompt", "$seed", "$frames", "asked"]}
AUDIO_ADAPTER = {"endpoint": "/predict", "args": ["$prompt", "$seconds"]}


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")
def test_takes_from_a_space_behind_an_adapter_are_checked_the_same(space, tmp_path):
    from webtv.producer.remote import RemoteAudio, RemoteVideo, WorkerPool

    pool = WorkerPool(WorkersSection(urls=[space], timeout_s=30, retries=0))
    try:
        stages = Stages(video=RemoteVideo(pool, RemoteVideoSection(frames=16, adapter=AdapterSection(**VIDEO_ADAPTER))),
                        audio=RemoteAudio(pool, RemoteAudioSection(adapter=AdapterSection(**AUDIO_ADAPTER))))
        pipeline = ClipPipeline(stages, TINY, 2.0, checks=Checks())
        for prompt, reason in (("a black take", "black"), ("a frozen take", "frozen"), ("a silent take", "silent")):
            with pytest.raises(Rejected) as caught:
                pipeline.single(take(prompt), tmp_path / "take.mp4")
            assert caught.value.reason == reason, caught.value
    finally:
        pool.close()


def mostly_black(clip: Path) -> bool:
    """Whether most of ``clip``'s frames are dark (read by ffmpeg, not by webtv's checks)."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-vf", "scale=16:9,format=gray", "-f", "rawvideo",
                           "pipe:1"], capture_output=True, check=True, timeout=60)
    frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, 16 * 9)
    return float(np.mean(frames.mean(axis=1) < 30)) > 0.5


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")
def test_the_channel_rejects_black_takes_from_the_space_and_airs_only_checked_clips(space, tmp_path):
    daemon = Daemon(
        tmp_path / "channel", env={**QUIET_ENV, "TMPDIR": str(tmp_path)},
        video={"backend": "remote", "clip_seconds": 2.0, "frames": 16},
        **{"video.adapter": {**VIDEO_ADAPTER, "args": ["$prompt", "$seed", "$frames", "alternate"]}},
        interpolation={"backend": "none"},
        workers={"urls": [space], "timeout_s": 20, "retries": 0},
        producer={"ahead": 4}, programme={"block_seconds": 4.0, "filler_seconds": 2.0},
    ).start()
    try:
        status = daemon.wait_for(
            lambda s: s["producer"]["clips_made"] >= 1 and s["producer"]["rejected"].get("black", 0) >= 1
            and (s["now_playing"] or {}).get("source") == "fresh", timeout=60,
            message="a clip made, a black take rejected, a clip on air")
        code, body = daemon.request("GET", "/metrics")
        code_clips, clips = daemon.request("GET", "/api/clips?limit=200")
    finally:
        daemon.stop()
    producer = status["producer"]
    assert producer["clips_failed"] == 0 and "rejected (black, frozen)" in producer["last_rejected"], producer
    assert code == 200 and code_clips == 200
    rejected = [line for line in body.splitlines() if line.startswith('webtv_shots_rejected_total{reason="black"}')]
    assert rejected and float(rejected[0].split()[-1]) >= 1, rejected
    library = {clip["id"] for clip in json.loads(clips)["clips"]}
    assert status["now_playing"]["clip_id"] in library
    files = [f for f in (daemon.folder / "library").rglob("*.mp4") if {"filler", "incoming"}.isdisjoint(f.parts)]
    assert files and not any(mostly_black(f) for f in files), files
    left = list((daemon.folder / "library" / "incoming").glob("*"))
    assert len(left) <= 1, f"rejected takes left behind (one may be the render the stop cut short): {left}"

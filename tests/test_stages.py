"""The render chain's faults: a failed stage is retried once with lighter settings, then the
shot is skipped and logged while production goes on. CUDA running out of memory cannot
happen here, so the failing backends raise torch's own OutOfMemoryError."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import numpy as np
import pytest
import torch

from webtv.config import Config, HouseSection
from webtv.director.base import Sequence, Shot
from webtv.director.offline import OfflineDirector
from webtv.library import Library
from webtv.producer import ClipPipeline, Frames, ProceduralVideo, StageError, Stages, SynthAudio, make_stages
from webtv.producer.interpolate import NoInterpolation
from webtv.producer.pipeline import Abandoned
from webtv.producer.producer import Producer
from webtv.producer.sequences import SequenceSource

TINY = HouseSection(width=128, height=72, fps=12, x264_preset="ultrafast", video_kbps=200, audio_kbps=48)


class OutOfMemoryUnlessLight:
    """Draws 8 frames; like a GPU too small for the configured settings, fails unless light."""

    def __init__(self, fail_light: bool = False, fail_prompts: tuple[str, ...] | None = None):
        self.calls: list[bool] = []
        self.fail_light = fail_light
        self.fail_prompts = fail_prompts

    def render(self, shot: Shot, seconds: float, progress=None, *, light: bool = False) -> Frames:
        self.calls.append(light)
        failing = self.fail_prompts is None or any(word in shot.prompt for word in self.fail_prompts)
        if failing and (not light or self.fail_light):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        count = 4 if light else 8
        return Frames(np.full((count, 16, 16, 3), 100, np.uint8), fps=count / seconds)


def shot(prompt: str = "a lighthouse") -> Shot:
    return Shot(prompt=prompt, seed=1, theme="t")


def test_a_failed_stage_is_retried_once_with_lighter_settings(caplog):
    video = OutOfMemoryUnlessLight()
    stages = Stages(video=video, audio=SynthAudio(), interpolate=NoInterpolation())
    with caplog.at_level(logging.WARNING, logger="webtv.producer"):
        frames = ClipPipeline(stages, TINY, 2.0).frames(shot())
    assert video.calls == [False, True]
    assert len(frames.array) == 24 and frames.fps == 12, "the light render still fills the clip's airtime"
    assert "video failed, retrying once with lighter settings" in caplog.text
    assert "out of memory" in caplog.text


def test_a_stage_failing_twice_names_the_stage():
    video = OutOfMemoryUnlessLight(fail_light=True)
    with pytest.raises(StageError, match="video failed twice") as caught:
        ClipPipeline(Stages(video=video, audio=SynthAudio()), TINY, 2.0).frames(shot())
    assert caught.value.stage == "video"
    assert video.calls == [False, True]


def test_music_gets_the_same_retry():
    class FlakyMusic(SynthAudio):
        calls: list[bool] = []

        def compose(self, sequence, seconds, sample_rate, channels, *, light=False):
            self.calls.append(light)
            if not light:
                raise RuntimeError("worker crashed")
            return super().compose(sequence, seconds, sample_rate, channels)

    music = FlakyMusic()
    sequence = Sequence(id="s", theme="t", music_prompt="calm", seed=0, shots=(shot(), shot("b")))
    track = ClipPipeline(Stages(video=ProceduralVideo(TINY), audio=music), TINY, 1.5).compose(sequence)
    assert track.samples.shape == (144000, 2)
    assert music.calls == [False, True]


async def test_the_producer_skips_a_shot_that_fails_twice_and_goes_on(tmp_path, caplog):
    library = Library(tmp_path / "library")
    director = OfflineDirector()
    first = (await director.write_sequence("owls", 3, 0)).shots[0].prompt
    video = OutOfMemoryUnlessLight(fail_light=True, fail_prompts=(first,))
    producer = Producer(
        ClipPipeline(Stages(video=video, audio=SynthAudio(), interpolate=NoInterpolation()), TINY, clip_seconds=1.0),
        SequenceSource(director, None, library, seed=0, shots_per_sequence=3), library, theme=lambda: "owls", ahead=2,
    )
    task = asyncio.create_task(producer.run())
    try:
        deadline = time.monotonic() + 30
        while producer.state.clips_made < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert producer.state.clips_made == 2, producer.state
    assert producer.state.clips_failed == 1
    assert "render failed, skipped" in caplog.text and "video failed twice" in caplog.text
    # the clips after the failure succeeded: the error is over, when it happened stays
    assert producer.state.last_error is None and producer.state.last_error_at is not None
    assert not library.has_prompt(first, "owls")
    assert list(library.incoming_dir.glob("*")) == [], "the failed render left a file behind"


def test_remote_backend_without_workers_is_a_config_error():
    from webtv.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"workers\.urls"):
        parse_config('[video]\nbackend = "remote"\n', __import__("pathlib").Path("channel.toml"), {})


def test_film_without_weights_falls_back_to_minterpolate(caplog):
    from webtv.producer.interpolate import MinterpolateInterpolator

    config = Config.model_validate({"video": {"backend": "zeroscope"}, "interpolation": {"backend": "film"}})
    with caplog.at_level(logging.WARNING, logger="webtv.producer"):
        stages = make_stages(config)
    assert isinstance(stages.interpolate, MinterpolateInterpolator)
    assert "minterpolate" in caplog.text


def test_a_clip_is_made_by_the_five_steps_in_order(tmp_path):
    """webtv render and a worker's /clip: music -> loudness, then video -> interpolate -> level -> encode ->
    validate."""
    pipeline = ClipPipeline(Stages(video=ProceduralVideo(TINY), audio=SynthAudio(), interpolate=NoInterpolation()),
                            TINY, clip_seconds=1.5)
    progress: list[tuple[str, float]] = []
    out = tmp_path / "clip.mp4"
    made = pipeline.single(shot(), out, lambda stage, fraction: progress.append((stage, fraction)))
    assert list(made.timings) == ["music", "loudness", "video", "interpolate", "level", "encode", "validate"]
    assert all(seconds >= 0 for seconds in made.timings.values())
    assert made.duration == pytest.approx(1.5, abs=1 / TINY.fps)
    assert [stage for stage, fraction in progress if fraction == 1.0] == list(made.timings)
    assert out.stat().st_size > 0


def test_a_failed_encode_names_its_step(tmp_path):
    house = TINY.model_copy(update={"x264_preset": "warp9"})
    pipeline = ClipPipeline(Stages(video=ProceduralVideo(house), audio=SynthAudio()), house, clip_seconds=1.0)
    with pytest.raises(StageError, match="^encode failed: ffmpeg failed") as caught:
        pipeline.single(shot(), tmp_path / "clip.mp4")
    assert caught.value.stage == "encode"


class SlowDiffusion:
    """A model stage of 40 steps of 0.05 s, reporting each as a diffusion pipeline does."""

    def __init__(self):
        self.started = threading.Event()
        self.ended = threading.Event()
        self.steps = 0
        self.error: BaseException | None = None

    def render(self, shot: Shot, seconds: float, progress=None, *, light: bool = False) -> Frames:
        self.started.set()
        try:
            for step in range(40):
                time.sleep(0.05)
                self.steps += 1
                if progress is not None:
                    progress("video", (step + 1) / 40)
            return Frames(np.full((8, 16, 16, 3), 100, np.uint8), fps=8 / seconds)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.ended.set()


async def test_a_render_whose_producer_stops_ends_at_its_next_step_and_starts_no_encoder(tmp_path):
    """A removed channel's render thread runs on after its producer is cancelled; it must stop
    at its model's next step (the GPU freed) and never reach the encode (an ffmpeg outliving
    its channel)."""
    library = Library(tmp_path / "library")
    video = SlowDiffusion()
    reported: list[str] = []
    pipeline = ClipPipeline(Stages(video=video, audio=SynthAudio(), interpolate=NoInterpolation()), TINY,
                            clip_seconds=1.0, around_step=lambda step: reported.append(step) or contextlib.nullcontext())
    producer = Producer(pipeline, SequenceSource(OfflineDirector(), None, library, seed=0, shots_per_sequence=1),
                        library, theme=lambda: "owls", ahead=1)
    task = asyncio.create_task(producer.run())
    try:
        assert await asyncio.to_thread(video.started.wait, 30), "the render never started"
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await asyncio.to_thread(video.ended.wait, 2), "the model ran on"
    assert video.steps < 40 and isinstance(video.error, Abandoned), (video.steps, video.error)
    await asyncio.sleep(0.3)
    assert "encode" not in reported, reported
    assert producer.state.clips_failed == 0

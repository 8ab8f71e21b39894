"""The clip recipe (ClipPipeline) without ffmpeg: the model steps run in order, each timed
and reported to progress, each retried once with lighter settings, a failed step named.
The stages here stand in for GPU models: they record how they were called."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from webtv.config import HouseSection
from webtv.director import Sequence, Shot
from webtv.producer import ClipPipeline, Frames, StageError, Stages, SynthAudio

pytestmark = pytest.mark.fast

HOUSE = HouseSection(width=128, height=72, fps=12)
SHOT = Shot(prompt="a lighthouse in a storm", seed=1, theme="storms")


class Recorder:
    """Each stage of one clip, writing down what ran (and whether light) in one shared log.
    ``fail`` maps a stage to how many calls of it fail before one succeeds."""

    def __init__(self, fail: dict[str, int] | None = None, reports_done: bool = False):
        self.log: list[tuple[str, bool]] = []
        self.fail = dict(fail or {})
        self.reports_done = reports_done  # the stage says (stage, 1.0) itself, as FILM and Zeroscope do

    def _call(self, stage: str, light: bool, progress) -> None:
        self.log.append((stage, light))
        if self.fail.get(stage, 0) > 0:
            self.fail[stage] -= 1
            raise RuntimeError(f"{stage}: CUDA out of memory")
        if progress is not None:
            progress(stage, 0.5)
            if self.reports_done:
                progress(stage, 1.0)

    def render(self, shot, seconds, progress=None, *, light=False) -> Frames:
        self._call("video", light, progress)
        count = 4 if light else 8
        return Frames(np.zeros((count, 16, 16, 3), np.uint8), count / seconds)

    def upscale(self, frames, shot, progress=None, *, light=False) -> Frames:
        self._call("upscale", light, progress)
        return Frames(np.repeat(np.repeat(frames.array, 2, axis=1), 2, axis=2), frames.fps)

    def interpolate(self, frames, seconds, fps, progress=None, *, light=False) -> Frames:
        self._call("interpolate", light, progress)
        count = round(seconds * fps)
        return Frames(frames.array[np.linspace(0, len(frames.array) - 1, count).round().astype(int)], fps)


def pipeline_of(recorder: Recorder, **kwargs) -> ClipPipeline:
    stages = Stages(video=recorder, audio=SynthAudio(), upscale=recorder, interpolate=recorder)
    return ClipPipeline(stages, HOUSE, 2.0, **kwargs)


@pytest.mark.parametrize("reports_done", [False, True])
def test_the_steps_run_in_order_each_timed_and_reported(reports_done):
    recorder = Recorder(reports_done=reports_done)
    progress: list[tuple[str, float]] = []
    metered: list[str] = []

    @contextlib.contextmanager
    def around(step):
        metered.append(step)
        yield

    pipeline = pipeline_of(recorder, around_step=around)
    frames = pipeline.frames(SHOT, lambda stage, fraction: progress.append((stage, fraction)))
    order = ["video", "upscale", "interpolate"]
    assert recorder.log == [(stage, False) for stage in order]
    assert frames.array.shape == (24, 32, 32, 3) and frames.fps == 12, "clip_seconds x house fps, upscaled"
    assert metered == order
    assert [stage for stage, _ in progress] == [s for s in order for _ in range(3)], progress
    for stage in order:
        fractions = [f for s, f in progress if s == stage]
        assert fractions == [0.0, 0.5, 1.0], f"{stage}: {fractions}"


@pytest.mark.parametrize("stage", ["video", "upscale", "interpolate"])
def test_each_step_is_retried_once_with_lighter_settings(stage, caplog):
    recorder = Recorder(fail={stage: 1})
    frames = pipeline_of(recorder).frames(SHOT)
    expected = []
    for step in ("video", "upscale", "interpolate"):
        expected += [(step, False), (step, True)] if step == stage else [(step, False)]
    assert recorder.log == expected
    assert len(frames.array) == 24, "the lighter render still fills the clip's airtime"
    assert f"{stage} failed, retrying once with lighter settings" in caplog.text


@pytest.mark.parametrize("stage", ["video", "upscale", "interpolate"])
def test_a_step_that_fails_twice_names_itself_and_stops_the_clip(stage):
    recorder = Recorder(fail={stage: 2})
    with pytest.raises(StageError, match=f"^{stage} failed twice") as caught:
        pipeline_of(recorder).frames(SHOT)
    assert caught.value.stage == stage
    assert recorder.log[-2:] == [(stage, False), (stage, True)], "nothing runs after the failed step"


def test_without_the_lighter_retry_a_step_fails_at_once():
    recorder = Recorder(fail={"upscale": 1})
    with pytest.raises(StageError, match="^upscale failed: upscale: CUDA out of memory") as caught:
        pipeline_of(recorder, lighter_retry=False).frames(SHOT)
    assert caught.value.stage == "upscale"
    assert recorder.log == [("video", False), ("upscale", False)]


def test_music_gets_one_lighter_retry_and_names_itself():
    class FlakyMusic(SynthAudio):
        def __init__(self, failures: int):
            self.failures, self.calls = failures, []

        def compose(self, sequence, seconds, sample_rate, channels, *, light=False):
            self.calls.append(light)
            if len(self.calls) <= self.failures:
                raise RuntimeError("worker crashed")
            return super().compose(sequence, seconds, sample_rate, channels)

    sequence = Sequence(id="s", theme="t", music_prompt="calm", seed=0, shots=(SHOT,))
    music = FlakyMusic(failures=1)
    ClipPipeline(Stages(video=Recorder(), audio=music), HOUSE, 1.0).compose(sequence)
    assert music.calls == [False, True]
    music = FlakyMusic(failures=2)
    with pytest.raises(StageError, match="^music failed twice") as caught:
        ClipPipeline(Stages(video=Recorder(), audio=music), HOUSE, 1.0).compose(sequence)
    assert caught.value.stage == "music"


def test_the_sequence_track_is_cut_into_one_slice_per_shot():
    shots = tuple(Shot(prompt=f"shot {i}", seed=i, theme="t", index=i) for i in range(3))
    sequence = Sequence(id="s", theme="t", music_prompt="calm", seed=0, shots=shots)
    house = HOUSE.model_copy(update={"sample_rate": 44100, "channels": 1})
    progress: list[tuple[str, float]] = []
    pipeline = ClipPipeline(Stages(video=Recorder(), audio=SynthAudio()), house, 1.5)
    track = pipeline.compose(sequence, lambda stage, fraction: progress.append((stage, fraction)))
    assert list(track.timings) == ["music", "loudness"] and track.timings["music"] > 0
    assert progress == [("music", 0.0), ("music", 1.0), ("loudness", 0.0), ("loudness", 1.0)]
    assert track.samples.shape == (round(4.5 * 44100), 1)
    slices = [track.shot(i) for i in range(3)]
    assert all(len(s) == round(1.5 * 44100) for s in slices)
    assert np.array_equal(np.concatenate(slices), track.samples), "the slices run on from one another"


class Speaker:
    """A stand-in voice: 0.06 s of a tone a character, noting what it was asked to say."""

    def __init__(self):
        self.said: list[tuple[str, str | None, int]] = []

    def speak(self, text, voice, words_per_minute, sample_rate, *, light=False):
        self.said.append((text, voice, words_per_minute))
        return np.full(round(len(text) * 0.06 * sample_rate), 0.3, np.float32)


def test_a_narrated_sequence_is_spoken_and_fitted_before_its_music_and_a_showreel_is_not():
    from webtv.director import Character
    from webtv.producer.narration import Narration

    lines = ("The keeper climbs the long stairs to the lamp.", "", "Ships turn home.")
    shots = tuple(Shot(prompt=f"shot {i}", seed=i, theme="t", index=i, narration=line, characters=("Bo",))
                  for i, line in enumerate(lines))
    cast = (Character("Bo", "blue hat", voice="en+f3"),)
    sequence = Sequence(id="s", theme="t", music_prompt="calm", seed=0, shots=shots, cast=cast)
    voice = Speaker()
    pipeline = ClipPipeline(Stages(video=Recorder(), audio=SynthAudio(), voice=voice), HOUSE, 2.0,
                            narration=Narration(words_per_minute=150))
    track = pipeline.compose(sequence)
    assert list(track.timings) == ["voice", "fit", "music", "loudness"]
    assert voice.said == [(lines[0], "en+f3", 150), (lines[2], "en+f3", 150)]
    assert [track.seconds(i) for i in range(3)] == [43 / 12, 2.0, 3.0]  # 2.76 s + breath, in whole frames; as set; shortest
    assert len(track.samples) == round((43 / 12 + 5.0) * HOUSE.sample_rate)
    assert np.array_equal(np.concatenate([track.shot(i) for i in range(3)]), track.samples)
    assert track.aired(shots[0]) == shots[0] and track.aired(shots[1]).narration == ""
    frames = pipeline.frames(shots[0])  # the showreel's length, unless the track says otherwise
    assert frames.seconds == 2.0

    showreel = Sequence(id="r", theme="t", music_prompt="calm", seed=0, shots=(SHOT,))
    voice.said.clear()
    plain = pipeline.compose(showreel)
    assert voice.said == [] and plain.lines == () and list(plain.timings) == ["music", "loudness"] and plain.aired(SHOT) is SHOT
    unvoiced = ClipPipeline(Stages(video=Recorder(), audio=SynthAudio()), HOUSE, 2.0, narration=Narration())
    assert unvoiced.compose(sequence).lines == (), '[voice] backend = "none": no narration'

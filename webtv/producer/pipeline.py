"""shot -> clip: the one recipe every clip is made by.

    sequence --music--> one track for all its shots --loudness--> the track at the house
             loudness, set once (two-pass EBU R128), so the level runs on across cuts;
             each clip carries its slice
    shot --1 video--> frames --2 upscale--> --3 interpolate--> frames at the house rate
         --level--> its slice of the track measured, moved back within CLIP_TOLERANCE_LU
         of the house loudness if it strayed --4 encode--> a house-format MP4
         --5 validate--> duration --6 check--> not mostly black, frozen or silent

A narrated sequence (story mode: shots with a ``narration`` line, a voice backend, and
``narration`` settings given) goes through more named steps, ``webtv.producer.narration``
says how each works:

    sequence --voice--> every shot's line spoken --fit--> each shot's seconds (speech +
             breath, within the bounds; sped up or cut when too long) --music--> one track
             as long as the shots together --loudness--; shot i airs its own slice of it
    shot --1-3--> frames for the shot's own seconds --mix--> its slice of the track, ducked
         under its speech --level--> the voice-over mix kept within tolerance --4 encode-->
         with the line as subtitles instead of the caption --5 validate --6 check

A sequence without narration (the showreel) takes the first recipe, unchanged.

Best-of-K (``[quality]``, ``webtv.producer.takes``): with a scorer, step 1 draws the shot
``takes`` times, each take with its own seed (side by side when the video stage runs on
remote workers, one after the other on a local GPU), the ``score`` step rates each take, and
the best one goes on through steps 2-5; a shot whose best take scores under ``min_score``
raises LowScore (dropped, never aired). ``ClipResult.takes`` says which take went on.

Like a diffusers pipeline, a ClipPipeline holds its components once (the Stages, the house
format, the clip length, the checks) and ``__call__`` is the recipe, step by named step. The producer,
``webtv render``, a worker's ``/clip`` and the benchmarks all make clips through it.

Each model step (video, upscale, interpolate, music) that fails, CUDA out of memory say, is
tried once more with ``light=True``; a step that fails for good raises StageError naming
it. Every step is timed and reported to ``progress`` as (step, 0.0) when it starts and
(step, 1.0) when it ends, with the stage's own fractions between. Blocking: the producer
runs the pipeline off the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from webtv.director import Sequence, Shot
from webtv.media.loudness import keep_within, normalize
from webtv.producer.base import Frames, Progress
from webtv.producer.house import encode_clip, validate_clip
from webtv.producer.narration import Line, Narration, fit_line, mix, voice_of
from webtv.producer.shared import ChannelReleased
from webtv.producer.subtitles import Subtitle
from webtv.producer.takes import Scorer, Takes, choose, make_scorer, take_seed
from webtv.prompt_weights import clean

if TYPE_CHECKING:
    from webtv.config import Config, HouseSection, QualitySection
    from webtv.producer.checks import Checks
    from webtv.producer.remote import WorkerPool
    from webtv.producer.registry import Stages

log = logging.getLogger("webtv.producer")

T = TypeVar("T")

CLIP_TOLERANCE_LU = 2.0
"""How far a clip's loudness may stray from the house loudness (``[house] loudness_lufs``)
before the level step moves it back to this distance: the music is normalised as a whole,
and a quiet passage stays a little quieter than a loud one."""

StepMeter = Callable[[str], contextlib.AbstractContextManager[object]]
"""around_step(step): a context entered around each step (a benchmark's memory meter)."""


class StageError(RuntimeError):
    """A step of the recipe failed: a model step twice (at its settings, then the lighter
    ones), encode or validate once. ``stage`` names the step."""

    def __init__(self, stage: str, error: BaseException, *, retried: bool = True):
        how = "failed twice, the retry with lighter settings too" if retried else "failed"
        super().__init__(f"{stage} {how}: {error}")
        self.stage = stage


class Abandoned(RuntimeError):
    """Raised by a ``progress`` callback whose render nobody waits for any more (its producer
    stopped: a channel removed or the daemon stopping). The recipe ends at the step or stage
    report that sees it, without a lighter retry: no later step starts (no encoder outlives
    its channel) and a model stops within one of its own steps."""


def retry_lighter(stage: str, call: Callable[..., T], *args) -> T:
    """``call(*args)``; after a failure (CUDA out of memory, a crashed worker...), once more
    with ``light=True``. Raises StageError when both fail."""
    from webtv.producer.devices import free_memory

    try:
        return call(*args)
    except (ChannelReleased, Abandoned):
        raise  # the channel stopped (the step waiting for its turn on a shared stage, or running): no retry
    except Exception as exc:  # noqa: BLE001 - any failure earns one lighter retry
        log.warning("%s failed, retrying once with lighter settings: %s", stage, exc)
        first = exc
    free_memory()
    try:
        return call(*args, light=True)
    except Exception as exc:  # noqa: BLE001
        free_memory()
        raise StageError(stage, exc) from first


@dataclass(frozen=True)
class Track:
    """One sequence's music; shot ``i`` airs ``shot(i)``, so the music runs on across cuts.
    Every shot lasts ``shot_seconds``, except in a narrated sequence, where shot ``i`` with
    a line lasts ``lines[i].seconds`` and starts where the shots before it end."""

    samples: np.ndarray  # float32, (the shots' seconds together x sample_rate, channels)
    shot_seconds: float
    sample_rate: int
    timings: dict[str, float] = field(default_factory=dict)  # {"music": seconds composing}
    lines: tuple[Line | None, ...] = ()  # narrated: each shot's line as it airs (None: no line)

    def line(self, index: int) -> Line | None:
        return self.lines[index] if index < len(self.lines) else None

    def seconds(self, index: int) -> float:
        """How long shot ``index`` lasts."""
        line = self.line(index)
        return line.seconds if line is not None else self.shot_seconds

    def start(self, index: int) -> float:
        """Where shot ``index`` starts in the track."""
        if not self.lines:
            return index * self.shot_seconds
        return sum(self.seconds(i) for i in range(index))

    def aired(self, shot: Shot) -> Shot:
        """``shot`` as it airs: in a narrated sequence its narration is what is spoken (a cut
        line's prefix; "" for a line dropped). What the library records."""
        if not self.lines:
            return shot
        line = self.line(shot.index)
        spoken = line.text if line is not None else ""
        return shot if spoken == shot.narration else replace(shot, narration=spoken)

    def shot(self, index: int) -> np.ndarray:
        start = round(self.start(index) * self.sample_rate)
        return self.samples[start : start + round(self.seconds(index) * self.sample_rate)]


@dataclass(frozen=True)
class ClipResult:
    duration: float  # seconds, as probed from the validated file
    timings: dict[str, float]  # seconds per step, in the order the steps ran
    takes: Takes | None = None  # best-of-K: every take's seed and score, and the one kept (None: unscored)


class Steps:
    """One run through the recipe: the seconds each step took and progress per step."""

    def __init__(self, progress: Progress | None = None, around_step: StepMeter | None = None):
        self.progress = progress
        self.around_step = around_step
        self.timings: dict[str, float] = {}
        self._finished: set[str] = set()

    def report(self, stage: str, fraction: float) -> None:
        """The progress callback handed to the stages."""
        if fraction >= 1.0:
            self._finished.add(stage)
        if self.progress is not None:
            self.progress(stage, fraction)

    def timed(self, step: str, call: Callable[..., T], *args) -> T:
        """``call(*args)`` as the step ``step``: timed, reported (0 at the start, 1 at the end
        unless the stage said so itself), and named in the error when it fails."""
        self._finished.discard(step)
        self.report(step, 0.0)
        meter = self.around_step(step) if self.around_step is not None else contextlib.nullcontext()
        started = time.monotonic()
        try:
            with meter:
                result = call(*args)
        except (StageError, Abandoned):
            raise
        except Exception as exc:
            raise StageError(step, exc, retried=False) from exc
        self.timings[step] = time.monotonic() - started
        if step not in self._finished:
            self.report(step, 1.0)
        return result


class ClipPipeline:
    """The recipe of one clip, with its components held once.

    ``lighter_retry=False`` makes a failed model step raise at once (a benchmark times the
    configured settings, never the lighter ones); ``around_step`` wraps every step.
    ``narration`` (``Narration.from_config``) lets sequences with lines be narrated when the
    stages have a voice; without it every sequence takes the showreel recipe. ``quality``
    and ``scorer`` make step 1 best-of-K (``quality`` may be replaced live: takes, min_score).
    ``checks`` (``Checks.from_config``) judge the encoded take that went on; None: no checks.
    """

    def __init__(
        self,
        stages: "Stages",
        house: "HouseSection",
        clip_seconds: float,
        *,
        lighter_retry: bool = True,
        around_step: StepMeter | None = None,
        narration: Narration | None = None,
        quality: "QualitySection | None" = None,
        scorer: Scorer | None = None,
        checks: "Checks | None" = None,
    ):
        self.stages = stages
        self.house = house
        self.clip_seconds = clip_seconds
        self.lighter_retry = lighter_retry
        self.around_step = around_step
        self.narration = narration
        self.quality = quality
        self.scorer = scorer
        self.checks = checks

    @classmethod
    def from_config(cls, config: "Config", stages: "Stages", workers: "WorkerPool | None" = None,
                    **options) -> "ClipPipeline":
        """The channel's recipe: its house format, clip length, narration, quality settings and
        checks (``workers``: the channel's pool, for ``[quality] score_on = "workers"``). The
        scorer is the one ``[quality]`` names unless ``options`` brings one (a shared one)."""
        from webtv.producer.checks import Checks

        if "scorer" not in options:
            options["scorer"] = make_scorer(config.quality, workers)
        return cls(stages, config.house, config.video.clip_seconds, narration=Narration.from_config(config),
                   quality=config.quality, checks=Checks.from_config(config.quality), **options)

    def __call__(self, shot: Shot, track: Track, out: Path, progress: Progress | None = None) -> ClipResult:
        """Render, encode and validate ``shot`` into ``out`` with its slice of ``track``."""
        steps = Steps(progress, self.around_step)
        line = track.line(shot.index)
        # 1-3. video (best of the takes), upscale, interpolate: the frames at the house rate, for its seconds
        frames, takes = self._frames(shot, steps, track.seconds(shot.index))
        audio, subtitle = track.shot(shot.index), None
        if line is not None:
            # mix: the shot's music ducked under its line
            audio = steps.timed("mix", mix, audio, line, self.narration.duck_db)
            subtitle = Subtitle(line.text, line.start, line.end)
        # level: the clip's sound (the voice-over mix in story mode) within tolerance of the house loudness
        audio = steps.timed("level", self._level, audio)
        # 4. encode: once, into the house format, with the caption (or the line) and the shot's sound
        steps.timed("encode", encode_clip, frames, audio, clean(shot.prompt), self.house, out, subtitle,
                    self.narration.subtitles if self.narration else None)
        # 5. validate: the file is what playout will copy (format, length, keyframes)
        probed = steps.timed("validate", validate_clip, out, self.house, frames.seconds)
        # 6. check: not mostly black, frozen or silent (Rejected names why)
        if self.checks is not None:
            steps.timed("check", self.checks, out)
        return ClipResult(duration=probed.duration, timings=steps.timings, takes=takes)

    def frames(self, shot: Shot, progress: Progress | None = None) -> Frames:
        """Steps 1-3 alone: the shot's frames at the house rate, not encoded."""
        return self._frames(shot, Steps(progress, self.around_step))[0]

    def _frames(self, shot: Shot, steps: Steps, seconds: float | None = None) -> tuple[Frames, Takes | None]:
        stages, seconds = self.stages, seconds or self.clip_seconds
        takes = None
        if self.scorer is None or self.quality is None:
            # 1. video: the shot drawn for the clip's airtime (at the model's own frame rate)
            frames = steps.timed("video", self._model_step, "video", stages.video.render, shot, seconds,
                                 steps.report)
        else:
            # 1. video: every take, each with its own seed; score: each take rated; the best goes on
            seeds = tuple(take_seed(shot.seed, i) for i in range(self.quality.takes))
            drawn = steps.timed("video", self._draw_takes, shot, seeds, seconds, steps.report)
            scores = steps.timed("score", self._score_takes, drawn, clean(shot.prompt))  # CLIP reads words, not weights
            takes = choose(seeds, scores, self.quality.min_score, shot.prompt)
            frames = drawn[takes.kept]
        # 2. upscale: the same frames at a larger size
        if stages.upscale is not None:
            frames = steps.timed("upscale", self._model_step, "upscale", stages.upscale.upscale, frames, shot,
                                 steps.report)
        # 3. interpolate: exactly clip_seconds x house fps frames (None: already at the house rate)
        if stages.interpolate is not None:
            frames = steps.timed("interpolate", self._model_step, "interpolate", stages.interpolate.interpolate,
                                 frames, seconds, self.house.fps, steps.report)
        return frames, takes

    def _draw_takes(self, shot: Shot, seeds: tuple[int, ...], seconds: float, progress: Progress) -> list[Frames]:
        """One take per seed: side by side on remote workers (the pool spreads them), in turn
        on a local GPU, whose memory holds one render."""
        def draw(i: int) -> Frames:
            def report(stage: str, fraction: float) -> None:
                progress(stage, (i + fraction) / len(seeds))
            return self._model_step("video", self.stages.video.render, replace(shot, seed=seeds[i]), seconds,
                                    report if parallel == 1 else None)

        parallel = len(seeds) if getattr(self.stages.video, "spreads_over_workers", False) else 1
        if parallel == 1:
            return [draw(i) for i in range(len(seeds))]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(parallel, thread_name_prefix="take") as takes:
            return list(takes.map(draw, range(len(seeds))))

    def _score_takes(self, drawn: list[Frames], prompt: str) -> tuple[float, ...]:
        return tuple(round(self.scorer.score(frames, prompt), 6) for frames in drawn)

    def narrates(self, sequence: Sequence) -> bool:
        """Whether ``sequence`` takes the narrated recipe."""
        return (self.narration is not None and self.stages.voice is not None
                and any(shot.narration.strip() for shot in sequence.shots))

    def compose(self, sequence: Sequence, progress: Progress | None = None) -> Track:
        """The sequence's sound: one music track for all its shots, cut across their clips;
        for a narrated sequence first every shot's line, spoken and fitted (the shots' lengths)."""
        steps = Steps(progress, self.around_step)
        lines: tuple[Line | None, ...] = ()
        if self.narrates(sequence):
            # voice: every line as written; fit: each shot's length, a line sped up or cut
            speech = steps.timed("voice", self._speak_all, sequence)
            lines = steps.timed("fit", self._fit_all, sequence, speech)
        track = Track(np.zeros((0, self.house.channels), np.float32), self.clip_seconds, self.house.sample_rate,
                      lines=lines)
        total = sum(track.seconds(shot.index) for shot in sequence.shots)
        samples = steps.timed("music", self._model_step, "music", self.stages.audio.compose, sequence, total,
                              self.house.sample_rate, self.house.channels)
        # loudness: the whole track set to the house loudness once, before it is cut across the shots
        samples = steps.timed("loudness", normalize, samples, self.house.sample_rate, self.house.loudness_lufs,
                              self.house.true_peak_db)
        return replace(track, samples=samples, timings=steps.timings)

    def _level(self, audio: np.ndarray) -> np.ndarray:
        house = self.house
        return keep_within(audio, house.sample_rate, house.loudness_lufs, house.true_peak_db, CLIP_TOLERANCE_LU)[0]

    def _speaker(self, shot: Shot, sequence: Sequence) -> Callable[..., np.ndarray]:
        voice, rate = voice_of(shot, sequence), self.house.sample_rate
        wpm = self.narration.words_per_minute

        def speak(text: str, *, light: bool = False) -> np.ndarray:
            return self.stages.voice.speak(text, voice, wpm, rate, light=light)

        return speak

    def _speak_all(self, sequence: Sequence) -> list[np.ndarray | None]:
        return [self._model_step("voice", self._speaker(shot, sequence), shot.narration) if shot.narration.strip()
                else None for shot in sequence.shots]

    def _fit_all(self, sequence: Sequence, speech: list[np.ndarray | None]) -> tuple[Line | None, ...]:
        from webtv.producer.voice import speed_up

        rate, lines = self.house.sample_rate, []
        for shot, spoken in zip(sequence.shots, speech):
            if spoken is None:
                lines.append(None)
                continue
            speaker = self._speaker(shot, sequence)
            line = fit_line(shot.narration.strip(), spoken, lambda text: self._model_step("voice", speaker, text),
                            lambda samples, factor: speed_up(samples, rate, factor), rate, self.house.fps,
                            self.narration)
            if line is None:
                log.warning("narration of shot %d dropped: not even its first word fits %g s", shot.index,
                            self.narration.max_shot_seconds)
            lines.append(line)
        return tuple(lines)

    def single(self, shot: Shot, out: Path, progress: Progress | None = None) -> ClipResult:
        """A clip with music of its own (``webtv render``, a worker's ``/clip``): the shot as
        a sequence of one, its prompt the music prompt."""
        shot = replace(shot, index=0)
        sequence = Sequence(id=shot.sequence_id, theme=shot.theme, music_prompt=clean(shot.prompt), seed=shot.seed,
                            shots=(shot,))
        track = self.compose(sequence, progress)
        made = self(shot, track, out, progress)
        return ClipResult(made.duration, {**track.timings, **made.timings}, made.takes)

    def _model_step(self, stage: str, call: Callable[..., T], *args) -> T:
        return retry_lighter(stage, call, *args) if self.lighter_retry else call(*args)

"""Story mode's narration: a shot's line spoken, fitted to the shot, and mixed over the music.

    line --speak--> speech --fit--> (spoken text, speech, shot seconds) --mix--> clip audio

Fitting (``fit_line``): a shot lasts its speech plus a breath, within ``[min, max]`` shot
seconds. A line whose speech is too long is played faster, at most ``max_speedup`` (ffmpeg's
atempo, pitch kept); a line too long even then is cut, at the last sentence end that fits,
else, inside the first sentence, at the last word that fits, and the cut text is spoken
again: the spoken text is always a prefix of whole words of the line, and what is cut is
dropped (no sentence goes on in the next shot). The speech starts ``breath / 3`` into the
shot and ends at least ``2 * breath / 3`` before its end.

Mixing (``mix``): the music is lowered by ``duck_db`` while the voice speaks, reached by
short linear-in-dB ramps just before it starts and left the same way just after it ends,
then the voice is added on every channel. numpy does it: the envelope is one array
multiply on samples the recipe already holds, where an ffmpeg ``sidechaincompress`` graph
would need the voice written out and would duck by the voice's loudness, not by a set
number of dB.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from webtv.director import Sequence, Shot

if TYPE_CHECKING:
    from webtv.config import Config, SubtitlesSection

RAMP_S = 0.12
"""How long the music takes to duck before the voice, and to come back after it."""
VOICE_PEAK = 0.8
"""A line's speech is scaled to this peak before it is mixed."""
MIX_PEAK = 0.98
"""A mix louder than this is scaled down whole (voice and music alike: the ducking stays)."""


@dataclass(frozen=True)
class Narration:
    """What the narrated recipe needs from channel.toml: ``[voice]``, ``[subtitles]`` and the
    shot bounds of ``[story]`` (which apply live: the channel hands the recipe new ones)."""

    words_per_minute: int = 160
    duck_db: float = 12.0
    max_speedup: float = 1.15
    min_shot_seconds: float = 3.0
    max_shot_seconds: float = 8.0
    breath_s: float = 0.75
    subtitles: "SubtitlesSection | None" = None  # None: the defaults

    @classmethod
    def from_config(cls, config: "Config") -> "Narration":
        voice, story = config.voice, config.story
        return cls(
            words_per_minute=voice.words_per_minute, duck_db=voice.duck_db, max_speedup=voice.max_speedup,
            min_shot_seconds=story.min_shot_seconds, max_shot_seconds=story.max_shot_seconds, breath_s=story.breath_s,
            subtitles=config.subtitles,
        )

    @property
    def lead_s(self) -> float:
        """Where the speech starts in its shot."""
        return self.breath_s / 3


@dataclass(frozen=True)
class Line:
    """One shot's narration as it airs."""

    text: str  # what is spoken: the line, or a prefix of whole words of it when cut
    samples: np.ndarray  # float32 mono speech at the house rate, sped up when it had to be
    sample_rate: int
    seconds: float  # the shot's length: a whole number of frames
    start: float  # where the speech starts in the shot
    speedup: float = 1.0

    @property
    def voice_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def end(self) -> float:
        """Where the speech ends in the shot."""
        return self.start + self.voice_seconds


Speak = Callable[[str], np.ndarray]
"""speak(text): mono float32 speech at the house rate."""
SpeedUp = Callable[[np.ndarray, float], np.ndarray]
"""speed_up(samples, factor): the same speech ``factor`` times as fast."""

_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+")


def cuts(text: str) -> list[str]:
    """Where ``text`` may be cut, longest first: whole sentences (all but the last), then,
    when only the first sentence is left, its words up to each word before its last. Every
    cut is a prefix of whole words of ``text``."""
    words = text.split()
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    out = [" ".join(" ".join(sentences[:k]).split()) for k in range(len(sentences) - 1, 0, -1)]
    first = sentences[0].split() if sentences else words
    out += [" ".join(words[:k]) for k in range(len(first) - 1, 0, -1)]
    return out


def voice_of(shot: Shot, sequence: Sequence) -> str | None:
    """The voice a shot's line is spoken in: the first character in the shot that has one
    (``Character.voice``), else None (the backend's configured voice)."""
    voices = {c.name: c.voice for c in sequence.cast if c.voice}
    return next((voices[name] for name in shot.characters if name in voices), None)


def frames_of(seconds: float, fps: int) -> float:
    """``seconds`` rounded up to a whole number of frames at ``fps``."""
    return math.ceil(seconds * fps - 1e-6) / fps


def fit_line(text: str, speech: np.ndarray, speak: Speak, speed_up: SpeedUp, sample_rate: int, fps: int,
             settings: Narration) -> Line | None:
    """The line as it airs in its shot (see the module), from ``speech``, ``text`` spoken at
    the set rate. None when not even its first word fits."""
    room = math.floor((settings.max_shot_seconds - settings.breath_s) * fps) / fps  # speech at most, sped up
    longest = room * settings.max_speedup
    spoken, seconds = text, len(speech) / sample_rate
    if seconds > longest:
        per_char = seconds / max(1, len(text))
        for candidate in cuts(text):
            if per_char * len(candidate) > longest:
                continue  # surely too long: not worth speaking
            speech = speak(candidate)
            if len(speech) / sample_rate <= longest:
                spoken, seconds = candidate, len(speech) / sample_rate
                break
        else:
            return None
    speedup = max(1.0, seconds / room)
    if speedup > 1.0:
        speech = speed_up(speech, speedup)
        speech = speech[: int(room * sample_rate)]  # atempo's count may be a few samples over
    voice_s = len(speech) / sample_rate
    shot_s = min(max(settings.min_shot_seconds, voice_s + settings.breath_s), settings.max_shot_seconds)
    return Line(spoken, np.asarray(speech, np.float32), sample_rate, frames_of(shot_s, fps), settings.lead_s, speedup)


def duck_envelope(n: int, sample_rate: int, start: float, end: float, duck_db: float) -> np.ndarray:
    """Gains (n,) for the music: 1 away from the voice, ``-duck_db`` dB from ``start`` to
    ``end`` seconds, linear-in-dB ramps of RAMP_S outside that span."""
    t = np.arange(n, dtype=np.float64) / sample_rate
    depth = np.clip(np.minimum((t - (start - RAMP_S)) / RAMP_S, ((end + RAMP_S) - t) / RAMP_S), 0.0, 1.0)
    return (10.0 ** (-duck_db * depth / 20.0)).astype(np.float32)


def mix(music: np.ndarray, line: Line, duck_db: float) -> np.ndarray:
    """The shot's audio: ``music`` (n, channels) ducked under ``line``'s speech, plus the
    speech at VOICE_PEAK on every channel; scaled down whole if it would peak over MIX_PEAK."""
    music = np.asarray(music, np.float32)
    n = len(music)
    out = music * duck_envelope(n, line.sample_rate, line.start, line.end, duck_db)[:, None]
    speech = line.samples
    peak = float(np.max(np.abs(speech))) if len(speech) else 0.0
    if peak > 0:
        speech = speech * (VOICE_PEAK / peak)
    at = round(line.start * line.sample_rate)
    part = speech[: max(0, n - at)]
    out[at:at + len(part)] += part[:, None]
    loudest = float(np.max(np.abs(out))) if n else 0.0
    if loudest > MIX_PEAK:
        out *= MIX_PEAK / loudest
    return out

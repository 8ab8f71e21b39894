"""The embedded audio backend: a small numpy synthesiser that writes actual music.

Per sequence: tempo, key, scale, chord progression, drum pattern and arpeggio are drawn
from a hash of the theme and the sequence seed; words of the music prompt nudge the mood
("calm" plays slower and sparser, "dark" picks a minor mode, "energetic" faster with a
four-on-the-floor kick). Pads play the chords, a bass follows the roots, kick / snare / hat
are shaped noise and pitch sweeps, an arpeggio runs on top. Fades only at the very start
and end of the track: the producer cuts one track across a sequence's clips.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from webtv.config import SynthAudioSection
from webtv.director.base import Sequence

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
}
PROGRESSIONS = (
    (0, 4, 5, 3),  # I V vi IV
    (0, 5, 3, 4),  # I vi IV V
    (5, 3, 0, 4),  # vi IV I V
    (0, 3, 4, 3),
    (0, 2, 5, 4),
    (0, 5, 1, 4),
    (3, 4, 0, 0),
    (0, 6, 5, 4),
)

_CALM = {"calm", "slow", "ambient", "peaceful", "quiet", "gentle", "relaxing", "serene", "soft", "mellow", "lazy", "sleepy"}
_FAST = {"fast", "energetic", "upbeat", "dance", "driving", "action", "chase", "party", "bouncy", "intense"}
_DARK = {"dark", "minor", "sad", "melancholic", "melancholy", "haunted", "mystery", "mysterious", "noir", "lonely", "night"}
_BRIGHT = {"bright", "happy", "joyful", "sunny", "upbeat", "cheerful", "major", "summer"}


@dataclass(frozen=True)
class Plan:
    bpm: float
    root: int  # MIDI note of the key's tonic in the bass octave
    scale: str
    progression: tuple[int, ...]
    drums: str  # "none" | "soft" | "half" | "four"
    arp: int  # arpeggio notes per beat (0 = none)
    brightness: float


def plan_for(sequence: Sequence) -> Plan:
    """The musical decisions for a sequence: deterministic for (theme, seed, music prompt)."""
    digest = hashlib.sha256(f"{sequence.theme}\x1f{sequence.seed}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    words = set(re.findall(r"[a-z]+", f"{sequence.music_prompt} {sequence.theme}".lower()))
    calm, fast = bool(words & _CALM), bool(words & _FAST)
    dark, bright = bool(words & _DARK), bool(words & _BRIGHT)

    bpm = float(rng.uniform(88, 118))
    if calm and not fast:
        bpm = float(rng.uniform(62, 80))
    elif fast and not calm:
        bpm = float(rng.uniform(118, 136))
    if dark and not bright:
        scale = str(rng.choice(["minor", "dorian", "minor"]))
    elif bright and not dark:
        scale = str(rng.choice(["major", "lydian", "mixolydian"]))
    else:
        scale = str(rng.choice(sorted(SCALES)))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    if calm and not fast:
        drums = str(rng.choice(["none", "soft", "soft"]))
    elif fast:
        drums = "four"
    else:
        drums = str(rng.choice(["half", "four", "soft"]))
    arp = int(rng.choice([0, 2, 2, 4])) if not calm else int(rng.choice([0, 1, 2]))
    return Plan(
        bpm=bpm,
        root=36 + int(rng.integers(0, 12)),
        scale=scale,
        progression=progression,
        drums=drums,
        arp=arp,
        brightness=float(rng.uniform(0.2, 0.6)) * (0.6 if dark else 1.0),
    )


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


class SynthAudio:
    """AudioBackend with no model: chords, bass, drums and an arpeggio from numpy."""

    def __init__(self, section: SynthAudioSection = SynthAudioSection()):
        self.section = section

    def compose(self, sequence: Sequence, seconds: float, sample_rate: int, channels: int, *,
                light: bool = False) -> np.ndarray:
        n = max(1, round(seconds * sample_rate))
        plan = plan_for(sequence)
        digest = hashlib.sha256(f"{sequence.theme}\x1f{sequence.seed}\x1fnoise".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        sr = sample_rate
        beat = 60.0 / plan.bpm
        bar = 4 * beat
        scale = SCALES[plan.scale]
        left = np.zeros(n + sr, dtype=np.float32)  # one second of room for tails
        right = np.zeros(n + sr, dtype=np.float32)

        def add(start_s: float, signal: np.ndarray, gain: float, pan: float = 0.0) -> None:
            i = int(round(start_s * sr))
            if i >= n:
                return
            seg = signal[: len(left) - i]
            left[i : i + len(seg)] += seg * (gain * math.sqrt(0.5 * (1 - pan)))
            right[i : i + len(seg)] += seg * (gain * math.sqrt(0.5 * (1 + pan)))

        def degree(d: int, octave: int = 0) -> int:
            return plan.root + 12 * (octave + d // 7) + scale[d % 7]

        bars = int(math.ceil(seconds / bar)) + 1
        for b in range(bars):
            t0 = b * bar
            if t0 >= seconds:
                break
            chord_root = plan.progression[b % len(plan.progression)]
            chord = [degree(chord_root + k, 1) for k in (0, 2, 4)] + [degree(chord_root + 6, 1)] * (b % 2)
            # pads: one voice per chord tone, detuned between the channels, overlapping the next bar
            length = bar + 0.4
            t = np.arange(int(length * sr), dtype=np.float32) / sr
            env = np.minimum(1.0, t / 0.25) * np.clip((length - t) / 0.5, 0.0, 1.0)
            for k, note in enumerate(chord):
                f = _hz(note + 12)
                for side, detune in ((-0.8, 0.997), (0.8, 1.003)):
                    phase = 2 * np.pi * f * detune * t
                    tone = np.sin(phase) + plan.brightness * 0.5 * np.sin(2 * phase) + plan.brightness * 0.25 * np.sin(3 * phase)
                    add(t0, (tone * env).astype(np.float32), 0.05, pan=side * 0.6)
            # bass: the chord root on each beat (calm: each half bar), plucked
            step = beat if plan.drums in ("four", "half") else 2 * beat
            for k in range(int(round(bar / step))):
                tb = t0 + k * step
                note = degree(chord_root) if k % 4 != 3 or plan.drums != "four" else degree(chord_root + 4)
                f = _hz(note)
                tt = np.arange(int(step * 0.95 * sr), dtype=np.float32) / sr
                env = np.exp(-tt / (step * 0.5)) * np.minimum(1.0, tt / 0.005)
                tone = np.tanh(1.8 * np.sin(2 * np.pi * f * tt)) + 0.3 * np.sin(4 * np.pi * f * tt)
                add(tb, (tone * env).astype(np.float32), 0.22)
            # arpeggio over chord tones, an octave up, walking with a hashed pattern
            if plan.arp:
                pattern = rng.permutation(len(chord))
                count = 4 * plan.arp
                dur = beat / plan.arp
                tt = np.arange(int(dur * 0.9 * sr), dtype=np.float32) / sr
                env = np.exp(-tt / (dur * 0.35)) * np.minimum(1.0, tt / 0.004)
                for k in range(count):
                    note = chord[pattern[k % len(pattern)]] + 12 + (12 if (k // len(pattern)) % 2 else 0)
                    f = _hz(note)
                    tone = np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(6 * np.pi * f * tt)
                    add(t0 + k * dur, (tone * env).astype(np.float32), 0.07 + 0.02 * (k % 2 == 0), pan=0.4 * math.sin(k))
            # drums
            if plan.drums != "none":
                kicks = {"four": (0, 1, 2, 3), "half": (0, 2.5), "soft": (0,)}[plan.drums]
                for k in kicks:
                    add(t0 + k * beat, _kick(sr), 0.5 if plan.drums != "soft" else 0.3)
                if plan.drums in ("four", "half"):
                    for k in (1, 3):
                        add(t0 + k * beat, _snare(sr, rng), 0.22)
                hats = 8 if plan.drums != "soft" else 4
                for k in range(hats):
                    accent = 1.0 if k % 2 == 0 else 0.6
                    add(t0 + k * bar / hats, _hat(sr, rng), 0.09 * accent, pan=0.3)

        mix = np.stack([left[:n], right[:n]], axis=1)
        peak = float(np.max(np.abs(mix))) or 1.0
        mix = np.tanh(mix * (1.2 / peak)) * 0.85  # gentle limiter: never clips
        fade_in, fade_out = min(n, int(0.05 * sr)), min(n, int(0.4 * sr))
        if fade_in:
            mix[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)[:, None]
        if fade_out:
            mix[n - fade_out :] *= np.linspace(1, 0, fade_out, dtype=np.float32)[:, None]
        if channels == 1:
            mix = mix.mean(axis=1, keepdims=True)
        elif channels > 2:
            mix = np.concatenate([mix, np.repeat(mix.mean(axis=1, keepdims=True), channels - 2, axis=1)], axis=1)
        return np.ascontiguousarray(mix, dtype=np.float32)


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.35 * sr), dtype=np.float32) / sr
    freq = 45 + 90 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return (np.sin(phase) * np.exp(-t / 0.12)).astype(np.float32)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.2 * sr), dtype=np.float32) / sr
    noise = rng.standard_normal(len(t)).astype(np.float32)
    noise = np.diff(noise, prepend=0.0) * 0.5
    body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)
    return ((noise * np.exp(-t / 0.06)) + 0.6 * body).astype(np.float32)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.06 * sr), dtype=np.float32) / sr
    noise = rng.standard_normal(len(t) + 2).astype(np.float32)
    high = noise[2:] - 2 * noise[1:-1] + noise[:-2]  # second difference: mostly the top octave
    return (high * 0.35 * np.exp(-t / 0.015)).astype(np.float32)

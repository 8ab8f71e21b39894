"""The MusicGen audio backend on tiny random models written with save_pretrained (no hub)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.tiny_musicgen import tiny_musicgen  # noqa: E402
from webtv.config import MusicGenAudioSection  # noqa: E402
from webtv.director.base import Sequence  # noqa: E402
from webtv.media.audio import resample  # noqa: E402
from webtv.producer.musicgen import MusicGenAudio, Window, fit_length, plan_windows  # noqa: E402


def _sequence(seed: int = 7, music: str = "calm synth pads, slow") -> Sequence:
    return Sequence(id="seq", theme="night city", music_prompt=music, seed=seed)


class Recorder:
    """Wraps a loaded backend's model.generate and keeps the keyword arguments of each call."""

    def __init__(self, backend: MusicGenAudio) -> None:
        self.calls: list[dict] = []
        model = backend.model
        self._generate = model.generate
        model.generate = self

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self._generate(*args, **kwargs)


def _backend(folder, **section) -> tuple[MusicGenAudio, Recorder]:
    backend = MusicGenAudio(MusicGenAudioSection(model=str(folder), device="cpu", **section))
    return backend, Recorder(backend)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The default tiny model: 8 kHz, 25 tokens/s, 4 codebooks, 96-frame windows."""
    backend, recorder = _backend(tiny_musicgen(tmp_path_factory.mktemp("musicgen") / "tiny"), guidance=3.0)
    backend.load()
    return backend, recorder


@pytest.mark.parametrize(
    "rate, seconds, channels",
    [(48000, 1.0, 2), (48000, 2.5, 1), (48000, 3.7, 2), (44100, 1.0, 1), (44100, 2.5, 2), (44100, 3.7, 1)],
)
def test_exact_length_channels_range(tiny, rate, seconds, channels):
    backend, _ = tiny
    track = backend.compose(_sequence(), seconds, rate, channels)
    assert track.shape == (round(seconds * rate), channels)
    assert track.dtype == np.float32
    assert np.isfinite(track).all()
    assert np.abs(track).max() <= 1.0
    assert np.abs(track).max() <= 0.9 + 1e-6  # headroom for AAC
    assert float(np.sqrt(np.mean(track**2))) > 0.01  # not silence
    if channels == 2:
        assert np.array_equal(track[:, 0], track[:, 1])  # the mono model duplicated


def test_seeded(tiny):
    backend, _ = tiny
    a = backend.compose(_sequence(seed=11), 1.5, 48000, 2)
    b = backend.compose(_sequence(seed=11), 1.5, 48000, 2)
    c = backend.compose(_sequence(seed=12), 1.5, 48000, 2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3)


def test_global_rng_untouched(tiny):
    import torch

    backend, _ = tiny
    before = torch.get_rng_state()
    backend.compose(_sequence(seed=3), 0.5, 48000, 1)
    assert torch.equal(before, torch.get_rng_state())


def test_tokens_and_guidance_from_config(tiny):
    backend, recorder = tiny
    assert backend.frame_rate == 25 and backend.sampling_rate == 8000 and backend.delay == 3
    recorder.calls.clear()
    backend.compose(_sequence(), 2.5, 48000, 2)
    (call,) = recorder.calls
    assert call["max_new_tokens"] == math.ceil(2.5 * 25) + 3  # frames + codebook delay
    assert call["guidance_scale"] == 3.0 and call["do_sample"] is True
    recorder.calls.clear()
    backend.compose(_sequence(), 1.0, 48000, 2, light=True)
    (call,) = recorder.calls
    assert "guidance_scale" not in call  # no classifier-free guidance: half the batch


def test_other_frame_rate(tmp_path):
    """16 kHz with hop 400 is 40 tokens per second; 2 codebooks delay by 1 step."""
    folder = tiny_musicgen(tmp_path / "m40", sampling_rate=16000, upsampling_ratios=(5, 5, 4, 4), num_codebooks=2,
                           max_position_embeddings=200)
    backend, recorder = _backend(folder)
    for seconds, rate in ((1.3, 48000), (2.05, 44100)):
        recorder.calls.clear()
        track = backend.compose(_sequence(), seconds, rate, 2)
        assert track.shape == (round(seconds * rate), 2)
        assert float(np.sqrt(np.mean(track**2))) > 0.01
        (call,) = recorder.calls
        assert call["max_new_tokens"] == math.ceil(seconds * 40) + 1
    assert backend.frame_rate == 40 and backend.sampling_rate == 16000


def test_longer_than_a_window(tiny):
    """10 s at 25 tokens/s is 250 frames: a 96-frame window, then continuations prompted with
    the last 38 frames of audio, never past max_position_embeddings, without gaps."""
    backend, recorder = tiny
    recorder.calls.clear()
    seconds, rate = 10.0, 48000
    track = backend.compose(_sequence(), seconds, rate, 2)
    assert track.shape == (round(seconds * rate), 2)
    assert len(recorder.calls) == 4
    assert "input_values" not in recorder.calls[0]
    hop, positions = backend.hop_length, backend.model.config.decoder.max_position_embeddings
    new_frames = recorder.calls[0]["max_new_tokens"] - backend.delay
    for call in recorder.calls[1:]:
        prompt = call["input_values"]
        assert prompt.shape == (1, 1, 38 * hop)
        assert 38 + call["max_new_tokens"] + 1 <= positions
        new_frames += call["max_new_tokens"] - backend.delay
    assert new_frames == 250
    seconds_rms = np.sqrt(np.mean(track[: int(9 * rate)].reshape(9, rate, 2) ** 2, axis=(1, 2)))
    assert (seconds_rms > 0.01).all()


def test_stereo_model(tmp_path):
    """A stereo checkpoint (interleaved left/right codebooks), past one window, to stereo and mono."""
    folder = tiny_musicgen(tmp_path / "stereo", audio_channels=2, num_codebooks=2, max_position_embeddings=40)
    backend, recorder = _backend(folder)
    assert backend.model_channels == 2 and backend.delay == 1
    track = backend.compose(_sequence(), 3.0, 48000, 2)
    assert track.shape == (144000, 2)
    assert not np.array_equal(track[:, 0], track[:, 1])
    assert any("input_values" in call and call["input_values"].shape[1] == 2 for call in recorder.calls)
    assert backend.compose(_sequence(), 1.0, 44100, 1).shape == (44100, 1)


def test_missing_folder_names_it(tmp_path):
    missing = tmp_path / "no such model"
    backend = MusicGenAudio(MusicGenAudioSection(model=str(missing), device="cpu"))
    with pytest.raises(RuntimeError, match="no such model"):
        backend.compose(_sequence(), 1.0, 48000, 2)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    backend = MusicGenAudio(MusicGenAudioSection(model=str(empty), device="cpu"))
    with pytest.raises(RuntimeError, match="empty-model"):
        backend.load()


@pytest.mark.parametrize("src, dst", [(32000, 48000), (32000, 44100), (8000, 44100)])
def test_resample_keeps_frequency(src, dst):
    seconds = 1.0
    t = np.arange(int(seconds * src)) / src
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, src, dst)
    assert out.dtype == np.float32 and len(out) == math.ceil(len(tone) * dst / src)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / dst)
    assert abs(freqs[np.argmax(spectrum)] - 440) <= 1.0
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert abs(np.abs(middle).max() - 1.0) < 0.01  # unity gain in the passband
    expected = np.sin(2 * np.pi * 440 * np.arange(len(out)) / dst)[len(out) // 4 : 3 * len(out) // 4]
    assert np.abs(middle - expected).max() < 0.01  # and no delay


def test_resample_band_limits():
    """Down to 32 kHz, a 20 kHz tone lies above the new Nyquist: filtered out, not aliased to 12 kHz."""
    rate = 48000
    t = np.arange(rate) / rate
    pair = np.stack([np.sin(2 * np.pi * 20000 * t), np.sin(2 * np.pi * 1000 * t)], axis=1).astype(np.float32)
    out = resample(pair, rate, 32000)
    assert out.shape == (32000, 2)
    middle = slice(4000, 28000)
    assert np.sqrt(np.mean(out[middle, 0] ** 2)) < 0.01
    assert abs(np.sqrt(np.mean(out[middle, 1] ** 2)) - math.sqrt(0.5)) < 0.01


def test_resample_keeps_the_top_of_the_band():
    """32 -> 48 kHz (MusicGen's rate to the house's): a 15 kHz tone, 0.94 of the old Nyquist,
    keeps its level within 1.5 dB."""
    src, dst = 32000, 48000
    tone = np.sin(2 * np.pi * 15000 * np.arange(src) / src).astype(np.float32)
    out = resample(tone, src, dst)
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert 20 * math.log10(np.sqrt(np.mean(middle**2)) / math.sqrt(0.5)) > -1.5


def test_musicgen_track_resamples_as_a_workers_track(tmp_path):
    """One resampler: the samples MusicGen writes at 32 kHz come out at the house rate exactly as
    the same samples sent by a worker as a WAV file and decoded by the channel."""
    from webtv.producer.remote.wire import read_audio, write_audio

    noise = (np.random.default_rng(3).standard_normal((32000, 2)) * 0.2).astype(np.float32)
    here = resample(noise, 32000, 48000)
    remote = read_audio(write_audio(noise, 32000, tmp_path / "track.wav"), 48000, 2, seconds=1.0)
    assert here.shape == remote.shape == (48000, 2)
    assert np.array_equal(here, remote)


def test_fit_length_pads_with_a_fade():
    audio = np.ones((1000, 2), dtype=np.float32)
    padded = fit_length(audio, 1500, 8000)
    assert padded.shape == (1500, 2)
    assert (padded[1000:] == 0).all()
    assert padded[999, 0] == 0 and padded[1000 - 160 // 2, 0] == pytest.approx(0.5, abs=0.02)  # 20 ms ramp
    assert np.array_equal(fit_length(audio, 600, 8000), audio[:600])


def test_plan_windows():
    assert plan_windows(50, 96, 38) == [Window(0, 50)]
    assert plan_windows(250, 96, 38) == [Window(0, 96), Window(38, 58), Window(38, 58), Window(38, 38)]
    plan = plan_windows(1500 * 3, 1500, 600)
    assert sum(w.new for w in plan) == 4500 and all(w.prompt + w.new <= 1500 for w in plan)

"""Embedded producers and the house encode, with real ffmpeg / ffprobe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from webtv.config import Config, HouseSection
from webtv.director.base import Sequence, Shot
from webtv.director.offline import OfflineDirector
from webtv.media import MediaError, ffprobe_exe, probe
from webtv.producer import (
    Frames,
    ProceduralVideo,
    SynthAudio,
    encode_clip,
    find_font,
    make_card,
    make_stages,
    validate_clip,
)
from webtv.producer.procedural import camera_motion
from webtv.producer.synth import plan_for

SMALL = HouseSection(width=320, height=180, fps=24, gop_seconds=2.0, video_kbps=400, audio_kbps=64)
NASTY = "it's a \"quoted\" 100% caption: $HOME ${PATH} `x` \\ back\\slash\nnew line\ttab %{pts} [a];b,c='d'"

needs_ffprobe = pytest.mark.skipif(ffprobe_exe() is None, reason="ffprobe not installed")


def sequence(theme: str, seed: int = 0, shots: int = 3) -> Sequence:
    return OfflineDirector().write(theme, shots, seed)


def ffprobe_json(*args: str) -> dict:
    done = subprocess.run([ffprobe_exe(), "-v", "error", "-of", "json", *args], capture_output=True, check=True)
    return json.loads(done.stdout)


def count_frames(path: Path) -> int:
    info = ffprobe_json("-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames", str(path))
    return int(info["streams"][0]["nb_read_frames"])


def keyframes(path: Path) -> tuple[list[int], int]:
    info = ffprobe_json("-select_streams", "v:0", "-show_entries", "packet=flags", str(path))
    flags = [p["flags"] for p in info["packets"]]
    return [i for i, f in enumerate(flags) if "K" in f], len(flags)


def render_clip(house: HouseSection, theme: str, seconds: float, index: int = 0):
    seq = sequence(theme)
    frames = ProceduralVideo(house).render(seq.shots[index], seconds)
    audio = SynthAudio().compose(seq, seconds, house.sample_rate, house.channels)
    return seq, frames, audio


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    """A 5 s clip at 320x180 written under a folder named with a space and a single quote."""
    folder = tmp_path_factory.mktemp("lib") / "it's my library"
    folder.mkdir()
    seq, frames, audio = render_clip(SMALL, "a calm journey through imaginary landscapes", 5.0)
    out = folder / "clip 'one'.mp4"
    encode_clip(frames, audio, seq.shots[0].prompt, SMALL, out)
    return out


# ----------------------------------------------------------------------------- video


def test_procedural_frames_have_the_house_rate_and_exact_count():
    video = ProceduralVideo(SMALL)
    shot = sequence("ocean").shots[0]
    for seconds in (3.0, 2.5, 1.01):
        frames = video.render(shot, seconds)
        assert frames.fps == SMALL.fps
        assert frames.array.dtype == np.uint8
        assert frames.array.shape[0] == round(seconds * SMALL.fps)
        assert frames.array.shape[3] == 3
    h, w = frames.array.shape[1:3]
    assert w < SMALL.width and abs(w / h - SMALL.width / SMALL.height) < 0.05


def test_procedural_is_deterministic_and_reports_progress():
    video = ProceduralVideo(SMALL)
    shot = sequence("desert").shots[1]
    seen: list[tuple[str, float]] = []
    a = video.render(shot, 2.0, progress=lambda stage, f: seen.append((stage, f)))
    b = video.render(shot, 2.0)
    assert np.array_equal(a.array, b.array)
    assert seen and all(stage == "video" for stage, _ in seen)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_procedural_differs_visibly_between_prompts():
    video = ProceduralVideo(SMALL)
    shots = [s for theme in ("ocean", "neon city at night", "winter forest", "space", "desert") for s in sequence(theme, 1, 2).shots]
    renders = [video.render(s, 1.0).array for s in shots]
    colours = [r.reshape(-1, 3).mean(axis=0) for r in renders]
    for i in range(len(renders)):
        for j in range(i + 1, len(renders)):
            mad = np.abs(renders[i].astype(np.int16) - renders[j].astype(np.int16)).mean()
            assert mad > 15, f"shots {i} and {j} look alike (mean abs diff {mad:.1f})"
    # dominant colours: most clips' average colours are far apart
    far = sum(np.linalg.norm(colours[i] - colours[j]) > 20 for i in range(len(colours)) for j in range(i + 1, len(colours)))
    pairs = len(colours) * (len(colours) - 1) // 2
    assert far >= 0.8 * pairs


def test_procedural_moves_over_time():
    video = ProceduralVideo(SMALL)
    for shot in sequence("imaginary landscapes", 3, 3).shots:
        arr = video.render(shot, 2.0).array.astype(np.int16)
        steps = np.abs(np.diff(arr, axis=0)).mean(axis=(1, 2, 3))
        assert (steps > 0.2).all(), "some frames do not move"
        assert np.abs(arr[-1] - arr[0]).mean() > 8, "the picture barely changes over 2 s"


def test_camera_words_steer_the_motion():
    assert camera_motion("wide shot, slow pan left")["pan"] < 0 < camera_motion("wide shot, slow pan right")["pan"]
    assert camera_motion("fast pan right")["pan"] > camera_motion("slow pan right")["pan"]
    assert camera_motion("steady tilt up")["tilt"] > 0 > camera_motion("steady tilt down")["tilt"]
    assert camera_motion("fast dolly in")["zoom"] > 0 > camera_motion("slow zoom out")["zoom"]
    assert camera_motion("gentle orbit left")["orbit"] != 0
    assert not any(camera_motion("a quiet lake").values())
    video = ProceduralVideo(SMALL)
    left = video.render(Shot("a red fox, slow pan left", 1, "t"), 1.0).array
    right = video.render(Shot("a red fox, slow pan right", 1, "t"), 1.0).array
    assert np.array_equal(left[0], right[0]) and not np.array_equal(left[-1], right[-1])


def test_procedural_render_is_cheap_at_house_size():
    house = HouseSection()
    video = ProceduralVideo(house)
    shot = sequence("a calm journey").shots[0]
    video.render(shot, 0.2)  # warm up
    start = time.process_time()
    frames = video.render(shot, 3.0)
    spent = time.process_time() - start
    assert len(frames.array) == 72
    assert spent < 1.0, f"3 s at {video.size} took {spent:.2f} CPU-s"


# ----------------------------------------------------------------------------- audio


def spectra(audio: np.ndarray, sr: int, window: float = 0.25) -> np.ndarray:
    mono = audio.mean(axis=1)
    size = int(window * sr)
    frames = mono[: len(mono) // size * size].reshape(-1, size) * np.hanning(size)
    return np.abs(np.fft.rfft(frames, axis=1))


def test_synth_is_music_not_a_tone():
    seq = sequence("a calm journey through imaginary landscapes")
    audio = SynthAudio().compose(seq, 12.0, 48000, 2)
    assert audio.shape == (12 * 48000, 2) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 0.99, "clipping"
    rms = np.sqrt((audio[48000:-48000] ** 2).mean())
    assert rms > 0.03, "too quiet"
    spec = spectra(audio[24000:-24000], 48000)
    peaks = spec.argmax(axis=1)
    assert len(set(peaks.tolist())) >= 3, "the loudest pitch never changes"
    norm = spec / np.linalg.norm(spec, axis=1, keepdims=True)
    similarity = (norm[:-1] * norm[1:]).sum(axis=1)
    assert similarity.min() < 0.9, "the spectrum stays the same over time"
    energy = (spec**2).sum(axis=1)
    assert energy.min() > 0.01 * energy.max(), "dead air inside the track"


def test_synth_differs_between_themes_and_is_deterministic():
    synth = SynthAudio()
    a = synth.compose(sequence("ocean waves", 1), 6.0, 48000, 2)
    b = synth.compose(sequence("neon city at night", 1), 6.0, 48000, 2)
    assert np.array_equal(a, synth.compose(sequence("ocean waves", 1), 6.0, 48000, 2))
    sa, sb = spectra(a, 48000).mean(axis=0), spectra(b, 48000).mean(axis=0)
    cos = (sa @ sb) / (np.linalg.norm(sa) * np.linalg.norm(sb))
    assert cos < 0.95, f"two themes sound alike (spectral similarity {cos:.3f})"
    assert plan_for(sequence("ocean waves", 1)) != plan_for(sequence("neon city at night", 1))


def test_synth_mood_words_nudge_the_tempo_and_fades_only_at_the_ends():
    base = dict(id="s", theme="the same theme", seed=5)
    calm = plan_for(Sequence(music_prompt="calm ambient, slow tempo", **base))
    fast = plan_for(Sequence(music_prompt="energetic electronic, fast tempo", **base))
    assert calm.bpm < 85 < fast.bpm
    audio = SynthAudio().compose(Sequence(music_prompt="upbeat pop", **base), 4.0, 44100, 1)
    assert audio.shape == (4 * 44100, 1)
    assert abs(audio[0, 0]) < 1e-3 and abs(audio[-1, 0]) < 1e-3
    assert np.abs(audio[22050:-22050]).max() > 0.2


def test_synth_thirty_seconds_is_fast():
    seq = sequence("summer beach party")
    synth = SynthAudio()
    start = time.process_time()
    audio = synth.compose(seq, 30.0, 48000, 2)
    spent = time.process_time() - start
    assert len(audio) == 30 * 48000
    assert spent < 1.0, f"30 s of music took {spent:.2f} CPU-s"


def test_the_default_stages_need_no_model():
    stages = make_stages(Config())
    assert isinstance(stages.video, ProceduralVideo)
    assert isinstance(stages.audio, SynthAudio)
    assert stages.upscale is None and stages.interpolate is None and not Config().needs_workers
    # the procedural channel never pays for importing torch
    check = "import sys; from webtv.config import Config; from webtv.producer import make_stages; " \
            "make_stages(Config()); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ----------------------------------------------------------------------------- encode


@needs_ffprobe
def test_encoded_clip_is_in_the_house_format(small_clip: Path):
    info = validate_clip(small_clip, SMALL, 5.0)
    assert info.video.codec == "h264" and info.video.profile.lower() == "main"
    assert (info.video.width, info.video.height, info.video.fps) == (320, 180, 24)
    assert info.video.pix_fmt == "yuv420p"
    assert info.audio.codec == "aac" and info.audio.sample_rate == 48000 and info.audio.channels == 2
    assert count_frames(small_clip) == 120
    keys, total = keyframes(small_clip)
    assert total == 120 and keys == [0, 48, 96]
    assert abs(info.audio.duration - info.video.duration) <= 1024 / 48000
    fmt = ffprobe_json("-show_format", str(small_clip))["format"]
    assert "mp4" in fmt["format_name"]
    # +faststart: the moov atom comes before mdat
    head = small_clip.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


@needs_ffprobe
def test_nasty_caption_and_resampled_frame_rate(tmp_path: Path):
    seq = sequence("night market")
    frames = ProceduralVideo(SMALL).render(seq.shots[0], 2.5)
    slow = Frames(frames.array[::2], 12.0)  # 2.5 s at 12 fps -> 60 frames at 24 fps
    audio = SynthAudio().compose(seq, 2.0, 48000, 1)  # too short and mono: padded, made stereo
    out = tmp_path / "odd $name 100%.mp4"
    encode_clip(slow, audio, NASTY, SMALL, out)
    validate_clip(out, SMALL, 2.5)
    assert count_frames(out) == 60
    fast = Frames(np.repeat(frames.array, 2, axis=0)[:75], 30.0)  # 2.5 s at 30 fps
    long_audio = np.ones((5 * 48000, 2), np.float32) * 0.1  # too long: trimmed
    encode_clip(fast, long_audio, "", SMALL, out)
    validate_clip(out, SMALL, 2.5)
    assert count_frames(out) == 60


def test_caption_is_drawn(tmp_path: Path):
    """The caption changes the bottom third of the picture and nothing above it."""
    frames = Frames(np.full((24, 90, 160, 3), 40, np.uint8), 24.0)
    audio = np.zeros((48000, 2), np.float32)
    plain, captioned = tmp_path / "plain.mp4", tmp_path / "captioned.mp4"
    encode_clip(frames, audio, "", SMALL, plain)
    encode_clip(frames, audio, "a long prompt " * 12, SMALL, captioned)

    def first_frame(path: Path) -> np.ndarray:
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
            capture_output=True, check=True,
        ).stdout
        return np.frombuffer(raw, np.uint8).reshape(180, 320).astype(int)

    a, b = first_frame(plain), first_frame(captioned)
    diff = np.abs(a - b)
    assert diff[120:].mean() > 10, "no caption in the bottom third"
    assert diff[:100].mean() < 1, "caption spills above the bottom third"


@needs_ffprobe
def test_validate_rejects_truncated_and_wrong_size(small_clip: Path, tmp_path: Path):
    data = small_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(MediaError, match="truncated"):
        validate_clip(cut, SMALL)
    head = tmp_path / "head.mp4"
    head.write_bytes(data[:200])
    with pytest.raises(MediaError):
        validate_clip(head, SMALL)
    other = SMALL.model_copy(update={"width": 256, "height": 144})
    with pytest.raises(MediaError, match=r"size is 320x180.*256x144"):
        validate_clip(small_clip, other)
    with pytest.raises(MediaError, match=r"expected 3\.000 s"):
        validate_clip(small_clip, SMALL, 3.0)
    with pytest.raises(MediaError, match="keyframes"):
        validate_clip(small_clip, SMALL.model_copy(update={"gop_seconds": 1.0}))
    with pytest.raises(MediaError, match="no such file"):
        validate_clip(tmp_path / "missing.mp4", SMALL)


def test_encode_failures_raise_media_error(tmp_path: Path):
    frames = Frames(np.zeros((4, 18, 32, 3), np.uint8), 24.0)
    with pytest.raises(MediaError, match="ffmpeg failed") as caught:
        encode_clip(frames, np.zeros((8000, 2), np.float32), "x", SMALL.model_copy(update={"x264_preset": "warp9"}), tmp_path / "a.mp4")
    assert "preset" in str(caught.value).lower() or "error" in str(caught.value).lower()
    with pytest.raises(MediaError, match="font"):
        encode_clip(frames, None, "x", SMALL.model_copy(update={"font": tmp_path / "nope.ttf"}), tmp_path / "b.mp4")


@needs_ffprobe
def test_card_is_in_the_house_format(tmp_path: Path):
    out = tmp_path / "card dir" / "no content.mp4"
    out.parent.mkdir()
    make_card("webtv: test\nno content yet: 'clips' are 100% on their way", 3.0, SMALL, out)
    info = validate_clip(out, SMALL, 3.0)
    assert info.audio.channels == 2
    assert count_frames(out) == 72
    assert keyframes(out)[0] == [0, 48]


@needs_ffprobe
def test_font_path_with_spaces_and_quotes(tmp_path: Path):
    fonts = tmp_path / "font's dir: [x]"
    fonts.mkdir()
    font = fonts / "My Font, 100%.ttf"
    shutil.copyfile(find_font(SMALL), font)
    house = SMALL.model_copy(update={"font": font})
    out = tmp_path / "card.mp4"
    make_card("a card", 1.0, house, out, title="title")
    validate_clip(out, house, 1.0)


@needs_ffprobe
def test_real_house_size_clip(tmp_path: Path):
    house = HouseSection()
    seq = sequence("a calm journey through imaginary landscapes")
    start = time.perf_counter()
    frames = ProceduralVideo(house).render(seq.shots[0], 3.0)
    audio = SynthAudio().compose(seq, 3.0, house.sample_rate, house.channels)
    out = tmp_path / "house.mp4"
    encode_clip(frames, audio, seq.shots[0].prompt, house, out)
    spent = time.perf_counter() - start
    info = validate_clip(out, house, 3.0)
    assert (info.video.width, info.video.height) == (1024, 576)
    assert count_frames(out) == 72
    assert keyframes(out)[0] == [0, 48]
    assert probe(out).duration == pytest.approx(3.0, abs=1 / 24)
    assert spent < 10, f"render + encode of a 3 s clip took {spent:.1f} s"

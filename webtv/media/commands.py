"""Every ffmpeg and ffprobe command line webtv runs, in one place (as ffplayout keeps them).

Each function returns an argv list for ``subprocess`` (no shell): a path is one element, so
spaces and quotes in it need no quoting. Playout: the block decoder, the RTMP and HLS
outputs. Production: the house encode (clips and the filler card share it), minterpolate
and ``webtv interpolate``'s encode, the frames and music files passed to and from remote
workers, the narrator's speech (espeak-ng) and its speed-up, and two-pass EBU R128 loudness
(``loudnorm``). Checks: the probes and the packet scan of clip validation, and the black,
frozen and silent detectors a clip passes before the library.

Stream time is carried in MPEG-TS units: 90 kHz ticks, kept modulo 2^33 (about 26.5 h), as
the PTS fields of a TS stream are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import ffmpeg

from .tools import ffmpeg_exe, ffprobe_exe

GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning")
ERRORS_ONLY = ("-hide_banner", "-nostats", "-loglevel", "error")  # production: stderr is read on failure

TS_HZ = 90_000  # MPEG-TS clock ticks per second
TS_WRAP = 1 << 33  # PTS/DTS are 33-bit fields


def ts_offset_arg(ticks: int) -> str:
    """``-output_ts_offset`` for stream time ``ticks``: seconds with 6 decimals (exact to the tick).

    Passed as TS_WRAP + (ticks mod TS_WRAP): the mpegts muxer writes timestamps modulo 2^33, so
    the added period changes no byte, and the positive base keeps ffmpeg from shifting a block
    whose first DTS (B-frames) would otherwise fall below zero just after a wrap (or at 0).
    """
    us = round((TS_WRAP + ticks % TS_WRAP) * 1_000_000 / TS_HZ)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


# -- playout -----------------------------------------------------------------------------------


def decoder_command(playlist: Path | str, offset_ticks: int) -> list[str]:
    """One block: read the ffconcat list in real time (``-re``), remux (no re-encode) to MPEG-TS
    on stdout, every packet shifted to start at stream time ``offset_ticks``. ``-flush_packets
    1`` sends each packet at once instead of in 32 KB lumps."""
    return [
        ffmpeg_exe(), *GLOBAL_ARGS,
        "-re", "-f", "concat", "-safe", "0", "-i", str(playlist),
        "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-bsf:v", "h264_mp4toannexb",
        "-f", "mpegts", "-muxdelay", "0", "-flush_packets", "1",
        "-output_ts_offset", ts_offset_arg(offset_ticks),
        "pipe:1",
    ]


def _relay_input(analyze_us: int = 1_000_000) -> list[str]:
    # A small probe: the relay starts every output at a keyframe with PAT/PMT in front, so
    # both streams are known within the first few hundred kilobytes.
    return ["-f", "mpegts", "-probesize", "1000000", "-analyzeduration", str(analyze_us), "-i", "pipe:0"]


# What an output has written, on its stdout every 0.5 s (``total_size=``, ``out_time_us=``):
# the supervisor tells running from stalled by it.
PROGRESS = ("-progress", "pipe:1", "-stats_period", "0.5")


def rtmp_command(url: str) -> list[str]:
    return [ffmpeg_exe(), *GLOBAL_ARGS, *_relay_input(), "-c", "copy", "-f", "flv",
            "-flvflags", "no_duration_filesize", *PROGRESS, url]


HLS_INDEX = "index.m3u8"
HLS_SEGMENT = "seg_%d.ts"


def hls_command(gop_seconds: float, list_size: int, start_number: int, discont: bool = False) -> list[str]:
    """Run inside the HLS folder: only relative names reach ffmpeg. Every segment carries
    ``EXT-X-PROGRAM-DATE-TIME``: the wall-clock time ffmpeg's muxer started plus the stream
    time before the segment; the viewer page maps the picture it shows onto the clips aired
    by it. The muxer starts when the input probe ends, so the probe is short (0.1 s of
    stream): with the usual 1 s the dates ran 1.3 s ahead of the clips' start times."""
    flags = "delete_segments+independent_segments+omit_endlist+temp_file+program_date_time"
    if discont:
        flags += "+discont_start"
    return [
        ffmpeg_exe(), *GLOBAL_ARGS, *_relay_input(analyze_us=100_000), "-c", "copy", *PROGRESS, "-f", "hls",
        "-hls_time", f"{gop_seconds:g}", "-hls_list_size", str(list_size), "-hls_flags", flags,
        "-hls_segment_filename", HLS_SEGMENT, "-start_number", str(start_number), HLS_INDEX,
    ]


# -- production ----------------------------------------------------------------------------------


class HouseFormat(Protocol):
    """What the encode needs of the house format (``webtv.config.HouseSection`` has it; media
    sits beside config in the layers, so it names the fields instead of importing the class)."""

    width: int
    height: int
    fps: int
    sample_rate: int
    channels: int
    @property
    def gop_frames(self) -> int: ...
    video_kbps: int
    audio_kbps: int
    x264_preset: str
    h264_profile: str


@dataclass(frozen=True)
class Overlay:
    """One block of burned-in text: wrapped lines, size in pixels and where it sits. ffmpeg
    reads the ``k``-th overlay's text from ``overlay_textfile(k)`` in the encode's folder, so no
    text ever needs filter escaping."""

    text: str
    size: int
    y: str  # drawtext y expression
    box: bool = True
    color: str = "white"


def overlay_textfile(k: int) -> str:
    return f"text{k}.txt"


def encode_command(
    source_size: tuple[int, int], house: HouseFormat, overlays: Sequence[Overlay], out: Path,
    *, frames: str = "pipe:0", audio: str = "audio.f32", font: str = "font.ttf", subtitles: str | None = None,
) -> list[str]:
    """The one-time encode into the house format: raw RGB frames (``source_size`` = width,
    height) at ``house.fps`` on stdin, raw float audio from ``audio``, scaled and cropped to
    the house size, the overlays drawn with ``font``; H.264 with a closed GOP of
    ``house.gop_frames``, CBR-ish, AAC-LC, MP4 with the index in front. ``subtitles`` names an
    .ass file burned in by libass, its fonts looked up in the folder first (``font``'s). Run
    inside the folder holding ``audio``, ``font``, the subtitles and the overlays' text files."""
    width, height = source_size
    video = ffmpeg.input(frames, format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=house.fps)
    sound = ffmpeg.input(audio, format="f32le", ar=house.sample_rate, ac=house.channels)
    v = video.filter(
        "scale", house.width, house.height, flags="lanczos", force_original_aspect_ratio="increase",
        out_color_matrix="bt709", out_range="tv",
    )
    v = v.filter("crop", house.width, house.height).filter("format", "yuv420p").filter("setsar", 1)
    if subtitles is not None:
        v = v.filter("subtitles", filename=subtitles, fontsdir=".")
    for k, item in enumerate(overlays):
        options = dict(
            fontfile=font, textfile=overlay_textfile(k), expansion="none", fontsize=item.size, fontcolor=item.color,
            line_spacing=round(item.size * 0.3), x="(w-text_w)/2", y=item.y, fix_bounds=1,
        )
        if item.box:
            options.update(box=1, boxcolor="black@0.55", boxborderw=max(4, item.size // 2))
        else:
            options.update(shadowcolor="black@0.6", shadowx=2, shadowy=2)
        v = v.filter("drawtext", **options)
    gop = house.gop_frames
    kbps = house.video_kbps
    output = ffmpeg.output(
        v,
        sound,
        "file:" + str(Path(out).absolute()),
        format="mp4",
        vcodec="libx264",
        preset=house.x264_preset,
        pix_fmt="yuv420p",
        r=house.fps,
        g=gop,
        keyint_min=gop,
        sc_threshold=0,
        flags="+cgop",
        colorspace="bt709",
        color_primaries="bt709",
        color_trc="bt709",
        acodec="aac",
        ar=house.sample_rate,
        ac=house.channels,
        movflags="+faststart",
        map_metadata=-1,
        **{
            "profile:v": house.h264_profile,
            "b:v": f"{kbps}k",
            "maxrate": f"{kbps}k",
            "bufsize": f"{kbps * 2}k",
            "profile:a": "aac_low",
            "b:a": f"{house.audio_kbps}k",
        },
    )
    return output.global_args(*ERRORS_ONLY).compile(
        cmd=ffmpeg_exe(), overwrite_output=True
    )


def frame_rate_arg(rate: float | Fraction) -> str:
    """A frame rate as ffmpeg's num/den, exact for 24 and 24000/1001 alike."""
    exact = Fraction(rate).limit_denominator(100_000)
    return f"{exact.numerator}/{exact.denominator}"


def _raw_frames_in(size: tuple[int, int], rate: float | Fraction) -> list[str]:
    width, height = size
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", frame_rate_arg(rate),
            "-i", "pipe:0"]


RAW_FRAMES_OUT = ("-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")


def minterpolate_command(size: tuple[int, int], in_rate: Fraction, out_rate: float, frames: int,
                         light: bool = False) -> list[str]:
    """Raw RGB frames (``size`` = width, height) at ``in_rate`` on stdin to exactly ``frames``
    raw RGB frames at ``out_rate`` on stdout: motion-compensated, or blended when ``light``."""
    mode = "mi_mode=blend" if light else "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
    return [
        ffmpeg_exe(), *ERRORS_ONLY, *_raw_frames_in(size, in_rate),
        "-vf", f"format=yuv444p,minterpolate=fps={frame_rate_arg(out_rate)}:{mode},format=rgb24",
        "-frames:v", str(frames), *RAW_FRAMES_OUT,
    ]


def decode_frames_command(path: Path | str, *, passthrough: bool = False) -> list[str]:
    """Every frame of the first video stream of ``path`` as raw RGB on stdout; ``passthrough``
    keeps the file's own frame timing (no frame duplicated or dropped to a constant rate)."""
    timing = ["-fps_mode", "passthrough"] if passthrough else []
    return [ffmpeg_exe(), *ERRORS_ONLY, "-i", str(path), "-map", "0:v:0", *timing, *RAW_FRAMES_OUT]


def interpolated_encode_command(size: tuple[int, int], rate: Fraction, src: Path | str, house: HouseFormat,
                                out: Path | str) -> list[str]:
    """``webtv interpolate``: raw RGB frames at ``rate`` on stdin, with ``src``'s audio (if
    any) carried over as AAC, into H.264 at the house preset and profile."""
    return [
        ffmpeg_exe(), *ERRORS_ONLY, "-y", *_raw_frames_in(size, rate),
        "-i", str(src), "-map", "0:v", "-map", "1:a?",
        "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:v", "libx264", "-preset", house.x264_preset, "-profile:v", house.h264_profile, "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", f"{house.audio_kbps}k", str(out),
    ]


def ffv1_write_command(size: tuple[int, int], rate: float | Fraction, out: Path | str) -> list[str]:
    """Raw RGB frames on stdin into lossless FFV1 in Matroska (the frames a worker sends back)."""
    return [ffmpeg_exe(), *ERRORS_ONLY, "-y", *_raw_frames_in(size, rate),
            "-c:v", "ffv1", "-level", "3", "-pix_fmt", "gbrp", "-f", "matroska", str(out)]


def wav_write_command(sample_rate: int, channels: int, out: Path | str) -> list[str]:
    """Raw float samples on stdin into a 32-bit float WAV file."""
    return [ffmpeg_exe(), *ERRORS_ONLY, "-y", "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels),
            "-i", "pipe:0", "-c:a", "pcm_f32le", "-f", "wav", str(out)]


def resample_audio_command(src_rate: int, dst_rate: int, channels: int) -> list[str]:
    """Raw float samples at ``src_rate`` on stdin, at ``dst_rate`` on stdout: ffmpeg's resampler
    at its defaults, the same that ``decode_audio_command`` runs (webtv's one resampler)."""
    return [ffmpeg_exe(), *ERRORS_ONLY, "-f", "f32le", "-ar", str(src_rate), "-ac", str(channels), "-i", "pipe:0",
            "-f", "f32le", "-ar", str(dst_rate), "-ac", str(channels), "pipe:1"]


def decode_audio_command(path: Path | str, sample_rate: int, channels: int) -> list[str]:
    """The first audio stream of ``path`` as raw float samples at ``sample_rate`` on stdout."""
    return [ffmpeg_exe(), *ERRORS_ONLY, "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-ar", str(sample_rate),
            "-ac", str(channels), "pipe:1"]


def atempo_command(sample_rate: int, factor: float) -> list[str]:
    """Raw mono float samples on stdin played ``factor`` times as fast on stdout, pitch kept
    (ffmpeg's ``atempo``, one pass for factors in [0.5, 2])."""
    return [ffmpeg_exe(), *ERRORS_ONLY, "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
            "-af", f"atempo={factor:.6f}", "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "pipe:1"]


def thumbnail_command(path: Path | str, at_s: float, width: int, out: Path | str) -> list[str]:
    """One JPEG of ``path``'s frame at ``at_s`` seconds (the clip's middle: the console's
    thumbnail), ``width`` pixels wide at the clip's aspect. ``-ss`` before ``-i`` seeks to the
    keyframe before and decodes up to the frame."""
    return [ffmpeg_exe(), *ERRORS_ONLY, "-y", "-ss", f"{at_s:.3f}", "-i", str(path), "-map", "0:v:0",
            "-frames:v", "1", "-vf", f"scale={width}:-2", "-q:v", "4", "-f", "image2", "-c:v", "mjpeg", str(out)]


# -- speech ------------------------------------------------------------------------------------


def espeak_command(voice: str, words_per_minute: int, out: Path | str) -> list[str]:
    """espeak-ng speaking the UTF-8 text on its stdin (never on the command line, so a line
    that starts with "-" is still text) with ``voice`` at ``words_per_minute``, into the WAV
    file ``out``."""
    return ["espeak-ng", "-b", "1", "-v", voice, "-s", str(words_per_minute), "-w", str(out)]


# -- probes and checks ---------------------------------------------------------------------------


def _ffprobe() -> str:
    exe = ffprobe_exe()
    if exe is None:
        raise FileNotFoundError("ffprobe is not installed")
    return exe


def probe_command(path: Path | str) -> list[str]:
    """Container and streams as JSON."""
    return [_ffprobe(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]


def probe_with_ffmpeg_command(path: Path | str) -> list[str]:
    """For builds without ffprobe: ``ffmpeg -i`` prints the stream summary (and exits 1)."""
    return [ffmpeg_exe(), "-hide_banner", "-i", str(path)]


def packets_command(path: Path | str) -> list[str]:
    """Every packet's stream type, position, size and flags as JSON, read without decoding."""
    return [_ffprobe(), "-v", "error", "-show_entries", "packet=codec_type,pos,size,flags", "-of", "json", str(path)]


def read_through_command(path: Path | str) -> list[str]:
    """For builds without ffprobe: read every packet, failing at the first damaged one."""
    return [ffmpeg_exe(), "-v", "error", "-xerror", "-i", str(path), "-map", "0", "-c", "copy", "-f", "null", "-"]


def detect_command(path: Path | str, *, black_pixel: float, freeze_noise_db: float, silence_db: float,
                   min_s: float) -> list[str]:
    """Decode ``path`` once through ffmpeg's own detectors, which log (at level info, on
    stderr) every stretch of at least ``min_s`` seconds that is black (``blackdetect``: a
    picture of pixels darker than ``black_pixel`` of the luma range), frozen
    (``freezedetect``: frames differing by less than ``freeze_noise_db``) or silent
    (``silencedetect``: quieter than ``silence_db``). The picture is judged above its bottom
    third, where the burned-in caption or subtitles sit (text on a black box would make a
    black picture look lit, and changing subtitles a frozen one look moving)."""
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", str(path),
        "-map", "0:v:0", "-map", "0:a:0",
        "-vf", f"crop=iw:trunc(ih*2/3):0:0,blackdetect=d={min_s:g}:pix_th={black_pixel:g},"
               f"freezedetect=n={freeze_noise_db:g}dB:d={min_s:g}",
        "-af", f"silencedetect=n={silence_db:g}dB:d={min_s:g}",
        "-f", "null", "-",
    ]


# -- loudness (EBU R128, two passes) -----------------------------------------------------------


def _raw_audio_in(sample_rate: int, channels: int) -> list[str]:
    return ["-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0"]


def loudness_measure_command(sample_rate: int, channels: int) -> list[str]:
    """Raw float samples on stdin measured by ``loudnorm`` (EBU R128: integrated loudness, true
    peak, loudness range, gating threshold); its JSON report (input_i, input_tp, input_lra,
    input_thresh) is logged at level info on stderr."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
            *_raw_audio_in(sample_rate, channels), "-af", "loudnorm=print_format=json", "-f", "null", "-"]


def true_peak_limit_command(sample_rate: int, channels: int, gain_db: float, ceiling_db: float) -> list[str]:
    """Raw float samples on stdin raised by ``gain_db`` and held under ``ceiling_db`` true peak
    on stdout: the gain, then ``alimiter`` at 4x the rate (192 kHz from 48 kHz), where the
    peaks between samples are samples, without its auto-level; the same number of samples."""
    ceiling = 10 ** (ceiling_db / 20)
    chain = (f"volume={gain_db:.3f}dB,aresample={sample_rate * 4},"
             f"alimiter=limit={ceiling:.5f}:attack=1:release=50:level=0,aresample={sample_rate}")
    return [ffmpeg_exe(), *ERRORS_ONLY, *_raw_audio_in(sample_rate, channels), "-af", chain,
            "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "pipe:1"]

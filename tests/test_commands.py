"""Golden argument lists of every ffmpeg/ffprobe command webtv runs (webtv.media.commands)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from webtv.config import HouseSection
from webtv.media import ffmpeg_exe, ffprobe_exe
from webtv.media.commands import (
    TS_HZ,
    TS_WRAP,
    Overlay,
    atempo_command,
    decode_audio_command,
    decode_frames_command,
    decoder_command,
    detect_command,
    encode_command,
    espeak_command,
    ffv1_write_command,
    frame_rate_arg,
    hls_command,
    interpolated_encode_command,
    loudness_measure_command,
    minterpolate_command,
    packets_command,
    probe_command,
    probe_with_ffmpeg_command,
    read_through_command,
    rtmp_command,
    thumbnail_command,
    resample_audio_command,
    true_peak_limit_command,
    ts_offset_arg,
    wav_write_command,
)

pytestmark = pytest.mark.fast

QUIET = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning"]
ERRORS = ["-hide_banner", "-nostats", "-loglevel", "error"]
RELAY_INPUT = ["-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "1000000", "-i", "pipe:0"]


def test_block_decoder():
    assert decoder_command(Path("/a b/it's.ffconcat"), 10 * TS_HZ) == [
        ffmpeg_exe(), *QUIET,
        "-re", "-f", "concat", "-safe", "0", "-i", "/a b/it's.ffconcat",  # one element: no quoting
        "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-bsf:v", "h264_mp4toannexb",
        "-f", "mpegts", "-muxdelay", "0", "-flush_packets", "1",
        "-output_ts_offset", "95453.717689", "pipe:1",
    ]


@pytest.mark.parametrize("ticks", [0, 1, 9, 10 * TS_HZ + 7, TS_WRAP - 1, TS_WRAP + 5, 3 * TS_WRAP + 123_456, -TS_HZ])
def test_offsets_are_exact_to_the_tick_and_positive(ticks):
    text = ts_offset_arg(ticks)
    whole, frac = text.split(".")
    us = int(whole) * 1_000_000 + int(frac)
    assert len(frac) == 6
    assert round(us * TS_HZ / 1_000_000) == TS_WRAP + ticks % TS_WRAP  # ffmpeg rescales microseconds to ticks
    assert TS_WRAP <= round(us * TS_HZ / 1_000_000) < 2 * TS_WRAP


def test_outputs():
    assert rtmp_command("rtmp://h/app/key") == [
        ffmpeg_exe(), *QUIET, *RELAY_INPUT, "-c", "copy", "-f", "flv", "-flvflags", "no_duration_filesize",
        "-progress", "pipe:1", "-stats_period", "0.5", "rtmp://h/app/key",
    ]
    flags = "delete_segments+independent_segments+omit_endlist+temp_file+program_date_time"
    hls_input = [*RELAY_INPUT]
    hls_input[hls_input.index("-analyzeduration") + 1] = "100000"
    hls = [ffmpeg_exe(), *QUIET, *hls_input, "-c", "copy", "-progress", "pipe:1", "-stats_period", "0.5", "-f", "hls", "-hls_time", "2", "-hls_list_size", "6",
           "-hls_flags", flags, "-hls_segment_filename", "seg_%d.ts", "-start_number", "1234", "index.m3u8"]
    assert hls_command(2.0, 6, 1234) == hls
    hls[hls.index(flags)] = flags + "+discont_start"
    assert hls_command(2.0, 6, 1234, discont=True) == hls


def test_house_encode():
    house = HouseSection(width=320, height=180, fps=24, video_kbps=400, audio_kbps=64, x264_preset="ultrafast")
    overlays = [Overlay("a caption", 12, "h-text_h-12"), Overlay("a title", 20, "h/2", box=False, color="0xD0D0E0")]
    graph = (
        "[0]scale=320:180:flags=lanczos:force_original_aspect_ratio=increase:out_color_matrix=bt709:out_range=tv[s0];"
        "[s0]crop=320:180[s1];[s1]format=yuv420p[s2];[s2]setsar=1[s3];"
        "[s3]drawtext=box=1:boxborderw=6:boxcolor=black@0.55:expansion=none:fix_bounds=1:fontcolor=white:"
        "fontfile=font.ttf:fontsize=12:line_spacing=4:textfile=text0.txt:x=(w-text_w)/2:y=h-text_h-12[s4];"
        "[s4]drawtext=expansion=none:fix_bounds=1:fontcolor=0xD0D0E0:fontfile=font.ttf:fontsize=20:line_spacing=6:"
        "shadowcolor=black@0.6:shadowx=2:shadowy=2:textfile=text1.txt:x=(w-text_w)/2:y=h/2[s5]"
    )
    assert encode_command((64, 48), house, overlays, Path("/o u/t's.mp4")) == [
        ffmpeg_exe(),
        "-f", "rawvideo", "-framerate", "24", "-pix_fmt", "rgb24", "-s", "64x48", "-i", "pipe:0",
        "-f", "f32le", "-ac", "2", "-ar", "48000", "-i", "audio.f32",
        "-filter_complex", graph, "-map", "[s5]", "-map", "1",
        "-f", "mp4", "-ac", "2", "-acodec", "aac", "-ar", "48000", "-b:a", "64k", "-b:v", "400k", "-bufsize", "800k",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-flags", "+cgop",
        "-g", "48", "-keyint_min", "48", "-map_metadata", "-1", "-maxrate", "400k", "-movflags", "+faststart",
        "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-profile:a", "aac_low", "-profile:v", "main", "-r", "24",
        "-sc_threshold", "0", "-vcodec", "libx264", "file:/o u/t's.mp4",
        "-hide_banner", "-nostats", "-loglevel", "error", "-y",
    ]
    plain = encode_command((64, 48), house, [], Path("/o/c.mp4"))
    assert "[s3]" in plain[plain.index("-map") + 1] and "drawtext" not in " ".join(plain)
    narrated = encode_command((64, 48), house, [], Path("/o/c.mp4"), subtitles="subs.ass")
    assert narrated[narrated.index("-filter_complex") + 1].endswith(
        "[s2]setsar=1[s3];[s3]subtitles=filename=subs.ass:fontsdir=.[s4]")
    assert narrated[narrated.index("-map") + 1] == "[s4]"


def test_speech():
    assert atempo_command(48000, 1.125) == [
        ffmpeg_exe(), *ERRORS, "-f", "f32le", "-ar", "48000", "-ac", "1", "-i", "pipe:0",
        "-af", "atempo=1.125000", "-f", "f32le", "-ar", "48000", "-ac", "1", "pipe:1",
    ]
    assert espeak_command("en+f3", 160, "/v o/line.wav") == [
        "espeak-ng", "-b", "1", "-v", "en+f3", "-s", "160", "-w", "/v o/line.wav",  # the text goes on stdin
    ]


@pytest.mark.parametrize("rate, text", [(24, "24/1"), (24000 / 1001, "24000/1001"), (Fraction(23, 7), "23/7"),
                                        (12.5, "25/2")])
def test_frame_rates_are_exact_fractions(rate, text):
    assert frame_rate_arg(rate) == text


def test_interpolation():
    raw_in = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-framerate", "23/7", "-i", "pipe:0"]
    raw_out = ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    assert minterpolate_command((64, 48), Fraction(23, 7), 24, 72) == [
        ffmpeg_exe(), *ERRORS, *raw_in,
        "-vf", "format=yuv444p,minterpolate=fps=24/1:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1,format=rgb24",
        "-frames:v", "72", *raw_out,
    ]
    assert "format=yuv444p,minterpolate=fps=24/1:mi_mode=blend,format=rgb24" in minterpolate_command(
        (64, 48), Fraction(23, 7), 24, 72, light=True)
    house = HouseSection(x264_preset="ultrafast", h264_profile="high", audio_kbps=96)
    assert interpolated_encode_command((64, 48), Fraction(23, 7), Path("/i n/it's.mp4"), house, "/o/x.mp4") == [
        ffmpeg_exe(), *ERRORS, "-y", *raw_in, "-i", "/i n/it's.mp4", "-map", "0:v", "-map", "1:a?",
        "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "/o/x.mp4",
    ]
    assert decode_frames_command("/i n/it's.mp4") == [ffmpeg_exe(), *ERRORS, "-i", "/i n/it's.mp4", "-map", "0:v:0",
                                                      *raw_out]


def test_worker_files():
    assert ffv1_write_command((64, 48), 8, "/w/f.mkv") == [
        ffmpeg_exe(), *ERRORS, "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-framerate", "8/1",
        "-i", "pipe:0", "-c:v", "ffv1", "-level", "3", "-pix_fmt", "gbrp", "-f", "matroska", "/w/f.mkv",
    ]
    assert decode_frames_command("/w/f.mkv", passthrough=True) == [
        ffmpeg_exe(), *ERRORS, "-i", "/w/f.mkv", "-map", "0:v:0", "-fps_mode", "passthrough",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ]
    assert wav_write_command(48000, 2, "/w/m.wav") == [
        ffmpeg_exe(), *ERRORS, "-y", "-f", "f32le", "-ar", "48000", "-ac", "2", "-i", "pipe:0",
        "-c:a", "pcm_f32le", "-f", "wav", "/w/m.wav",
    ]
    assert resample_audio_command(32000, 48000, 2) == [
        ffmpeg_exe(), *ERRORS, "-f", "f32le", "-ar", "32000", "-ac", "2", "-i", "pipe:0",
        "-f", "f32le", "-ar", "48000", "-ac", "2", "pipe:1",
    ]
    assert decode_audio_command("/w/m.mp3", 44100, 1) == [
        ffmpeg_exe(), *ERRORS, "-i", "/w/m.mp3", "-map", "0:a:0", "-f", "f32le", "-ar", "44100", "-ac", "1", "pipe:1",
    ]


@pytest.mark.skipif(ffprobe_exe() is None, reason="ffprobe not installed")
def test_probes():
    path = Path("/l i/b's.mp4")
    assert probe_command(path) == [ffprobe_exe(), "-v", "error", "-print_format", "json", "-show_format",
                                   "-show_streams", "/l i/b's.mp4"]
    assert packets_command(path) == [ffprobe_exe(), "-v", "error", "-show_entries", "packet=codec_type,pos,size,flags",
                                     "-of", "json", "/l i/b's.mp4"]
    assert probe_with_ffmpeg_command(path) == [ffmpeg_exe(), "-hide_banner", "-i", "/l i/b's.mp4"]
    assert read_through_command(path) == [ffmpeg_exe(), "-v", "error", "-xerror", "-i", "/l i/b's.mp4", "-map", "0",
                                          "-c", "copy", "-f", "null", "-"]


def test_thumbnail_command():
    assert thumbnail_command(Path("/l i/b's.mp4"), 1.25, 320, Path("/t/1.jpg")) == [
        ffmpeg_exe(), *ERRORS, "-y", "-ss", "1.250", "-i", "/l i/b's.mp4", "-map", "0:v:0", "-frames:v", "1",
        "-vf", "scale=320:-2", "-q:v", "4", "-f", "image2", "-c:v", "mjpeg", "/t/1.jpg"]


INFO = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]  # the detectors and meters log at info


def test_checks_and_loudness():
    assert detect_command(Path("/l i/b's.mp4"), black_pixel=0.1, freeze_noise_db=-60, silence_db=-50, min_s=0.5) == [
        ffmpeg_exe(), *INFO, "-i", "/l i/b's.mp4", "-map", "0:v:0", "-map", "0:a:0",
        "-vf", "crop=iw:trunc(ih*2/3):0:0,blackdetect=d=0.5:pix_th=0.1,freezedetect=n=-60dB:d=0.5", "-af", "silencedetect=n=-50dB:d=0.5",
        "-f", "null", "-"]
    raw_in = ["-f", "f32le", "-ar", "48000", "-ac", "2", "-i", "pipe:0"]
    assert loudness_measure_command(48000, 2) == [
        ffmpeg_exe(), *INFO, *raw_in, "-af", "loudnorm=print_format=json", "-f", "null", "-"]
    assert true_peak_limit_command(48000, 2, 3.25, -1.5) == [
        ffmpeg_exe(), *ERRORS, *raw_in,
        "-af", "volume=3.250dB,aresample=192000,alimiter=limit=0.84140:attack=1:release=50:level=0,aresample=48000",
        "-f", "f32le", "-ar", "48000", "-ac", "2", "pipe:1"]

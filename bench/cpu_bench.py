"""CPU per stream-minute of `webtv run` airing its library, against the AI WebTV command (issue #15).

``--channels 1`` runs `webtv run --config FILE` (a one-channel daemon); ``--channels N`` runs
`webtv run --config DIR` with N channel files ``ch1.toml .. chN.toml`` (paths defaulted per
file, each its own RTMP URL on one nginx-rtmp) and a ``daemon.toml`` holding a free ``[http]``
port. Every channel airs the same prepared library: ``--clips`` procedural 3 s clips in the
house format (1024x576@24 by default), seeded into each channel's library before the daemon
starts. Production is idle (the channel's theme is blocked by its own ``[moderation]`` word,
so the producer rests and the programmer airs the library): the figure is playout's, as the
AI WebTV command's is.

What is measured, over ``--seconds`` after ``--warmup`` seconds on air:

- the CPU (user + system) of the whole process tree of `webtv run`: the daemon, its live
  children and grandchildren, and every child it reaped during the window (their rusage lands
  in the daemon's cutime/cstime: the daemon reaps its ffmpegs with wait4); with a breakdown
  per process kind (the Python process, decoders, RTMP outputs, HLS output) from sampling
  ``/proc`` every 0.2 s (a reaped process's last 0.2 s are then in "unattributed");
- the AI WebTV command (``ffmpeg -re -f concat ... -c:v libx264 -preset veryfast -tune
  zerolatency -c:a aac ... -f flv URL``) on the same clips, for the same window, one per
  channel (``--aiwebtv 0`` skips it);
- each channel's RTMP stream read back from nginx-rtmp (ffprobe, one reader session per
  channel from before the daemon starts): the largest gap between consecutive video
  timestamps inside the window and the number of reader sessions (1: the stream never broke).

``--repeat K`` measures K windows one after the other on the same running daemon (the
run-to-run noise on a shared machine).

Run: .venv/bin/python -m bench.cpu_bench [--channels 1] [--seconds 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.daemon import REPO
from tests.readers import RtmpReader
from tests.rtmp_server import RtmpServer, free_port
from webtv.config import HouseSection
from webtv.media import ffmpeg_exe
from webtv.programmer.playlist import write_ffconcat

THEME = "cpu bench loop"
BLOCKED = "cpubenchloop"  # the channel's own moderation word: matches its theme only (see _channel_toml)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the process tree ----------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float, float, str] | None:
    """(ppid, own CPU s, reaped children's CPU s, comm + args kind) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return int(fields[1]), own, reaped, fields[0].decode()


def _kind(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    if argv == [b""]:  # a zombie: exited, not reaped yet (a decoder at the end of its block)
        return "exited"
    if b"webtv" in argv and b"run" in argv:
        return "python"
    if b"concat" in argv:
        return "decoder"
    if b"flv" in argv:
        return "rtmp output"
    if b"hls" in argv:
        return "hls output"
    return Path(argv[0].decode(errors="replace")).name or "other"


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu(root: int) -> tuple[float, dict[int, float]]:
    """CPU seconds of ``root``'s whole tree so far (reaped children included) and each live
    process's own share. Retried while a child is reaped during the read (it would be counted
    twice or not at all)."""
    for _ in range(20):
        before = _stat(root)
        if before is None:
            raise RuntimeError(f"process {root} is gone")
        per = {root: before[1]}
        total = before[1] + before[2]
        for pid in descendants(root):
            st = _stat(pid)
            if st is not None:
                per[pid] = st[1]
                total += st[1] + st[2]
        after = _stat(root)
        if after is not None and after[2] == before[2]:
            return total, per
    return total, per


@dataclass
class Breakdown:
    """Per-kind CPU of a tree over a window, from samples of each process's own CPU."""

    root: int
    start: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)

    def sample(self, first: bool = False) -> float:
        total, per = tree_cpu(self.root)
        for pid, cpu in per.items():
            if pid not in self.kinds:
                self.kinds[pid] = _kind(pid)
                if first:
                    self.start[pid] = cpu
            self.last[pid] = cpu
        return total

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, cpu in self.last.items():
            kind = self.kinds[pid]
            out[kind] = out.get(kind, 0.0) + cpu - self.start.get(pid, 0.0)
        return out


def measure_tree(root: int, seconds: float, every: float = 0.2) -> dict:
    breakdown = Breakdown(root)
    t0 = time.monotonic()
    first = breakdown.sample(first=True)
    while time.monotonic() - t0 < seconds:
        time.sleep(every)
        last = breakdown.sample()
    wall = time.monotonic() - t0
    kinds = breakdown.by_kind()
    total = last - first
    kinds["unattributed"] = total - sum(kinds.values())
    return {"wall_s": wall, "cpu_s": total, "by_kind": kinds}


# -- the library and the channels --------------------------------------------------------------


def make_clips(folder: Path, count: int, house: HouseSection) -> list[Path]:
    from webtv.config import Config
    from webtv.director import Sequence, Shot
    from webtv.producer import ClipPipeline, make_stages

    folder.mkdir(parents=True, exist_ok=True)
    pipeline = ClipPipeline(make_stages(Config()), house, 3.0)
    shots = tuple(Shot(prompt=f"cpu bench shot {i}: a lighthouse in a storm, slow pan left", seed=i, theme=THEME,
                       index=i) for i in range(count))
    clips = [folder / f"clip{shot.index:02d}.mp4" for shot in shots]
    if all(c.exists() for c in clips):
        return clips
    track = pipeline.compose(Sequence(id="bench", theme=THEME, music_prompt="calm", seed=0, shots=shots))
    for shot, out in zip(shots, clips):
        pipeline(shot, track, out)
    return clips


def seed_library(root: Path, clips: list[Path]) -> None:
    from webtv.director import Shot
    from webtv.library import Library

    library = Library(root)
    try:
        for i, clip in enumerate(clips):
            made = library.incoming_path()
            shutil.copy(clip, made)
            library.ingest(made, Shot(prompt=f"cpu bench shot {i}", seed=i, theme=THEME), 3.0)
    finally:
        library.close()


def _toml(sections: dict[str, dict]) -> str:
    lines = []
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items()), ""]
    return "\n".join(lines)


def _channel_sections(name: str, url: str, house: HouseSection, block_s: float) -> dict[str, dict]:
    return {
        "channel": {"name": name, "theme": f"{THEME} {BLOCKED}"},
        "house": house.model_dump(mode="json", exclude_none=True),
        "moderation": {"words": [BLOCKED]},  # the producer rests: the library airs
        "programme": {"block_seconds": block_s},
        "output": {"rtmp_urls": [url], "hls": True},
    }


def write_channels(folder: Path, rtmp: RtmpServer, channels: int, house: HouseSection, block_s: float,
                   clips: list[Path]) -> tuple[Path, list[str]]:
    """The config ``webtv run --config`` takes (a file for one channel, else a folder) and the
    RTMP URL of each channel; every channel's library seeded with ``clips``."""
    port = free_port()
    http = {"host": "127.0.0.1", "port": port}
    urls = [f"{rtmp.url}/ch{k}" for k in range(1, channels + 1)]
    if channels == 1:
        sections = _channel_sections("ch1", urls[0], house, block_s)
        sections["http"] = http
        config = folder / "channel.toml"
        config.write_text(_toml(sections))
        seed_library(folder / "library", clips)
        return config, urls
    config = folder / "channels"
    config.mkdir()
    (config / "daemon.toml").write_text(_toml({"http": http}))
    for k, url in enumerate(urls, 1):
        (config / f"ch{k}.toml").write_text(_toml(_channel_sections(f"ch{k}", url, house, block_s)))
        seed_library(config / f"ch{k}" / "library", clips)
    return config, urls


# -- the stream read back ----------------------------------------------------------------------


def gaps(reader: RtmpReader, since: float, until: float, fps: int) -> dict:
    video = [p for p in reader.video() if since <= p.arrived <= until]
    if len(video) < 2:
        return {"error": "no video read back in the window"}
    dts = [b.dts - a.dts for a, b in zip(video, video[1:])]
    arrival = [b.arrived - a.arrived for a, b in zip(video, video[1:])]
    return {
        "video_packets": len(video),
        "largest_video_gap_ms": round(max(dts) * 1000, 1),
        "timestamps_back": sum(1 for d in dts if d <= 0),
        "longest_wait_ms": round(max(arrival) * 1000, 1),
        "one_frame_ms": round(1000 / fps, 1),
        "reader_ended": reader.ended is not None and reader.ended <= until,
    }


def aiwebtv(clips: list[Path], folder: Path, url: str, seconds: float) -> subprocess.Popen:
    playlist = write_ffconcat(folder / "aiwebtv.ffconcat", [(c, None) for c in clips * (int(seconds // 20) + 2)])
    return subprocess.Popen(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-re", "-f", "concat", "-safe", "0", "-i", str(playlist),
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-c:a", "aac",
         "-t", str(seconds), "-f", "flv", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure_aiwebtv(clips: list[Path], folder: Path, rtmp: RtmpServer, channels: int, seconds: float) -> float:
    """CPU seconds of ``channels`` AI WebTV commands streaming ``seconds`` at once."""
    before = _stat(os.getpid())[2]
    procs = [aiwebtv(clips, folder, f"{rtmp.url}/aiwebtv{k}", seconds) for k in range(channels)]
    for proc in procs:
        proc.wait()
    return _stat(os.getpid())[2] - before


# -- the run -------------------------------------------------------------------------------------


def wait_on_air(readers: list[RtmpReader], daemon: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"webtv run exited with {daemon.returncode}:\n{log.read_text()[-3000:]}")
        if all(r.video() for r in readers):
            return
        time.sleep(0.2)
    raise RuntimeError(f"not every channel on air within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def run(args: argparse.Namespace) -> dict:
    house = HouseSection(width=args.width, height=args.height, fps=args.fps, video_kbps=args.video_kbps)
    work = Path(tempfile.mkdtemp(prefix="webtv-cpu-bench-"))
    try:
        clips = make_clips(args.clips_dir or work / "clips", args.clips, house)
        with RtmpServer(work / "nginx") as rtmp:
            config, urls = write_channels(work, rtmp, args.channels, house, args.block_seconds, clips)
            readers = [RtmpReader(url, seconds=None, line_buffered=True).start() for url in urls]
            time.sleep(0.3)
            log = work / "daemon.log"
            with open(log, "wb") as out:
                profile = ["-m", "cProfile", "-o", str(args.profile.absolute())] if args.profile else []
                daemon = subprocess.Popen([sys.executable, *profile, "-m", "webtv", "run", "--config", str(config)], cwd=REPO,
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            try:
                wait_on_air(readers, daemon, log)
                time.sleep(args.warmup)
                windows = []
                for _ in range(args.repeat):
                    since = time.monotonic()
                    tree = measure_tree(daemon.pid, args.seconds)
                    until = time.monotonic()
                    per_minute = 60.0 / tree["wall_s"]
                    windows.append({
                        "cpu_s_per_stream_minute": round(tree["cpu_s"] * per_minute, 3),
                        "per_channel": round(tree["cpu_s"] * per_minute / args.channels, 3),
                        "by_kind": {k: round(v * per_minute, 3) for k, v in sorted(tree["by_kind"].items())},
                        "streams": {f"ch{k}": gaps(r, since, until, house.fps) for k, r in enumerate(readers, 1)},
                    })
                    if daemon.poll() is not None:
                        raise RuntimeError(f"webtv run exited with {daemon.returncode}")
            finally:
                broke = {f"ch{k}": r.ended is not None for k, r in enumerate(readers, 1)}
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                for reader in readers:
                    reader.stop()
            result = {
                "command": "webtv run --config " + ("FILE" if args.channels == 1 else f"DIR ({args.channels} channels)"),
                "house": f"{house.width}x{house.height}@{house.fps} {house.video_kbps} kbps",
                "block_seconds": args.block_seconds,
                "window_s": args.seconds,
                "windows": windows,
                "stream_broke": broke,  # a reader's one session ended while the daemon ran
            }
            per_channel = [w["per_channel"] for w in windows]
            result["webtv_per_channel_median"] = round(statistics.median(per_channel), 3)
            if args.aiwebtv:
                theirs = [measure_aiwebtv(clips, work, rtmp, args.channels, args.seconds) * 60.0 / args.seconds
                          / args.channels for _ in range(args.aiwebtv)]
                result["aiwebtv_per_channel"] = [round(t, 2) for t in theirs]
                result["aiwebtv_per_channel_median"] = round(statistics.median(theirs), 2)
                result["ratio"] = round(result["webtv_per_channel_median"] / statistics.median(theirs), 4)
            return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds on air before the first window")
    parser.add_argument("--repeat", type=int, default=1, help="windows measured one after the other")
    parser.add_argument("--aiwebtv", type=int, default=1, help="AI WebTV command runs (0: none)")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--clips-dir", type=Path, help="keep the prepared clips here (made once)")
    parser.add_argument("--block-seconds", type=float, default=10.0, help="[programme] block_seconds (the default)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--video-kbps", type=int, default=2500)
    parser.add_argument("--profile", type=Path, help="run the daemon under cProfile, its stats written here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (daemon.log)")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()

"""Soak (issues #5 and #11): playout for a long stretch with faults injected.

Runs `webtv run` (HLS + one RTMP output to a local nginx-rtmp) for --minutes. Every
--theme-every seconds the theme changes through POST /api/theme; every --kill-every seconds
one output's ffmpeg is killed -9 (RTMP and HLS in turn). The hardening issue's faults come
on top, each on its own period (0 turns one off): hostile requests (a theme with a lone
surrogate, non-UTF-8 bytes in Authorization, /hls/%00, an over-long name, a lower-case
bearer scheme), SIGHUP (a reload), a live edit with a bad `[[schedule]]` entry that is
reverted once the daemon shows `config_error`, a SIGSTOPped RTMP output (continued after
--stall-s), and a full disk: with --tmpfs-mb the daemon's folder is a tmpfs of that size,
filled by a balloon file for --full-s seconds. A reader stays connected to the
RTMP stream the whole time, reconnecting when its session ends. Each minute it samples the
daemon's RSS, open fds and child processes.

Reports: the samples and their trend (least-squares slope per hour over the second half, after
warm-up), RTMP sessions seen by the reader against the RTMP kills, the longest wait for a
video packet inside a session and across a reconnect, HLS media-sequence continuity, and the
restarts per output against the kills.

Run: .venv/bin/python -m bench.soak [--minutes 30]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.daemon import Daemon
from tests.readers import RtmpReader
from tests.rtmp_server import RtmpServer
from webtv.process import child_pids

TOKEN = "soak-token"
THEMES = ["glass whales over a desert", "a night market on the moon", "paper boats in a storm drain",
          "clockwork foxes in autumn", "a library under the sea", "neon koi in the rain"]


def proc_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_mb": round(rss_kb / 1024, 1), "fds": fds, "children": len(child_pids(pid))}


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else sum((t - mx) * (v - my) for t, v in points) / var * 3600


class Watcher(threading.Thread):
    """Keeps an RTMP reader connected; records each session's packets' arrival times."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.sessions: list[list[float]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            reader = RtmpReader(self.url, seconds=None, rw_timeout_us=5_000_000).start()
            arrivals: list[float] = []
            self.sessions.append(arrivals)
            while reader.proc.poll() is None and self.running:
                arrivals[:] = [p.arrived for p in reader.video()]
                time.sleep(0.5)
            reader.stop()
            arrivals[:] = [p.arrived for p in reader.video()]
            time.sleep(0.2)


HOSTILE = [  # (what, method, path, raw body, headers, the answers a hardened daemon gives)
    ("theme with a lone surrogate", "POST", "/api/theme", b'{"theme": "a\\ud800b"}', "token", (400,)),
    ("non-UTF-8 Authorization", "POST", "/api/theme", b'{"theme": "x"}', {"Authorization": b"Bearer \xff\xfe"}, (401,)),
    ("/hls/%00", "GET", "/hls/%00", None, {}, (404,)),
    ("over-long HLS name", "GET", "/hls/" + "a" * 5000, None, {}, (404, 414)),
    ("lower-case bearer", "POST", "/api/theme", None, "lower", (200,)),
]


class Faults:
    """The hardening issue's faults, injected into one running daemon; each keeps its outcomes."""

    def __init__(self, daemon: Daemon, folder: Path, full_s: float, stall_s: float):
        self.daemon, self.folder, self.full_s, self.stall_s = daemon, folder, full_s, stall_s
        self.counts: dict[str, int] = {}
        self.hostile_answers: dict[str, dict[int, int]] = {what: {} for what, *_ in HOSTILE}
        self.survived_sighup = 0
        self.bad_edits_shown = 0
        self.stall_states: list[str] = []
        self.disk_full_seen = 0
        self.themes = 0
        self.failures: list[str] = []  # injections that could not be made

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def raw_request(self, method: str, path: str, body: bytes | None, headers: dict) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=10)
        try:
            conn.putrequest(method, path)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            return conn.getresponse().status
        finally:
            conn.close()

    def hostile(self) -> None:
        self._count("hostile")
        for what, method, path, body, headers, _ in HOSTILE:
            if headers == "token":
                headers = {"Authorization": f"Bearer {TOKEN}"}
            elif headers == "lower":
                theme = THEMES[self.themes % len(THEMES)]
                self.themes += 1
                body, headers = json.dumps({"theme": theme}).encode(), {"Authorization": f"bearer {TOKEN}"}
            try:
                code = self.raw_request(method, path, body, headers)
            except OSError:
                code = 0  # no answer at all
            answers = self.hostile_answers[what]
            answers[code] = answers.get(code, 0) + 1

    def sighup(self) -> None:
        self._count("sighup")
        before = (self.daemon.status() or {}).get("config_reloads", 0)
        self.daemon.proc.send_signal(signal.SIGHUP)
        with contextlib.suppress(AssertionError):
            self.daemon.wait_for(lambda s: s["config_reloads"] > before, timeout=10)
            self.survived_sighup += 1

    def bad_schedule_edit(self) -> None:
        self._count("bad_schedule_edit")
        path = self.daemon.config
        good = path.read_text()
        path.write_text(good + '\n[[schedule]]\ncron = "0 99 * * *"\ntheme = "never"\n')
        try:
            self.daemon.wait_for(lambda s: s["config_error"], timeout=10)
            self.bad_edits_shown += 1
        except AssertionError:
            pass
        finally:
            path.write_text(good)
        with contextlib.suppress(AssertionError):
            self.daemon.wait_for(lambda s: not s["config_error"], timeout=10)

    def stall_rtmp(self) -> None:
        self._count("rtmp_stall")
        pid = self.daemon.output("rtmp")["pid"]
        if pid is None:  # between a kill and its restart: nothing to stop this time
            self.stall_states.append("no process")
            return
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(self.stall_s)
            self.stall_states.append(self.daemon.output("rtmp")["state"])
        finally:
            os.kill(pid, signal.SIGCONT)

    def disk_full(self) -> None:
        self._count("disk_full")
        balloon = self.folder / "balloon"
        try:
            with open(balloon, "wb") as f:
                with contextlib.suppress(OSError):  # ENOSPC: the disk is full, as meant
                    while True:
                        f.write(b"\0" * (1 << 20))
                        f.flush()
            deadline = time.monotonic() + self.full_s
            while time.monotonic() < deadline:
                status = self.daemon.status() or {}
                if (status.get("disk") or {}).get("full"):
                    self.disk_full_seen += 1
                    break
                time.sleep(1.0)
            time.sleep(max(0.0, deadline - time.monotonic()))
        finally:
            balloon.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int):
    """``path`` as a tmpfs of ``megabytes`` (root only), unmounted on the way out."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--theme-every", type=float, default=180)
    parser.add_argument("--kill-every", type=float, default=240)
    parser.add_argument("--hostile-every", type=float, default=0, help="hostile requests (0: off)")
    parser.add_argument("--hup-every", type=float, default=0, help="SIGHUP (0: off)")
    parser.add_argument("--edit-every", type=float, default=0, help="a bad [[schedule]] live edit (0: off)")
    parser.add_argument("--stall-every", type=float, default=0, help="SIGSTOP the RTMP output (0: off)")
    parser.add_argument("--stall-s", type=float, default=8)
    parser.add_argument("--full-every", type=float, default=0, help="fill the disk (needs --tmpfs-mb; 0: off)")
    parser.add_argument("--full-s", type=float, default=40)
    parser.add_argument("--tmpfs-mb", type=int, default=0, help="run the channel's folder on a tmpfs this big")
    parser.add_argument("--samples", type=Path, help="append each minute's sample to this file (JSON lines)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webtv-soak-") as tmp:
        root = Path(tmp)
        disk = small_disk(root / "channel", args.tmpfs_mb) if args.tmpfs_mb else contextlib.nullcontext(root / "channel")
        with RtmpServer(root / "nginx") as rtmp, disk as folder:
            url = f"{rtmp.url}/soak"
            daemon = Daemon(folder, rtmp_urls=[url], env={"SOAK_TOKEN": TOKEN},
                            http={"token_env": "SOAK_TOKEN"}, library={"max_clips": 200})
            daemon.log_path = root / "daemon.log"  # off the small disk: the log must outlive a full one
            daemon.start()
            daemon.wait_for(lambda s: len(s["outputs"]) == 2 and all(o["state"] == "running" for o in s["outputs"]),
                            timeout=60)
            watcher = Watcher(url)
            watcher.start()
            faults = Faults(daemon, folder, args.full_s, args.stall_s)
            periodic = [(every, action) for every, action in [
                (args.hostile_every, faults.hostile), (args.hup_every, faults.sighup),
                (args.edit_every, faults.bad_schedule_edit), (args.stall_every, faults.stall_rtmp),
                (args.full_every if args.tmpfs_mb else 0, faults.disk_full)] if every > 0]
            due = [every for every, _ in periodic]
            started = time.monotonic()
            next_theme, next_kill, next_sample = args.theme_every, args.kill_every, 0.0
            samples, kills, hls_sequences, themes = [], {"rtmp": 0, "hls": 0}, [], 0
            status, died = daemon.status(), None
            try:
                while (elapsed := time.monotonic() - started) < args.minutes * 60:
                    if daemon.proc.poll() is not None:
                        died = {"minute": round(elapsed / 60, 1), "exit": daemon.proc.returncode,
                                "log_tail": daemon.log_tail(2000)}
                        break
                    if elapsed >= next_sample:
                        samples.append({"minute": round(elapsed / 60, 1), **proc_sample(daemon.proc.pid)})
                        if args.samples:  # as they come: a soak cut short keeps what it measured
                            with open(args.samples, "a") as f:
                                f.write(json.dumps(samples[-1]) + "\n")
                        next_sample += 60
                    if elapsed >= next_theme:
                        theme = THEMES[themes % len(THEMES)]
                        code, _ = daemon.request("POST", "/api/theme", {"theme": theme}, token=TOKEN)
                        assert code == 200, code
                        themes += 1
                        next_theme += args.theme_every
                    if elapsed >= next_kill:
                        kind = "rtmp" if sum(kills.values()) % 2 == 0 else "hls"
                        os.kill(daemon.output(kind)["pid"], signal.SIGKILL)
                        kills[kind] += 1
                        next_kill += args.kill_every
                    for number, (every, action) in enumerate(periodic):
                        if elapsed >= due[number]:
                            due[number] += every
                            try:
                                action()
                            except Exception as exc:  # noqa: BLE001 - a fault injector's own failure is a finding
                                faults.failures.append(f"minute {elapsed / 60:.1f}: {action.__name__}: {exc!r}")
                    try:
                        text = (daemon.folder / "hls" / "index.m3u8").read_text()
                        hls_sequences.append(int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1)))
                    except (OSError, AttributeError):
                        pass  # not written yet at the very start
                    if elapsed >= next_sample - 60 and elapsed < next_sample - 59:
                        status = daemon.status() or status  # once a minute: the last seen, should the daemon die
                    time.sleep(1.0)
                status = daemon.status() or status
            finally:
                watcher.running = False
                watcher.join(timeout=10)
                daemon.stop()
                leftovers = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp")]
    half = [s for s in samples if s["minute"] >= args.minutes / 2]
    sessions = [s for s in watcher.sessions if s]
    inside = max((b - a for s in sessions for a, b in zip(s, s[1:])), default=0.0)
    across = max((later[0] - earlier[-1] for earlier, later in zip(sessions, sessions[1:])), default=0.0)
    restarts = {o["kind"]: o["restarts"] for o in status["outputs"]}
    print(json.dumps({
        "minutes": args.minutes,
        "daemon_died": died,
        "theme_changes": themes + faults.themes,
        "kills": kills,
        "restarts": restarts,
        "faults": faults.counts,
        "fault_injections_failed": faults.failures,
        "hostile_answers": faults.hostile_answers,
        "hostile_expected": {what: list(expected) for what, *_, expected in HOSTILE},
        "sighup_reloads_seen": faults.survived_sighup,
        "bad_schedule_edits_shown_as_config_error": faults.bad_edits_shown,
        "rtmp_state_while_stopped": faults.stall_states,
        "disk_full_state_seen": faults.disk_full_seen,
        "tmp_files_left": leftovers,
        "unexpected_restarts": {k: restarts.get(k, 0) - kills[k] for k in kills},
        "rtmp_sessions_seen": len(sessions),
        "longest_video_wait_in_session_s": round(inside, 2),
        "longest_video_wait_across_reconnect_s": round(across, 2),
        "hls_sequence_never_went_back": all(b >= a for a, b in zip(hls_sequences, hls_sequences[1:])),
        "hls_segments_made": hls_sequences[-1] - hls_sequences[0],
        "trend_per_hour_second_half": {k: round(slope_per_hour([(s["minute"] * 60, s[k]) for s in half]), 2)
                                       for k in ("rss_mb", "fds", "children")},
        "library": status["library"],
        "samples": samples,
    }, indent=2))


if __name__ == "__main__":
    main()

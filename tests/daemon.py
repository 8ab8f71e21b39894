"""Run the real daemon (`python -m webtv run`) in a folder of its own, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from tests.rtmp_server import free_port

REPO = Path(__file__).resolve().parents[1]


def write_config(folder: Path, port: int | None, rtmp_urls: list[str], file: str = "channel.toml",
                 **sections: dict | list[dict]) -> Path:
    """A channel file (channel.toml) in ``folder``: small and quick, overridable per section;
    without [http] when ``port`` is None (a channel file of a folder)."""
    base: dict[str, dict] = {
        "channel": {"name": "test channel", "theme": "lighthouses in a storm"},
        "house": {"width": 320, "height": 180, "fps": 24, "video_kbps": 400, "audio_kbps": 64,
                  "x264_preset": "ultrafast"},
        "director": {"shots_per_sequence": 3},
        "video": {"clip_seconds": 2.0},
        "producer": {"ahead": 2},
        "programme": {"block_seconds": 12.0, "filler_seconds": 2.0},
        "output": {"rtmp_urls": rtmp_urls, "hls": True, "hls_list_size": 5},
        "http": {"host": "127.0.0.1", "port": port},
    }
    if port is None:
        del base["http"]
    tables: dict[str, list[dict]] = {}
    for name, values in sections.items():
        if isinstance(values, list):
            tables[name] = values
        else:
            base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    for name, entries in tables.items():
        for values in entries:
            lines.append(f"[[{name}]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
            lines.append("")
    path = folder / file
    path.write_text("\n".join(lines))
    return path


class Daemon:
    def __init__(self, folder: Path, rtmp_urls: list[str] = (), env: dict | None = None, **sections: dict | list[dict]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = write_config(self.folder, self.port, list(rtmp_urls), **sections)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.folder / "daemon.log"
        self.env = {**os.environ, **(env or {})}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Daemon":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webtv", "run", "--config", str(self.config)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
        )
        log.close()
        return self

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, str]:
        """An HTTP call to the daemon; returns (status, body text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def start_on_air(self, stream_url: str, timeout: float = 30.0) -> float | None:
        """Start the daemon with a reader already waiting on ``stream_url`` (nginx-rtmp holds a
        player until a publisher comes); seconds from the spawn to the first video packet the
        reader receives, None when none came within ``timeout``."""
        from tests.readers import RtmpReader

        reader = RtmpReader(stream_url, seconds=2).start()
        time.sleep(0.3)
        started = time.monotonic()
        self.start()
        try:
            first = reader.first_video_after(started, timeout=timeout)
        finally:
            reader.stop()
        return None if first is None else first - started

    def status(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url + "/api/status", timeout=2) as response:
                return json.load(response)
        except OSError:
            return None

    def wait_for(self, what: Callable[[dict], bool], timeout: float, message: str = "") -> dict:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}: {self.log_tail()}")
            status = self.status()
            if status is not None and what(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {message or what}: last status {status}\n{self.log_tail()}")

    def output(self, kind: str) -> dict:
        return next(o for o in self.status()["outputs"] if o["kind"] == kind)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM; returns the seconds the daemon took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Running processes whose command line contains ``text`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append((int(entry.name), cmdline))
    return found

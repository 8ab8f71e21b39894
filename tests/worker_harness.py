"""Run real render workers (`python -m webtv worker`) on free loopback ports, for tests and
benchmarks.

    worker = WorkerProcess(tmp_path / "w1", video={"render_delay_s": 1.0}).start()
    worker.wait_ready()            # the Gradio app answers (a few seconds: gradio imports)
    worker.url                     # http://127.0.0.1:PORT/
    worker.kill()                  # kill -9, its ffmpeg children too
    worker.start().wait_ready()    # again, on the same port

Each worker has a folder of its own: its channel.toml, its log, and its temporary files
(TMPDIR and GRADIO_TEMP_DIR point there), so nothing is left in /tmp.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.daemon import REPO, write_config
from tests.rtmp_server import free_port

QUIET_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}

# The worker's own channel file: small house format, quick renders (sections override it).
WORKER_DEFAULTS: dict[str, dict] = {
    "video": {"clip_seconds": 2.0},
    "interpolation": {"backend": "minterpolate"},
}


class WorkerProcess:
    def __init__(self, folder: Path, port: int | None = None, env: dict | None = None, **sections: dict):
        self.folder = Path(folder)
        self.env = dict(env or {})
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "tmp").mkdir(exist_ok=True)
        self.port = port or free_port()
        merged = {name: dict(values) for name, values in WORKER_DEFAULTS.items()}
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        self.config = write_config(self.folder, free_port(), [], **merged)
        self.log_path = self.folder / "worker.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "WorkerProcess":
        env = {**os.environ, **QUIET_ENV, "TMPDIR": str(self.folder / "tmp"),
               "GRADIO_TEMP_DIR": str(self.folder / "gradio"), **self.env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webtv", "worker", "--config", str(self.config), "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )
        log.close()
        return self

    def answers(self) -> bool:
        """The app is up: it serves its config, or refuses it for want of credentials."""
        try:
            with urllib.request.urlopen(self.url + "config", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}: {self.log_tail()}")
            if self.answers():
                return self
            time.sleep(0.2)
        raise AssertionError(f"worker on port {self.port} not ready after {timeout} s: {self.log_tail()}")

    def kill(self) -> None:
        """kill -9 the worker and everything it started (its process group)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_workers(folder: Path, count: int, **sections: dict) -> list[WorkerProcess]:
    """``count`` workers started together (their start-up overlaps), each ready."""
    workers = [WorkerProcess(Path(folder) / f"worker-{i}", **sections).start() for i in range(count)]
    try:
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    return workers

"""A throw-away nginx-rtmp server on a free loopback port, for tests.

``RtmpServer(tmp_dir).start()`` writes an nginx.conf into ``tmp_dir`` (pid, logs and temp
paths all inside it), starts ``nginx -g 'daemon off;'`` and waits until the port accepts
connections. ``url`` is the base to publish and play on, e.g. ``rtmp://127.0.0.1:PORT/live``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def nginx_exe() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def available() -> str | None:
    """None when a test server can be started, else the reason it cannot."""
    if nginx_exe() is None:
        return "nginx is not installed"
    if not RTMP_MODULE.is_file():
        return f"nginx rtmp module not found at {RTMP_MODULE}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RtmpServer:
    def __init__(self, root: Path, app: str = "live"):
        self.root = Path(root)
        self.app = app
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/{self.app}"

    def _conf(self) -> str:
        r = self.root
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""load_module {RTMP_MODULE};
{user}daemon off;
master_process on;
worker_processes 1;
pid "{r / 'nginx.pid'}";
error_log "{r / 'error.log'}" info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        chunk_size 4096;
        application {self.app} {{
            live on;
            record off;
        }}
    }}
}}
"""

    def start(self, timeout: float = 10.0, keep_port: bool = False) -> "RtmpServer":
        """Start nginx on a free port, or on the port it had before when ``keep_port``."""
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            if not (keep_port and self.port):
                self.port = free_port()
            conf = self.root / "nginx.conf"
            conf.write_text(self._conf())
            log = open(self.root / "nginx.stderr", "ab")
            self.proc = subprocess.Popen(
                [nginx_exe(), "-p", str(self.root), "-e", str(self.root / "error.log"), "-c", str(conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # port taken in the meantime, or a config error: retry / report
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        text = (self.root / "nginx.stderr").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"nginx-rtmp did not start: {text}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # master and worker; they share the session
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=3)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a worker left behind
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "RtmpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SilentServer:
    """A TCP server that accepts every connection and never answers: an RTMP client's
    handshake (C0+C1) goes unanswered, as with a firewall or proxy that swallows the stream."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live"

    def start(self) -> "SilentServer":
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed by stop()
                return
            self.accepted.append(conn)

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        except OSError:
            pass
        self.listener.close()
        for conn in self.accepted:
            conn.close()

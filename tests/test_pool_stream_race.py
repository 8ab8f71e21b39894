"""A job submitted on a gradio_client Client just as the worker closes that client's event
stream. The worker (a real `webtv worker`) closes a session's stream as soon as its last
pending job completes; a job the pool submits on the same client after that, but before the
client has read the close, is tied to the closing stream and cancelled with it, though the
worker is fine and runs it. Under CPU load (the client's reader thread waits for the GIL) or
over a slow network this window is wide enough to hit: the health probe of
test_remote_daemon failed this way ("connection to the worker lost (its event stream
closed)").

A TCP proxy between the pool and the worker holds the worker's close_stream message until
the next job has been submitted: the interleaving of a loaded machine, made every time."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import socket
import threading
import time

import pytest

from tests.worker_harness import WorkerProcess
from webtv.config import WorkersSection
from webtv.producer.remote import WorkerPool

CLOSE = b'"msg":"close_stream"'


class HoldingProxy:
    """Forwards 127.0.0.1:port to the worker; once ``arm()``ed, holds the next event stream
    close (and what follows it on that connection) until ``release()``."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.armed = threading.Event()
        self.held = threading.Event()  # a close is being held
        self.released = threading.Event()
        self.joins = 0  # job submissions (POST .../queue/join) seen
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def arm(self) -> None:
        self.released.clear()
        self.held.clear()
        self.armed.set()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(conn, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_worker: bool) -> None:
        try:
            while data := src.recv(65536):
                if not from_worker and b"/queue/join" in data:
                    with self._lock:
                        self.joins += 1
                at = data.find(CLOSE) if from_worker and self.armed.is_set() else -1
                if at >= 0:
                    self.armed.clear()
                    start = data.rfind(b"data:", 0, at)
                    start = start if start >= 0 else at
                    dst.sendall(data[:start])  # the job's own completion goes through
                    self.held.set()
                    self.released.wait(30)
                    data = data[start:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    proc = WorkerProcess(tmp_path_factory.mktemp("worker"), video={"render_delay_s": 0.3}).start()
    try:
        yield proc.wait_ready()
    finally:
        proc.kill()


@pytest.fixture
def proxy(worker):
    proxy = HoldingProxy(worker.port)
    try:
        yield proxy
    finally:
        proxy.close()


def pool_of(url: str) -> WorkerPool:
    return WorkerPool(WorkersSection(urls=[url], timeout_s=20, retries=0, health_interval_s=0.5,
                                     probe_after_s=1.0), start=False)


def submit_while_the_close_is_held(proxy: HoldingProxy, pool: WorkerPool, second) -> dict:
    """Run a /health job through the pool with the proxy holding the close of its stream,
    then ``second()`` (in a thread) while the close is still held; release it once the
    second job is submitted. Returns what ``second`` returned or raised."""
    proxy.arm()
    pool.submit("/health")  # completes; the worker then closes the stream: held
    assert proxy.held.wait(10), "the worker did not close the event stream"
    joins = proxy.joins
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = second()
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while proxy.joins == joins and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.joins > joins, "the second job was not submitted"
    time.sleep(0.3)  # the client registers the job it submitted
    proxy.release()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return result


def test_a_health_check_as_the_event_stream_closes_finds_the_worker_healthy(proxy):
    pool = pool_of(proxy.url)
    try:
        assert pool.check()[0]["state"] == "healthy"
        result = submit_while_the_close_is_held(proxy, pool, pool.check)
        assert "error" not in result, result
        [status] = pool.status()
        assert status["state"] == "healthy", status
        assert pool.summary() == "1 of 1 workers healthy"
    finally:
        pool.close()


def test_a_job_submitted_as_the_event_stream_closes_completes(proxy):
    pool = pool_of(proxy.url)
    try:
        assert pool.check()[0]["state"] == "healthy"
        result = submit_while_the_close_is_held(proxy, pool, lambda: pool.submit("/health"))
        assert "error" not in result, result
        [status] = pool.status()
        assert status["state"] == "healthy" and status["failures"] == 0, status
    finally:
        pool.close()

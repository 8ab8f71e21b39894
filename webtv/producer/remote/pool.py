"""The pool of remote workers. ``WorkerPool`` keeps gradio_client ``Client``s per worker
and sends each job to the least busy healthy one:

- **one job per client**: a Client carries all its jobs on one event stream, which the
  worker closes as soon as the last job it knows of completes; a job submitted on that Client
  after the worker closed the stream but before the Client has read the close (a loaded
  machine, a slow network) is tied to the closing stream and cancelled with it, though the
  worker runs it. So each job (health checks too) borrows a Client of its own, one whose
  stream is closed, and a new one is made when none is free;

- **least busy**: fewest jobs in flight from this daemon; ties go to the faster worker (lower
  mean time for that endpoint; means within 1.5x count as equal), then to the one used least
  recently, so equal workers take turns;
- **timeout**: ``[workers] timeout_s`` per attempt, the worker's queue wait included; a job
  past it is cancelled there and counts as a failure;
- **retry**: a failed attempt (connection lost, worker killed, timeout, an error raised by
  the app, a reply that does not decode) is tried again on another worker, up to
  ``[workers] retries`` others. Lost connections and timeouts also take the worker out at
  once; an error the app raised (bad input, out of memory) leaves it in;
- **health**: a daemon thread started by the pool asks every worker's ``/health`` endpoint
  (or, for an app without one, its ``/config``) every ``health_interval_s``. A worker that
  fails a check, or loses its connection during a job, is taken out (``down``) and probed
  again after ``probe_after_s`` (``probing``); a good probe puts it back (``healthy``);
- **all down**: a job waits up to ``health_interval_s`` for a worker to come back, then
  raises ``WorkersDown`` naming why each one is out; the producer skips the clip and the
  channel airs its library. ``summary()`` says the same for ``/api/status``;
- **stop**: ``close()`` cancels the jobs in flight, and gradio_client's threads are daemon
  threads here, so a stopping daemon never waits for a remote render.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import dataclasses
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from webtv.media import MediaError

if TYPE_CHECKING:
    from webtv.config import WorkersSection

log = logging.getLogger("webtv.workers")

T = TypeVar("T")

HEALTH_TIMEOUT_S = 10.0  # one health check: connect, ask /health, get the answer
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0  # silence on a connection; a worker's event stream beats every 15 s


# Who wants to know which worker each job submitted from this context runs on (the producer's
# render progress): called with the worker's URL at each attempt, in the submitting thread.
JOB_WATCHER: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("webtv_job_watcher",
                                                                                          default=None)


class WorkersDown(RuntimeError):
    """No worker can take a job: none configured, or every one is down; says why."""


class JobFailed(RuntimeError):
    """A job failed on every worker it was tried on; names each attempt."""


@dataclass
class _Worker:
    url: str
    state: str = "unknown"  # unknown (not checked yet) | healthy | down | probing
    jobs_done: int = 0
    failures: int = 0
    in_flight: int = 0
    busy_s: float = 0.0  # total seconds of the jobs done
    last_error: str | None = None
    down_since: float | None = None  # wall clock
    next_check: float = 0.0  # monotonic
    checking: bool = False
    last_used: float = 0.0  # monotonic
    info: dict | None = None  # the worker's /health answer
    running: list = dataclasses.field(default_factory=list)  # endpoints of the jobs in flight
    per_endpoint: dict = dataclasses.field(default_factory=dict)  # endpoint -> [jobs done, seconds]
    idle: list = dataclasses.field(default_factory=list)  # Clients free for the next job, oldest first
    lent: list = dataclasses.field(default_factory=list)  # Clients running a job
    generation: int = 0  # bumped when the clients are dropped: those lent are closed when given back
    outs: int = 0  # times taken out: a check that began before the last one does not count
    check_outs: int = 0

    @property
    def mean_job_s(self) -> float | None:
        return self.busy_s / self.jobs_done if self.jobs_done else None

    def mean_for(self, endpoint: str) -> float | None:
        done = self.per_endpoint.get(endpoint)
        return done[1] / done[0] if done else None

    @property
    def usable(self) -> bool:
        return self.state in ("healthy", "unknown")


class WorkerPool:
    """The workers of ``[workers] urls``; ``submit()`` runs one job on the best of them.

    The health thread starts with the pool (``start=False`` leaves it off: ``check()`` then
    checks on demand) and is a daemon thread, so nothing has to stop it; ``close()`` does."""

    def __init__(self, section: "WorkersSection", *, start: bool = True, environ: Mapping[str, str] | None = None):
        self.section = section
        self._environ = os.environ if environ is None else environ  # where credentials' secrets are read
        self._workers = [_Worker(url) for url in dict.fromkeys(section.urls)]
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: Path | None = None
        self._finalizer: weakref.finalize | None = None
        self._autostart = start
        self._jobs: set = set()  # gradio_client Jobs in flight, cancelled by close()
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the health thread (idempotent)."""
        with self._cond:
            if self._thread is not None or not self._workers:
                return
            self._thread = threading.Thread(target=self._health_loop, name="worker-health", daemon=True)
        self._thread.start()

    def update(self, section: "WorkersSection") -> None:
        """Apply an edited ``[workers]`` table: new URLs join (unchecked), removed ones leave
        (their jobs in flight finish), the others keep their state and counts."""
        with self._cond:
            kept = {w.url: w for w in self._workers}
            self._workers = [kept.get(url) or _Worker(url) for url in dict.fromkeys(section.urls)]
            dropped = [w for url, w in kept.items() if url not in section.urls]
            rekeyed = [w for w in self._workers if w.url in kept
                       and section.credentials_for(w.url) != self.section.credentials_for(w.url)]
            self.section = section
            stale = []
            for worker in dropped + rekeyed:  # its next call connects with the new credentials
                stale += worker.idle
                worker.idle = []
                worker.generation += 1
            self._cond.notify_all()
        for client in stale:
            _close_client(client)
        if self._autostart:
            self.start()  # the first URLs may have come with this edit

    def close(self) -> None:
        """Stop the health checks, cancel the jobs in flight (on the workers too, where they
        are still queued) and let go of the clients: a stopping daemon does not wait for a
        render it will not use (the interpreter joins gradio_client's threads at exit)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            clients = [client for w in self._workers for client in w.idle + w.lent]
            for worker in self._workers:
                worker.idle, worker.lent = [], []
                worker.generation += 1
            jobs = list(self._jobs)
        cancels = [threading.Thread(target=_cancel_job, args=(job,), daemon=True) for job in jobs]
        for thread in cancels:
            thread.start()
        deadline = time.monotonic() + 2.0
        for thread in cancels:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for client in clients:
            _close_client(client)
        if self._finalizer is not None:
            self._finalizer()

    # -- status ------------------------------------------------------------------------

    def status(self) -> list[dict]:
        """One entry per worker: url, state, jobs_done, failures, mean_job_s, in_flight,
        last_error, down_since and the backends it reported."""
        with self._cond:
            return [
                {
                    "url": w.url,
                    "state": w.state,
                    "jobs_done": w.jobs_done,
                    "failures": w.failures,
                    "mean_job_s": None if w.mean_job_s is None else round(w.mean_job_s, 3),
                    "in_flight": w.in_flight,
                    "running": list(w.running),
                    "last_error": w.last_error,
                    "down_since": w.down_since,
                    "backends": (w.info or {}).get("backends"),
                }
                for w in self._workers
            ]

    def capacity(self) -> int:
        """Workers that can take a job now (at least 1): how many shots a producer may render
        at once to keep them all busy."""
        with self._cond:
            return max(1, sum(w.usable for w in self._workers))

    def summary(self) -> str:
        """One line for operators: how many workers are up, and why the others are not."""
        with self._cond:
            return self._summary()

    def _summary(self, airing: bool = True) -> str:
        total = len(self._workers)
        if not total:
            return "no workers configured: set [workers] urls"
        down = [w for w in self._workers if not w.usable]
        if not down:
            healthy = sum(w.state == "healthy" for w in self._workers)
            if healthy == total:
                return f"{total} of {total} workers healthy"
            return f"{healthy} of {total} workers healthy, {total - healthy} not checked yet"
        reasons = "; ".join(f"{w.url}: {w.last_error or w.state}" for w in down)
        if len(down) == total:
            which = f"all {total} workers are" if total > 1 else "the only worker is"
            tail = "; the channel airs its library until one is back" if airing else ""
            return f"{which} down ({reasons}){tail}"
        return f"{total - len(down)} of {total} workers up; down: {reasons}"

    # -- health ------------------------------------------------------------------------

    def check(self) -> list[dict]:
        """Check every worker now (in parallel, each within HEALTH_TIMEOUT_S); returns status()."""
        with self._cond:
            todo = [w for w in self._workers if not w.checking]
            for worker in todo:
                self._begin_check(worker)
        threads = [threading.Thread(target=self._check_one, args=(w,), daemon=True) for w in todo]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.status()

    def _begin_check(self, worker: _Worker) -> None:
        worker.checking = True
        worker.check_outs = worker.outs
        if worker.state == "down":
            worker.state = "probing"

    def _health_loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._cond:
                due = [w for w in self._workers if not w.checking and now >= w.next_check]
                for worker in due:
                    self._begin_check(worker)
                wake = min((w.next_check for w in self._workers if not w.checking), default=now + 1.0)
            for worker in due:
                threading.Thread(target=self._check_one, args=(worker,), name="worker-check", daemon=True).start()
            self._stop.wait(min(1.0, max(0.05, wake - time.monotonic())))

    def _check_one(self, worker: _Worker) -> None:
        started = time.monotonic()
        try:
            info = self._probe(worker)
        except Exception as exc:  # noqa: BLE001 - any failure takes the worker out
            reason = f"health check failed: {_reason(exc)}"
            with self._cond:
                worker.checking = False
                was = worker.state
                self._take_out(worker, reason)
                worker.next_check = time.monotonic() + self.section.probe_after_s
            if was != "probing":
                log.warning("worker %s taken out: %s", worker.url, reason)
            else:
                log.info("worker %s still down: %s", worker.url, reason)
            return
        with self._cond:
            worker.checking = False
            if worker.outs != worker.check_outs:
                return  # a job found it gone while this check ran: the probe later decides
            worker.info = info
            back = worker.state == "probing"
            worker.state = "healthy"
            worker.down_since = None
            worker.next_check = time.monotonic() + self.section.health_interval_s
            self._cond.notify_all()
        if back:
            log.info("worker %s is back (answered in %.2f s)", worker.url, time.monotonic() - started)

    def _probe(self, worker: _Worker) -> dict:
        with self._client(worker, fresh=worker.state == "probing") as client:
            return self._ask_health(client)

    @staticmethod
    def _ask_health(client) -> dict:
        if "/health" in _endpoint_names(client):
            job = client.submit(api_name="/health")
            try:
                info = job.result(timeout=HEALTH_TIMEOUT_S)
            except TimeoutError:
                job.cancel()
                raise TimeoutError(f"no answer to /health within {HEALTH_TIMEOUT_S:g} s") from None
            if isinstance(info, str):
                info = json.loads(info)
            return info if isinstance(info, dict) else {"answer": info}
        import httpx

        response = httpx.get(client.src + "config", headers=client.headers, cookies=client.cookies,
                             timeout=HEALTH_TIMEOUT_S)
        response.raise_for_status()
        return {}

    def _take_out(self, worker: _Worker, reason: str) -> None:
        """Mark ``worker`` down (lock held) and forget its client."""
        if worker.state not in ("down", "probing"):
            worker.down_since = time.time()
        worker.state = "down"
        worker.outs += 1
        worker.last_error = reason
        worker.next_check = time.monotonic() + self.section.probe_after_s
        stale, worker.idle = worker.idle, []
        worker.generation += 1  # those lent are closed when their jobs end
        for client in stale:
            threading.Thread(target=_close_client, args=(client,), daemon=True).start()

    @contextlib.contextmanager
    def _client(self, worker: _Worker, fresh: bool = False):
        """A gradio_client Client of the worker's for one job, given back after it: an idle
        one whose event stream is closed, or a new one (``fresh``: a new one, the idle ones
        closed). Never one with a job running or a stream still open: a job submitted there
        as the worker closes the stream would be cancelled with it."""
        stale: list = []
        client = None
        with self._cond:
            generation = worker.generation
            if fresh:
                stale, worker.idle = worker.idle, []
            else:
                client = next((c for c in worker.idle if _stream_closed(c)), None)
                if client is not None:
                    worker.idle.remove(client)
                    worker.lent.append(client)
        for old in stale:
            threading.Thread(target=_close_client, args=(old,), daemon=True).start()
        if client is None:
            credentials = self.section.credentials_for(worker.url)
            client = _new_client(worker.url,
                                 credentials.client_options(self._environ) if credentials else {"token": False})
            with self._cond:
                worker.lent.append(client)
        try:
            yield client
        finally:
            with self._cond:
                if client in worker.lent:
                    worker.lent.remove(client)
                stale = [client]
                if worker.generation == generation and not self._stop.is_set():
                    worker.idle.append(client)
                    stale = worker.idle[:-MAX_IDLE_CLIENTS]
                    del worker.idle[:-MAX_IDLE_CLIENTS]
            for old in stale:
                threading.Thread(target=_close_client, args=(old,), daemon=True).start()

    # -- jobs --------------------------------------------------------------------------

    def submit(self, endpoint: str, *args, timeout: float | None = None,
               decode: Callable[[Any, "WorkerPool"], T] | None = None) -> T:
        """Run ``endpoint(*args)`` on the least busy healthy worker; on failure again on
        another, up to ``retries`` others. ``decode(result, pool)`` turns the reply into the
        caller's value inside the attempt, so a reply that does not decode is retried too.
        Blocking. Raises WorkersDown when no worker can take the job, JobFailed when every
        attempt failed."""
        timeout = self.section.timeout_s if timeout is None else timeout
        tried: set[str] = set()
        attempts: list[str] = []
        for _ in range(1 + self.section.retries):
            if self._stop.is_set():
                raise WorkersDown("the worker pool is closed")
            worker = self._acquire(tried, endpoint,
                                   wait_s=min(self.section.health_interval_s, timeout) if not attempts else 0)
            if worker is None:
                break
            tried.add(worker.url)
            watcher = JOB_WATCHER.get()
            if watcher is not None:
                watcher(worker.url)
            try:
                result, seconds = self._run(worker, endpoint, args, timeout)
                value = decode(result, self) if decode is not None else result
            except Exception as exc:  # noqa: BLE001 - every failure is tried on another worker
                reason = _reason(exc)
                attempts.append(f"{worker.url}: {reason}")
                self._failed(worker, endpoint, exc, reason)
                continue
            self._done(worker, endpoint, seconds)
            return value
        if not attempts:
            with self._cond:
                raise WorkersDown(self._summary(airing=False))
        with self._cond:
            untried = any(w.usable and w.url not in tried for w in self._workers)
            others = "" if untried else "; " + self._summary(airing=False)
        raise JobFailed(f"{endpoint} failed on {len(attempts)} worker(s): " + "; ".join(attempts) + others)

    def _acquire(self, tried: set[str], endpoint: str = "", wait_s: float = 0.0) -> _Worker | None:
        """The best usable worker not in ``tried``, its in_flight counted; waits up to
        ``wait_s`` for one to come back when none is usable. None when none is there."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                candidates = [w for w in self._workers if w.usable and w.url not in tried]
                if candidates:
                    best = _least_busy(candidates, endpoint)
                    best.in_flight += 1
                    best.running.append(endpoint)
                    best.last_used = time.monotonic()
                    return best
                left = deadline - time.monotonic()
                untried = [w for w in self._workers if w.url not in tried]
                if left <= 0 or not untried or self._stop.is_set():
                    return None
                self._cond.wait(min(left, 0.5))

    def _run(self, worker: _Worker, endpoint: str, args: tuple, timeout: float) -> tuple[Any, float]:
        """(reply, seconds from submission to reply): the job's time, queue wait included."""
        with self._client(worker) as client:
            started = time.monotonic()
            job = client.submit(*args, api_name=endpoint)
            with self._cond:
                self._jobs.add(job)
            try:
                return job.result(timeout=timeout), time.monotonic() - started
            except TimeoutError:
                _cancel_job(job)
                raise TimeoutError(f"no result within {timeout:g} s") from None
            finally:
                with self._cond:
                    self._jobs.discard(job)

    def _done(self, worker: _Worker, endpoint: str, seconds: float) -> None:
        with self._cond:
            worker.in_flight -= 1
            worker.running.remove(endpoint)
            worker.jobs_done += 1
            worker.busy_s += seconds
            done = worker.per_endpoint.setdefault(endpoint, [0, 0.0])
            done[0] += 1
            done[1] += seconds
            if worker.state == "unknown":
                worker.state = "healthy"  # a job done is as good as a check
            self._cond.notify_all()

    def _failed(self, worker: _Worker, endpoint: str, exc: Exception, reason: str) -> None:
        from gradio_client.exceptions import AppError

        app_error = isinstance(exc, (AppError, MediaError, ValueError)) and not isinstance(exc, TimeoutError)
        with self._cond:
            worker.in_flight -= 1
            worker.running.remove(endpoint)
            if self._stop.is_set():
                return  # cancelled by close(): not the worker's fault
            worker.failures += 1
            worker.last_error = f"{endpoint}: {reason}"
            if not app_error:  # connection lost, killed, hung: out until a probe finds it again
                self._take_out(worker, f"{endpoint}: {reason}")
            self._cond.notify_all()
        if app_error:
            log.warning("worker %s: %s failed: %s", worker.url, endpoint, reason)
        else:
            log.warning("worker %s taken out: %s failed: %s", worker.url, endpoint, reason)

    # -- files -------------------------------------------------------------------------

    def fetch(self, reply: Any, what: str = "file") -> Path:
        """The first file in a reply (a path, a FileData dict, or a list/tuple/dict holding
        one), downloaded into the pool's folder. The caller deletes it when done."""
        found = _find_file(reply)
        if found is None:
            raise ValueError(f"the worker's reply holds no {what}: {_short(reply)}")
        target = self.scratch() / f"{uuid.uuid4().hex}-{_safe_name(found)}"
        if isinstance(found, dict) and not found.get("url"):
            found = found["path"]  # a file on this machine (_find_file checked)
        if isinstance(found, dict):
            url = found["url"]
            import httpx

            headers, cookies = self._credentials_of(url)
            with httpx.stream("GET", url, headers=headers, cookies=cookies, follow_redirects=True,
                              timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)) as response:
                response.raise_for_status()
                with open(target, "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
        else:
            shutil.copyfile(found, target)
        return target

    def _credentials_of(self, url: str) -> tuple[dict, dict]:
        """The headers and login cookies of the worker that serves ``url`` (a file in its
        reply lies under its address); none for another host."""
        with self._cond:
            for worker in self._workers:
                for client in worker.lent + worker.idle:
                    if url.startswith(client.src):
                        return dict(client.headers), dict(client.cookies)
        return {}, {}

    def scratch(self) -> Path:
        """The pool's folder for files in transit (made on first use, removed with the pool)."""
        with self._cond:
            if self._files is None:
                self._files = Path(tempfile.mkdtemp(prefix="webtv-workers-"))
                self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._files), True)
            return self._files


SIMILAR_SPEED = 1.5  # mean job times within this factor count as a tie
MAX_IDLE_CLIENTS = 4  # per worker; more are closed


def _least_busy(candidates: list[_Worker], endpoint: str) -> _Worker:
    """Fewest jobs in flight; then healthy before unchecked; then the faster (mean time of
    this endpoint's jobs; means within SIMILAR_SPEED of the fastest, or none yet, count as
    equal); then the one used least recently, so equal workers take turns."""
    fewest = min(w.in_flight for w in candidates)
    pool = [w for w in candidates if w.in_flight == fewest]
    if any(w.state == "healthy" for w in pool):
        pool = [w for w in pool if w.state == "healthy"]
    means = [w.mean_for(endpoint) for w in pool if w.mean_for(endpoint) is not None]
    if means:
        fast = min(means) * SIMILAR_SPEED
        pool = [w for w in pool if w.mean_for(endpoint) is None or w.mean_for(endpoint) <= fast]
    return min(pool, key=lambda w: w.last_used)


def _new_client(url: str, credentials: dict[str, Any]):
    """A Client of ``url``; ``credentials``: its ``auth``, ``token`` and ``headers`` arguments
    (``token=False``: no Hugging Face token, not even one saved on this machine)."""
    import httpx
    from gradio_client import Client

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request in the daemon's log
    # Connecting (config and API info) must answer within a health check's time; jobs then
    # allow a longer silence (uploads, downloads, the event stream between its beats).
    options = {"verbose": False, "download_files": False,
               "httpx_kwargs": {"timeout": httpx.Timeout(HEALTH_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)}}
    if "analytics_enabled" in inspect.signature(Client.__init__).parameters:
        options["analytics_enabled"] = False
    client = Client(url, **options, **credentials)
    client.httpx_kwargs["timeout"] = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    for name in ("executor", "helper_executor", "stream_executor"):
        pool = getattr(client, name, None)
        if isinstance(pool, concurrent.futures.ThreadPoolExecutor):
            setattr(client, name, _DaemonExecutor(f"gradio-{name}"))
            pool.shutdown(wait=False)
    return client


class _DaemonExecutor(concurrent.futures.Executor):
    """Each task in a daemon thread of its own, for a gradio_client Client's executors.

    The interpreter joins ThreadPoolExecutor threads at exit, and a cancelled job leaves
    gradio_client's threads reading the worker's event stream until the worker finishes the
    render it no longer needs (minutes on a GPU): a stopping daemon would wait for it."""

    def __init__(self, name: str):
        self.name = name

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the future
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def _cancel_job(job) -> None:
    try:
        job.cancel()
    except Exception:  # noqa: BLE001 - best effort: the worker may be gone
        pass


def _close_client(client) -> None:
    try:
        client.close()
        client.__del__()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def _stream_closed(client) -> bool:
    """The Client has no event stream open (gradio_client opens one when a job is submitted
    and the worker closes it after the last job completes): a job submitted now opens a new
    one instead of joining one that may be closing."""
    lock = getattr(client, "pending_lock", None)
    if lock is None or not hasattr(client, "stream_open"):
        return True  # another gradio_client: nothing to go by
    with lock:
        return not client.stream_open


def _endpoint_names(client) -> set[str]:
    return {getattr(e, "api_name", None) for e in getattr(client, "endpoints", {}).values()}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, concurrent.futures.CancelledError):
        return "connection to the worker lost (its event stream closed)"
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    if not text:
        return name
    line = text[0] if len(text[0]) > 20 or len(text) == 1 else " ".join(t.strip() for t in text[:3])
    return f"{name}: {line[:300]}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _find_file(reply: Any):
    """A local path (str) or a FileData dict found in ``reply``, or None."""
    if isinstance(reply, dict):
        if isinstance(reply.get("path"), str) or isinstance(reply.get("url"), str):
            if reply.get("url") or Path(reply["path"]).is_file():
                return reply
        for key in ("video", "audio", "file", "value", "data"):
            if key in reply:
                found = _find_file(reply[key])
                if found is not None:
                    return found
        for value in reply.values():
            found = _find_file(value)
            if found is not None:
                return found
        return None
    if isinstance(reply, (list, tuple)):
        for item in reply:
            found = _find_file(item)
            if found is not None:
                return found
        return None
    if isinstance(reply, (str, os.PathLike)) and Path(reply).is_file():
        return str(reply)
    return None


def _safe_name(found) -> str:
    name = (found.get("orig_name") or found.get("path") or "file") if isinstance(found, dict) else str(found)
    name = Path(str(name).split("?", 1)[0]).name or "file"
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[-80:]

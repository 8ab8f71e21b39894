"""The render worker: the stages its config names, served as Gradio API endpoints.

    webtv worker [--config channel.toml] [--host 127.0.0.1] [--port 7860]

Endpoints (call them with gradio_client; ``webtv.producer.remote`` does):

| endpoint | arguments | returns |
| --- | --- | --- |
| ``/health`` | | JSON: backends, jobs done and failed, job running |
| ``/video`` | prompt, seed, seconds, light, shot JSON | frames: FFV1/Matroska file |
| ``/upscale`` | video file, prompt, seed, light, shot JSON | frames: FFV1/Matroska file |
| ``/interpolate`` | video file, seconds, fps, light | frames at ``fps``: FFV1/Matroska file |
| ``/music`` | music prompt, seed, seconds, sample rate, channels, light, sequence JSON | 32-bit float WAV |
| ``/voice`` | text, voice, words a minute, sample rate, light | speech: 32-bit float mono WAV |
| ``/clip`` | prompt, seed, seconds, house JSON, theme, narration | a house-format MP4 (music, caption or narration with subtitles, validated) |
| ``/score`` | video file, prompt | JSON ``{"score": mean prompt-frame CLIP similarity}`` |

``seconds`` 0 means the config's ``[video] clip_seconds``; an empty house JSON means the
config's ``[house]``. All render endpoints share one queue slot (``concurrency_id="gpu"``,
limit 1): one job at a time per worker process, the rest wait in Gradio's queue. ``/health``
has its own unlimited slot so a busy worker still answers it. Upscale ``none`` returns the
frames as they came; interpolation is the one the config names even when the local chain
would skip it (procedural frames are already at the house rate). ``/score`` rates with the
worker's ``[quality] model`` (whatever its ``scorer``); ``/clip`` draws ``[quality] takes``
like the channel does.

Auth, from the environment only: ``WEBTV_WORKER_TOKEN`` makes every route (API, files,
``/config``) ask for ``Authorization: Bearer <token>``; ``WEBTV_WORKER_USER`` and
``WEBTV_WORKER_PASSWORD`` make it a Gradio login (a login page in a browser; callers pass
``auth``). Without them the worker is open to whoever reaches its port.

The stages are made once at start (model weights load on the first job and stay loaded).
For a Hugging Face Space, ``app.py`` can be ``from webtv.worker.app import space; space()``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import fastapi

    from webtv.config import Config, WorkerAuth

log = logging.getLogger("webtv.worker")

OUTPUT_MAX_AGE_S = 1800.0  # results are served from Gradio's cache; our copies go after this


def _quiet_gradio() -> None:
    """No telemetry, no update check, no hub: a worker talks to its callers only."""
    for name, value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                        ("GRADIO_ALLOW_FLAGGING", "never"), ("DO_NOT_TRACK", "1")):
        os.environ.setdefault(name, value)


class WorkerService:
    """The stages behind the endpoints, with the counters ``/health`` reports."""

    def __init__(self, config: "Config"):
        from webtv.producer import make_stages

        if config.remote_stages:  # `webtv worker` says so earlier, naming the line (config.check_worker)
            raise ValueError(f"a worker renders itself: {', '.join(config.remote_stages)} backend cannot be \"remote\" here")
        self.config = config
        self.stages = make_stages(config)
        self._interpolator = self.stages.interpolate
        self._scorer = None
        self.started = time.time()
        self.work = Path(tempfile.mkdtemp(prefix="webtv-worker-"))
        self._lock = threading.Lock()
        self.jobs_done = 0
        self.jobs_failed = 0
        self.running: str | None = None
        self.last_error: str | None = None

    # -- bookkeeping -------------------------------------------------------------------

    def backends(self) -> dict[str, str]:
        c = self.config
        return {"video": c.video.backend, "upscale": c.upscale.backend,
                "interpolation": c.interpolation.backend, "audio": c.audio.backend, "voice": c.voice.backend}

    def health(self) -> dict:
        with self._lock:
            return {
                "webtv_worker": 1,
                "backends": self.backends(),
                "jobs_done": self.jobs_done,
                "jobs_failed": self.jobs_failed,
                "running": self.running,
                "last_error": self.last_error,
                "uptime_s": round(time.time() - self.started, 1),
                "pid": os.getpid(),
            }

    def _job(self, name: str, work: Callable[[], str]) -> str:
        import gradio as gr

        self._prune()
        with self._lock:
            self.running = name
        log.info("%s started", name)
        started = time.monotonic()
        try:
            result = work()
        except Exception as exc:
            with self._lock:
                self.jobs_failed += 1
                self.running = None
                self.last_error = f"{name}: {exc}"
            log.error("%s failed: %s\n%s", name, exc, traceback.format_exc(limit=6))
            raise gr.Error(f"{name} failed: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self.jobs_done += 1
            self.running = None
        log.info("%s done in %.2f s", name, time.monotonic() - started)
        return result

    def _out(self, suffix: str) -> Path:
        return self.work / f"{uuid.uuid4().hex}{suffix}"

    def _prune(self) -> None:
        """Our copies of earlier results (Gradio serves its own cached copy)."""
        cutoff = time.time() - OUTPUT_MAX_AGE_S
        for path in self.work.glob("*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    # -- the endpoints -----------------------------------------------------------------

    def _seconds(self, seconds) -> float:
        seconds = float(seconds or 0)
        return seconds if seconds > 0 else self.config.video.clip_seconds

    def video(self, prompt: str, seed, seconds, light, shot: str) -> str:
        from webtv.producer.remote import shot_from_json, write_frames

        def work() -> str:
            the_shot = shot_from_json(shot, prompt or "", int(seed or 0))
            frames = self.stages.video.render(the_shot, self._seconds(seconds), None, light=bool(light))
            return str(write_frames(frames, self._out(".mkv")))

        return self._job("video", work)

    def upscale(self, video: str, prompt: str, seed, light, shot: str) -> str:
        from webtv.producer.remote import read_frames, shot_from_json, write_frames

        def work() -> str:
            if not video:
                raise ValueError("no video file given")
            frames = read_frames(Path(video))
            if self.stages.upscale is not None:
                the_shot = shot_from_json(shot, prompt or "", int(seed or 0))
                frames = self.stages.upscale.upscale(frames, the_shot, None, light=bool(light))
            return str(write_frames(frames, self._out(".mkv")))

        return self._job("upscale", work)

    def interpolate(self, video: str, seconds, fps, light) -> str:
        from webtv.producer.remote import read_frames, write_frames

        def work() -> str:
            if not video:
                raise ValueError("no video file given")
            frames = read_frames(Path(video))
            rate = int(round(float(fps or 0))) or self.config.house.fps
            out = self.interpolator().interpolate(frames, self._seconds(seconds), rate, None, light=bool(light))
            return str(write_frames(out, self._out(".mkv")))

        return self._job("interpolate", work)

    def interpolator(self):
        if self._interpolator is None:
            from webtv.producer.interpolate import make_interpolator

            self._interpolator = make_interpolator(self.config.interpolation)
        return self._interpolator

    def music(self, music_prompt: str, seed, seconds, sample_rate, channels, light, sequence: str) -> str:
        from webtv.producer.remote import sequence_from_json, write_audio

        def work() -> str:
            the_sequence = sequence_from_json(sequence, music_prompt or "", int(seed or 0))
            rate = int(sample_rate or self.config.house.sample_rate)
            count = int(channels or self.config.house.channels)
            samples = self.stages.audio.compose(the_sequence, self._seconds(seconds), rate, count, light=bool(light))
            return str(write_audio(samples, rate, self._out(".wav")))

        return self._job("music", work)

    def voice(self, text: str, voice: str, words_per_minute, sample_rate, light) -> str:
        from webtv.producer.remote import write_audio

        def work() -> str:
            if self.stages.voice is None:
                raise ValueError('this worker has no voice ([voice] backend = "none")')
            if not (text or "").strip():
                raise ValueError("no text given")
            rate = int(sample_rate or self.config.house.sample_rate)
            wpm = int(words_per_minute or self.config.voice.words_per_minute)
            samples = self.stages.voice.speak(text, voice or None, wpm, rate, light=bool(light))
            return str(write_audio(samples, rate, self._out(".wav")))

        return self._job("voice", work)

    def scorer(self):
        if self._scorer is None:
            from webtv.producer.takes import ClipScorer

            self._scorer = ClipScorer(self.config.quality)
        return self._scorer

    def score(self, video: str, prompt: str) -> dict:
        from webtv.producer.remote import read_frames

        def work() -> dict:
            if not video:
                raise ValueError("no video file given")
            return {"score": self.scorer().score(read_frames(Path(video)), prompt or "")}

        return self._job("score", work)

    def clip(self, prompt: str, seed, seconds, house: str, theme: str, narration: str = "") -> str:
        from webtv.config import HouseSection
        from webtv.director import Shot
        from webtv.producer import ClipPipeline
        from webtv.producer.checks import Checks
        from webtv.producer.narration import Narration

        def work() -> str:
            if not prompt:
                raise ValueError("no prompt given")
            fmt = self.config.house
            if house:
                data = json.loads(house)
                data["font"] = str(fmt.font) if fmt.font is not None else None
                fmt = HouseSection.model_validate(data)
            shot = Shot(prompt=prompt, seed=int(seed or 0), theme=theme or self.config.channel.theme,
                        sequence_id="clip", narration=narration or "")
            out = self._out(".mp4")
            quality = self.config.quality
            ClipPipeline(self.stages, fmt, self._seconds(seconds), narration=Narration.from_config(self.config),
                         quality=quality, scorer=self.scorer() if quality.scorer == "clip" else None,
                         checks=Checks.from_config(quality)).single(shot, out)
            return str(out)

        return self._job("clip", work)


def build_app(config: "Config", service: WorkerService | None = None):
    """The Gradio Blocks app of a worker (queue set up; not launched)."""
    _quiet_gradio()
    import gradio as gr

    service = service or WorkerService(config)
    backends = service.backends()
    gpu = {"concurrency_id": "gpu", "concurrency_limit": 1}
    with gr.Blocks(title=f"webtv worker: {config.channel.name}", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as app:
        gr.Markdown("## webtv render worker\nbackends: " + ", ".join(f"{k} **{v}**" for k, v in backends.items())
                    + "\n\nOne job at a time; call the endpoints with gradio_client (see *Use via API*).")
        with gr.Tab("clip"):
            prompt = gr.Textbox(label="prompt", value="a lighthouse in a storm, slow pan left")
            with gr.Row():
                seed = gr.Number(label="seed", value=0, precision=0)
                seconds = gr.Number(label="seconds (0: the config's clip length)", value=0)
            house = gr.Textbox(label="house format JSON (empty: the worker's)", value="", visible=False)
            theme = gr.Textbox(label="theme", value="", visible=False)
            narration = gr.Textbox(label="narration (optional: a line the narrator speaks)", value="")
            make = gr.Button("render clip", variant="primary")
            clip_out = gr.File(label="clip (MP4)")
            make.click(service.clip, [prompt, seed, seconds, house, theme, narration], clip_out, api_name="clip",
                       **gpu)
        with gr.Tab("video"):
            v_prompt = gr.Textbox(label="prompt")
            with gr.Row():
                v_seed = gr.Number(label="seed", value=0, precision=0)
                v_seconds = gr.Number(label="seconds", value=0)
                v_light = gr.Checkbox(label="light", value=False)
            v_shot = gr.Textbox(label="shot JSON", value="", visible=False)
            v_go = gr.Button("render frames")
            v_out = gr.File(label="frames (FFV1 MKV)")
            v_go.click(service.video, [v_prompt, v_seed, v_seconds, v_light, v_shot], v_out, api_name="video", **gpu)
        with gr.Tab("upscale"):
            u_in = gr.File(label="frames")
            u_prompt = gr.Textbox(label="prompt")
            with gr.Row():
                u_seed = gr.Number(label="seed", value=0, precision=0)
                u_light = gr.Checkbox(label="light", value=False)
            u_shot = gr.Textbox(label="shot JSON", value="", visible=False)
            u_go = gr.Button("upscale")
            u_out = gr.File(label="frames (FFV1 MKV)")
            u_go.click(service.upscale, [u_in, u_prompt, u_seed, u_light, u_shot], u_out, api_name="upscale", **gpu)
        with gr.Tab("interpolate"):
            i_in = gr.File(label="frames")
            with gr.Row():
                i_seconds = gr.Number(label="seconds", value=0)
                i_fps = gr.Number(label="fps", value=config.house.fps, precision=0)
                i_light = gr.Checkbox(label="light", value=False)
            i_go = gr.Button("interpolate")
            i_out = gr.File(label="frames (FFV1 MKV)")
            i_go.click(service.interpolate, [i_in, i_seconds, i_fps, i_light], i_out, api_name="interpolate", **gpu)
        with gr.Tab("music"):
            m_prompt = gr.Textbox(label="music prompt")
            with gr.Row():
                m_seed = gr.Number(label="seed", value=0, precision=0)
                m_seconds = gr.Number(label="seconds", value=0)
                m_rate = gr.Number(label="sample rate", value=config.house.sample_rate, precision=0)
                m_channels = gr.Number(label="channels", value=config.house.channels, precision=0)
                m_light = gr.Checkbox(label="light", value=False)
            m_sequence = gr.Textbox(label="sequence JSON", value="", visible=False)
            m_go = gr.Button("compose")
            m_out = gr.File(label="music (WAV)")
            m_go.click(service.music, [m_prompt, m_seed, m_seconds, m_rate, m_channels, m_light, m_sequence], m_out,
                       api_name="music", **gpu)
        with gr.Tab("voice"):
            s_text = gr.Textbox(label="text")
            with gr.Row():
                s_voice = gr.Textbox(label="voice (empty: the configured one)", value="")
                s_wpm = gr.Number(label="words a minute", value=config.voice.words_per_minute, precision=0)
                s_rate = gr.Number(label="sample rate", value=config.house.sample_rate, precision=0)
                s_light = gr.Checkbox(label="light", value=False)
            s_go = gr.Button("speak")
            s_out = gr.File(label="speech (WAV)")
            s_go.click(service.voice, [s_text, s_voice, s_wpm, s_rate, s_light], s_out, api_name="voice", **gpu)
        with gr.Tab("score"):
            c_in = gr.File(label="take (video file)")
            c_prompt = gr.Textbox(label="prompt")
            c_go = gr.Button("score")
            c_out = gr.JSON(label="score")
            c_go.click(service.score, [c_in, c_prompt], c_out, api_name="score", **gpu)
        with gr.Tab("health"):
            h_go = gr.Button("check")
            h_out = gr.JSON(label="health")
            h_go.click(service.health, None, h_out, api_name="health", concurrency_id="health",
                       concurrency_limit=None)
    app.queue(default_concurrency_limit=1)
    app.webtv_service = service
    return app


def bearer_check(token: str) -> Callable[["fastapi.Request"], str | None]:
    """A Gradio ``auth_dependency``: the caller is let in when its Authorization header is
    ``Bearer <token>`` (the scheme in any case, RFC 7235), compared in constant time."""
    import hmac

    expected = token.encode()

    def check(request: "fastapi.Request") -> str | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return "webtv"
        return None

    return check


def _auth_options(auth: "WorkerAuth | None") -> dict:
    if auth is None:
        return {}
    if auth.token is not None:
        return {"auth_dependency": bearer_check(auth.token)}
    return {"auth": (auth.user, auth.password), "auth_message": "webtv render worker"}


def serve(config: "Config", host: str = "127.0.0.1", port: int = 7860, auth: "WorkerAuth | None" = None) -> int:
    """Run the worker until interrupted (SIGINT/SIGTERM); ``auth`` asks callers for it."""
    import signal

    _quiet_gradio()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = build_app(config)
    service: WorkerService = app.webtv_service

    def stop(signum, frame):  # SIGTERM ends it like Ctrl-C: Gradio closes its server
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("worker starting: http://%s:%d/ backends=%s auth: %s", host, port, service.backends(),
             auth.describe() if auth else "none")
    if auth is None and not _loopback(host):
        log.warning("worker listens on %s without auth: anyone who reaches the port can use it "
                    "(set WEBTV_WORKER_TOKEN, or WEBTV_WORKER_USER and WEBTV_WORKER_PASSWORD)", host)
    try:
        app.launch(server_name=host, server_port=port, show_error=True, quiet=True, ssr_mode=False,
                   allowed_paths=[str(service.work)], prevent_thread_lock=True, **_auth_options(auth))
        log.info("worker ready: http://%s:%d/", host, port)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            app.close()
        except Exception:  # noqa: BLE001
            pass
        import shutil

        shutil.rmtree(service.work, ignore_errors=True)
        log.info("worker stopped")
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def space() -> None:
    """Entry for a Hugging Face Space's ``app.py``: the config from ``WEBTV_CONFIG`` (default
    ``channel.toml`` if present, else the defaults), on 0.0.0.0:7860 (or ``PORT``); auth from
    the Space's secrets (``WEBTV_WORKER_TOKEN``, or ``WEBTV_WORKER_USER``/``_PASSWORD``)."""
    from webtv.config import Config, load_config, worker_auth

    path = Path(os.environ.get("WEBTV_CONFIG", "channel.toml"))
    config = load_config(path) if path.is_file() else Config()
    logging.basicConfig(level=logging.INFO)
    serve(config, "0.0.0.0", int(os.environ.get("PORT", "7860")), worker_auth(dict(os.environ)))

"""HTTP: one server for every channel of the daemon. Each channel's player page, HLS files,
status, theme and health check (and the control room's routes, ``webtv.http.control``) are at
``/c/<name>/...``, and in one-channel mode (``--config FILE``) at today's unprefixed URLs too
(``webtv.http.channels``). The daemon's own: ``/`` (the channel list in a channel folder, the
player in one-channel mode), ``/api/channels``, ``/healthz``, ``/metrics``, ``/static/``.

The pages use URLs relative to themselves (``api/status``, ``hls/index.m3u8``), so one page
serves at ``/`` and at ``/c/<name>/``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from webtv.http.auth import authorize
from webtv.http.auth import bearer_credentials, clip_id_of
from webtv.http.channels import Channels, add_channel_route, channel_url
from webtv.http.control import add_control_routes
from webtv.log import CHANNEL
from webtv.metrics import StationMetrics
from webtv.status import ChannelStatus, StationView
from webtv.text import text_problem
from webtv.theme.edit import ThemeNotSaved

__all__ = ["bearer_credentials", "channels_json", "make_app", "start_http", "status_json"]

log = logging.getLogger("webtv.http")

STATIC = Path(__file__).parent / "static"
HLS_JS = STATIC / "vendor" / "hls.min.js"
PAGE_FILES = frozenset({"onair.js", "console.js", "console.css"})  # what the pages load from /static/
NO_CACHE = {"Cache-Control": "no-cache, no-store"}
# POST /api/theme when the write-back failed: the file must be fixed first (missing, not
# valid TOML), the disk is full, or another error of the system.
NOT_SAVED = {"file": 409, "disk_full": 507, "io": 500}


def status_json(status: ChannelStatus) -> dict:
    """``GET /api/status``: the snapshot as JSON (theme and config fields at the top level)."""
    plain = dataclasses.asdict
    return {
        "channel": status.channel,
        "theme": status.theme.theme,
        "theme_source": status.theme.source,
        "theme_since": status.theme.since,
        "now_playing": plain(status.now_playing) if status.now_playing is not None else None,
        "queue_depth": status.queue_depth,
        "library": plain(status.library),
        "disk": plain(status.disk) if status.disk is not None else None,
        "producer": plain(status.producer),
        "director": plain(status.director),
        "moderation": plain(status.moderation),
        "schedule": plain(status.schedule),
        "outputs": [plain(output) for output in status.outputs],
        "workers": [plain(worker) for worker in status.workers],
        "workers_summary": status.workers_summary,
        "playout": {"healthy": status.playout.healthy, **plain(status.playout)},
        "config_error": status.config.error,
        "config_pending_restart": status.config.pending_restart,
        "config_reloads": status.config.reloads,
        "config_errors": status.config.errors,
        "started": status.started,
        "uptime_s": status.uptime_s,
    }


def channels_json(station: StationView) -> dict:
    """``GET /api/channels``: each airing channel's ``/api/status`` object and its page's URL,
    the channel files refused, the shared render stages."""
    return {
        "channels": [{**status_json(channel.status()), "url": channel_url(name)}
                     for name, channel in station.channels().items()],
        "refused": station.refused(),
        "stages": station.stages(),
    }


@web.middleware
async def _logs_by_channel(request: web.Request, handler):
    """What a ``/c/<name>/...`` request logs carries its channel (``webtv.log.CHANNEL``), as
    the channel's own lines do; reset after, since a connection's requests share one task."""
    token = CHANNEL.set(request.match_info.get("channel"))
    try:
        return await handler(request)
    finally:
        CHANNEL.reset(token)


def make_app(station: StationView, metrics: StationMetrics | None = None) -> web.Application:
    """The app of ``station``'s channels; ``metrics``: theirs (made here when not given)."""
    app = web.Application(middlewares=[_logs_by_channel])
    channels = Channels(station)
    metrics = metrics if metrics is not None else StationMetrics(station)

    def page(name: str):
        async def serve(request: web.Request) -> web.Response:
            channels.of(request)  # 404 for a channel that is not on air
            return web.FileResponse(STATIC / name, headers=NO_CACHE)
        return serve

    async def index(request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / ("index.html" if station.single else "channels.html"), headers=NO_CACHE)

    async def to_channel_page(request: web.Request) -> web.Response:
        channels.of(request)
        raise web.HTTPFound(channel_url(request.match_info["channel"]))  # relative URLs need the slash

    async def page_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in PAGE_FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers=NO_CACHE)

    async def hls_js(request: web.Request) -> web.StreamResponse:
        if not HLS_JS.exists():
            raise web.HTTPNotFound(text="hls.js is not installed: run `make setup`")
        return web.FileResponse(HLS_JS)

    async def hls(request: web.Request) -> web.StreamResponse:
        root = channels.of(request).hls_dir.resolve()
        name = request.match_info["name"]
        try:
            target = (root / name).resolve()
            found = target.is_relative_to(root) and target.is_file()
        except (OSError, ValueError):  # a NUL byte, a name or a path too long for the system
            found = False
        if not found:
            raise web.HTTPNotFound()
        headers = NO_CACHE if target.suffix == ".m3u8" else {}
        return web.FileResponse(target, headers=headers)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(status_json(channels.of(request).status()), headers=NO_CACHE)

    async def all_channels(request: web.Request) -> web.Response:
        return web.json_response(channels_json(station), headers=NO_CACHE)

    async def post_theme(request: web.Request) -> web.Response:
        channel = channels.of(request)
        authorize(channel, request)
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text='body must be JSON: {"theme": "..."}\n') from None
        theme = body.get("theme") if isinstance(body, dict) else None
        if not isinstance(theme, str) or not theme.strip() or len(theme) > 500:
            raise web.HTTPBadRequest(text='"theme" must be a non-empty string of at most 500 characters\n')
        problem = text_problem(theme)
        if problem is not None:
            raise web.HTTPBadRequest(text=f'"theme" {problem}\n')
        try:
            rule = await channel.set_theme(theme.strip())
        except ThemeNotSaved as exc:
            return web.json_response({"error": f"theme not saved, nothing changed on air: {exc}"},
                                     status=NOT_SAVED[exc.kind])
        if rule:
            return web.json_response({"error": "theme blocked by moderation", "rule": rule}, status=422)
        return web.json_response({"theme": theme.strip()})

    async def metrics_text(request: web.Request) -> web.Response:
        # On the event loop: the snapshot reads the library's SQLite connection, owned by it.
        return web.Response(body=metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST, **NO_CACHE})

    async def post_keep(request: web.Request) -> web.Response:
        """Mark a clip keep (retention never deletes it): body optional, {"keep": true|false}."""
        channel = channels.of(request)
        authorize(channel, request)
        clip_id = clip_id_of(request)
        keep = True
        if (await request.read()).strip():
            try:
                body = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text='body must be empty or JSON: {"keep": true|false}\n') from None
            keep = body.get("keep", True) if isinstance(body, dict) else None
            if not isinstance(keep, bool):
                raise web.HTTPBadRequest(text='"keep" must be true or false\n')
        if not channel.set_keep(clip_id, keep):
            raise web.HTTPNotFound(text=f"no clip {clip_id} in the library\n")
        log.info("clip keep set: clip=%d keep=%s", clip_id, keep)  # in a folder the line carries channel=
        return web.json_response({"clip_id": clip_id, "keep": keep})

    def health_answer(problem: str | None) -> web.Response:
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"playout not healthy: {problem}\n")

    async def healthz(request: web.Request) -> web.Response:
        return health_answer(station.health())  # the systemd watchdog's verdict too

    async def channel_healthz(request: web.Request) -> web.Response:
        return health_answer(channels.of(request).health())

    app.router.add_get("/", index)
    app.router.add_get("/api/channels", all_channels)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/static/hls.min.js", hls_js)
    app.router.add_get("/static/{name}", page_file)
    app.router.add_get("/c/{channel}", to_channel_page)
    app.router.add_get("/c/{channel}/", page("index.html"))
    app.router.add_get("/c/{channel}/healthz", channel_healthz)
    add_channel_route(app, "GET", "/console", page("console.html"))
    add_channel_route(app, "GET", "/hls/{name:.+}", hls)
    add_channel_route(app, "GET", "/api/status", status)
    add_channel_route(app, "POST", "/api/theme", post_theme)
    add_channel_route(app, "POST", "/api/clips/{id}/keep", post_keep)
    add_control_routes(app, channels, lambda channel: status_json(channel.status()))
    return app


async def start_http(station: StationView, metrics: StationMetrics | None, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(station, metrics), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"http: cannot listen on {host}:{port} ([http] host/port in the config): {exc.strerror}") from None
    log.info("http listening: url=http://%s:%d/", host, port)
    return runner

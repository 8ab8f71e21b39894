"""HTTP: the web player page, the HLS files, the status API and the health check."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from webtv.channel import Channel

log = logging.getLogger("webtv.http")

STATIC = Path(__file__).parent / "static"
HLS_JS = STATIC / "vendor" / "hls.min.js"
NO_CACHE = {"Cache-Control": "no-cache, no-store"}


def make_app(channel: "Channel") -> web.Application:
    app = web.Application()

    async def index(request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)

    async def hls_js(request: web.Request) -> web.StreamResponse:
        if not HLS_JS.exists():
            raise web.HTTPNotFound(text="hls.js is not installed: run `make setup`")
        return web.FileResponse(HLS_JS)

    async def hls(request: web.Request) -> web.StreamResponse:
        root = channel.config.paths.hls.resolve()
        name = request.match_info["name"]
        target = (root / name).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise web.HTTPNotFound()
        headers = NO_CACHE if target.suffix == ".m3u8" else {}
        return web.FileResponse(target, headers=headers)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(channel.status(), headers=NO_CACHE)

    def authorize(request: web.Request) -> None:
        from webtv.channel import MutationsOff

        try:
            token = channel.api_token()
        except MutationsOff as exc:
            raise web.HTTPForbidden(text=f"{exc}\n") from None
        given = request.headers.get("Authorization", "")
        if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())):
            raise web.HTTPUnauthorized(text="a valid 'Authorization: Bearer <token>' header is required\n",
                                       headers={"WWW-Authenticate": "Bearer"})

    async def post_theme(request: web.Request) -> web.Response:
        authorize(request)
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text='body must be JSON: {"theme": "..."}\n') from None
        theme = body.get("theme") if isinstance(body, dict) else None
        if not isinstance(theme, str) or not theme.strip() or len(theme) > 500:
            raise web.HTTPBadRequest(text='"theme" must be a non-empty string of at most 500 characters\n')
        rule = await channel.set_theme(theme.strip())
        if rule:
            return web.json_response({"error": "theme blocked by moderation", "rule": rule}, status=422)
        return web.json_response({"theme": channel.theme})

    async def metrics(request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        # On the event loop: the collectors read the library's SQLite connection, owned by it.
        return web.Response(body=channel.metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST, **NO_CACHE})

    async def post_keep(request: web.Request) -> web.Response:
        """Mark a clip keep (retention never deletes it): body optional, {"keep": true|false}."""
        authorize(request)
        raw = request.match_info["id"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise web.HTTPBadRequest(text=f"clip id must be a positive integer, not {raw[:40]!r}\n")
        keep = True
        if (await request.read()).strip():
            try:
                body = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text='body must be empty or JSON: {"keep": true|false}\n') from None
            keep = body.get("keep", True) if isinstance(body, dict) else None
            if not isinstance(keep, bool):
                raise web.HTTPBadRequest(text='"keep" must be true or false\n')
        if channel.library is None:
            raise web.HTTPServiceUnavailable(text="the library is not open yet\n")
        if not channel.library.set_keep(int(raw), keep):
            raise web.HTTPNotFound(text=f"no clip {int(raw)} in the library\n")
        log.info("clip keep set: clip=%d keep=%s", int(raw), keep)
        return web.json_response({"clip_id": int(raw), "keep": keep})

    async def healthz(request: web.Request) -> web.Response:
        problem = channel.health.problem(channel.playout)  # the systemd watchdog's verdict too
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"playout not healthy: {problem}\n")

    app.router.add_get("/", index)
    app.router.add_get("/static/hls.min.js", hls_js)
    app.router.add_get("/hls/{name:.+}", hls)
    app.router.add_get("/api/status", status)
    app.router.add_post("/api/theme", post_theme)
    app.router.add_post("/api/clips/{id}/keep", post_keep)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_http(channel: "Channel", host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(channel), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"http: cannot listen on {host}:{port} ([http] host/port in the config): {exc.strerror}") from None
    log.info("http listening: url=http://%s:%d/", host, port)
    return runner

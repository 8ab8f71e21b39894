"""HTTP: the web player page, the HLS files, the status API and the health check."""

from __future__ import annotations

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

    async def healthz(request: web.Request) -> web.Response:
        playout = channel.playout
        if playout is not None and playout.healthy():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="playout not healthy\n")

    app.router.add_get("/", index)
    app.router.add_get("/static/hls.min.js", hls_js)
    app.router.add_get("/hls/{name:.+}", hls)
    app.router.add_get("/api/status", status)
    app.router.add_get("/healthz", healthz)
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

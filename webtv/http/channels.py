"""Which channel a request is for.

Every channel route is registered twice, once with today's unprefixed path and once under
``/c/{channel}``, and once only: channels start and stop while the router is frozen, so the
channel is looked up per request in ``StationView.channels()``. ``/c/<name>/...`` works in
both modes; the unprefixed paths serve the one channel of ``--config FILE`` and answer 404
(pointing at ``/api/channels``) in a channel folder.
"""

from __future__ import annotations

import json
from typing import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from webtv.status import ChannelView, StationView

PREFIX = "/c/{channel}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def channel_url(name: str) -> str:
    """The URL of ``name``'s page: ``/c/<name>/``."""
    return f"/c/{quote(name, safe='')}/"


def add_channel_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """``path`` (the one channel's) and ``/c/{channel}`` + ``path`` (any channel's)."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, PREFIX + path, handler)


class Channels:
    """Resolves requests to the station's channels."""

    def __init__(self, station: StationView):
        self.station = station

    def of(self, request: web.Request) -> ChannelView:
        """The channel the request names (``/c/<name>/``), or the one channel of an unprefixed
        path in one-channel mode; 404 naming what is wrong otherwise."""
        name = request.match_info.get("channel")
        channels = self.station.channels()
        if name is None:
            if self.station.single and len(channels) == 1:
                return next(iter(channels.values()))
            raise _not_found(f"this daemon airs several channels: their URLs are /c/<name>{request.path}"
                             " (GET /api/channels lists them)")
        channel = channels.get(name)
        if channel is None:
            raise _not_found(f"no channel {name!r} on air here (GET /api/channels lists them)")
        return channel

    def base(self, channel: ChannelView) -> str:
        """Where ``channel``'s routes are, before ``/api/...``: "" in one-channel mode (today's
        URLs), ``/c/<name>`` in a channel folder."""
        return "" if self.station.single else channel_url(channel.name).rstrip("/")


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": message}), content_type="application/json")

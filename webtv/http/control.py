"""The control room's API: the library, the programme, skip, the XMLTV guide, live events.

Every route is a channel's (``webtv.http.channels``: ``/api/...`` in one-channel mode,
``/c/<name>/api/...`` always). Reads are open, except ``/api/events`` (it carries log lines) when a token is configured;
every call that changes something needs the bearer token (``webtv.http.auth``). Errors are
JSON, ``{"error": "..."}``. The shapes here are what the console (``/console``) reads: add
fields, never rename them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import xml.etree.ElementTree as ET
from typing import Callable

from aiohttp import web

from webtv.http.auth import authorize, clip_id_of
from webtv.http.channels import Channels, add_channel_route
from webtv.http.events import EventHub, LogRelay
from webtv.library import Clip
from webtv.library.index import LABELS, SORTS
from webtv.programmer.guide import Slot
from webtv.prompt_weights import PromptWeightError, clean
from webtv.programmer.playlist import slug
from webtv.status import ChannelView, MutationsOff

MAX_LIMIT = 200
NO_CACHE = {"Cache-Control": "no-cache, no-store"}


def clip_json(clip: Clip, base: str = "") -> dict:
    """A clip as the API shows it; ``base``: where its channel's routes are (``Channels.base``)."""
    return {
        "id": clip.id, "prompt": clip.prompt, "theme": clip.theme, "tags": list(clip.tags),
        "duration": clip.duration, "created": clip.created, "times_aired": clip.times_aired,
        "last_aired": clip.last_aired, "state": clip.label, "keep": clip.keep, "banned": clip.banned,
        "size": clip.size, "thumb": f"{base}/api/clips/{clip.id}/thumb.jpg", "media": f"{base}/api/clips/{clip.id}/media",
        "score": clip.score, "scores": list(clip.scores),  # best-of-K: the take aired, every take
    }


def caption(prompt: str) -> str:
    """What a viewer reads for ``prompt``: without its weights, as the burned-in caption."""
    try:
        return clean(prompt)
    except PromptWeightError:
        return prompt


def slot_json(slot: Slot) -> dict:
    entry = slot.entry
    data = {"clip_id": entry.clip_id, "prompt": entry.prompt or None, "caption": caption(entry.prompt) or None,
            "theme": entry.theme or None,
            "source": entry.source, "block": slot.block, "start": slot.start, "end": slot.end,
            "duration": round(slot.duration, 3),
            "stream_start": slot.start if slot.stream_start is None else slot.stream_start,
            "stream_end": slot.end if slot.stream_end is None else slot.stream_end}
    if slot.projected:
        data["projected"] = True
    return data


def xmltv_time(unix: float) -> str:
    return time.strftime("%Y%m%d%H%M%S +0000", time.gmtime(unix))


def xmltv(channel_name: str, slots: list[Slot]) -> bytes:
    """The guide as XMLTV: one channel, one programme per slot."""
    channel_id = f"{slug(channel_name) or 'webtv'}.webtv"
    tv = ET.Element("tv", {"generator-info-name": "webtv"})
    ET.SubElement(ET.SubElement(tv, "channel", id=channel_id), "display-name").text = channel_name
    for slot in slots:
        programme = ET.SubElement(tv, "programme", start=xmltv_time(slot.start), stop=xmltv_time(slot.end),
                                  channel=channel_id)
        ET.SubElement(programme, "title").text = caption(slot.prompt or "") or f"{channel_name}: more is on its way"
        if slot.entry.theme:
            ET.SubElement(programme, "desc").text = slot.entry.theme
        ET.SubElement(programme, "category").text = slot.entry.source
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(tv, encoding="utf-8")


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class EventHubs:
    """One ``EventHub`` per channel, with the ``LogRelay`` that feeds it log lines, made when
    its first ``/api/events`` client comes. A channel that stops, or is built again under its
    name, ends its hub's streams (the console reconnects to the new one)."""

    def __init__(self, snapshot: Callable[[ChannelView], dict], base: Callable[[ChannelView], str]):
        self.snapshot, self.base = snapshot, base
        self.hubs: dict[str, tuple[ChannelView, EventHub, LogRelay]] = {}

    def of(self, channel: ChannelView) -> EventHub:
        known = self.hubs.get(channel.name)
        if known is not None and known[0] is channel:
            return known[1]
        self.drop(channel.name)
        hub = EventHub(lambda: self.snapshot(channel))
        relay = LogRelay(hub, asyncio.get_running_loop(), lambda: secrets(channel), channel.name)
        logging.getLogger().addHandler(relay)
        channel.events.clip_changed.subscribe(lambda action, clip_id, clip, reason: hub.publish("clip", {
            "action": action, "clip_id": clip_id, "clip": clip_json(clip, self.base(channel)) if clip else None,
            "reason": reason}))
        self.hubs[channel.name] = (channel, hub, relay)
        return hub

    def started(self, channel: ChannelView) -> None:
        """A channel built (again): the streams of one that had its name end."""
        known = self.hubs.get(channel.name)
        if known is not None and known[0] is not channel:
            self.drop(channel.name)

    def drop(self, name: str) -> None:
        """End ``name``'s streams (its channel stopped)."""
        known = self.hubs.pop(name, None)
        if known is not None:
            logging.getLogger().removeHandler(known[2])
            asyncio.get_running_loop().create_task(known[1].close())

    async def close(self) -> None:
        for _, hub, relay in self.hubs.values():
            logging.getLogger().removeHandler(relay)
            await hub.close()
        self.hubs.clear()


def secrets(channel: ChannelView) -> list[str]:
    """What a log line must never show: the API token."""
    try:
        return [channel.api_token()]
    except MutationsOff:
        return []


def add_control_routes(app: web.Application, channels: Channels, snapshot: Callable[[ChannelView], dict]) -> None:
    """The control room's routes on ``app``, for every channel (``webtv.http.channels``);
    ``snapshot(channel)`` is ``/api/status``'s object."""
    hubs = EventHubs(snapshot, channels.base)
    channels.station.started.subscribe(hubs.started)
    channels.station.stopped.subscribe(hubs.drop)

    async def close_hubs(app: web.Application) -> None:
        await hubs.close()

    app.on_shutdown.append(close_hubs)

    def known_clip(request: web.Request) -> Clip:
        clip_id = clip_id_of(request)
        clip = channels.of(request).clip(clip_id)
        if clip is None:
            raise web.HTTPNotFound(text=f'{{"error": "no clip {clip_id} in the library"}}',
                                   content_type="application/json")
        return clip

    def clip_response(request: web.Request, clip: Clip) -> web.Response:
        return web.json_response(clip_json(clip, channels.base(channels.of(request))), headers=NO_CACHE)

    async def token(request: web.Request) -> web.Response:
        authorize(channels.of(request), request)
        return web.json_response({"valid": True})

    async def clips(request: web.Request) -> web.Response:
        channel = channels.of(request)
        q = request.query
        try:
            limit = int(q.get("limit", "50"))
            offset = int(q.get("offset", "0"))
        except ValueError:
            return error(400, "limit and offset must be integers")
        state, sort, order = q.get("state") or None, q.get("sort") or "created", q.get("order") or "desc"
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            return error(400, f"limit must be 1..{MAX_LIMIT} and offset at least 0")
        if state is not None and state not in LABELS:
            return error(400, f"state must be one of {', '.join(LABELS)}")
        if sort not in SORTS or order not in ("asc", "desc"):
            return error(400, f"sort must be one of {', '.join(SORTS)} and order asc or desc")
        total, page = channel.browse(theme=q.get("theme") or None, tag=q.get("tag") or None, label=state,
                                     sort=sort, descending=order == "desc", limit=limit, offset=offset)
        base = channels.base(channel)
        return web.json_response({"total": total, "clips": [clip_json(c, base) for c in page]}, headers=NO_CACHE)

    async def one_clip(request: web.Request) -> web.Response:
        return clip_response(request, known_clip(request))

    async def thumb(request: web.Request) -> web.StreamResponse:
        path = await channels.of(request).thumbnail(known_clip(request))
        if path is None:
            return error(404, "no thumbnail could be made of this clip")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})

    async def media(request: web.Request) -> web.StreamResponse:
        clip = known_clip(request)
        if not clip.path.is_file():
            return error(404, "the clip's file is gone")
        return web.FileResponse(clip.path, headers={"Content-Type": "video/mp4"})  # answers Range requests

    async def ban(request: web.Request) -> web.Response:
        channel = channels.of(request)
        authorize(channel, request)
        clip = await channel.ban(clip_id_of(request), request.path.endswith("/ban"))
        if clip is None:
            return error(404, f"no clip {clip_id_of(request)} in the library")
        return clip_response(request, clip)

    async def delete(request: web.Request) -> web.Response:
        channel = channels.of(request)
        authorize(channel, request)
        clip_id = clip_id_of(request)
        if not await channel.delete(clip_id):
            return error(404, f"no clip {clip_id} in the library")
        return web.json_response({"deleted": clip_id})

    async def air_next(request: web.Request) -> web.Response:
        channel = channels.of(request)
        authorize(channel, request)
        clip = known_clip(request)
        if not channel.queue_next(clip.id):
            return error(409, f"clip {clip.id} cannot air: it is {clip.label}")
        return web.json_response({"queued": clip.id})

    async def skip(request: web.Request) -> web.Response:
        channel = channels.of(request)
        authorize(channel, request)
        entry = await channel.skip()
        return web.json_response({"skipped": entry.clip_id if entry is not None else None})

    async def programme(request: web.Request) -> web.Response:
        guide = channels.of(request).programme()
        return web.json_response({
            "now": slot_json(guide.now) if guide.now is not None else None,
            "next": [slot_json(s) for s in guide.next],
            "recent": [slot_json(s) for s in guide.recent],
            "keyframe_s": guide.keyframe_s,
        }, headers=NO_CACHE)

    async def epg(request: web.Request) -> web.Response:
        channel = channels.of(request)
        guide = channel.programme()
        slots = [*guide.recent, *([guide.now] if guide.now else []), *guide.next]
        return web.Response(body=xmltv(channel.status().channel, slots), content_type="application/xml",
                            charset="utf-8", headers=NO_CACHE)

    async def events(request: web.Request) -> web.StreamResponse:
        channel = channels.of(request)
        try:
            channel.api_token()
        except MutationsOff:
            pass  # no token configured: open, like every read
        else:
            authorize(channel, request)
        return await hubs.of(channel).stream(request)

    for method, path, handler in (
        ("GET", "/api/token", token),
        ("GET", "/api/clips", clips),
        ("GET", "/api/clips/{id}", one_clip),
        ("DELETE", "/api/clips/{id}", delete),
        ("GET", "/api/clips/{id}/thumb.jpg", thumb),
        ("GET", "/api/clips/{id}/media", media),
        ("POST", "/api/clips/{id}/ban", ban),
        ("POST", "/api/clips/{id}/unban", ban),
        ("POST", "/api/clips/{id}/next", air_next),
        ("POST", "/api/skip", skip),
        ("GET", "/api/programme", programme),
        ("GET", "/epg.xml", epg),
        ("GET", "/api/events", events),
    ):
        add_channel_route(app, method, path, handler)

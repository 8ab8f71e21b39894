"""``GET /api/events``: server-sent events for the control room.

Each client has a bounded queue (``QUEUE``). Publishing never waits: an event that does not
fit means the client reads too slowly, and it is dropped (its handler is cancelled, the
connection closes; the console reconnects). So a slow or stalled client costs at most its
queue, and never holds up the daemon.

Event types: ``status`` (the /api/status object, on change, at most every ``STATUS_EVERY_S``),
``progress`` (``{"rendering": [...]}``, on change), ``onair`` (now_playing, on change), which
a poller reads from the status snapshot while anyone listens; ``clip`` (made, rejected,
banned, unbanned, deleted: pushed as it happens) and ``log`` (records at INFO and above, from
any thread; the API token is masked should it ever appear). A comment line every
``KEEPALIVE_S`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any, Callable

from aiohttp import web

from webtv.log import CHANNEL

log = logging.getLogger("webtv.http.events")

QUEUE = 256
KEEPALIVE_S = 15.0
POLL_S = 0.25
STATUS_EVERY_S = 1.0


def sse(kind: str, data: Any) -> bytes:
    """One event on the wire: ``event: KIND``, ``data: JSON``, a blank line."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Client:
    def __init__(self, task: asyncio.Task):
        self.task = task
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE)  # None: the stream ends


class EventHub:
    """The clients of ``/api/events`` and what they are sent. On the event loop; ``LogRelay``
    hands records over from other threads."""

    def __init__(self, snapshot: Callable[[], dict]):
        self.snapshot = snapshot
        self.clients: set[_Client] = set()
        self.dropped = 0
        self._poller: asyncio.Task | None = None
        self._last: dict[str, Any] = {}
        self._status_at = 0.0

    def publish(self, kind: str, data: Any) -> None:
        self._send(sse(kind, data), list(self.clients))

    def _send(self, event: bytes, clients: list[_Client]) -> None:
        for client in clients:
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.clients.discard(client)
                self.dropped += 1
                client.task.cancel()
                log.warning("events: a client too slow to keep up was dropped (queue of %d full)", QUEUE)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        client = _Client(asyncio.current_task())
        self.clients.add(client)
        self._send_current(client)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="events-poller")
        try:
            await response.write(b": webtv events\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    event = b": keep-alive\n\n"
                if event is None:
                    break
                await response.write(event)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(client)
        return response

    def _send_current(self, client: _Client) -> None:
        """What a new client sees first: the status, the renders, the clip on air."""
        status = self.snapshot()
        self._send(sse("status", status), [client])
        self._send(sse("progress", {"rendering": status["producer"]["rendering"]}), [client])
        self._send(sse("onair", status["now_playing"]), [client])

    async def _poll(self) -> None:
        """While anyone listens: status, progress and onair events when they change."""
        while self.clients:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bad snapshot must not end the stream
                log.exception("events: status snapshot failed")
            await asyncio.sleep(POLL_S)

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        status = self.snapshot()
        for kind, data in (("progress", {"rendering": status["producer"]["rendering"]}),
                           ("onair", status["now_playing"])):
            if self._last.get(kind) != data:
                self._last[kind] = data
                self.publish(kind, data)
        steady = {k: v for k, v in status.items() if k != "uptime_s"}
        if self._last.get("status") != steady and now - self._status_at >= STATUS_EVERY_S:
            self._last["status"], self._status_at = steady, now
            self.publish("status", status)

    async def close(self) -> None:
        """End every stream (the server is shutting down, or the channel stopped): each ends
        as a complete response after what it was sent; a client whose queue is full is cut."""
        for client in list(self.clients):
            try:
                client.queue.put_nowait(None)
            except asyncio.QueueFull:
                client.task.cancel()
        self.clients.clear()
        if self._poller is not None:
            self._poller.cancel()


class LogRelay(logging.Handler):
    """Log records at INFO and above as ``log`` events, from whichever thread logs them; the
    secrets in ``secrets()`` are masked. With ``channel``, another channel's records
    (``webtv.log.CHANNEL``) are left out; daemon-wide ones are relayed."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop, secrets: Callable[[], list[str]],
                 channel: str | None = None):
        super().__init__(logging.INFO)
        self.hub, self.loop, self.secrets, self.channel = hub, loop, secrets, channel
        self._inside = threading.local()  # a record logged while publishing one is not relayed
        self._loop_thread = threading.get_ident()  # made on the event loop's thread

    def emit(self, record: logging.LogRecord) -> None:
        if not self.hub.clients or getattr(self._inside, "busy", False):
            return
        if self.channel is not None and CHANNEL.get() not in (None, self.channel):
            return
        self._inside.busy = True
        try:
            message = record.getMessage()
            for secret in self.secrets():
                message = message.replace(secret, "***")
            event = {"time": record.created, "level": record.levelname, "logger": record.name, "message": message}
            if self.loop.is_closed():
                return
            if threading.get_ident() == self._loop_thread:
                self.hub.publish("log", event)
            else:
                self.loop.call_soon_threadsafe(self.hub.publish, "log", event)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)
        finally:
            self._inside.busy = False

"""A real OpenAI-compatible HTTP server on a free loopback port, whose behaviour a test sets.

It serves ``POST /v1/chat/completions`` and ``POST /v1/moderations`` from its own thread and
event loop, so both async tests and CLI subprocesses can talk to it. Each request is recorded
(path, headers, JSON body) for the test to inspect.

Chat behaviours (``server.behave(*modes)``: one mode a request, the last one sticks):

``ok``
    a well-formed sequence built from the user message (``Theme:`` and ``Shots:`` lines)
``fenced``
    the same JSON wrapped in a Markdown code fence with chatter around it
``too_many`` / ``too_few``
    two shots more / one shot fewer than asked
``malformed``
    prose, not JSON
``wrong_shape``
    JSON, but not a sequence
``empty``
    a reply whose content is empty
``error500``
    HTTP 500 with an OpenAI-style error body
``slow``
    sleeps ``slow_s`` seconds before answering (longer than the client's timeout)

Independently, ``server.formats`` is the set of ``response_format`` types the server
accepts; any other is answered with HTTP 400, as servers without structured output do
(``{"json_schema", "json_object", None}`` by default; ``None`` stands for "no response_format").

``server.echo_key``: error replies quote the Authorization header back (as careless servers
do), to check that the key is redacted from what the director shows and logs.

Episodes (story mode): a user message with an ``Episode: N`` line is answered, in the modes
that answer at all, with an episode (``episode_reply``): a title, ``server.newcomer`` offered
as a new character (with a look that changes with every episode, which the director must not
take once the character is known), shots naming the newcomer (as ``characters``) and the
first cast member in the message (in the prompt, by name), and a summary that carries the
message's ``Story so far:`` on.

``server.poison`` maps a shot index to text appended to that shot's prompt (to test
moderation). Moderation: ``server.flagged`` maps a word to the category it flags;
``server.moderation_mode`` is ``ok`` or ``error500``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CHAT_MODES = ("ok", "fenced", "too_many", "too_few", "malformed", "wrong_shape", "empty", "error500", "slow")


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def response_format(self) -> str | None:
        fmt = self.body.get("response_format") if isinstance(self.body, dict) else None
        return fmt.get("type") if isinstance(fmt, dict) else None

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []


@dataclass
class FakeOpenAI:
    slow_s: float = 3.0
    formats: set[str | None] = field(default_factory=lambda: {"json_schema", "json_object", None})
    poison: dict[int, str] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)
    moderation_mode: str = "ok"
    echo_key: bool = False
    vary: bool = False  # like a real LLM, a new wording for every request ("take N")
    newcomer: tuple[str, str] = ("Wren", "a stout woman in a yellow oilskin and a red wool cap")
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._modes: list[str] = ["ok"]
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- control -----------------------------------------------------------------------

    def behave(self, *modes: str) -> "FakeOpenAI":
        for mode in modes:
            if mode not in CHAT_MODES:
                raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self._modes = list(modes) or ["ok"]
        return self

    def reset(self) -> None:
        with self._lock:
            self._modes = ["ok"]
            self.requests.clear()
        self.formats = {"json_schema", "json_object", None}
        self.poison, self.flagged, self.moderation_mode, self.echo_key, self.vary = {}, {}, "ok", False, False

    def chat_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def moderation_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/moderations")]

    def _next_mode(self) -> str:
        with self._lock:
            return self._modes.pop(0) if len(self._modes) > 1 else self._modes[0]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        ready = threading.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/moderations", self._moderations)
            self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            ready.set()

        def thread() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=thread, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- handlers ----------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Request:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = Request(request.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(rec)
        return rec

    async def _chat(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        mode = self._next_mode()
        fmt = rec.response_format
        if fmt not in self.formats:
            return _error(400, f"response_format {fmt!r} is not supported by this server", "response_format")
        if mode == "error500":
            echo = f" (you sent {request.headers.get('Authorization')})" if self.echo_key else ""
            return _error(500, "the model crashed" + echo, None)
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        user = next((m.get("content", "") for m in rec.messages if m.get("role") == "user"), "")
        theme_match = re.search(r"^Theme:\s*(.+)$", user, re.M)
        shots_match = re.search(r"^Shots:\s*(\d+)", user, re.M)
        theme = theme_match.group(1).strip() if theme_match else "unknown"
        shots = int(shots_match.group(1)) if shots_match else 3
        if mode == "too_many":
            shots += 2
        elif mode == "too_few":
            shots = max(0, shots - 1)
        if mode == "malformed":
            content = "Sure! Here are some lovely shots for your channel, I hope you like them."
        elif mode == "wrong_shape":
            content = json.dumps({"sequence": "a fox", "shots": "many"})
        elif mode == "empty":
            content = ""
        elif re.search(r"^Episode:\s*\d+", user, re.M):
            content = json.dumps(episode_reply(user, shots, self.newcomer))
        else:
            take = len(self.chat_requests()) if self.vary else None
            content = json.dumps(sequence_reply(theme, shots, self.poison, take))
            if mode == "fenced":
                content = f"Here is the sequence:\n```json\n{content}\n```\nEnjoy!"
        return web.json_response(_completion(rec.body.get("model", "fake"), content))

    async def _moderations(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if self.moderation_mode == "error500":
            echo = f" (you sent {request.headers.get('Authorization')})" if self.echo_key else ""
            return _error(500, "moderation is down" + echo, None)
        inputs = rec.body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        results = []
        for text in inputs:
            hits = {cat for word, cat in self.flagged.items() if re.search(rf"\b{re.escape(word)}\b", text, re.I)}
            categories = {c: c in hits for c in ("harassment", "hate", "self-harm", "sexual", "violence")}
            results.append({
                "flagged": bool(hits),
                "categories": categories,
                "category_scores": {c: (0.99 if v else 0.01) for c, v in categories.items()},
            })
        return web.json_response({"id": "modr-fake", "model": "omni-moderation-latest", "results": results})


def shot_prompt(theme: str, index: int, take: int | None = None) -> str:
    where = f" (take {take})" if take is not None else ""
    return f"shot {index + 1} of {theme}{where}: a lighthouse keeper walks left, slow pan right, misty dawn"


def sequence_reply(theme: str, shots: int, poison: dict[int, str] | None = None, take: int | None = None) -> dict:
    poison = poison or {}
    return {
        "music_prompt": f"calm ambient piano for {theme}",
        "tags": ["Fake", "calm", "sea"],
        "shots": [{"prompt": shot_prompt(theme, i, take) + (f", {poison[i]}" if i in poison else "")}
                  for i in range(shots)],
    }


def episode_reply(user: str, shots: int, newcomer: tuple[str, str]) -> dict:
    """An episode answering the request in ``user`` (see the module docstring)."""
    number = int(re.search(r"^Episode:\s*(\d+)", user, re.M).group(1))
    so_far = re.search(r"^Story so far:\s*(.*)$", user, re.M).group(1)
    first = re.search(r"^- ([^:(]+?)(?: \(|:)", user, re.M)  # the first cast member listed
    hero = first.group(1) if first and not first.group(1).startswith("(") else "the keeper"
    name, look = newcomer
    shot_list = []
    for i in range(shots):
        named = [name] if i % 2 == 0 else []
        shot_list.append({"prompt": f"shot {i + 1} of episode {number}: {hero} walks along the pier with a friend,"
                                    " slow pan right",
                          "narration": f"Line {i + 1} of episode {number}.", "characters": named})
    return {
        "title": f"The Pier, part {number}",
        "music_prompt": "calm ambient piano",
        "tags": ["story", "sea"],
        "cast": [{"name": name, "look": f"{look}, as drawn in episode {number}"}],
        "shots": shot_list,
        "summary": f"{'' if so_far.startswith('(') else so_far + ' '}In episode {number}, {hero} met {name}.",
    }


def _completion(model: str, content: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _error(status: int, message: str, param: str | None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                      "param": param, "code": None}}
    return web.json_response(body, status=status)

"""The LLM director: theme -> a sequence of shot prompts from any OpenAI-compatible server.

One chat completion a sequence. The reply is asked for as JSON (a music prompt, tags and one
video prompt a shot), first with a ``json_schema`` response format, then ``json_object``,
then as plain text whose JSON is dug out of the reply; the first that the server accepts is
remembered. Replies are validated; HTTP errors, timeouts and malformed or empty replies are
retried with exponential backoff, and when the retries are spent the offline writer writes
that sequence instead, so the channel never waits on a broken server. ``state`` says how it
went, for ``/api/status``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import openai
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints, ValidationError, field_validator

from webtv.config import DirectorSection
from webtv.director.base import DirectorState, Sequence, Shot
from webtv.director.offline import OfflineDirector, _clean
from webtv.text import checked_text, text_problem

log = logging.getLogger("webtv.director")

PLACEHOLDER_KEY = "not-needed"
FORMATS = ("json_schema", "json_object", "text")
MAX_PROMPT_CHARS = 1200
MAX_MUSIC_CHARS = 400
MAX_TAGS = 8


def load_system_prompt(path: Path | None = None) -> str:
    """The file at ``path`` if given, else the packaged ``system_prompt.txt``."""
    if path is not None:
        return Path(path).read_text(encoding="utf-8").strip()
    return resources.files("webtv.director").joinpath("system_prompt.txt").read_text(encoding="utf-8").strip()


def api_key(director: DirectorSection, env: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """(key, found): the key from the variable named by ``api_key_env``, else a placeholder."""
    env = os.environ if env is None else env
    key = env.get(director.api_key_env, "")
    return (key, True) if key else (PLACEHOLDER_KEY, False)


def make_client(director: DirectorSection, key: str) -> openai.AsyncOpenAI:
    """An async client for ``base_url``; it does not retry by itself (the callers do)."""
    return openai.AsyncOpenAI(api_key=key, base_url=director.base_url, timeout=director.timeout_s, max_retries=0)


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (an error message may echo what was sent), one line, bounded."""
    if secret and secret != PLACEHOLDER_KEY:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def public_url(url: str) -> str:
    """``url`` without credentials or query string, fit to show."""
    return re.sub(r"^(\w+://)[^@/]*@", r"\1", url).split("?", 1)[0]


# ----------------------------------------------------------------------------- the reply


def _text(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


Prompt = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=3, max_length=MAX_PROMPT_CHARS)]


class ShotReply(BaseModel):
    prompt: Prompt

    @classmethod
    def coerce(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"prompt": value}
        if isinstance(value, dict) and "prompt" not in value:
            for alias in ("video_prompt", "description", "text"):
                if alias in value:
                    return {"prompt": value[alias]}
        return value


class SequenceReply(BaseModel):
    """What the model must answer; extra keys are ignored."""

    music_prompt: Annotated[str, BeforeValidator(_text), StringConstraints(min_length=3, max_length=MAX_MUSIC_CHARS),
                            AfterValidator(checked_text)]
    tags: list[str] = Field(default_factory=list)
    shots: list[ShotReply] = Field(min_length=1)

    @field_validator("shots", mode="before")
    @classmethod
    def _shots(cls, value: Any) -> Any:
        return [ShotReply.coerce(v) for v in value] if isinstance(value, list) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            raise ValueError("tags must be a list of words")
        out: list[str] = []
        for tag in value:
            if not isinstance(tag, str):
                continue
            tag = re.sub(r"[^a-z0-9-]+", "-", tag.strip().lower()).strip("-")[:32]
            if tag and tag not in out:
                out.append(tag)
        return out[:MAX_TAGS]


def reply_schema(shots: int) -> dict:
    """The JSON schema of a reply with exactly ``shots`` shots, for ``response_format``."""
    return {
        "type": "object",
        "properties": {
            "music_prompt": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "shots": {
                "type": "array",
                "minItems": shots,
                "maxItems": shots,
                "items": {
                    "type": "object",
                    "properties": {"prompt": {"type": "string"}},
                    "required": ["prompt"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["music_prompt", "tags", "shots"],
        "additionalProperties": False,
    }


class ReplyError(Exception):
    """The server answered, but not with a usable sequence."""


def extract_json(content: str) -> Any:
    """The JSON object in a reply: the whole text, a fenced block, or the first ``{...}``."""
    text = content.strip()
    if not text:
        raise ReplyError("empty reply")
    candidates = [text]
    candidates += [m.group(1) for m in re.finditer(r"```(?:json|JSON)?\s*\n?(.*?)```", text, re.S)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ReplyError(f"reply is not JSON: {text[:80]!r}")


def parse_reply(content: str | None, shots: int) -> SequenceReply:
    """Validate a reply; extra shots are dropped, too few is an error."""
    data = extract_json(content or "")
    if not isinstance(data, dict):
        raise ReplyError(f"reply is JSON but not an object ({type(data).__name__})")
    try:
        reply = SequenceReply.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise ReplyError(f"reply has the wrong shape: {where}: {first['msg']}") from None
    printable = [shot for shot in reply.shots if not _dropped(shot.prompt)]
    if len(printable) < len(reply.shots):
        reply = reply.model_copy(update={"shots": printable})
    if len(reply.shots) < shots:
        raise ReplyError(f"reply has {len(reply.shots)} shots, {shots} were asked for")
    return reply.model_copy(update={"shots": reply.shots[:shots]})


def _dropped(prompt: str) -> bool:
    """True (and logged) when a shot prompt is not printable text: that shot is left out."""
    problem = text_problem(prompt)
    if problem is not None:
        log.warning("director: shot prompt dropped, it %s: %r", problem, prompt[:80])
    return problem is not None


# ----------------------------------------------------------------------------- the director


class OpenAIDirector:
    """Writes sequences through an OpenAI-compatible chat-completions server.

    ``backoff_s`` is the first wait between attempts (doubled each time, at most 30 s);
    ``cooldown_s``: after a fallback, sequences are written offline, without asking the
    server, for that long, so that a dead server costs the channel one round of timeouts,
    not one a sequence. ``env`` replaces ``os.environ`` when looking up the key.
    """

    def __init__(
        self,
        director: DirectorSection,
        *,
        backoff_s: float = 1.0,
        cooldown_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ):
        self.config = director
        self.backoff_s = backoff_s
        self.cooldown_s = cooldown_s
        self.system_prompt = load_system_prompt(director.system_prompt)
        self.offline = OfflineDirector()
        self._key, found = api_key(director, env)
        if not found:
            log.warning("director: %s is not set; sending a placeholder key (fine for local servers)", director.api_key_env)
        self._format = 0  # index into FORMATS: the richest the server is known to accept
        self._client: openai.AsyncOpenAI | None = None
        self.state = DirectorState(backend="openai", model=director.model, base_url=public_url(director.base_url),
                                   response_format=FORMATS[0])

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def response_format(self) -> str:
        return FORMATS[self._format]

    async def write_sequence(self, theme: str, shots: int, seed: int) -> Sequence:
        theme = _clean(theme)
        shots = max(1, int(shots))
        now = time.time()
        if self.state.fallback_active and self.state.retry_at is not None and now < self.state.retry_at:
            return self._fallback(theme, shots, seed, None)
        attempts = 1 + self.config.retries
        error = "no attempt"
        for attempt in range(attempts):
            if attempt:
                delay = min(30.0, self.backoff_s * 2 ** (attempt - 1))
                log.info("director: retry %d/%d in %.2f s after: %s", attempt, self.config.retries, delay, error)
                await asyncio.sleep(delay)
            try:
                reply = await self._ask(theme, shots, seed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every server problem ends in the offline writer
                error = self._describe(exc)
                self._error(error)
                continue
            self.state.fallback_active = False
            self.state.retry_at = None
            self.state.sequences += 1
            self.state.last_ok_at = time.time()
            return self._sequence(theme, shots, seed, reply)
        return self._fallback(theme, shots, seed, error)

    # -- one request ---------------------------------------------------------------------

    def _messages(self, theme: str, shots: int, seed: int) -> list[dict]:
        user = (
            f"Theme: {theme}\n"
            f"Shots: {shots}\n"
            f"Seed: {seed}\n"
            f"Write one sequence of exactly {shots} shots for this theme, in the JSON shape described."
        )
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def _response_format(self, shots: int) -> dict | None:
        kind = FORMATS[self._format]
        if kind == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "sequence", "schema": reply_schema(shots)}}
        if kind == "json_object":
            return {"type": "json_object"}
        return None

    async def _ask(self, theme: str, shots: int, seed: int) -> SequenceReply:
        if self._client is None:
            self._client = make_client(self.config, self._key)
        while True:
            kwargs: dict[str, Any] = {"model": self.config.model, "messages": self._messages(theme, shots, seed), "seed": seed}
            response_format = self._response_format(shots)
            if response_format is not None:
                kwargs["response_format"] = response_format
            try:
                completion = await asyncio.wait_for(
                    self._client.chat.completions.create(**kwargs), timeout=self.config.timeout_s
                )
            except openai.APIStatusError as exc:
                if response_format is not None and exc.status_code in (400, 404, 415, 422, 501):
                    # The server does not take this response_format: ask the next way, now.
                    self._format += 1
                    self.state.response_format = self.response_format
                    log.warning(
                        "director: server rejected response_format %s (HTTP %d); using %s from now on",
                        response_format["type"], exc.status_code, self.response_format,
                    )
                    continue
                raise
            self.state.response_format = self.response_format
            choices = getattr(completion, "choices", None) or []
            if not choices or choices[0].message is None:
                raise ReplyError("reply has no choices")
            message = choices[0].message
            content = message.content
            if not content and getattr(message, "refusal", None):
                raise ReplyError(f"model refused: {message.refusal}")
            return parse_reply(content, shots)

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError)):
            text = f"timed out after {self.config.timeout_s:g} s"
        elif isinstance(exc, openai.APIStatusError):
            text = f"HTTP {exc.status_code}: " + re.sub(r"^Error code: \d+ - ", "", str(exc.message))
        elif isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            text = f"cannot connect to {self.config.base_url}" + (f": {cause}" if cause else "")
        elif isinstance(exc, ReplyError):
            text = str(exc)
        else:
            text = f"{type(exc).__name__}: {exc}"
        return redact(text, self._key)

    def _error(self, error: str) -> None:
        self.state.last_error = error
        self.state.last_error_at = time.time()
        log.warning("director: %s (model=%s)", error, self.config.model)

    # -- results ---------------------------------------------------------------------------

    def _fallback(self, theme: str, shots: int, seed: int, error: str | None) -> Sequence:
        if error is not None:
            log.warning(
                "director: %d attempt(s) failed; the offline writer writes this sequence: %s",
                1 + self.config.retries, error,
            )
            self.state.retry_at = time.time() + self.cooldown_s
        self.state.fallback_active = True
        self.state.fallbacks += 1
        return self.offline.write(theme, shots, seed)

    def _sequence(self, theme: str, shots: int, seed: int, reply: SequenceReply) -> Sequence:
        prompts = [s.prompt for s in reply.shots]
        digest = hashlib.sha256("\x1f".join([theme, str(seed), reply.music_prompt, *prompts]).encode("utf-8"))
        seq_id = "llm-" + digest.hexdigest()[:12]
        tags = tuple(reply.tags)
        out = tuple(
            Shot(
                prompt=prompt,
                seed=int.from_bytes(hashlib.sha256(f"{seq_id}:{index}".encode()).digest()[:4], "big") & 0x7FFFFFFF,
                theme=theme,
                tags=tags,
                sequence_id=seq_id,
                index=index,
            )
            for index, prompt in enumerate(prompts)
        )
        return Sequence(id=seq_id, theme=theme, music_prompt=reply.music_prompt, seed=seed, tags=tags, shots=out)

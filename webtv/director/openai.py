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
from typing import Annotated, Any, Awaitable, Callable, TypeVar

import openai
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints, ValidationError, field_validator

from webtv.config import DirectorSection
from webtv.director.base import Character, DirectorState, Episode, EpisodeBrief, Sequence, Shot
from webtv.director.cast import cast_prompt, names_of
from webtv.director.offline import OfflineDirector, _clean, shot_seed_of
from webtv.director.story import bounded_summary
from webtv.director.story import write_episode as write_offline_episode
from webtv.prompt_weights import weight_problem
from webtv.text import checked_text, text_problem

log = logging.getLogger("webtv.director")

T = TypeVar("T", bound=BaseModel)

PLACEHOLDER_KEY = "not-needed"
FORMATS = ("json_schema", "json_object", "text")
MAX_PROMPT_CHARS = 1200
MAX_MUSIC_CHARS = 400
MAX_TAGS = 8


def load_system_prompt(path: Path | None = None, packaged: str = "system_prompt.txt") -> str:
    """The file at ``path`` if given, else the packaged one (``system_prompt.txt``)."""
    if path is not None:
        return Path(path).read_text(encoding="utf-8").strip()
    return resources.files("webtv.director").joinpath(packaged).read_text(encoding="utf-8").strip()


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


# ----------------------------------------------------------------------------- episodes (story mode)

MAX_LINE_CHARS = 400
MAX_SUMMARY_CHARS = 20000


def _line(max_length: int, min_length: int = 1):
    return Annotated[str, BeforeValidator(_text), StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(checked_text)]


class CastReply(BaseModel):
    """A character the model adds to the series."""

    name: _line(60)
    look: _line(MAX_PROMPT_CHARS, 3)


class EpisodeShotReply(BaseModel):
    prompt: Annotated[Prompt, AfterValidator(checked_text), AfterValidator(_checked_weights)]
    narration: _line(MAX_LINE_CHARS)
    characters: list[_line(60)] = Field(default_factory=list)


class EpisodeReply(SequenceReply):
    """What the model must answer for an episode; extra keys are ignored."""

    title: _line(120)
    cast: list[CastReply] = Field(default_factory=list)
    shots: list[EpisodeShotReply] = Field(min_length=1)  # type: ignore[assignment]
    summary: _line(MAX_SUMMARY_CHARS)

    @field_validator("shots", mode="before")
    @classmethod
    def _shots(cls, value: Any) -> Any:
        return value


def episode_schema(shots: int) -> dict:
    """The JSON schema of an episode reply with exactly ``shots`` shots."""
    text = {"type": "string"}
    schema = reply_schema(shots)
    schema["properties"].update({
        "title": text,
        "cast": {"type": "array", "items": {"type": "object", "properties": {"name": text, "look": text},
                                            "required": ["name", "look"], "additionalProperties": False}},
        "summary": text,
    })
    schema["properties"]["shots"]["items"] = {
        "type": "object",
        "properties": {"prompt": text, "narration": text, "characters": {"type": "array", "items": text}},
        "required": ["prompt", "narration", "characters"],
        "additionalProperties": False,
    }
    schema["required"] = ["title", "music_prompt", "tags", "cast", "shots", "summary"]
    return schema


def episode_request(theme: str, shots: int, seed: int, brief: EpisodeBrief) -> str:
    """The user message asking for the next episode: the series so far, its cast, the budgets."""
    series = brief.series
    cast = "\n".join(
        f"- {c.name}" + (f" (also called {', '.join(c.aliases)})" if c.aliases else "") + f": {c.look}"
        for c in series.cast
    ) or "- (nobody yet: introduce the characters you need in \"cast\")"
    return (
        f"Theme: {theme}\n"
        f"Shots: {shots}\n"
        f"Episode: {series.episodes + 1}\n"
        f"Seed: {seed}\n"
        f"Words per narration line: at most {brief.words}\n"
        f"Summary: at most {brief.summary_chars} characters\n"
        f"Story so far: {series.summary or '(nothing yet: this is the first episode)'}\n"
        f"Cast:\n{cast}\n"
        f"Write episode {series.episodes + 1} of this series, {shots} shots, in the JSON shape described."
    )


def parse_episode(content: str | None, shots: int) -> EpisodeReply:
    """Validate an episode reply; extra shots are dropped, too few is an error."""
    reply = _validated(EpisodeReply, content)
    return reply.model_copy(update={"shots": _enough(reply.shots, shots)})


def episode_sequence(theme: str, seed: int, brief: EpisodeBrief, reply: EpisodeReply) -> Sequence:
    """The episode as the producer renders it: the series' cast plus the reply's new
    characters (one whose name or alias the series already has keeps the look it has), the
    looks added to each shot's prompt, the summary bounded."""
    cast = list(brief.series.cast)
    taken = {n.casefold() for c in cast for n in names_of(c)}
    for added in reply.cast:
        if added.name.casefold() not in taken:
            cast.append(Character(name=added.name, look=added.look))
            taken.add(added.name.casefold())
    rendered = [cast_prompt(s.prompt, cast, s.characters) for s in reply.shots]
    digest = hashlib.sha256("\x1f".join([theme, str(seed), reply.title, *(p for p, _ in rendered)]).encode("utf-8"))
    seq_id = "llm-" + digest.hexdigest()[:12]
    tags = tuple(reply.tags)
    shots = tuple(
        Shot(prompt=prompt, seed=shot_seed_of(seq_id, index), theme=theme, tags=tags, sequence_id=seq_id, index=index,
             narration=shot.narration, characters=characters)
        for index, (shot, (prompt, characters)) in enumerate(zip(reply.shots, rendered))
    )
    episode = Episode(number=brief.series.episodes + 1, title=reply.title,
                      summary=bounded_summary(reply.summary, brief.summary_chars))
    return Sequence(id=seq_id, theme=theme, music_prompt=reply.music_prompt, seed=seed, tags=tags, shots=shots,
                    episode=episode, cast=tuple(cast))


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


def _validated(model: type[T], content: str | None) -> T:
    """``content``'s JSON object as ``model``, or ReplyError saying what is wrong with it."""
    data = extract_json(content or "")
    if not isinstance(data, dict):
        raise ReplyError(f"reply is JSON but not an object ({type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise ReplyError(f"reply has the wrong shape: {where}: {first['msg']}") from None


def parse_reply(content: str | None, shots: int) -> SequenceReply:
    """Validate a reply; extra shots are dropped, too few is an error."""
    reply = _validated(SequenceReply, content)
    printable = [shot for shot in reply.shots if not _dropped(shot.prompt)]
    if len(printable) < len(reply.shots):
        reply = reply.model_copy(update={"shots": printable})
    return reply.model_copy(update={"shots": _enough(reply.shots, shots)})


def _enough(replies: list, shots: int) -> list:
    """The first ``shots`` of ``replies``; ReplyError when there are fewer."""
    if len(replies) < shots:
        raise ReplyError(f"reply has {len(replies)} shots, {shots} were asked for")
    return replies[:shots]


def _dropped(prompt: str) -> bool:
    """True (and logged) when a shot prompt is not printable text or its weights are
    malformed: that shot is left out."""
    problem = text_problem(prompt)
    if problem is None and (problem := weight_problem(prompt)) is not None:
        problem = f"has a malformed weight: {problem}"
    if problem is not None:
        log.warning("director: shot prompt dropped, it %s: %r", problem, prompt[:80])
    return problem is not None


def _checked_weights(prompt: str) -> str:
    problem = weight_problem(prompt)
    if problem is not None:
        raise ValueError(problem)
    return prompt


# ----------------------------------------------------------------------------- the director


class OpenAIDirector:
    """Writes sequences through an OpenAI-compatible chat-completions server.

    ``backoff_s`` is the first wait between attempts (doubled each time, at most 30 s; by
    default ``[director] retry_backoff_s``);
    ``cooldown_s``: after a fallback, sequences are written offline, without asking the
    server, for that long, so that a dead server costs the channel one round of timeouts,
    not one a sequence. ``env`` replaces ``os.environ`` when looking up the key.
    """

    def __init__(
        self,
        director: DirectorSection,
        *,
        backoff_s: float | None = None,
        cooldown_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ):
        self.config = director
        self.backoff_s = director.retry_backoff_s if backoff_s is None else backoff_s
        self.cooldown_s = cooldown_s
        self.system_prompt = load_system_prompt(director.system_prompt)
        self.story_prompt = load_system_prompt(None, "story_prompt.txt")
        self.offline = OfflineDirector(director.subject_weight)
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

        async def ask() -> Sequence:
            content = await self._ask(self._messages(theme, shots, seed), "sequence", reply_schema(shots), seed)
            return self._sequence(theme, shots, seed, parse_reply(content, shots))

        return await self._written(ask, lambda: self.offline.write(theme, shots, seed))

    async def write_episode(self, theme: str, shots: int, seed: int, brief: EpisodeBrief) -> Sequence:
        """The next episode of ``brief.series`` from the server (series summary and cast in the
        request); on any failure the offline story writer writes that episode."""
        theme = _clean(theme)
        shots = max(1, int(shots))

        async def ask() -> Sequence:
            messages = [{"role": "system", "content": self.story_prompt},
                        {"role": "user", "content": episode_request(theme, shots, seed, brief)}]
            content = await self._ask(messages, "episode", episode_schema(shots), seed)
            return episode_sequence(theme, seed, brief, parse_episode(content, shots))

        return await self._written(ask, lambda: write_offline_episode(theme, shots, seed, brief))

    async def _written(self, ask: Callable[[], Awaitable[Sequence]], offline: Callable[[], Sequence]) -> Sequence:
        """``ask()``'s sequence, retried with backoff; the ``offline`` one when the retries are
        spent or while the cooldown after a fallback lasts."""
        now = time.time()
        if self.state.fallback_active and self.state.retry_at is not None and now < self.state.retry_at:
            return self._fallback(offline, None)
        attempts = 1 + self.config.retries
        error = "no attempt"
        for attempt in range(attempts):
            if attempt:
                delay = min(30.0, self.backoff_s * 2 ** (attempt - 1))
                log.info("director: retry %d/%d in %.2f s after: %s", attempt, self.config.retries, delay, error)
                await asyncio.sleep(delay)
            try:
                sequence = await ask()
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
            return sequence
        return self._fallback(offline, error)

    # -- one request ---------------------------------------------------------------------

    def _messages(self, theme: str, shots: int, seed: int) -> list[dict]:
        user = (
            f"Theme: {theme}\n"
            f"Shots: {shots}\n"
            f"Seed: {seed}\n"
            f"Write one sequence of exactly {shots} shots for this theme, in the JSON shape described."
        )
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def _response_format(self, name: str, schema: dict) -> dict | None:
        kind = FORMATS[self._format]
        if kind == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        if kind == "json_object":
            return {"type": "json_object"}
        return None

    async def _ask(self, messages: list[dict], name: str, schema: dict, seed: int) -> str | None:
        """The reply's content, in the richest response format the server takes."""
        if self._client is None:
            self._client = make_client(self.config, self._key)
        while True:
            kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages, "seed": seed}
            response_format = self._response_format(name, schema)
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
            return content

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

    def _fallback(self, offline: Callable[[], Sequence], error: str | None) -> Sequence:
        if error is not None:
            log.warning(
                "director: %d attempt(s) failed; the offline writer writes this sequence: %s",
                1 + self.config.retries, error,
            )
            self.state.retry_at = time.time() + self.cooldown_s
        self.state.fallback_active = True
        self.state.fallbacks += 1
        return offline()

    def _sequence(self, theme: str, shots: int, seed: int, reply: SequenceReply) -> Sequence:
        prompts = [s.prompt for s in reply.shots]
        digest = hashlib.sha256("\x1f".join([theme, str(seed), reply.music_prompt, *prompts]).encode("utf-8"))
        seq_id = "llm-" + digest.hexdigest()[:12]
        tags = tuple(reply.tags)
        out = tuple(
            Shot(
                prompt=prompt,
                seed=shot_seed_of(seq_id, index),
                theme=theme,
                tags=tags,
                sequence_id=seq_id,
                index=index,
            )
            for index, prompt in enumerate(prompts)
        )
        return Sequence(id=seq_id, theme=theme, music_prompt=reply.music_prompt, seed=seed, tags=tags, shots=out)

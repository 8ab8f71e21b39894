"""Moderation of themes and generated prompts, before anything is rendered.

Rules, in order: blocked words (whole words, any case), blocked patterns (Python regular
expressions, any case), then, with ``[moderation] openai = true``, the moderation endpoint
of the ``[director]`` server. A verdict is the rule that blocked the text (``word:gore``,
``pattern:blood\\w*``, ``openai:violence``) or None. The endpoint failing blocks nothing: it
is logged and counted in ``state``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence as Seq
from dataclasses import dataclass
from typing import Any

from webtv.config import DirectorSection, ModerationSection
from webtv.director.base import Sequence

log = logging.getLogger("webtv.moderation")


@dataclass
class ModerationState:
    checked: int = 0  # texts looked at
    blocked: int = 0  # texts blocked
    endpoint_errors: int = 0  # calls to the moderation endpoint that failed (nothing was blocked for them)
    last_error: str | None = None  # the endpoint's last failure, one line


def _word_rule(word: str) -> re.Pattern:
    body = r"\s+".join(re.escape(part) for part in word.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


class Moderator:
    """Checks texts against ``[moderation]``; ``director`` names the server for ``openai = true``."""

    def __init__(
        self,
        moderation: ModerationSection,
        director: DirectorSection | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ):
        self.config = moderation
        self.director = director
        self.words = [(word.strip(), _word_rule(word)) for word in moderation.words if word.strip()]
        self.patterns = [(pattern, re.compile(pattern, re.IGNORECASE)) for pattern in moderation.patterns]
        self.state = ModerationState()
        self.endpoint = moderation.openai and director is not None
        if moderation.openai and director is None:
            log.warning("moderation: openai = true but no [director] server is given; the endpoint is not asked")
        self._key: str | None = None
        self._client = None
        if self.endpoint:
            from webtv.director.openai import api_key

            self._key, found = api_key(director, env)
            if not found:
                log.warning("moderation: %s is not set; sending a placeholder key", director.api_key_env)

    @property
    def active(self) -> bool:
        """Whether any rule is configured."""
        return bool(self.words or self.patterns or self.endpoint)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def check_local(self, text: str) -> str | None:
        """The word or pattern rule that blocks ``text``, or None. No network."""
        for word, rule in self.words:
            if rule.search(text):
                return f"word:{word}"
        for pattern, rule in self.patterns:
            if rule.search(text):
                return f"pattern:{pattern}"
        return None

    async def check(self, text: str) -> str | None:
        """The rule that blocks ``text``, or None."""
        return (await self.check_many([text]))[0]

    async def check_many(self, texts: Seq[str]) -> list[str | None]:
        """A verdict for each text; the endpoint is asked once, for all texts no local rule blocked."""
        verdicts = [self.check_local(t) if t and t.strip() else None for t in texts]
        ask = [i for i, (t, v) in enumerate(zip(texts, verdicts)) if v is None and t and t.strip()]
        if self.endpoint and ask:
            answers = await self._ask_endpoint([texts[i] for i in ask])
            for i, answer in zip(ask, answers):
                verdicts[i] = answer
        self.state.checked += len(texts)
        self.state.blocked += sum(v is not None for v in verdicts)
        return verdicts

    async def filter_sequence(self, sequence: Sequence) -> tuple[Sequence | None, list[tuple[str, str]]]:
        """(what may be rendered, [(blocked text, rule)]).

        A blocked theme, music prompt or episode title blocks the whole sequence (None); a
        shot is checked with its narration line. Otherwise blocked
        shots are dropped and the rest renumbered 0..n-1, so each still gets its slice of the
        sequence's music track; None when no shot is left.
        """
        whole = [sequence.theme, sequence.music_prompt, *([sequence.episode.title] if sequence.episode else [])]
        texts = [*whole, *(f"{s.prompt} {s.narration}".strip() for s in sequence.shots)]  # story mode: the line too
        verdicts = await self.check_many(texts)
        for text, rule in zip(whole, verdicts):
            if rule is not None:
                return None, [(text, rule)]
        shot_verdicts = verdicts[len(whole):]
        blocked = [(shot.prompt, rule) for shot, rule in zip(sequence.shots, shot_verdicts) if rule is not None]
        if not blocked:
            return sequence, []
        kept = [shot for shot, rule in zip(sequence.shots, shot_verdicts) if rule is None]
        if not kept:
            return None, blocked
        shots = tuple(dataclasses.replace(shot, index=i) for i, shot in enumerate(kept))
        return dataclasses.replace(sequence, shots=shots), blocked

    # -- the endpoint ----------------------------------------------------------------------

    async def _ask_endpoint(self, texts: list[str]) -> list[str | None]:
        from webtv.director.openai import make_client, redact

        try:
            if self._client is None:
                self._client = make_client(self.director, self._key)
            response = await asyncio.wait_for(
                self._client.moderations.create(input=texts), timeout=self.director.timeout_s
            )
            results = list(response.results)
            if len(results) != len(texts):
                raise ValueError(f"{len(results)} results for {len(texts)} inputs")
            return [_flagged(r) for r in results]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                message = f"timed out after {self.director.timeout_s:g} s"
            else:
                message = f"{type(exc).__name__}: {exc}"
            message = redact(message, self._key)
            self.state.endpoint_errors += 1
            self.state.last_error = message
            log.warning("moderation: endpoint failed, not blocking: %s", message)
            return [None] * len(texts)


def _flagged(result: Any) -> str | None:
    if not getattr(result, "flagged", False):
        return None
    categories = _plain(getattr(result, "categories", None))
    scores = _plain(getattr(result, "category_scores", None))
    hits = [name for name, on in categories.items() if on is True]
    if not hits:
        return "openai:flagged"
    hits.sort(key=lambda name: -(scores.get(name) or 0.0))
    return f"openai:{hits[0]}"


def _plain(value: Any) -> dict:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True)
    return dict(value) if isinstance(value, Mapping) else {}

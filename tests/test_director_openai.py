"""The LLM director against a real HTTP server speaking the OpenAI API (tests/openai_server.py).

Directly through ``OpenAIDirector`` and through the ``webtv prompts`` command in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.openai_server import shot_prompt
from webtv.config import Config, OpenAIDirectorSection
from webtv.director import make_director
from webtv.director.offline import OfflineDirector
from webtv.director.openai import OpenAIDirector, extract_json, load_system_prompt, parse_reply, ReplyError

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "WEBTV_TEST_LLM_KEY"
SECRET = "sk-test-7f3a9c-never-shown"
THEME = "a quiet harbour at dawn"

# reply kinds the director cannot use, and what its last_error then says
BAD = {
    "malformed": "not JSON",
    "wrong_shape": "wrong shape",
    "too_few": "2 shots, 3 were asked",
    "empty": "empty reply",
    "error500": "HTTP 500",
    "slow": "timed out after 0.5 s",
}


def section(server, **overrides) -> OpenAIDirectorSection:
    fields = dict(backend="openai", base_url=server.url, model="fake-model", api_key_env=KEY_ENV,
                  timeout_s=0.5, retries=1, shots_per_sequence=3)
    return OpenAIDirectorSection(**{**fields, **overrides})


@pytest.fixture
def key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


@pytest.fixture
async def make(openai_server, key):
    """make(**director overrides, backoff_s=, cooldown_s=) -> OpenAIDirector on the fake server."""
    made: list[OpenAIDirector] = []

    def build(backoff_s: float = 0.01, cooldown_s: float = 0.0, **overrides) -> OpenAIDirector:
        director = OpenAIDirector(section(openai_server, **overrides), backoff_s=backoff_s, cooldown_s=cooldown_s)
        made.append(director)
        return director

    yield build
    for director in made:
        await director.aclose()


# ----------------------------------------------------------------------------- well-formed


async def test_a_well_formed_reply_becomes_the_sequence(openai_server, make):
    director = make()
    seq = await director.write_sequence(f"  {THEME}  ", 3, 7)

    assert [s.prompt for s in seq.shots] == [shot_prompt(THEME, i) for i in range(3)]
    assert seq.theme == THEME and seq.seed == 7
    assert seq.music_prompt == f"calm ambient piano for {THEME}"
    assert seq.tags == ("fake", "calm", "sea")
    assert seq.id.startswith("llm-")
    for index, shot in enumerate(seq.shots):
        assert (shot.index, shot.theme, shot.tags, shot.sequence_id) == (index, THEME, seq.tags, seq.id)
        assert isinstance(shot.seed, int) and 0 <= shot.seed < 2**31
    assert len({s.seed for s in seq.shots}) == 3

    (request,) = openai_server.chat_requests()
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "fake-model"
    assert request.body["seed"] == 7
    system, user = request.messages
    assert system == {"role": "system", "content": load_system_prompt()}
    assert user["role"] == "user" and f"Theme: {THEME}" in user["content"] and "Shots: 3" in user["content"]
    assert request.response_format == "json_schema"
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["shots"]["minItems"] == schema["properties"]["shots"]["maxItems"] == 3

    state = director.state
    assert state.backend == "openai" and state.model == "fake-model" and state.base_url == openai_server.url
    assert not state.fallback_active and state.fallbacks == 0 and state.sequences == 1
    assert state.last_error is None and state.last_ok_at is not None and state.response_format == "json_schema"


def test_the_packaged_system_prompt_carries_the_advice_and_the_shape():
    text = load_system_prompt()
    for needle in ("camera moves", "direction and a speed", "in every shot prompt", "IMAX", "Canon EOS",
                   '"music_prompt"', '"tags"', '"shots"', '"prompt"', "the character", "(on a misty pier at dawn:0.9)"):
        assert needle in text, needle


async def test_a_system_prompt_file_replaces_the_packaged_one(openai_server, make, tmp_path):
    custom = tmp_path / "prompt.txt"
    custom.write_text("You write shots for a channel about lighthouses. Reply with JSON.\n")
    await make(system_prompt=custom).write_sequence(THEME, 3, 1)
    (request,) = openai_server.chat_requests()
    assert request.messages[0]["content"] == "You write shots for a channel about lighthouses. Reply with JSON."


async def test_a_prompt_with_a_malformed_weight_is_dropped_and_a_weighted_one_kept(openai_server, make, caplog):
    director = make()
    openai_server.behave("too_many")
    openai_server.poison = {1: "(a red fox:lots)", 2: "(a calm sea:1.2)"}
    kept = await director.write_sequence(THEME, 3, 1)
    assert [s.prompt for s in kept.shots] == [shot_prompt(THEME, 0), shot_prompt(THEME, 2) + ", (a calm sea:1.2)",
                                              shot_prompt(THEME, 3)]
    assert "malformed weight" in caplog.text and "'lots' of 'a red fox' is not a number" in caplog.text


async def test_extra_shots_are_dropped_and_a_fenced_reply_is_read(openai_server, make):
    director = make()
    openai_server.behave("too_many", "fenced")
    many = await director.write_sequence(THEME, 3, 1)
    fenced = await director.write_sequence(THEME, 3, 2)
    assert [s.prompt for s in many.shots] == [shot_prompt(THEME, i) for i in range(3)]
    assert [s.prompt for s in fenced.shots] == [shot_prompt(THEME, i) for i in range(3)]
    assert director.state.fallbacks == 0 and director.state.sequences == 2


async def test_prompts_that_are_not_printable_text_are_dropped_and_logged(openai_server, make, caplog):
    director = make(backoff_s=0.01)
    openai_server.behave("too_many", "ok")
    openai_server.poison = {1: "a\ud800b", 3: "a bell\x07rings"}
    kept = await director.write_sequence(THEME, 3, 1)
    assert [s.prompt for s in kept.shots] == [shot_prompt(THEME, i) for i in (0, 2, 4)]
    assert "U+D800" in caplog.text and "U+0007" in caplog.text and "dropped" in caplog.text
    too_few = await director.write_sequence(THEME, 3, 2)  # 2 of 3 left: retried, then the offline writer
    assert too_few == OfflineDirector().write(THEME, 3, 2)
    assert director.state.fallbacks == 1 and "2 shots, 3 were asked" in director.state.last_error


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("mode", list(BAD))
async def test_a_bad_reply_is_retried_then_the_offline_writer_writes(openai_server, make, mode, caplog):
    caplog.set_level(logging.INFO)
    director = make(backoff_s=0.05)
    openai_server.behave(mode)
    started = time.monotonic()
    seq = await director.write_sequence(THEME, 3, 7)
    elapsed = time.monotonic() - started

    assert seq == OfflineDirector().write(THEME, 3, 7)
    assert len(openai_server.chat_requests()) == 2, "one try and one retry (retries = 1)"
    state = director.state
    assert state.fallback_active and state.fallbacks == 1 and state.sequences == 0
    assert BAD[mode] in state.last_error and state.last_error_at is not None and state.last_ok_at is None
    assert elapsed < (2.5 if mode == "slow" else 1.5)
    assert "offline writer writes this sequence" in caplog.text
    assert SECRET not in caplog.text


async def test_a_retry_that_succeeds_is_no_fallback_and_backoff_doubles(openai_server, make):
    director = make(backoff_s=0.1, retries=2)
    openai_server.behave("error500", "malformed", "ok")
    started = time.monotonic()
    seq = await director.write_sequence(THEME, 3, 7)
    assert time.monotonic() - started >= 0.1 + 0.2
    assert [s.prompt for s in seq.shots] == [shot_prompt(THEME, i) for i in range(3)]
    assert len(openai_server.chat_requests()) == 3
    assert not director.state.fallback_active and director.state.fallbacks == 0
    assert "not JSON" in director.state.last_error  # the last problem stays visible


async def test_the_director_comes_back_after_a_fallback(openai_server, make):
    director = make(retries=0)
    openai_server.behave("error500", "ok")
    first = await director.write_sequence(THEME, 3, 1)
    assert director.state.fallback_active and first.id.startswith("seq-")
    second = await director.write_sequence(THEME, 3, 2)
    assert not director.state.fallback_active and second.id.startswith("llm-")
    assert director.state.fallbacks == 1 and director.state.sequences == 1


async def test_after_a_fallback_the_server_rests_for_the_cooldown(openai_server, make):
    director = make(retries=0, cooldown_s=60)
    openai_server.behave("error500")
    await director.write_sequence(THEME, 3, 1)
    assert director.state.retry_at > time.time() + 50
    again = await director.write_sequence(THEME, 3, 2)
    assert again == OfflineDirector().write(THEME, 3, 2)
    assert len(openai_server.chat_requests()) == 1, "no request while cooling down"
    assert director.state.fallbacks == 2


async def test_an_unreachable_server_falls_back(key):
    director = OpenAIDirector(
        OpenAIDirectorSection(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, timeout_s=0.5, retries=0)
    )
    seq = await director.write_sequence(THEME, 2, 3)
    await director.aclose()
    assert seq == OfflineDirector().write(THEME, 2, 3)
    assert "cannot connect" in director.state.last_error


async def test_the_key_is_redacted_when_a_server_echoes_it(openai_server, make, caplog):
    openai_server.echo_key = True
    director = make(retries=0)
    openai_server.behave("error500")
    await director.write_sequence(THEME, 3, 1)
    assert "you sent Bearer ***" in director.state.last_error
    assert SECRET not in json.dumps(vars(director.state)) and SECRET not in caplog.text


# ----------------------------------------------------------------------------- response formats


async def test_a_server_without_json_schema_is_asked_for_json_object_from_then_on(openai_server, make, caplog):
    openai_server.formats = {"json_object", None}
    director = make()
    for seed in (1, 2):
        seq = await director.write_sequence(THEME, 3, seed)
        assert seq.id.startswith("llm-")
    assert [r.response_format for r in openai_server.chat_requests()] == ["json_schema", "json_object", "json_object"]
    assert director.state.response_format == "json_object" and director.state.fallbacks == 0
    assert "rejected response_format json_schema (HTTP 400)" in caplog.text


async def test_a_server_without_response_format_gets_plain_text(openai_server, make):
    openai_server.formats = {None}
    openai_server.behave("fenced")
    director = make(retries=0)
    for seed in (1, 2):
        seq = await director.write_sequence(THEME, 3, seed)
        assert [s.prompt for s in seq.shots] == [shot_prompt(THEME, i) for i in range(3)]
    assert [r.response_format for r in openai_server.chat_requests()] == ["json_schema", "json_object", None, None]
    assert director.state.response_format == "text" and director.state.fallbacks == 0


# ----------------------------------------------------------------------------- key, factory, parsing


async def test_an_unset_key_variable_sends_a_placeholder_and_warns(openai_server, monkeypatch, caplog):
    monkeypatch.delenv(KEY_ENV, raising=False)
    director = OpenAIDirector(section(openai_server), backoff_s=0.01)
    await director.write_sequence(THEME, 3, 1)
    await director.aclose()
    assert openai_server.chat_requests()[0].headers["Authorization"] == "Bearer not-needed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(KEY_ENV in w and "not set" in w for w in warnings)


def test_make_director_builds_the_configured_backend(openai_server):
    assert isinstance(make_director(Config().director), OfflineDirector)
    director = make_director(section(openai_server))
    assert isinstance(director, OpenAIDirector) and director.state.backend == "openai"


def test_reply_parsing():
    good = {"music_prompt": "soft piano", "tags": ["Sea Side", "", 3], "shots": ["a boat drifts left", {"video_prompt": "a gull glides right"}]}
    reply = parse_reply("Sure:\n```json\n" + json.dumps(good) + "\n```", 2)
    assert [s.prompt for s in reply.shots] == ["a boat drifts left", "a gull glides right"]
    assert reply.tags == ["sea-side"]
    assert extract_json('noise {"a": 1} trailing') == {"a": 1}
    for bad, shots in [("", 1), ("[1, 2]", 1), ('{"music_prompt": "x y z", "shots": [{"prompt": "  "}]}', 1),
                       ('{"music_prompt": "ok music", "shots": [{"prompt": "' + "x" * 5000 + '"}]}', 1),
                       (json.dumps(good), 3), ('{"music_prompt": "soft\\u0000piano", "shots": ["a boat"]}', 1)]:
        with pytest.raises(ReplyError):
            parse_reply(bad, shots)


# ----------------------------------------------------------------------------- the CLI


def cli(tmp_path: Path, server, *args: str, retries: int = 0, extra: str = "", env: dict | None = None):
    config = tmp_path / "channel.toml"
    config.write_text(
        f"""
[director]
backend = "openai"
base_url = "{server.url}"
model = "fake-model"
api_key_env = "{KEY_ENV}"
timeout_s = 0.5
retries = {retries}
shots_per_sequence = 3
{extra}
"""
    )
    run_env = {**os.environ, KEY_ENV: SECRET, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "webtv", "prompts", THEME, "--config", str(config), *args],
        capture_output=True, text=True, cwd=ROOT, env=run_env, timeout=60,
    )


def test_cli_prints_the_servers_prompts(openai_server, tmp_path):
    done = cli(tmp_path, openai_server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [shot_prompt(THEME, i) for i in range(3)]
    assert "offline" not in done.stderr
    assert openai_server.chat_requests()[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in done.stdout + done.stderr


def test_cli_asks_for_more_sequences_and_prints_json(openai_server, tmp_path):
    done = cli(tmp_path, openai_server, "-n", "7", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 7 and len(openai_server.chat_requests()) == 3
    for row in rows:
        assert {"prompt", "seed", "tags", "sequence_id", "music_prompt"} <= set(row)
        assert row["music_prompt"] == f"calm ambient piano for {THEME}" and row["tags"] == ["fake", "calm", "sea"]
    assert len({r["sequence_id"] for r in rows}) == 3
    assert len({r["seed"] for r in rows}) == 7


@pytest.mark.parametrize("mode", ["error500", "malformed", "slow", "empty"])
def test_cli_falls_back_to_the_offline_writer_with_a_warning(openai_server, tmp_path, mode):
    openai_server.echo_key = True
    openai_server.behave(mode)
    done = cli(tmp_path, openai_server, "-n", "5", retries=1 if mode == "error500" else 0)
    assert done.returncode == 0, done.stderr
    offline = OfflineDirector()
    expected = [s.prompt for seed in (0, 3) for s in offline.write(THEME, 3, seed).shots][:5]
    assert done.stdout.splitlines() == expected
    assert "offline writer" in done.stderr and BAD[mode] in done.stderr
    assert SECRET not in done.stdout + done.stderr
    # one round of attempts, then the cooldown keeps the second sequence offline without asking
    assert len(openai_server.chat_requests()) == (2 if mode == "error500" else 1)


def test_cli_uses_json_object_when_the_server_rejects_json_schema(openai_server, tmp_path):
    openai_server.formats = {"json_object", None}
    done = cli(tmp_path, openai_server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [shot_prompt(THEME, i) for i in range(3)]
    assert "offline writer" not in done.stderr
    assert [r.response_format for r in openai_server.chat_requests()] == ["json_schema", "json_object"]

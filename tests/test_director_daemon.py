"""The LLM director inside a running channel, against a real OpenAI-compatible server:
its prompts air; every kind of failure falls back to the offline writer and the channel
keeps airing, with /api/status saying so."""

from __future__ import annotations

import sqlite3

import pytest

from tests.daemon import Daemon

pytestmark = pytest.mark.e2e

KEY = "sk-test-daemon-key"


def llm_prompt(prompt: str) -> bool:
    return prompt.startswith("shot ") and " of " in prompt  # the fake server's wording


def library_prompts(daemon: Daemon) -> list[str]:
    with sqlite3.connect(daemon.folder / "library" / "index.sqlite") as db:
        return [row[0] for row in db.execute("SELECT prompt FROM clips")]


def test_llm_director_in_a_running_channel(tmp_path, openai_server):
    openai_server.poison = {1: "with gore everywhere"}
    openai_server.vary = True
    daemon = Daemon(
        tmp_path / "llm channel",
        env={"WEBTV_TEST_LLM_KEY": KEY},
        director={"backend": "openai", "base_url": openai_server.url, "model": "fake-model",
                  "api_key_env": "WEBTV_TEST_LLM_KEY", "timeout_s": 1.0, "retries": 1, "retry_backoff_s": 0.1,
                  "cooldown_s": 0.0},
        moderation={"words": ["gore"]},
        programme={"block_seconds": 4.0, "filler_seconds": 2.0},
    ).start()
    try:
        status = daemon.wait_for(
            lambda s: s["now_playing"] is not None and llm_prompt(s["now_playing"]["prompt"] or ""),
            timeout=40, message="an LLM-written clip on air")
        assert status["director"]["fallback_active"] is False and status["director"]["sequences"] >= 1
        request = openai_server.chat_requests()[0]
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.body["model"] == "fake-model"
        assert status["producer"]["prompts_blocked"] >= 1
        assert not any("gore" in p for p in library_prompts(daemon)), "a blocked prompt was rendered"

        for number, mode in enumerate(["error500", "malformed", "empty", "slow"]):
            openai_server.behave(mode)
            fallbacks = daemon.status()["director"]["fallbacks"]
            theme = f"failure case {number} in a glass city"
            text = daemon.config.read_text()
            current = daemon.status()["theme"]
            daemon.config.write_text(text.replace(f'theme = "{current}"', f'theme = "{theme}"'))
            status = daemon.wait_for(
                lambda s: s["director"]["fallbacks"] > fallbacks and s["now_playing"]["theme"] == theme,
                timeout=40, message=f"offline clip on air while the server answers {mode}")
            assert status["director"]["fallback_active"] is True, mode
            assert status["director"]["last_error"], mode
            assert not llm_prompt(status["now_playing"]["prompt"]), mode
            assert all(o["state"] == "running" for o in status["outputs"])
        assert KEY not in daemon.log_tail(10**7)
        assert KEY not in str(daemon.status())
    finally:
        daemon.stop()
